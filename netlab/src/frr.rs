use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::build::FrrBuild;
use crate::error::{NetlabError, Result};
use crate::netns::Netns;
use crate::proc::{checked, output, read_pid, start_daemon, stop_pid};
use crate::wait::wait_until;

/// Where Debian installs the FRR daemons.
pub const FRR_BIN_DIR: &str = "/usr/lib/frr";

/// One FRR stack (zebra, bgpd, bfdd, staticd; and mgmtd where the build has it) running
/// inside a namespace with its own pathspace (`-N NAME`, NAME = the namespace's name), i.e.
/// its own `/etc/frr/NAME` and `/var/run/frr/NAME`. Daemons are stopped by PID and both
/// directories removed on drop. `vtysh -N NAME` works from any namespace.
///
/// Which FRR runs is the instance's [`FrrBuild`]: [`FrrInstance::start`] and its siblings
/// take `NETLAB_FRR`'s (the host's FRR when unset), the `*_on` variants a chosen one.
#[derive(Debug)]
pub struct FrrInstance {
    name: String,
    build: FrrBuild,
    netns: String,
    daemons: Vec<&'static str>,
    pids: BTreeMap<&'static str, u32>,
    tmp: tempfile::TempDir,
    startup_config: String,
    /// FRR's netns VRF backend: (VRF name, namespace name). Empty: kernel VRFs (default).
    netns_vrfs: Vec<(String, String)>,
}

impl FrrInstance {
    /// Default daemon set.
    pub const DAEMONS: [&'static str; 4] = ["zebra", "bgpd", "bfdd", "staticd"];

    /// Starts zebra, bgpd, bfdd and staticd in `ns`, loads `config` like watchfrr does
    /// (`vtysh -b`), and returns once vtysh reaches every daemon. Runs `NETLAB_FRR`'s build.
    pub fn start(ns: &Netns, config: &str) -> Result<Self> {
        Self::start_with(ns, config, &Self::DAEMONS)
    }

    /// Like [`FrrInstance::start`] on a chosen FRR build.
    pub fn start_on(build: &FrrBuild, ns: &Netns, config: &str) -> Result<Self> {
        Self::start_inner(build.clone(), ns, config, &Self::DAEMONS, &[])
    }

    /// Like [`FrrInstance::start`] with a chosen daemon set (zebra is always first; mgmtd
    /// is added after it where the build has one).
    pub fn start_with(ns: &Netns, config: &str, daemons: &[&'static str]) -> Result<Self> {
        Self::start_inner(FrrBuild::from_env()?, ns, config, daemons, &[])
    }

    /// Like [`FrrInstance::start`], with FRR's **netns VRF backend** (`zebra -n`,
    /// `--vrfwnetns`) instead of kernel VRF devices: VRF `name` is network namespace `ns`.
    ///
    /// FRR looks a netns VRF up by its name in `/var/run/netns`, which is shared by every
    /// namespace on the host (and names there are unique, so two instances could not both
    /// have a VRF `red`). So each daemon runs in a private mount namespace
    /// (`unshare -m --propagation private`) where `/var/run/netns` is replaced by a
    /// directory of this instance holding exactly one entry per VRF: a bind mount of the
    /// VRF's namespace under the VRF's name. Zebra then discovers VRF `name` as that
    /// namespace, and no other namespace of the host shows up as a VRF.
    ///
    /// Kernel-VRF-free stand-in for tests: no `vrf` device, no l3mdev; routes between the
    /// default VRF and a netns VRF need `import vrf` route leaking like kernel VRFs.
    pub fn start_netns_vrfs(ns: &Netns, config: &str, vrfs: &[(&str, &Netns)]) -> Result<Self> {
        Self::start_netns_vrfs_on(&FrrBuild::from_env()?, ns, config, vrfs)
    }

    /// [`FrrInstance::start_netns_vrfs`] on a chosen FRR build.
    pub fn start_netns_vrfs_on(
        build: &FrrBuild,
        ns: &Netns,
        config: &str,
        vrfs: &[(&str, &Netns)],
    ) -> Result<Self> {
        let vrfs: Vec<(String, String)> = vrfs
            .iter()
            .map(|(v, n)| (v.to_string(), n.name().to_string()))
            .collect();
        Self::start_inner(build.clone(), ns, config, &Self::DAEMONS, &vrfs)
    }

    fn start_inner(
        build: FrrBuild,
        ns: &Netns,
        config: &str,
        daemons: &[&'static str],
        netns_vrfs: &[(String, String)],
    ) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("netlab-frr-{}-", ns.name()))
            .tempdir()
            .map_err(|source| NetlabError::Io {
                path: "temp dir".into(),
                source,
            })?;
        // daemons run as user frr and write their logs here
        checked(Command::new("chown").arg("frr:frr").arg(tmp.path()))?;
        if let Some(reason) = build.unavailable_reason() {
            return Err(NetlabError::Command {
                cmd: format!("starting {build} in {}", ns.name()),
                status: "unavailable".into(),
                output: reason,
            });
        }
        // zebra first (the others connect to its zserv socket); then FRR 10's mgmtd, before
        // staticd and bgpd: without it their northbound configuration (static routes) is
        // dropped silently while `vtysh -b` still succeeds.
        let mut d: Vec<&'static str> = vec!["zebra"];
        if build.has_daemon("mgmtd") {
            d.push("mgmtd");
        }
        d.extend(
            daemons
                .iter()
                .copied()
                .filter(|x| *x != "zebra" && *x != "mgmtd"),
        );
        let mut inst = FrrInstance {
            build,
            name: ns.name().to_string(),
            netns: ns.name().to_string(),
            daemons: d,
            pids: BTreeMap::new(),
            tmp,
            startup_config: config.to_string(),
            netns_vrfs: netns_vrfs.to_vec(),
        };
        inst.prepare_dirs()?;
        inst.start_daemons()?;
        Ok(inst)
    }

    /// The pathspace (= namespace name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The FRR build this instance runs.
    pub fn build(&self) -> &FrrBuild {
        &self.build
    }

    /// `/var/run/frr/NAME` (inside the tree for a tree build), as the host sees it: vty
    /// sockets and PID files.
    pub fn run_dir(&self) -> PathBuf {
        self.build.run_base().join(&self.name)
    }

    /// `/etc/frr/NAME` (inside the tree for a tree build), as the host sees it: `frr.conf`
    /// (startup config) and `vtysh.conf`.
    pub fn conf_dir(&self) -> PathBuf {
        self.build.host_path(&format!("/etc/frr/{}", self.name))
    }

    /// A new command running this instance's vtysh with `-N NAME`.
    pub fn vtysh_command(&self) -> Command {
        let mut c = self.build.vtysh();
        c.args(["-N", &self.name]);
        c
    }

    /// A temp dir owned by user frr, removed on drop (for log files and scratch).
    pub fn tmp_dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The PID of a running daemon as recorded when it was started.
    pub fn pid(&self, daemon: &str) -> Option<u32> {
        self.pids.get(daemon).copied()
    }

    /// Replaces the config that a (re)start loads.
    pub fn set_startup_config(&mut self, config: &str) -> Result<()> {
        self.startup_config = config.to_string();
        self.write_startup()
    }

    /// The directory that replaces `/var/run/netns` for the daemons (netns VRF backend).
    fn netns_vrf_dir(&self) -> PathBuf {
        self.tmp.path().join("netns")
    }

    fn prepare_dirs(&self) -> Result<()> {
        if !self.netns_vrfs.is_empty() {
            let dir = self.netns_vrf_dir();
            checked(Command::new("install").args(["-d", "-m", "0755"]).arg(&dir))?;
            for (vrf, _) in &self.netns_vrfs {
                // the mount point of the VRF's namespace
                write(&dir.join(vrf), "")?;
            }
        }
        let conf = self.conf_dir();
        let run = self.run_dir();
        checked(
            Command::new("install")
                .args(["-d", "-o", "frr", "-g", "frr", "-m", "0750"])
                .arg(&conf),
        )?;
        checked(
            Command::new("install")
                .args(["-d", "-o", "frr", "-g", "frr", "-m", "0755"])
                .arg(&run),
        )?;
        let vtysh_conf = conf.join("vtysh.conf");
        write(&vtysh_conf, "service integrated-vtysh-config\n")?;
        checked(Command::new("chown").arg("frr:frrvty").arg(&vtysh_conf))?;
        self.write_startup()
    }

    fn write_startup(&self) -> Result<()> {
        let path = self.conf_dir().join("frr.conf");
        write(&path, &self.startup_config)?;
        checked(Command::new("chown").arg("frr:frr").arg(&path))?;
        checked(Command::new("chmod").arg("0640").arg(&path)).map(drop)
    }

    fn start_daemon(&mut self, daemon: &'static str) -> Result<()> {
        let bin = format!("{FRR_BIN_DIR}/{daemon}");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]);
        // see `start_netns_vrfs`: a private /var/run/netns with one entry per VRF (inside
        // the tree for a tree build, where the daemons look after chroot)
        let mut vrf_mounts = String::new();
        if !self.netns_vrfs.is_empty() {
            let dir = self.netns_vrf_dir().display().to_string();
            for (vrf, ns) in &self.netns_vrfs {
                vrf_mounts.push_str(&format!("mount --bind /var/run/netns/{ns} {dir}/{vrf} && "));
            }
            let target = match &self.build {
                FrrBuild::Host => "/var/run/netns".to_string(),
                FrrBuild::Tree(root) => {
                    let t = root.join("run/netns");
                    std::fs::create_dir_all(&t).map_err(|source| NetlabError::Io {
                        path: t.display().to_string(),
                        source,
                    })?;
                    t.display().to_string()
                }
            };
            vrf_mounts.push_str(&format!("mount --rbind {dir} {target} && "));
        }
        // `sh -c SCRIPT $0 "$@"` in a private mount namespace, so that the mounts stay this
        // daemon's own
        let private_sh = ["unshare", "-m", "--propagation", "private", "sh", "-c"];
        match self.build.daemon_wrapper(&vrf_mounts) {
            Some(script) => {
                let root = self.build.root().display().to_string();
                cmd.args(private_sh).args([&script, &root, &bin]);
            }
            None if !vrf_mounts.is_empty() => {
                let script = format!("{vrf_mounts}exec \"$0\" \"$@\"");
                cmd.args(private_sh).args([&script, &bin]);
            }
            None => {
                cmd.arg(&bin);
            }
        }
        cmd.args(["-d", "-N", &self.name])
            .args(["-A", "127.0.0.1", "--limit-fds", "100000"]);
        if daemon == "zebra" {
            cmd.args(["-s", "90000000"]);
            if !self.netns_vrfs.is_empty() {
                cmd.arg("--vrfwnetns");
            }
        }
        // what the daemon prints before (and, for FRR 10, after) it forks
        start_daemon(&mut cmd, &self.tmp.path().join(format!("{daemon}.out")))?;
        let pidfile = self.run_dir().join(format!("{daemon}.pid"));
        let pid = read_pid(&pidfile).ok_or_else(|| NetlabError::Command {
            cmd: format!("{bin} -N {}", self.name),
            status: "no pid file".into(),
            output: pidfile.display().to_string(),
        })?;
        self.pids.insert(daemon, pid);
        Ok(())
    }

    fn start_daemons(&mut self) -> Result<()> {
        for d in self.daemons.clone() {
            self.start_daemon(d)?;
        }
        self.wait_ready(Duration::from_secs(20))?;
        self.load_startup()
    }

    /// `vtysh -b`: load the startup config into the running daemons (what watchfrr does).
    fn load_startup(&self) -> Result<()> {
        // -b reports errors for lines that are not runtime commands (e.g. `frr version`);
        // the rest is applied, which is what we want here.
        output(self.vtysh_command().arg("-b")).map(drop)
    }

    /// Waits until vtysh reaches every daemon of the instance.
    pub fn wait_ready(&self, timeout: Duration) -> Result<Duration> {
        wait_until(
            &format!("FRR {} daemons answering vtysh", self.name),
            timeout,
            || match self.vtysh(&["show daemons"]) {
                Ok(out) => self
                    .daemons
                    .iter()
                    .all(|d| out.split_whitespace().any(|w| w == *d)),
                Err(_) => false,
            },
        )
    }

    /// `vtysh -N NAME -c cmd1 -c cmd2 ...`; non-zero exit is an error. Configuration
    /// commands need `configure terminal` first.
    ///
    /// Show commands that one daemon answers go to that daemon only (`-d`): on FRR 10.3 a
    /// vtysh connected to every daemon, running any command, makes mgmtd drop lines of a
    /// configuration batch running at the same time (see frr-k8s' `Vtysh::exclusive`), so a
    /// test that polls a node's routes would disturb the product it watches.
    pub fn vtysh(&self, cmds: &[&str]) -> Result<String> {
        let mut c = self.vtysh_command();
        let owners: Vec<Option<&str>> = cmds.iter().map(|c| show_owner(c)).collect();
        if let Some(Some(d)) = owners.first() {
            if owners.iter().all(|o| o == &Some(*d)) && self.daemons.contains(d) {
                c.arg("-d").arg(d);
            }
        }
        for cmd in cmds {
            c.arg("-c").arg(cmd);
        }
        checked(&mut c)
    }

    /// Runs one show command that prints JSON and parses it.
    pub fn vtysh_json(&self, cmd: &str) -> Result<serde_json::Value> {
        let out = self.vtysh(&[cmd])?;
        serde_json::from_str(&out).map_err(|source| NetlabError::Json {
            what: format!("vtysh -N {} -c '{cmd}'", self.name),
            source,
        })
    }

    /// Applies a config text with `vtysh -f` (no `configure terminal` line needed).
    pub fn vtysh_file(&self, text: &str) -> Result<String> {
        let (host_dir, seen_dir) = self.scratch_dir();
        let file = format!("netlab-apply-{}.conf", self.name);
        let path = host_dir.join(&file);
        write(&path, text)?;
        let mut c = self.vtysh_command();
        c.arg("-f").arg(seen_dir.join(&file));
        let r = checked(&mut c);
        let _ = std::fs::remove_file(&path);
        r
    }

    /// Where vtysh batch files for this instance go: (the host's path, vtysh's path).
    pub fn scratch_dir(&self) -> (PathBuf, PathBuf) {
        self.build.scratch_dir(self.tmp.path())
    }

    /// `show running-config`.
    pub fn running_config(&self) -> Result<String> {
        self.vtysh(&["show running-config"])
    }

    /// Stops one daemon by its PID (TERM, then KILL after 5 s).
    pub fn kill_daemon(&mut self, daemon: &str) {
        if let Some(pid) = self.pids.remove(daemon) {
            stop_pid(pid, Duration::from_secs(5));
        }
    }

    /// Kills one daemon with SIGKILL (a crash), without waiting for a clean shutdown.
    pub fn crash_daemon(&mut self, daemon: &str) {
        if let Some(pid) = self.pids.remove(daemon) {
            stop_pid(pid, Duration::ZERO);
        }
    }

    /// Stops every daemon (by PID, reverse start order).
    pub fn stop(&mut self) {
        for d in self.daemons.clone().iter().rev() {
            self.kill_daemon(d);
        }
    }

    /// Stops and starts the whole stack again; the startup config is loaded.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start_daemons()
    }

    /// (Re)starts daemons that are not running (after [`FrrInstance::kill_daemon`]) and
    /// optionally loads the startup config again.
    pub fn start_missing(&mut self, load_startup: bool) -> Result<()> {
        for d in self.daemons.clone() {
            if !self.pids.contains_key(d) {
                self.start_daemon(d)?;
            }
        }
        self.wait_ready(Duration::from_secs(20))?;
        if load_startup {
            self.load_startup()?;
        }
        Ok(())
    }

    /// VmRSS of a daemon in KiB.
    pub fn rss_kib(&self, daemon: &str) -> Option<u64> {
        let pid = self.pid(daemon)?;
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for FrrInstance {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(self.run_dir());
        let _ = std::fs::remove_dir_all(self.conf_dir());
    }
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| NetlabError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The daemon that alone answers a show command, where that is certain.
fn show_owner(cmd: &str) -> Option<&'static str> {
    let c = cmd.trim();
    if ["show bgp", "show ip bgp", "show ipv6 bgp"]
        .iter()
        .any(|p| c.starts_with(p))
    {
        Some("bgpd")
    } else if c.starts_with("show bfd") {
        Some("bfdd")
    } else if ["show ip route", "show ipv6 route", "show interface"]
        .iter()
        .any(|p| c.starts_with(p))
    {
        Some("zebra")
    } else {
        None
    }
}
