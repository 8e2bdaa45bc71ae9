//! Which FRR a lab instance runs: the host's (Debian 12's FRR 8.4) or FRR installed in a
//! directory tree (Debian 13's FRR 10, built by `netlab/scripts/frr10-tree.sh`) whose
//! daemons and vtysh run through `chroot`.
//!
//! Chosen per instance; [`FrrBuild::from_env`] reads the default for every instance of a
//! test run (`NETLAB_FRR`), and the e2e lab can pick the nodes' and the router's apart.
//! Differences between builds are found from the tree itself (which daemons it has), never
//! from a version string.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{NetlabError, Result};
use crate::frr::FRR_BIN_DIR;

/// Where `frr10-tree.sh` builds the FRR 10 tree unless `NETLAB_FRR10_ROOT` says otherwise.
pub const DEFAULT_FRR10_ROOT: &str = "/var/cache/metallb-rs/frr10-trixie";

/// One FRR installation the lab can run instances of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrrBuild {
    /// The host's FRR: `/usr/lib/frr/*`, `vtysh` in `PATH`.
    Host,
    /// FRR installed in this directory tree, run with `chroot`. Each instance keeps its
    /// `etc/frr/NAME` and `run/frr/NAME` inside the tree; its daemons see the host's `/tmp`
    /// (bind-mounted in their private mount namespace), so log files under `/tmp` have the
    /// same path on both sides. vtysh runs with a plain `chroot` and sees the tree's `/tmp`.
    Tree(PathBuf),
}

impl FrrBuild {
    /// The build named by `NETLAB_FRR` (see [`FrrBuild::from_name`]); the host's when unset.
    pub fn from_env() -> Result<Self> {
        Self::from_env_var("NETLAB_FRR")
    }

    /// The build named by environment variable `var`, falling back to `NETLAB_FRR`, then
    /// to the host's.
    pub fn from_env_var(var: &str) -> Result<Self> {
        match std::env::var(var).or_else(|_| std::env::var("NETLAB_FRR")) {
            Ok(v) if !v.trim().is_empty() => Self::from_name(v.trim()),
            _ => Ok(FrrBuild::Host),
        }
    }

    /// `host` (or `8`, `8.4`: Debian 12's package on this machine), `10` (the tree at
    /// `NETLAB_FRR10_ROOT`, default [`DEFAULT_FRR10_ROOT`]), or an absolute path to a tree.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "host" | "8" | "8.4" => Ok(FrrBuild::Host),
            "10" => Ok(FrrBuild::Tree(PathBuf::from(
                std::env::var("NETLAB_FRR10_ROOT").unwrap_or_else(|_| DEFAULT_FRR10_ROOT.into()),
            ))),
            p if p.starts_with('/') => Ok(FrrBuild::Tree(PathBuf::from(p))),
            other => Err(NetlabError::Command {
                cmd: "NETLAB_FRR".into(),
                status: "unknown FRR build".into(),
                output: format!("{other:?}: expected host, 8.4, 10 or a tree's absolute path"),
            }),
        }
    }

    /// The filesystem root FRR sees.
    pub fn root(&self) -> &Path {
        match self {
            FrrBuild::Host => Path::new("/"),
            FrrBuild::Tree(root) => root,
        }
    }

    /// Where a path inside FRR's filesystem is, seen from the host.
    pub fn host_path(&self, in_frr: &str) -> PathBuf {
        self.root().join(in_frr.trim_start_matches('/'))
    }

    /// FRR's state directory as the host sees it: `/var/run/frr` for the host's FRR, the
    /// tree's `run/frr` (not `var/run/frr`: that is an absolute symlink to the host's /run).
    pub fn run_base(&self) -> PathBuf {
        match self {
            FrrBuild::Host => PathBuf::from("/var/run/frr"),
            FrrBuild::Tree(root) => root.join("run/frr"),
        }
    }

    /// The words that run this build's vtysh (before `-N NAME` and the command's own
    /// arguments): `vtysh`, or `chroot TREE vtysh`.
    pub fn vtysh_words(&self) -> Vec<String> {
        match self {
            FrrBuild::Host => vec!["vtysh".into()],
            FrrBuild::Tree(root) => {
                vec!["chroot".into(), root.display().to_string(), "vtysh".into()]
            }
        }
    }

    /// A command running this build's vtysh.
    pub fn vtysh(&self) -> Command {
        let words = self.vtysh_words();
        let mut c = Command::new(&words[0]);
        c.args(&words[1..]);
        c
    }

    /// A directory vtysh can read batch files from: (the host's path, the path vtysh sees).
    pub fn scratch_dir(&self, host_tmp: &Path) -> (PathBuf, PathBuf) {
        match self {
            FrrBuild::Host => (host_tmp.to_path_buf(), host_tmp.to_path_buf()),
            FrrBuild::Tree(root) => (root.join("tmp"), PathBuf::from("/tmp")),
        }
    }

    /// Whether the build ships `daemon` (FRR 10 has `mgmtd`, which must run for static
    /// routes and other northbound configuration to take effect; 8.4 has none).
    pub fn has_daemon(&self, daemon: &str) -> bool {
        self.host_path(&format!("{FRR_BIN_DIR}/{daemon}")).is_file()
    }

    /// FRR's version as its vtysh prints it (`vtysh --help`: "Integrated shell for FRR
    /// (version 8.4.4).").
    pub fn version(&self) -> Result<String> {
        let out = crate::proc::checked(self.vtysh().arg("--help"))?;
        parse_vtysh_version(&out).ok_or_else(|| NetlabError::Command {
            cmd: format!("{} --help", self.vtysh_words().join(" ")),
            status: "no \"(version X)\" in its help".into(),
            output: out.lines().take(3).collect::<Vec<_>>().join("\n"),
        })
    }

    /// A short name for figures and messages: "FRR 8.4.4".
    pub fn label(&self) -> String {
        format!("FRR {}", self.version().unwrap_or_else(|_| "?".into()))
    }

    /// Why instances of this build cannot run, or `None`.
    pub fn unavailable_reason(&self) -> Option<String> {
        for bin in ["zebra", "bgpd", "bfdd", "staticd"] {
            let p = self.host_path(&format!("{FRR_BIN_DIR}/{bin}"));
            if !p.exists() {
                return Some(match self {
                    FrrBuild::Host => format!("FRR missing: {} not found", p.display()),
                    FrrBuild::Tree(root) => format!(
                        "FRR tree {} incomplete: {} not found (build it with netlab/scripts/frr10-tree.sh)",
                        root.display(),
                        p.display()
                    ),
                });
            }
        }
        match self {
            FrrBuild::Host if crate::which("vtysh").is_none() => {
                Some("FRR missing: vtysh not in PATH".into())
            }
            FrrBuild::Tree(_) if !self.host_path("/usr/bin/vtysh").is_file() => {
                Some("FRR tree has no /usr/bin/vtysh".into())
            }
            _ => None,
        }
    }

    /// The shell wrapper that starts a daemon of a tree build: inside the daemon's own mount
    /// namespace (which `ip netns exec` already made private), mount proc and sys (without
    /// /proc FRR 10's zebra misreports IP forwarding) and the host's /tmp into the tree,
    /// then chroot. `extra` runs first (more mounts). `None` for the host's build.
    pub(crate) fn daemon_wrapper(&self, extra: &str) -> Option<String> {
        match self {
            FrrBuild::Host => None,
            FrrBuild::Tree(_) => Some(format!(
                "{extra}mount -t proc proc \"$0/proc\" && mount -t sysfs sysfs \"$0/sys\" && \
                 mount --bind /tmp \"$0/tmp\" && exec chroot \"$0\" \"$@\""
            )),
        }
    }
}

impl std::fmt::Display for FrrBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrrBuild::Host => f.write_str("the host's FRR"),
            FrrBuild::Tree(root) => write!(f, "the FRR in {}", root.display()),
        }
    }
}

/// "...Integrated shell for FRR (version 10.3). \n..." → "10.3".
fn parse_vtysh_version(out: &str) -> Option<String> {
    let rest = &out[out.find("shell for FRR (version ")? + "shell for FRR (version ".len()..];
    Some(rest[..rest.find(')')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_choose_builds() {
        assert_eq!(FrrBuild::from_name("host").unwrap(), FrrBuild::Host);
        assert_eq!(FrrBuild::from_name("8.4").unwrap(), FrrBuild::Host);
        assert_eq!(
            FrrBuild::from_name("/srv/frr").unwrap(),
            FrrBuild::Tree("/srv/frr".into())
        );
        assert!(matches!(
            FrrBuild::from_name("10").unwrap(),
            FrrBuild::Tree(_)
        ));
        assert!(FrrBuild::from_name("9").is_err());
    }

    #[test]
    fn tree_paths_stay_inside_the_tree() {
        let b = FrrBuild::Tree("/srv/frr".into());
        assert_eq!(
            b.host_path("/etc/frr/n1"),
            PathBuf::from("/srv/frr/etc/frr/n1")
        );
        assert_eq!(b.run_base(), PathBuf::from("/srv/frr/run/frr"));
        assert_eq!(b.vtysh_words(), ["chroot", "/srv/frr", "vtysh"]);
        let (host, seen) = b.scratch_dir(Path::new("/tmp/x"));
        assert_eq!(
            (host.as_path(), seen.as_path()),
            (Path::new("/srv/frr/tmp"), Path::new("/tmp"))
        );
        assert_eq!(
            FrrBuild::Host.host_path("/etc/frr/n1"),
            PathBuf::from("/etc/frr/n1")
        );
        assert_eq!(FrrBuild::Host.vtysh_words(), ["vtysh"]);
    }

    #[test]
    fn vtysh_version_line() {
        assert_eq!(
            parse_vtysh_version(
                "Usage : vtysh [OPTION...]\n\nIntegrated shell for FRR (version 10.3). \n"
            ),
            Some("10.3".into())
        );
        assert_eq!(parse_vtysh_version("something else"), None);
    }
}
