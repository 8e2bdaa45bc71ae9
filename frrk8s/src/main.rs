//! `frr-k8s`: the standalone node daemon, for users who run frr-k8s without MetalLB. The
//! all-in-one `metallb-speaker` embeds the same component. The same binary serves the
//! FRRConfiguration validating webhook (`--webhook-mode`): upstream runs it in a separate
//! Deployment (`onlywebhook` here), never in the per-node DaemonSet.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use frr_k8s::args::FrrArgs;
use frr_k8s::metrics::FrrMetrics;
use frr_k8s::node::{self, PodRef};
use frr_k8s::webhook;
use metallb_runtime::start::start;
use metallb_runtime::{AdminArgs, ClientArgs, LogArgs, RuntimeArgs, TlsFiles};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WebhookMode {
    /// Node daemon and webhook.
    Enabled,
    /// Node daemon only.
    Disabled,
    /// Webhook only, no node and no FRR (the chart's webhook Deployment).
    Onlywebhook,
}

/// Merge the FRRConfigurations that select this node and drive its FRR; or serve the
/// FRRConfiguration validating webhook.
#[derive(Debug, Parser)]
#[command(name = "frr-k8s", version)]
struct Args {
    /// This node's name (set from the downward API in the DaemonSet); required unless
    /// `--webhook-mode onlywebhook`.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,

    /// Namespace whose FRRConfigurations are consumed (and where BGPSessionStates go).
    #[arg(long, env = "NAMESPACE", default_value = "frr-k8s-system")]
    namespace: String,

    /// This daemon's pod (downward API), in --namespace: owner of the BGPSessionState
    /// objects, which are garbage-collected with it. Without it they have no owner.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,

    /// What this process runs.
    #[arg(
        long,
        env = "FRRK8S_WEBHOOK_MODE",
        value_enum,
        default_value = "disabled"
    )]
    webhook_mode: WebhookMode,

    /// Webhook listen address (upstream's port).
    #[arg(long, env = "FRRK8S_WEBHOOK_ADDR", default_value = "0.0.0.0:19443")]
    webhook_addr: SocketAddr,

    #[command(flatten)]
    certs: CertArgs,

    /// Webhook serving certificate (PEM), with --disable-cert-rotation; reloaded when it
    /// changes.
    #[arg(
        long,
        env = "FRRK8S_WEBHOOK_CERT",
        default_value = "/tmp/k8s-webhook-server/serving-certs/tls.crt"
    )]
    webhook_cert: PathBuf,

    /// Webhook serving key (PEM), with --disable-cert-rotation.
    #[arg(
        long,
        env = "FRRK8S_WEBHOOK_KEY",
        default_value = "/tmp/k8s-webhook-server/serving-certs/tls.key"
    )]
    webhook_key: PathBuf,

    #[command(flatten)]
    frr: FrrArgs,

    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

// The webhook certificate (webhook modes only).
metallb_runtime::cert_args!(
    CertArgs,
    "FRRK8S",
    "frr-k8s-webhook-service",
    "frr-k8s-webhook-server-cert",
    "frr-k8s-validating-webhook-configuration",
    "",
    "frr-k8s-webhook-cert-writer"
);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.runtime.check_args {
        println!("{args:#?}");
        return Ok(());
    }
    args.runtime.clone().block_on(run(args))?
}

async fn run(args: Args) -> anyhow::Result<()> {
    // `None` in onlywebhook mode: no node daemon.
    let node_name =
        match args.webhook_mode {
            WebhookMode::Onlywebhook => None,
            _ => Some(args.node_name.clone().context(
                "--node-name (NODE_NAME) is required unless --webhook-mode onlywebhook",
            )?),
        };
    let process = start(&args.log, &args.client, &args.admin, FrrMetrics::register).await?;
    // moved out one by one: `process` keeps the admin server up until run() returns
    let (client, shutdown) = (process.client, process.shutdown);
    let (readiness, metrics) = (process.readiness, process.metrics);

    let webhook_task = match args.webhook_mode {
        WebhookMode::Disabled => None,
        WebhookMode::Enabled | WebhookMode::Onlywebhook => {
            let files = TlsFiles {
                cert: args.webhook_cert.clone(),
                key: args.webhook_key.clone(),
            };
            let identity = args.pod_name.as_deref().unwrap_or("frr-k8s-webhook");
            let tls = args.certs.flags().tls(&args.namespace, identity, files);
            let (_, task) = metallb_runtime::certs::serve_webhook(
                args.webhook_addr,
                webhook::router(client.clone()),
                &client,
                tls,
                &readiness,
                shutdown.clone(),
            )
            .await
            .context("starting the webhook server")?;
            Some(task)
        }
    };
    if let Some(node_name) = node_name {
        let control = args.frr.control();
        let pod = args.pod_name.clone().map(|name| PodRef {
            namespace: args.namespace.clone(),
            name,
        });
        let settings = args.frr.settings(&node_name, &args.namespace);
        node::run_in_pod(client, settings, pod, control, readiness, metrics, shutdown).await?;
    } else {
        shutdown.cancelled().await;
    }
    if let Some(t) = webhook_task {
        let _ = t.await;
    }
    Ok(())
}
