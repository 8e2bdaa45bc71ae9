use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::{NetlabError, Result};
use crate::frr::write;
use crate::netns::Netns;
use crate::proc::{checked, output, read_pid, stop_pid};
use crate::wait::wait_until;

/// BIRD 2 running in a namespace with its config, control socket and PID file in a temp
/// dir; stopped by PID on drop.
#[derive(Debug)]
pub struct BirdInstance {
    netns: String,
    tmp: tempfile::TempDir,
    pid: Option<u32>,
}

/// One route from `birdc show route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdRoute {
    /// `198.18.0.1/32`.
    pub prefix: String,
    /// Protocol name (`node1`).
    pub protocol: String,
    /// `true` for the selected route (`*`).
    pub primary: bool,
    /// Next hop address when printed (`via 192.0.2.11`).
    pub via: Option<String>,
}

impl BirdInstance {
    /// Writes `config` and starts `bird` inside `ns`; returns once `birdc` answers.
    pub fn start(ns: &Netns, config: &str) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("netlab-bird-")
            .tempdir()
            .map_err(|source| NetlabError::Io {
                path: "temp dir".into(),
                source,
            })?;
        let mut inst = BirdInstance {
            netns: ns.name().to_string(),
            tmp,
            pid: None,
        };
        write(&inst.conf_path(), config)?;
        let conf = inst.conf_path();
        let sock = inst.socket_path();
        let pidf = inst.tmp.path().join("bird.pid");
        checked(
            Command::new("ip")
                .args(["netns", "exec", &inst.netns, "bird", "-c"])
                .arg(&conf)
                .arg("-s")
                .arg(&sock)
                .arg("-P")
                .arg(&pidf),
        )?;
        // bird forks: the pid file is written by the daemon a moment after the command
        // returns, so read it once bird answers (or gives up), never right away — a missed
        // pid would leave the daemon running after the test.
        let ready = wait_until("birdc answering", Duration::from_secs(10), || {
            inst.birdc(&["show", "status"]).is_ok()
        });
        inst.pid = read_pid(&pidf);
        ready?;
        Ok(inst)
    }

    pub fn conf_path(&self) -> PathBuf {
        self.tmp.path().join("bird.conf")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.tmp.path().join("bird.ctl")
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// `birdc -s SOCKET args...` (works from any namespace: unix socket).
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        checked(
            Command::new("birdc")
                .arg("-s")
                .arg(self.socket_path())
                .args(args),
        )
    }

    /// `birdc show route`, parsed.
    pub fn routes(&self) -> Result<Vec<BirdRoute>> {
        Ok(parse_birdc_routes(&self.birdc(&["show", "route"])?))
    }
}

impl Drop for BirdInstance {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            stop_pid(pid, Duration::from_secs(5));
        }
        // the socket may outlive a killed bird
        let _ = output(Command::new("rm").arg("-f").arg(self.socket_path()));
    }
}

/// Parses `birdc show route` output (BIRD 2):
///
/// ```text
/// BIRD 2.0.12 ready.
/// Table master4:
/// 198.18.0.1/32        unicast [node1 10:00:00.000] * (100) [AS64512i]
///         via 192.0.2.11 on eth0
///                      unicast [node2 10:00:01.000] (100) [AS64512i]
///         via 192.0.2.12 on eth0
/// ```
pub fn parse_birdc_routes(text: &str) -> Vec<BirdRoute> {
    let mut out: Vec<BirdRoute> = Vec::new();
    let mut cur_prefix: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("BIRD ") || trimmed.starts_with("Table ") {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("via ") {
            if let Some(last) = out.last_mut() {
                if last.via.is_none() {
                    last.via = rest.split_whitespace().next().map(str::to_string);
                }
            }
            continue;
        }
        let Some(open) = trimmed.find('[') else {
            continue;
        };
        let head = trimmed[..open].split_whitespace().collect::<Vec<_>>();
        // "PREFIX unicast" or just "unicast" for further paths of the same prefix
        match head.as_slice() {
            [prefix, _kind] if prefix.contains('/') => cur_prefix = Some((*prefix).to_string()),
            [_kind] => {}
            _ => continue,
        }
        let Some(prefix) = cur_prefix.clone() else {
            continue;
        };
        let inner = &trimmed[open + 1..];
        let protocol = inner.split_whitespace().next().unwrap_or("").to_string();
        let after = inner.find(']').map(|i| &inner[i + 1..]).unwrap_or("");
        let primary = after.trim_start().starts_with('*');
        out.push(BirdRoute {
            prefix,
            protocol,
            primary,
            via: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multipath_output() {
        let text = "BIRD 2.0.12 ready.\nTable master4:\n\
198.18.0.1/32        unicast [node1 10:00:00.000] * (100) [AS64512i]\n\
\tvia 192.0.2.11 on eth0\n\
                     unicast [node2 10:00:01.000] (100) [AS64512i]\n\
\tvia 192.0.2.12 on eth0\n\
198.18.0.2/32        unicast [node1 10:00:00.000] * (100) [AS64512i]\n\
\tvia 192.0.2.11 on eth0\n";
        let r = parse_birdc_routes(text);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].prefix, "198.18.0.1/32");
        assert_eq!(r[0].protocol, "node1");
        assert!(r[0].primary);
        assert_eq!(r[0].via.as_deref(), Some("192.0.2.11"));
        assert_eq!(r[1].prefix, "198.18.0.1/32");
        assert!(!r[1].primary);
        assert_eq!(r[1].via.as_deref(), Some("192.0.2.12"));
        assert_eq!(r[2].prefix, "198.18.0.2/32");
    }

    #[test]
    fn empty_table() {
        assert!(parse_birdc_routes("BIRD 2.0.12 ready.\n").is_empty());
    }
}
