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
use metallb_runtime::{
    AdminArgs, CertSettings, ClientArgs, LogArgs, RuntimeArgs, TlsFiles, WebhookTls,
};

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

/// The webhook certificate (webhook modes only): self-managed (upstream's cert rotator)
/// unless disabled.
#[derive(Debug, clap::Args)]
struct CertArgs {
    /// Do not generate the webhook certificate: serve --webhook-cert/--webhook-key
    /// (cert-manager or another issuer) instead.
    #[arg(long, env = "FRRK8S_DISABLE_CERT_ROTATION")]
    disable_cert_rotation: bool,

    /// The webhook Service (the certificate's names: svc, svc.ns, svc.ns.svc,
    /// svc.ns.svc.cluster.local), in --namespace.
    #[arg(
        long,
        env = "FRRK8S_CERT_SERVICE_NAME",
        default_value = "frr-k8s-webhook-service"
    )]
    cert_service_name: String,

    /// The Secret holding the CA and the serving certificate, in --namespace.
    #[arg(
        long,
        env = "FRRK8S_CERT_SECRET_NAME",
        default_value = "frr-k8s-webhook-server-cert"
    )]
    cert_secret_name: String,

    /// The ValidatingWebhookConfiguration that gets the caBundle (repeatable or
    /// comma-separated).
    #[arg(
        long,
        env = "FRRK8S_WEBHOOK_CONFIGURATION_NAME",
        value_delimiter = ',',
        default_value = "frr-k8s-validating-webhook-configuration"
    )]
    webhook_configuration_name: Vec<String>,

    /// CRDs whose conversion webhook gets the caBundle (repeatable or comma-separated;
    /// none by default).
    #[arg(long, env = "FRRK8S_CONVERSION_CRDS", value_delimiter = ',')]
    conversion_crd: Vec<String>,

    /// The Lease that elects the one replica writing the certificate, in --namespace.
    #[arg(
        long,
        env = "FRRK8S_CERT_LEASE_NAME",
        default_value = "frr-k8s-webhook-cert-writer"
    )]
    cert_lease_name: String,
}

impl CertArgs {
    fn tls(&self, namespace: &str, pod: Option<&str>, files: TlsFiles) -> WebhookTls {
        if self.disable_cert_rotation {
            return WebhookTls::Files(files);
        }
        let mut s = CertSettings::new(
            namespace,
            &self.cert_secret_name,
            &self.cert_service_name,
            &self.cert_lease_name,
            &metallb_runtime::certs::unique_identity(pod.unwrap_or("frr-k8s-webhook")),
        );
        let names = |v: &[String]| v.iter().filter(|n| !n.is_empty()).cloned().collect();
        s.webhook_configurations = names(&self.webhook_configuration_name);
        s.conversion_crds = names(&self.conversion_crd);
        WebhookTls::Rotate(Box::new(s))
    }
}

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
            let tls = args
                .certs
                .tls(&args.namespace, args.pod_name.as_deref(), files);
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
