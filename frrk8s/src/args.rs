//! The FRR options of a node process, one clap group flattened by both binaries that drive
//! FRR: the standalone `frr-k8s` and the all-in-one `metallb-speaker` (its embedded
//! frr-k8s component). Both therefore take the same flags, with the same environment
//! fallbacks the chart sets, and build the FRR driver and its settings the same way.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::IpNet;
use metallb_api::frrk8s::LogLevel;

use crate::frr::apply::ApplyOptions;
use crate::frr::control::Vtysh;
use crate::node::NodeSettings;
use crate::RenderOptions;

/// How this node's FRR is reached and configured.
#[derive(Clone, Debug, clap::Args)]
pub struct FrrArgs {
    /// FRR pathspace (`vtysh -N`), for several FRR instances on one host.
    #[arg(long, env = "FRR_PATHSPACE")]
    pub frr_pathspace: Option<String>,

    /// The vtysh command: a program and the arguments that come before vtysh's own, split
    /// like a shell would (e.g. `/usr/bin/vtysh`, or `chroot /srv/frr10 vtysh` for an FRR
    /// in another filesystem root). Its version must be the daemons' own: vtysh parses
    /// commands itself and FRR 10's hands some to mgmtd.
    #[arg(long, env = "FRR_VTYSH", default_value = "vtysh", value_parser = parse_command)]
    pub vtysh: VtyshCommand,

    /// FRR's state directory (PID files, used to notice an FRR restart) as this process
    /// sees it; the pathspace is appended.
    #[arg(long, env = "FRR_RUN_DIR", default_value = crate::frr::control::DEFAULT_RUN_DIR)]
    pub frr_run_dir: std::path::PathBuf,

    /// Send every change through `vtysh -f`. By default small changes (fewer than 20
    /// commands: a Service, an advertisement, a peer's policy) go straight to the daemons'
    /// vty sockets in the run directory, as vtysh itself would send them: ~5 ms instead of
    /// a vtysh process's 50-70 ms.
    #[arg(long, env = "FRRK8S_VTYSH_ONLY")]
    pub vtysh_only: bool,

    /// Where vtysh batch files are written before vtysh reads them (default: the system
    /// temp dir, `TMPDIR`).
    #[arg(long, env = "FRRK8S_VTYSH_BATCH_DIR")]
    pub vtysh_batch_dir: Option<std::path::PathBuf>,

    /// The batch directory's path as vtysh sees it, when the vtysh command runs in another
    /// filesystem root (e.g. `/tmp` for `--vtysh "chroot /srv/frr10 vtysh"` with
    /// `--vtysh-batch-dir /srv/frr10/tmp`). Default: the same path.
    #[arg(
        long,
        env = "FRRK8S_VTYSH_BATCH_DIR_SEEN_AS",
        requires = "vtysh_batch_dir"
    )]
    pub vtysh_batch_dir_seen_as: Option<std::path::PathBuf>,

    /// How often FRR's session state is read (and FRR restarts detected), in milliseconds
    /// (at least 50).
    #[arg(
        long,
        env = "FRRK8S_POLL_INTERVAL_MS",
        default_value_t = 1000,
        alias = "frrk8s-poll-interval-ms"
    )]
    pub poll_interval_ms: u64,

    /// Prefixes never accepted from any neighbor (comma-separated CIDRs).
    #[arg(long, env = "FRRK8S_ALWAYS_BLOCK", value_delimiter = ',')]
    pub always_block: Vec<IpNet>,

    /// Router id for routers that set none (needed on IPv6-only nodes).
    #[arg(long, env = "FRRK8S_ROUTER_ID")]
    pub fallback_router_id: Option<Ipv4Addr>,

    /// FRR's own log level (`log stdout`): all, debug, info, warn, error, none.
    #[arg(long, env = "FRRK8S_FRR_LOG_LEVEL", default_value = "info", value_parser = parse_log_level)]
    pub frr_log_level: LogLevel,

    /// Do not write FRRNodeState / BGPSessionState.
    #[arg(long, env = "FRRK8S_DISABLE_STATUS")]
    pub disable_status: bool,
}

/// The words of `--vtysh`: never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VtyshCommand(pub Vec<String>);

fn parse_command(s: &str) -> Result<VtyshCommand, String> {
    match shlex::split(s) {
        Some(words) if !words.is_empty() => Ok(VtyshCommand(words)),
        Some(_) => Err("empty command".into()),
        None => Err("unbalanced quotes".into()),
    }
}

fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| "expected all, debug, info, warn, error or none".to_string())
}

impl FrrArgs {
    /// The vtysh driver for this node's FRR.
    pub fn control(&self) -> Vtysh {
        let mut v = match &self.frr_pathspace {
            Some(ns) => Vtysh::with_pathspace(ns),
            None => Vtysh::new(),
        }
        .command_words(self.vtysh.0.clone())
        .run_dir_base(&self.frr_run_dir)
        .direct(!self.vtysh_only);
        if let Some(dir) = &self.vtysh_batch_dir {
            v = v.scratch_dir(dir);
        }
        if let Some(dir) = &self.vtysh_batch_dir_seen_as {
            v = v.scratch_dir_seen_as(dir);
        }
        v
    }

    /// The node component's settings for `node_name`, reading the FRRConfigurations of
    /// `namespace`.
    pub fn settings(&self, node_name: &str, namespace: &str) -> NodeSettings {
        NodeSettings {
            node_name: node_name.to_string(),
            namespace: namespace.to_string(),
            render: RenderOptions {
                log_level: self.frr_log_level,
                always_block: self.always_block.clone(),
                fallback_router_id: self.fallback_router_id,
                ..RenderOptions::default()
            },
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(50)),
            write_status: !self.disable_status,
            persist_versions: !self.disable_status,
            apply: ApplyOptions::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        frr: FrrArgs,
    }

    fn parse(args: &[&str]) -> Result<FrrArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.frr)
    }

    #[test]
    fn defaults_are_frr_k8s_defaults() {
        let a = parse(&[]).expect("no flags");
        let s = a.settings("n1", "frr-k8s-system");
        assert_eq!(s.render, RenderOptions::default());
        assert_eq!(s.poll_interval, Duration::from_secs(1));
        assert!(s.write_status && s.persist_versions);
    }

    #[test]
    fn every_option_reaches_the_settings() {
        let a = parse(&[
            "--frr-log-level=debug",
            "--always-block=192.0.2.0/24,2001:db8::/32",
            "--fallback-router-id=192.0.2.1",
            "--frrk8s-poll-interval-ms=10",
            "--disable-status",
        ])
        .expect("flags");
        let s = a.settings("n1", "ns");
        assert_eq!(s.render.log_level, LogLevel::Debug);
        assert_eq!(s.render.always_block.len(), 2);
        assert_eq!(
            s.render.fallback_router_id,
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(s.poll_interval, Duration::from_millis(50), "floor of 50 ms");
        assert!(!s.write_status && !s.persist_versions);
    }

    #[test]
    fn the_vtysh_command_is_split_like_a_shell_would() {
        let a = parse(&[]).expect("no flags");
        assert_eq!(a.vtysh.0, ["vtysh"]);
        let a = parse(&["--vtysh", "chroot '/srv/frr 10' vtysh"]).expect("flags");
        assert_eq!(a.vtysh.0, ["chroot", "/srv/frr 10", "vtysh"]);
        let err = parse(&["--vtysh", "chroot '/srv"]).unwrap_err().to_string();
        assert!(err.contains("unbalanced quotes"), "{err}");
        let err = parse(&["--vtysh", " "]).unwrap_err().to_string();
        assert!(err.contains("empty command"), "{err}");
        let err = parse(&["--vtysh-batch-dir-seen-as", "/tmp"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--vtysh-batch-dir"), "{err}");
    }

    #[test]
    fn a_bad_log_level_is_refused_with_the_choices() {
        let err = parse(&["--frr-log-level=loud"]).unwrap_err().to_string();
        assert!(err.contains("expected all, debug, info"), "{err}");
    }
}
