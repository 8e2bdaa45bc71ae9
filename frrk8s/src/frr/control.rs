//! Talking to FRR: the [`FrrControl`] trait the driver needs (apply a batch, check one,
//! read the running configuration, run a JSON show command, notice a restart) and
//! [`Vtysh`], its implementation over the `vtysh` binary, which sends small batches over
//! the daemons' sockets instead ([`super::vty`]). Near the bottom of the driver's one-way
//! chain: it imports only `vty`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::vty::{self, Session, VtyError};

/// Errors talking to FRR.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// vtysh could not reach the daemons (FRR down or restarting).
    #[error("FRR unavailable: {0}")]
    Unavailable(String),
    /// vtysh or a daemon rejected commands.
    #[error("FRR rejected the configuration: {0}")]
    Rejected(String),
    #[error("{0}")]
    Io(String),
    #[error("invalid JSON from `{command}`: {error}")]
    Json { command: String, error: String },
}

/// What the applier needs from FRR; [`Vtysh`] is the real one, tests use fakes.
pub trait FrrControl {
    /// Applies a batch (`vtysh -f` text: context lines and exits, no `configure terminal`).
    fn apply(&self, batch: &str) -> Result<(), ControlError>;
    /// Applies a small batch the fast way when this control and this batch allow it (the
    /// daemons' sockets, see [`super::vty`]); `None` when not, and the caller uses
    /// [`FrrControl::apply`]. [`ControlError::Unavailable`] when the sockets broke (the
    /// batch may be partly applied; `apply` of the same batch is the way on). Required, not
    /// defaulted: a wrapper that forgot to forward it would silently lose the fast path.
    fn apply_direct(&self, batch: &str) -> Option<Result<(), ControlError>>;
    /// Checks a batch's syntax without applying it (`vtysh -C -f`).
    fn check(&self, batch: &str) -> Result<(), ControlError>;
    /// `show running-config`.
    fn running_config(&self) -> Result<String, ControlError>;
    /// Runs a show command that prints JSON.
    fn show_json(&self, command: &str) -> Result<serde_json::Value, ControlError>;
    /// Identifies the running FRR processes; a change means FRR restarted. `None` when
    /// unknown (then restarts are detected from the running config). A daemon that is not
    /// serving yet (its process gone, or its vty socket not accepting: a restarted daemon
    /// writes its PID file before it opens the socket) shows as `NAME` + [`DAEMON_DOWN`]:
    /// lines sent to it then would be lost, so the driver waits for it.
    fn instance_token(&self) -> Option<String>;
}

/// How [`FrrControl::instance_token`] marks a daemon that is not serving.
pub const DAEMON_DOWN: &str = ":down";

/// Whether `token` ([`FrrControl::instance_token`]) shows a daemon that is not serving.
pub fn token_shows_down(token: &str) -> bool {
    token.split(',').any(|part| part.ends_with(DAEMON_DOWN))
}

/// [`FrrControl`] over the `vtysh` binary.
#[derive(Clone, Debug)]
pub struct Vtysh {
    /// The program and its leading arguments (`vtysh`, or e.g. `chroot /srv/frr10 vtysh`
    /// when FRR lives in another filesystem root).
    command: Vec<String>,
    pathspace: Option<String>,
    run_dir: PathBuf,
    /// Where batch files are written, and the same directory as vtysh sees it (they differ
    /// when vtysh runs in another root).
    scratch: PathBuf,
    scratch_seen: Option<PathBuf>,
    daemons: Vec<String>,
    /// Small batches over the daemons' sockets (default on).
    direct: bool,
    /// The open sockets, shared by the clones (one FRR, one writer at a time).
    sessions: Arc<Mutex<Sessions>>,
    /// Shared by the clones: on an FRR with mgmtd, a configuration batch runs alone (show
    /// commands wait for it, and it for them); see [`Vtysh::exclusive`].
    gate: Arc<RwLock<()>>,
}

/// The daemons' sockets, and the FRR processes they were opened to (a restart means new
/// sockets).
#[derive(Debug, Default)]
struct Sessions {
    token: Option<String>,
    open: Vec<Session>,
}

static BATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

/// FRR's state directory in Debian's and FRR's images.
pub const DEFAULT_RUN_DIR: &str = "/var/run/frr";

impl Vtysh {
    /// The default instance (`/var/run/frr`).
    pub fn new() -> Self {
        Vtysh {
            command: vec!["vtysh".into()],
            pathspace: None,
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
            scratch: std::env::temp_dir(),
            scratch_seen: None,
            // mgmtd only exists in FRR 10; a daemon without a PID file is left out of the
            // restart token, so listing it costs 8.4 nothing
            daemons: vty::DAEMONS.map(String::from).to_vec(),
            direct: true,
            sessions: Arc::default(),
            gate: Arc::default(),
        }
    }

    /// Whether small batches go over the daemons' sockets (see [`super::vty`]); off, every
    /// batch is a `vtysh -f`.
    pub fn direct(mut self, on: bool) -> Self {
        self.direct = on;
        self
    }

    /// The instance with pathspace `name` (`vtysh -N name`, `/var/run/frr/name`).
    pub fn with_pathspace(name: &str) -> Self {
        Vtysh {
            pathspace: Some(name.to_string()),
            run_dir: PathBuf::from(format!("{DEFAULT_RUN_DIR}/{name}")),
            ..Vtysh::new()
        }
    }

    /// FRR's state directory (PID files; the pathspace is appended), as this process sees
    /// it; default `/var/run/frr`.
    pub fn run_dir_base(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.run_dir = match &self.pathspace {
            Some(name) => dir.join(name),
            None => dir,
        };
        self
    }

    /// Where batch files are written (default: the system temp dir).
    pub fn scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch = dir.into();
        self
    }

    /// The batch directory's path as vtysh sees it, when vtysh runs in another filesystem
    /// root (default: the same path).
    pub fn scratch_dir_seen_as(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch_seen = Some(dir.into());
        self
    }

    /// The vtysh command: the program and the arguments that come before vtysh's own
    /// (`-N`, `-c`, `-f`). An empty list keeps the current command.
    pub fn command_words(mut self, words: Vec<String>) -> Self {
        if !words.is_empty() {
            self.command = words;
        }
        self
    }

    /// Whether this FRR has mgmtd (FRR 9 and later): its configuration then passes through
    /// mgmtd's datastores.
    fn has_mgmtd(&self) -> bool {
        self.run_dir.join("mgmtd.vty").exists()
    }

    /// Held while a configuration batch runs, on an FRR with mgmtd. FRR 10.3 silently drops
    /// lines of a `vtysh -f` batch in mgmtd (and so in zebra, configured through it) when
    /// another vtysh runs a command meanwhile, even `show bgp vrf all neighbors json`:
    /// `vtysh -f` still exits 0, bgpd has the batch, mgmtd and zebra keep what they had, and
    /// `show running-config` shows both. Over the daemons' sockets mgmtd answers `could not
    /// lock running DS` instead. Found by the e2e scenarios (the status poll runs beside the
    /// worker) and reproduced with a vtysh show loop beside an apply loop: a stale mgmtd in
    /// 1 of ~10 applies, none in 40 without the loop. FRR 8.4 has no mgmtd: no gate there,
    /// where a poll never delays an apply.
    fn exclusive(&self) -> Option<RwLockWriteGuard<'_, ()>> {
        self.has_mgmtd()
            .then(|| self.gate.write().unwrap_or_else(|e| e.into_inner()))
    }

    /// Held while a show command runs, on an FRR with mgmtd (see [`Vtysh::exclusive`]).
    fn shared(&self) -> Option<RwLockReadGuard<'_, ()>> {
        self.has_mgmtd()
            .then(|| self.gate.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn program(&self) -> &str {
        &self.command[0]
    }

    fn command(&self) -> Command {
        let mut c = Command::new(self.program());
        c.args(&self.command[1..]);
        if let Some(ns) = &self.pathspace {
            c.arg("-N").arg(ns);
        }
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, mut c: Command) -> Result<String, ControlError> {
        let out = c
            .output()
            .map_err(|e| ControlError::Io(format!("running {}: {e}", self.command.join(" "))))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let text = format!("{}{}", stdout, String::from_utf8_lossy(&out.stderr));
        let text = redact(text.trim());
        if text.contains("failed to connect") || text.contains("is not running") {
            Err(ControlError::Unavailable(text))
        } else {
            Err(ControlError::Rejected(text))
        }
    }

    fn with_batch_file<T>(
        &self,
        batch: &str,
        f: impl FnOnce(&Path) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let n = BATCH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let file = format!("frrk8s-batch-{}-{n}.conf", std::process::id());
        let path = self.scratch.join(&file);
        std::fs::write(&path, batch)
            .map_err(|e| ControlError::Io(format!("{}: {e}", path.display())))?;
        let seen = self.scratch_seen.as_ref().map(|d| d.join(&file));
        let r = f(seen.as_deref().unwrap_or(&path));
        let _ = std::fs::remove_file(&path);
        r
    }
}

impl Default for Vtysh {
    fn default() -> Self {
        Vtysh::new()
    }
}

impl FrrControl for Vtysh {
    fn apply(&self, batch: &str) -> Result<(), ControlError> {
        let _alone = self.exclusive();
        tracing::debug!(batch = %redact(batch), "vtysh -f");
        self.with_batch_file(batch, |p| {
            let mut c = self.command();
            c.arg("-f").arg(p);
            self.run(c).map(drop)
        })
    }

    fn apply_direct(&self, batch: &str) -> Option<Result<(), ControlError>> {
        if !self.direct || !vty::eligible(batch) {
            return None;
        }
        let _alone = self.exclusive();
        let token = self.instance_token();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if s.open.is_empty() || s.token != token {
            s.open.clear();
            match Session::connect_all(&self.run_dir) {
                Ok(open) => {
                    s.open = open;
                    s.token = token;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the daemons' sockets are out of reach; vtysh instead");
                    return None;
                }
            }
        }
        tracing::debug!(batch = %redact(batch), "over the daemons' sockets");
        Some(vty::apply(&mut s.open, batch).map_err(|e| match e {
            VtyError::Io { .. } => {
                s.open.clear();
                ControlError::Unavailable(redact(&e.to_string()))
            }
            VtyError::Rejected { .. } => ControlError::Rejected(redact(&e.to_string())),
        }))
    }

    fn check(&self, batch: &str) -> Result<(), ControlError> {
        let _alone = self.exclusive();
        self.with_batch_file(batch, |p| {
            let mut c = self.command();
            c.arg("-C").arg("-f").arg(p);
            self.run(c).map(drop)
        })
    }

    fn running_config(&self) -> Result<String, ControlError> {
        let _shared = self.shared();
        let mut c = self.command();
        c.args(["-c", "show running-config"]);
        self.run(c)
    }

    fn show_json(&self, command: &str) -> Result<serde_json::Value, ControlError> {
        // A show of one daemon asks that daemon only: such a vtysh leaves mgmtd alone, so it
        // need not wait for a batch (nor a batch for it), and it is quicker.
        let owner = show_owner(command);
        let _shared = owner.is_none().then(|| self.shared());
        let mut c = self.command();
        if let Some(d) = owner {
            c.arg("-d").arg(d);
        }
        c.arg("-c").arg(command);
        let out = self.run(c)?;
        serde_json::from_str(&out).map_err(|e| ControlError::Json {
            command: command.to_string(),
            error: e.to_string(),
        })
    }

    fn instance_token(&self) -> Option<String> {
        let mut parts = Vec::new();
        for d in &self.daemons {
            let Ok(pid) = std::fs::read_to_string(self.run_dir.join(format!("{d}.pid"))) else {
                continue;
            };
            let pid = pid.trim();
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rfind(')')
                        .map(|i| !matches!(s[i + 1..].split_whitespace().next(), Some("Z" | "X")))
                        .unwrap_or(true)
                })
                .unwrap_or(false);
            // a connection attempt is answered by the daemon's event loop (the same one
            // that would read the batch); it is closed at once
            let serving = alive
                && std::os::unix::net::UnixStream::connect(self.run_dir.join(format!("{d}.vty")))
                    .is_ok();
            if serving {
                parts.push(format!("{d}:{pid}"));
            } else {
                parts.push(format!("{d}{DAEMON_DOWN}"));
            }
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// The daemon that alone answers a show command the driver runs (the status poll's), where
/// that is certain.
fn show_owner(command: &str) -> Option<&'static str> {
    let c = command.trim_start();
    if c.starts_with("show bgp ") || c.starts_with("show ip bgp ") {
        Some("bgpd")
    } else if c.starts_with("show bfd ") {
        Some("bfdd")
    } else {
        None
    }
}

/// Replaces passwords in text that may be logged or published.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match line.find(" password ") {
            Some(pos) => {
                out.push_str(&line[..pos]);
                out.push_str(" password <retracted>");
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for vtysh in another root: `sh -c SCRIPT vtysh ARGS...`, where the script
    /// sees vtysh's arguments as `$1...`.
    fn fake(script: &str) -> Vec<String> {
        ["sh", "-c", script, "vtysh"].map(String::from).to_vec()
    }

    #[test]
    fn the_command_words_come_before_vtyshs_own_arguments() {
        let v = Vtysh::with_pathspace("n1").command_words(fake(r#"printf '%s|' "$@""#));
        assert_eq!(v.running_config().unwrap(), "-N|n1|-c|show running-config|");
    }

    /// The status poll's shows ask their daemon only (`-d`); the running configuration is
    /// every daemon's.
    #[test]
    fn a_show_of_one_daemon_asks_that_daemon_only() {
        let v = Vtysh::with_pathspace("n1")
            .command_words(fake(r#"printf '"'; printf '%s|' "$@"; printf '"'"#));
        let args = |cmd: &str| v.show_json(cmd).unwrap().as_str().unwrap().to_string();
        assert_eq!(
            args("show bgp vrf all neighbors json"),
            "-N|n1|-d|bgpd|-c|show bgp vrf all neighbors json|"
        );
        assert_eq!(
            args("show bfd peers json"),
            "-N|n1|-d|bfdd|-c|show bfd peers json|"
        );
        assert_eq!(args("show version json"), "-N|n1|-c|show version json|");
    }

    #[test]
    fn a_batch_is_written_on_the_host_and_named_as_vtysh_sees_it() {
        let host = tempfile::tempdir().unwrap();
        // vtysh "sees" the host's dir as /frr-root/tmp: the script (`-C -f PATH`: PATH is
        // $3) maps the path back and reads the file, failing on any other path
        let host_dir = host.path().display().to_string();
        let script = format!(
            r#"case "$3" in /frr-root/tmp/*) cat "{host_dir}/${{3#/frr-root/tmp/}}" ;; *) echo "got $3"; exit 3 ;; esac"#
        );
        let seen = Vtysh::new()
            .command_words(fake(&script))
            .scratch_dir(host.path())
            .scratch_dir_seen_as("/frr-root/tmp");
        // apply discards vtysh's output: check() fails if the path was not the mapped one
        seen.check("router bgp 64512\n").expect("mapped path");
        let unmapped = Vtysh::new()
            .command_words(fake(&script))
            .scratch_dir(host.path());
        let err = unmapped.check("router bgp 64512\n").unwrap_err();
        assert!(
            matches!(&err, ControlError::Rejected(t) if t.contains("got /")),
            "{err:?}"
        );
        // the batch file is removed after use
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_run_dir_base_takes_the_pathspace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("n1")).unwrap();
        std::fs::write(
            dir.path().join("n1/bgpd.pid"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        let v = Vtysh::with_pathspace("n1").run_dir_base(dir.path());
        // a live process without its vty socket (yet) does not serve
        assert_eq!(v.instance_token(), Some(format!("bgpd{DAEMON_DOWN}")));
        let _vty = std::os::unix::net::UnixListener::bind(dir.path().join("n1/bgpd.vty")).unwrap();
        assert_eq!(
            v.instance_token(),
            Some(format!("bgpd:{}", std::process::id()))
        );
        assert_eq!(
            Vtysh::with_pathspace("n2")
                .run_dir_base(dir.path())
                .instance_token(),
            None
        );
    }
}
