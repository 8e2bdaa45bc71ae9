//! `frr-k8s`: the standalone node daemon, for users who run frr-k8s without MetalLB. The
//! all-in-one `metallb-speaker` embeds the same component.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use frr_k8s::frr::apply::{ApplyOptions, Vtysh};
use frr_k8s::metrics::FrrMetrics;
use frr_k8s::node::{self, NodeSettings};
use frr_k8s::RenderOptions;
use ipnet::IpNet;
use metallb_api::frrk8s::LogLevel;
use metallb_runtime::{admin, shutdown, AdminArgs, ClientArgs, LogArgs, Readiness, RuntimeArgs};

/// Merge the FRRConfigurations that select this node and drive its FRR.
#[derive(Debug, Parser)]
#[command(name = "frr-k8s", version)]
struct Args {
    /// This node's name (set from the downward API in the DaemonSet).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,

    /// Namespace whose FRRConfigurations are consumed.
    #[arg(long, env = "NAMESPACE", default_value = "frr-k8s-system")]
    namespace: String,

    /// FRR pathspace (`vtysh -N`), for several FRR instances on one host.
    #[arg(long, env = "FRR_PATHSPACE")]
    frr_pathspace: Option<String>,

    /// The vtysh binary.
    #[arg(long, env = "FRR_VTYSH", default_value = "vtysh")]
    vtysh: String,

    /// How often FRR's session state is read (and FRR restarts detected), in milliseconds.
    #[arg(long, env = "FRRK8S_POLL_INTERVAL_MS", default_value_t = 1000)]
    poll_interval_ms: u64,

    /// Prefixes never accepted from any neighbor (comma-separated CIDRs).
    #[arg(long, env = "FRRK8S_ALWAYS_BLOCK", value_delimiter = ',')]
    always_block: Vec<IpNet>,

    /// Router id for routers that set none (needed on IPv6-only nodes).
    #[arg(long, env = "FRRK8S_ROUTER_ID")]
    fallback_router_id: Option<Ipv4Addr>,

    /// FRR's own log level (`log stdout`): all, debug, info, warn, error, none.
    #[arg(long, env = "FRRK8S_FRR_LOG_LEVEL", default_value = "info")]
    frr_log_level: String,

    /// Do not write FRRNodeState / BGPSessionState.
    #[arg(long, env = "FRRK8S_DISABLE_STATUS")]
    disable_status: bool,

    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.runtime.clone().block_on(run(args))?
}

async fn run(args: Args) -> anyhow::Result<()> {
    args.log.init();
    let log_level: LogLevel =
        serde_json::from_value(serde_json::Value::String(args.frr_log_level.clone()))
            .with_context(|| {
                format!(
                    "--frr-log-level {:?}: expected all, debug, info, warn, error or none",
                    args.frr_log_level
                )
            })?;
    let client = args.client.client().await?;
    let shutdown = shutdown::on_signal();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = FrrMetrics::register(&mut registry);
    let readiness = Readiness::default();
    admin::serve(
        &args.admin.admin_addr,
        Arc::new(registry),
        readiness.clone(),
        shutdown.clone(),
    )
    .await?;

    let control = match &args.frr_pathspace {
        Some(ns) => Vtysh::with_pathspace(ns),
        None => Vtysh::new(),
    }
    .binary(&args.vtysh);
    let settings = NodeSettings {
        node_name: args.node_name,
        namespace: args.namespace,
        render: RenderOptions {
            log_level,
            always_block: args.always_block,
            fallback_router_id: args.fallback_router_id,
            ..RenderOptions::default()
        },
        poll_interval: Duration::from_millis(args.poll_interval_ms.max(50)),
        write_status: !args.disable_status,
        apply: ApplyOptions::default(),
    };
    node::run(client, settings, control, readiness, metrics, shutdown).await
}
