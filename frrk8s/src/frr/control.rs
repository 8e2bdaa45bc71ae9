//! Talking to FRR: the [`FrrControl`] trait the driver needs (apply a batch, check one,
//! read the running configuration, run a JSON show command, notice a restart) and
//! [`Vtysh`], its implementation over the `vtysh` binary. The bottom of the driver's
//! one-way chain: it imports nothing else from `frr/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Checks a batch's syntax without applying it (`vtysh -C -f`).
    fn check(&self, batch: &str) -> Result<(), ControlError>;
    /// `show running-config`.
    fn running_config(&self) -> Result<String, ControlError>;
    /// Runs a show command that prints JSON.
    fn show_json(&self, command: &str) -> Result<serde_json::Value, ControlError>;
    /// Identifies the running FRR processes; a change means FRR restarted. `None` when
    /// unknown (then restarts are detected from the running config).
    fn instance_token(&self) -> Option<String>;
}

/// [`FrrControl`] over the `vtysh` binary.
#[derive(Clone, Debug)]
pub struct Vtysh {
    vtysh: PathBuf,
    pathspace: Option<String>,
    run_dir: PathBuf,
    scratch: PathBuf,
    daemons: Vec<String>,
}

static BATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Vtysh {
    /// The default instance (`/var/run/frr`).
    pub fn new() -> Self {
        Vtysh {
            vtysh: PathBuf::from("vtysh"),
            pathspace: None,
            run_dir: PathBuf::from("/var/run/frr"),
            scratch: std::env::temp_dir(),
            daemons: ["zebra", "bgpd", "bfdd", "staticd"]
                .map(String::from)
                .to_vec(),
        }
    }

    /// The instance with pathspace `name` (`vtysh -N name`, `/var/run/frr/name`).
    pub fn with_pathspace(name: &str) -> Self {
        Vtysh {
            pathspace: Some(name.to_string()),
            run_dir: PathBuf::from(format!("/var/run/frr/{name}")),
            ..Vtysh::new()
        }
    }

    /// Where batch files are written (default: the system temp dir).
    pub fn scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch = dir.into();
        self
    }

    /// The vtysh binary to run.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.vtysh = path.into();
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.vtysh);
        if let Some(ns) = &self.pathspace {
            c.arg("-N").arg(ns);
        }
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, mut c: Command) -> Result<String, ControlError> {
        let out = c
            .output()
            .map_err(|e| ControlError::Io(format!("running {}: {e}", self.vtysh.display())))?;
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
        let path = self
            .scratch
            .join(format!("frrk8s-batch-{}-{n}.conf", std::process::id()));
        std::fs::write(&path, batch)
            .map_err(|e| ControlError::Io(format!("{}: {e}", path.display())))?;
        let r = f(&path);
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
        tracing::debug!(batch = %redact(batch), "vtysh -f");
        self.with_batch_file(batch, |p| {
            let mut c = self.command();
            c.arg("-f").arg(p);
            self.run(c).map(drop)
        })
    }

    fn check(&self, batch: &str) -> Result<(), ControlError> {
        self.with_batch_file(batch, |p| {
            let mut c = self.command();
            c.arg("-C").arg("-f").arg(p);
            self.run(c).map(drop)
        })
    }

    fn running_config(&self) -> Result<String, ControlError> {
        let mut c = self.command();
        c.args(["-c", "show running-config"]);
        self.run(c)
    }

    fn show_json(&self, command: &str) -> Result<serde_json::Value, ControlError> {
        let mut c = self.command();
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
            parts.push(format!("{d}:{}", if alive { pid } else { "dead" }));
        }
        (!parts.is_empty()).then(|| parts.join(","))
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
