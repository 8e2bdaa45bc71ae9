//! The daemons' own vty sockets, for small changes: what `vtysh` does for one batch,
//! without starting `vtysh`.
//!
//! Why: a `vtysh` process loads every daemon's command tree before it sends its first line.
//! That costs 50-70 ms per call on a 2-core machine whatever the batch (FRR 8.4.4,
//! `vtysh -c 'show version'`), and it was the largest part of a new Service's path to the
//! router that we control. Over a daemon's socket the same `network` line takes ~1 ms.
//!
//! The protocol is vtysh's (FRR `lib/vty.c`, `VTY_SHELL_SERV`): each daemon listens on
//! `<run dir>/<daemon>.vty`; a command is one line ended by a NUL; the reply is the
//! command's output, then three NULs and the command's status (`CMD_SUCCESS` 0,
//! `CMD_ERR_NO_MATCH` 2, ...). A new connection starts in the view node, so `enable` first.
//!
//! Which daemon a line belongs to follows from the daemons themselves: vtysh routes a
//! command to the daemons whose command sets have it, and a daemon that lacks it answers
//! `CMD_ERR_NO_MATCH`. So a top-level line goes to every daemon, and the lines inside a
//! context (up to its closing `exit`) go only to the daemons that accepted the context's
//! opening line. Checked against FRR 8.4.4: `ip prefix-list` is taken by zebra, bgpd and
//! bfdd and refused by staticd, exactly the daemons that `vtysh` sends it to; removing an
//! entry a daemon does not have succeeds.
//!
//! Only the kinds of configuration that a Service or an advertisement changes go this way
//! ([`eligible`]): the `network` lines of `router bgp` contexts, prefix-lists, route-maps
//! and BGP community lists. Everything else, and every large batch (where `vtysh -f` batches the
//! daemons' commits, which line-by-line commands cannot), still goes through `vtysh`. The
//! bottom of the driver's chain with `config`: it imports nothing from `frr/`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A command succeeded.
pub const CMD_SUCCESS: u8 = 0;
/// The daemon has no such command (it belongs to another daemon).
pub const CMD_ERR_NO_MATCH: u8 = 2;

/// The FRR daemons the driver knows, in vtysh's order: their sockets carry small batches,
/// their PID files tell a restart.
pub const DAEMONS: [&str; 5] = ["zebra", "mgmtd", "bgpd", "bfdd", "staticd"];

/// How long one command may take before the batch is abandoned (a daemon that hangs must
/// not hang the driver; the batch is then retried through the usual error path).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a batch did not go through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VtyError {
    /// A socket could not be reached or broke: FRR is down or restarting. What was sent
    /// before the break may be applied.
    #[error("{daemon}: {error}")]
    Io { daemon: String, error: String },
    /// A daemon refused a line, or no daemon knows it. The lines before it are applied.
    #[error("{line}: {output}")]
    Rejected { line: String, output: String },
}

/// One reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u8,
    pub output: String,
}

/// Something that runs one command and answers like a daemon: [`Session`], or a fake.
pub trait Daemon {
    fn name(&self) -> &str;
    fn run(&mut self, line: &str) -> std::io::Result<Reply>;
}

/// A connection to one daemon's vty socket, in the enable node.
#[derive(Debug)]
pub struct Session {
    daemon: String,
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Session {
    /// Connects to `<run_dir>/<daemon>.vty` and enters the enable node.
    pub fn connect(run_dir: &Path, daemon: &str) -> std::io::Result<Session> {
        let stream = UnixStream::connect(run_dir.join(format!("{daemon}.vty")))?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        let mut s = Session {
            daemon: daemon.to_string(),
            stream,
            buf: Vec::new(),
        };
        let r = s.run("enable")?;
        if r.status != CMD_SUCCESS {
            return Err(std::io::Error::other(format!(
                "`enable` answered {}: {}",
                r.status,
                r.output.trim()
            )));
        }
        Ok(s)
    }

    /// Opens a session to every daemon in [`DAEMONS`] that has a socket in `run_dir`.
    pub fn connect_all(run_dir: &Path) -> Result<Vec<Session>, VtyError> {
        let mut out = Vec::new();
        for d in DAEMONS {
            if !run_dir.join(format!("{d}.vty")).exists() {
                continue;
            }
            out.push(Session::connect(run_dir, d).map_err(|e| VtyError::Io {
                daemon: d.to_string(),
                error: e.to_string(),
            })?);
        }
        if out.is_empty() {
            return Err(VtyError::Io {
                daemon: "frr".into(),
                error: format!("no daemon socket in {}", run_dir.display()),
            });
        }
        Ok(out)
    }
}

impl Daemon for Session {
    fn name(&self) -> &str {
        &self.daemon
    }

    fn run(&mut self, line: &str) -> std::io::Result<Reply> {
        let mut msg = Vec::with_capacity(line.len() + 1);
        msg.extend_from_slice(line.as_bytes());
        msg.push(0);
        self.stream.write_all(&msg)?;
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(reply) = parse_reply(&self.buf) {
                return Ok(reply);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A complete reply in `buf`: the output, three NULs, the status byte.
fn parse_reply(buf: &[u8]) -> Option<Reply> {
    let end = buf.windows(3).position(|w| w == [0, 0, 0])?;
    let status = *buf.get(end + 3)?;
    Some(Reply {
        status,
        output: String::from_utf8_lossy(&buf[..end]).into_owned(),
    })
}

/// The top-level lines a batch may have to go this way: the configuration a change of
/// Services, advertisements or peer policy touches.
fn eligible_top_level(line: &str) -> bool {
    let l = line.strip_prefix("no ").unwrap_or(line);
    (l.starts_with("router bgp ") && !line.starts_with("no "))
        || l.starts_with("ip prefix-list ")
        || l.starts_with("ipv6 prefix-list ")
        || l.starts_with("route-map ")
        || l.starts_with("bgp community-list ")
        || l.starts_with("bgp large-community-list ")
        || l.starts_with("bgp extcommunity-list ")
}

/// The lines inside `router bgp` that may go this way: originating and withdrawing
/// prefixes. Neighbor changes go through `vtysh -f`, where bgpd takes the whole batch before
/// acting on it: line by line, a new neighbor starts its session before the lines that
/// activate its address family arrive, so it opens without the IPv4 capability (BIRD then
/// refuses it, "Required capability missing", and waits before it retries), and one batch
/// of neighbor settings could reset a session once per line.
fn eligible_in_router(cmd: &str) -> bool {
    let l = cmd.strip_prefix("no ").unwrap_or(cmd);
    l.starts_with("address-family ") || l.starts_with("network ")
}

/// The batch's lines, blank ones left out.
fn batch_lines(batch: &str) -> Vec<&str> {
    batch.lines().filter(|l| !l.trim().is_empty()).collect()
}

fn depth(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_exit(cmd: &str) -> bool {
    matches!(
        cmd,
        "exit" | "exit-address-family" | "exit-vrf" | "exit-vni" | "exit-vnc"
    )
}

/// Whether `batch` (the `vtysh -f` text of a [`super::diff::Delta`]: contexts indented one
/// space per level and each closed by its exit line) can go over the sockets: only
/// eligible top-level kinds, and every context closed where it was opened.
pub fn eligible(batch: &str) -> bool {
    let lines = batch_lines(batch);
    let mut open: Vec<usize> = Vec::new();
    // inside a `router bgp` context (its top-level line)
    let mut in_router = false;
    for (i, line) in lines.iter().enumerate() {
        let d = depth(line);
        let cmd = line.trim();
        if open.last() == Some(&d) && is_exit(cmd) {
            open.pop();
            continue;
        }
        // a line is at the depth of the context it is in
        if d != open.len() {
            return false;
        }
        if d == 0 {
            if !eligible_top_level(cmd) {
                return false;
            }
            in_router = cmd.starts_with("router bgp ");
        } else if in_router && !eligible_in_router(cmd) {
            return false;
        }
        if opens_context(&lines, i) {
            open.push(d);
        }
    }
    open.is_empty()
}

/// Whether line `i` opens a context: the next line is deeper, or is the exit that closes an
/// empty context at once (`route-map rm deny 2` then `exit`).
fn opens_context(lines: &[&str], i: usize) -> bool {
    let d = depth(lines[i]);
    !is_exit(lines[i].trim())
        && lines
            .get(i + 1)
            .is_some_and(|next| depth(next) > d || (depth(next) == d && is_exit(next.trim())))
}

/// Sends `batch` (see [`eligible`]) to `daemons`, inside `configure terminal` ... `end`.
/// The caller checked [`eligible`]. `end` is sent to every daemon even after a failure, so
/// that none is left in a configuration node.
pub fn apply<D: Daemon>(daemons: &mut [D], batch: &str) -> Result<(), VtyError> {
    let all: Vec<usize> = (0..daemons.len()).collect();
    send(daemons, &all, "configure terminal")?;
    let r = apply_lines(daemons, batch);
    let end = send(daemons, &all, "end");
    r.and(end.map(drop))
}

fn apply_lines<D: Daemon>(daemons: &mut [D], batch: &str) -> Result<(), VtyError> {
    let lines = batch_lines(batch);
    let all: Vec<usize> = (0..daemons.len()).collect();
    // the open contexts: (depth of the opening line, the daemons that entered it)
    let mut open: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let d = depth(line);
        let cmd = line.trim();
        if is_exit(cmd) && open.last().is_some_and(|(od, _)| *od == d) {
            let (_, audience) = open.pop().expect("checked");
            send(daemons, &audience, cmd)?;
            continue;
        }
        let audience = open.last().map(|(_, a)| a.as_slice()).unwrap_or(&all);
        let accepted = send(daemons, audience, cmd)?;
        if opens_context(&lines, i) {
            open.push((d, accepted));
        }
    }
    Ok(())
}

/// Runs `line` on the daemons `to`; returns those that took it. A refusal other than
/// "not my command" is an error, and so is a line no daemon knows.
fn send<D: Daemon>(daemons: &mut [D], to: &[usize], line: &str) -> Result<Vec<usize>, VtyError> {
    let mut accepted = Vec::new();
    let mut unknown = Vec::new();
    for &i in to {
        let d = &mut daemons[i];
        let reply = d.run(line).map_err(|e| VtyError::Io {
            daemon: d.name().to_string(),
            error: e.to_string(),
        })?;
        match reply.status {
            CMD_SUCCESS => accepted.push(i),
            CMD_ERR_NO_MATCH => unknown.push(format!("{}: {}", d.name(), reply.output.trim())),
            status => {
                return Err(VtyError::Rejected {
                    line: line.to_string(),
                    output: format!("{} (status {status}): {}", d.name(), reply.output.trim()),
                })
            }
        }
    }
    if accepted.is_empty() && !to.is_empty() {
        return Err(VtyError::Rejected {
            line: line.to_string(),
            output: unknown.join("; "),
        });
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A daemon that knows the commands starting with one of `knows` (and `configure
    /// terminal`, `end`, exits), and records what it got.
    struct Fake {
        name: &'static str,
        knows: Vec<&'static str>,
        refuses: Option<&'static str>,
        got: Vec<String>,
    }

    impl Daemon for Fake {
        fn name(&self) -> &str {
            self.name
        }
        fn run(&mut self, line: &str) -> std::io::Result<Reply> {
            self.got.push(line.to_string());
            let reply = |status: u8, output: &str| Reply {
                status,
                output: output.into(),
            };
            if self.refuses.is_some_and(|r| line.starts_with(r)) {
                return Ok(reply(13, "% refused"));
            }
            let generic = ["configure terminal", "end"].contains(&line) || is_exit(line);
            let body = line.strip_prefix("no ").unwrap_or(line);
            Ok(
                if generic || self.knows.iter().any(|k| body.starts_with(k)) {
                    reply(0, "")
                } else {
                    reply(2, "% Unknown command")
                },
            )
        }
    }

    fn fakes() -> Vec<Fake> {
        let fake = |name, knows: &[&'static str]| Fake {
            name,
            knows: knows.to_vec(),
            refuses: None,
            got: Vec::new(),
        };
        vec![
            fake("zebra", &["ip prefix-list", "route-map", "match", "set"]),
            fake(
                "bgpd",
                &[
                    "ip prefix-list",
                    "route-map",
                    "match",
                    "set",
                    "router bgp",
                    "address-family",
                    "network",
                    "neighbor",
                ],
            ),
            fake("staticd", &[]),
        ]
    }

    fn got(fakes: &[Fake]) -> BTreeMap<&str, Vec<String>> {
        fakes.iter().map(|f| (f.name, f.got.clone())).collect()
    }

    const BATCH: &str = "ip prefix-list pl seq 5 permit 198.18.0.5/32\nroute-map rm permit 1\n \
match ip address prefix-list pl\nexit\nrouter bgp 64512\n address-family ipv4 unicast\n  \
network 198.18.0.5/32\n exit-address-family\nexit\n";

    #[test]
    fn context_lines_go_only_to_the_daemons_that_entered_the_context() {
        let mut d = fakes();
        apply(&mut d, BATCH).unwrap();
        let got = got(&d);
        assert_eq!(
            got["bgpd"],
            [
                "configure terminal",
                "ip prefix-list pl seq 5 permit 198.18.0.5/32",
                "route-map rm permit 1",
                "match ip address prefix-list pl",
                "exit",
                "router bgp 64512",
                "address-family ipv4 unicast",
                "network 198.18.0.5/32",
                "exit-address-family",
                "exit",
                "end"
            ]
        );
        // zebra takes the policy but never sees the BGP context's lines
        assert_eq!(
            got["zebra"],
            [
                "configure terminal",
                "ip prefix-list pl seq 5 permit 198.18.0.5/32",
                "route-map rm permit 1",
                "match ip address prefix-list pl",
                "exit",
                "router bgp 64512",
                "end"
            ]
        );
        // staticd refuses the top-level lines and gets nothing inside them
        assert_eq!(
            got["staticd"],
            [
                "configure terminal",
                "ip prefix-list pl seq 5 permit 198.18.0.5/32",
                "route-map rm permit 1",
                "router bgp 64512",
                "end"
            ]
        );
    }

    #[test]
    fn an_empty_context_is_entered_and_left_by_the_daemons_that_took_it() {
        let mut d = fakes();
        apply(
            &mut d,
            "route-map rm deny 2\nexit\nrouter bgp 64512\nexit\n",
        )
        .unwrap();
        let got = got(&d);
        assert_eq!(
            got["zebra"],
            [
                "configure terminal",
                "route-map rm deny 2",
                "exit",
                "router bgp 64512",
                "end"
            ]
        );
        assert_eq!(
            got["staticd"],
            [
                "configure terminal",
                "route-map rm deny 2",
                "router bgp 64512",
                "end"
            ]
        );
    }

    #[test]
    fn a_line_no_daemon_knows_is_rejected_and_every_daemon_leaves_configuration() {
        let mut d = fakes();
        let err = apply(
            &mut d,
            "router bgp 64512\n no-such-command\nexit\nip prefix-list x seq 1 permit any\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, VtyError::Rejected { line, output }
                if line == "no-such-command" && output.contains("bgpd: % Unknown command")),
            "{err:?}"
        );
        for f in &d {
            assert_eq!(f.got.last().map(String::as_str), Some("end"), "{}", f.name);
            assert!(!f.got.iter().any(|l| l.starts_with("ip prefix-list x")));
        }
    }

    #[test]
    fn a_refusal_by_one_daemon_is_an_error_naming_it() {
        let mut d = fakes();
        d[1].refuses = Some("network");
        let err = apply(&mut d, BATCH).unwrap_err();
        assert_eq!(
            err,
            VtyError::Rejected {
                line: "network 198.18.0.5/32".into(),
                output: "bgpd (status 13): % refused".into()
            }
        );
    }

    #[test]
    fn only_policy_and_bgp_batches_with_closed_contexts_are_eligible() {
        assert!(eligible(BATCH));
        assert!(eligible(
            "no ip prefix-list pl seq 5 permit 198.18.0.5/32\n"
        ));
        assert!(eligible(
            "router bgp 64512 vrf red\n address-family ipv4 unicast\n  no network 198.18.0.1/32\n exit-address-family\nexit\n"
        ));
        // neighbor changes are vtysh's: a new neighbor must not start before its address
        // family is active
        assert!(!eligible(
            "router bgp 64512\n neighbor 192.0.2.2 remote-as 64514\n address-family ipv4 unicast\n  neighbor 192.0.2.2 activate\n exit-address-family\nexit\n"
        ));
        assert!(!eligible(
            "router bgp 64512\n neighbor 192.0.2.1 timers 10 30\nexit\n"
        ));
        assert!(!eligible(
            "router bgp 64512\n address-family ipv4 unicast\n  neighbor 192.0.2.1 route-map rm out\n exit-address-family\nexit\n"
        ));
        assert!(!eligible("no router bgp 64512\n"));
        assert!(!eligible("ip route 198.18.0.0/24 192.0.2.1\n"));
        assert!(!eligible(
            "bfd\n profile p\n  receive-interval 200\n exit\nexit\n"
        ));
        assert!(!eligible(
            "router bgp 64512\n neighbor 192.0.2.1 timers 10 30\n"
        ));
        assert!(!eligible("  network 198.18.0.1/32\n"));
        assert!(eligible(""));
        // an empty context is closed by the exit right after it (never a stray `exit`,
        // which would take a daemon out of configuration)
        assert!(eligible(
            "route-map rm deny 2\nexit\nno route-map rm deny 3\n"
        ));
        assert!(!eligible("exit\n"));
    }

    #[test]
    fn replies_are_framed_by_three_nuls_and_a_status() {
        assert_eq!(parse_reply(b"abc\0\0"), None);
        assert_eq!(parse_reply(b"abc\0\0\0"), None);
        assert_eq!(
            parse_reply(b"% no\n\0\0\0\x02"),
            Some(Reply {
                status: 2,
                output: "% no\n".into()
            })
        );
    }

    #[test]
    fn a_session_speaks_the_vty_protocol_over_a_unix_socket() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("bgpd.vty")).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            let mut line = Vec::new();
            while s.read(&mut byte).unwrap() == 1 {
                if byte[0] != 0 {
                    line.push(byte[0]);
                    continue;
                }
                let l = String::from_utf8(std::mem::take(&mut line)).unwrap();
                // the reply in two writes, as a daemon may split it
                let (status, out) = if l == "enable" { (0, "") } else { (2, "% x\n") };
                s.write_all(out.as_bytes()).unwrap();
                s.write_all(&[0, 0, 0, status]).unwrap();
                got.push(l);
            }
            got
        });
        let mut s = Session::connect(dir.path(), "bgpd").unwrap();
        assert_eq!(
            s.run("show x").unwrap(),
            Reply {
                status: 2,
                output: "% x\n".into()
            }
        );
        drop(s);
        assert_eq!(server.join().unwrap(), ["enable", "show x"]);
        assert!(matches!(
            Session::connect_all(&dir.path().join("none")),
            Err(VtyError::Io { .. })
        ));
    }
}
