use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::error::{NetlabError, Result};

/// `true` when the effective user is root (read from `/proc/self/status`, no libc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// `true` while a process with this PID exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state is the field after the parenthesised command name
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].split_whitespace().next(), Some("Z" | "X")),
            None => true,
        },
        Err(_) => false,
    }
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, capturing output.
pub(crate) fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| NetlabError::Spawn {
            cmd: describe(cmd),
            source,
        })
}

/// Runs `argv` and returns stdout; a non-zero exit is an error carrying stdout + stderr.
pub fn run_checked(argv: &[&str]) -> Result<String> {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    checked(&mut cmd)
}

pub(crate) fn checked(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetlabError::Command {
            cmd: describe(cmd),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// Runs a command that starts a daemon (and exits once it has forked), with stdout and
/// stderr appended to `log`: a daemon that keeps its inherited stdout open (FRR 10's do)
/// would otherwise hold a captured pipe open forever. A non-zero exit is an error carrying
/// the log's tail.
pub(crate) fn start_daemon(cmd: &mut Command, log: &std::path::Path) -> Result<()> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| NetlabError::Io {
                path: log.display().to_string(),
                source,
            })
    };
    let status = cmd
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .status()
        .map_err(|source| NetlabError::Spawn {
            cmd: describe(cmd),
            source,
        })?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    Err(NetlabError::Command {
        cmd: describe(cmd),
        status: status.to_string(),
        output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

/// Sends `signal` (e.g. "TERM", "KILL") to one PID with the `kill` utility.
pub(crate) fn kill_pid(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Stops one PID: TERM, wait up to `grace`, then KILL. Returns when it is gone. A zero
/// `grace` sends KILL alone (a crash: no TERM the process could start a clean shutdown on,
/// e.g. bgpd sending NOTIFICATIONs).
pub(crate) fn stop_pid(pid: u32, grace: Duration) {
    if !pid_alive(pid) {
        return;
    }
    if !grace.is_zero() {
        kill_pid(pid, "TERM");
    }
    let deadline = std::time::Instant::now() + grace;
    while pid_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if pid_alive(pid) {
        kill_pid(pid, "KILL");
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads a PID file.
pub(crate) fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 1));
    }

    #[test]
    fn a_daemon_that_keeps_stdout_does_not_block_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.log");
        // the "daemon" keeps the inherited stdout open for 30 s after its parent exits
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo started; (exec sleep 30) & echo $! > \"$0\"",
            &dir.path().join("pid").display().to_string(),
        ]);
        let t = std::time::Instant::now();
        start_daemon(&mut cmd, &log).unwrap();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let pid = read_pid(&dir.path().join("pid")).unwrap();
        stop_pid(pid, Duration::ZERO);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\n");
        let mut bad = Command::new("sh");
        bad.args(["-c", "echo no such option >&2; exit 2"]);
        let err = start_daemon(&mut bad, &log).unwrap_err().to_string();
        assert!(err.contains("no such option"), "{err}");
    }

    #[test]
    fn run_checked_reports_failure() {
        assert_eq!(run_checked(&["echo", "hi"]).unwrap(), "hi\n");
        let err = run_checked(&["sh", "-c", "echo oops >&2; exit 3"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("oops") && msg.contains("sh -c"), "{msg}");
    }
}
