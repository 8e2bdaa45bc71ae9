//! Child processes of the lab (controller, speakers, frr-k8s, test API server): started
//! with their output captured in a log file, tracked by PID, stopped by that PID only
//! (SIGTERM, then SIGKILL after a grace period) on [`Managed::stop`] and on drop.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How long a process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// One program the lab runs, restartable with the same arguments.
#[derive(Debug)]
pub struct Managed {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Managed {
    /// Starts `program args...`, stdout and stderr appended to `log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: Vec<String>,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let mut m = Managed {
            name: name.to_string(),
            program: program.to_path_buf(),
            args,
            log,
            child: None,
            starts: 0,
        };
        m.spawn()?;
        Ok(m)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening log {}", self.log.display()))?;
        let err = out.try_clone()?;
        self.starts += 1;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            // never inherit a kubeconfig or settings from the caller's environment
            .env_remove("KUBECONFIG")
            .env_remove("NODE_NAME")
            .env_remove("NAMESPACE")
            .env_remove("FRR_PATHSPACE");
        if std::env::var_os("RUST_LOG").is_none() {
            // every batch sent to FRR is in the log: a failure in CI can be read from it
            cmd.env("RUST_LOG", "info,frr_k8s::frr::control=debug");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// PID of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// `true` while the process runs; reaps it when it has exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM (with the `kill` utility, by PID), wait up to `grace`, then SIGKILL.
    pub fn stop_with(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        if !grace.is_zero() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // std's Child::kill sends SIGKILL to exactly this child
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Graceful stop ([`STOP_GRACE`]).
    pub fn stop(&mut self) {
        self.stop_with(STOP_GRACE);
    }

    /// SIGKILL without grace (a crash).
    pub fn crash(&mut self) {
        self.stop_with(Duration::ZERO);
    }

    /// Stops gracefully and starts again with the same arguments (log appended).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        append_line(
            &self.log,
            &format!("==== e2e: restart #{} ====", self.starts),
        );
        self.spawn()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn append_line(path: &Path, line: &str) {
    use std::io::Write as _;
    if let Ok(mut f) = OpenOptions::new().append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// The last `lines` lines of a text file ("" when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

/// Creates (truncates) a file, for callers that want a fresh log.
pub fn fresh_file(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}
