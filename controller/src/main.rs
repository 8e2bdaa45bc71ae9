//! `metallb-controller`: allocates LoadBalancer IPs and serves MetalLB's webhooks.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use metallb_controller::{webhook, Controller, Metrics, Settings};
use metallb_runtime::start::start;
use metallb_runtime::{AdminArgs, ClientArgs, LogArgs, RuntimeArgs, TlsFiles, WebhookTls};

const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WebhookMode {
    /// Reconciler and webhooks.
    Enabled,
    /// Reconciler only.
    Disabled,
    /// Webhooks only.
    Onlywebhook,
}

/// MetalLB controller: IP address allocation for LoadBalancer Services, admission and
/// conversion webhooks.
#[derive(Debug, Parser)]
#[command(name = "metallb-controller", version)]
struct Args {
    /// The MetalLB namespace (default: the service account's namespace, else
    /// metallb-system).
    #[arg(long, env = "METALLB_NAMESPACE")]
    namespace: Option<String>,

    /// Handle only Services with this loadBalancerClass (default: only Services without one).
    #[arg(long, env = "METALLB_LB_CLASS")]
    lb_class: Option<String>,

    /// What this process runs.
    #[arg(
        long,
        env = "METALLB_WEBHOOK_MODE",
        value_enum,
        default_value = "enabled"
    )]
    webhook_mode: WebhookMode,

    /// Webhook listen address.
    #[arg(long, env = "METALLB_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,

    #[command(flatten)]
    certs: CertArgs,

    /// Webhook serving certificate (PEM), with --disable-cert-rotation; reloaded when it
    /// changes.
    #[arg(
        long,
        env = "METALLB_TLS_CERT_FILE",
        default_value = "/tmp/k8s-webhook-server/serving-certs/tls.crt"
    )]
    tls_cert_file: PathBuf,

    /// Webhook serving key (PEM), with --disable-cert-rotation.
    #[arg(
        long,
        env = "METALLB_TLS_KEY_FILE",
        default_value = "/tmp/k8s-webhook-server/serving-certs/tls.key"
    )]
    tls_key_file: PathBuf,

    /// Serve the webhooks over plain HTTP (local testing only; the API server requires
    /// HTTPS).
    #[arg(long, env = "METALLB_WEBHOOK_INSECURE_HTTP", hide = true)]
    webhook_insecure_http: bool,

    /// The controller's pod name (the chart sets it from the downward API): reporting
    /// instance in events, and owner of the `controller` ConfigurationState, so that it is
    /// garbage-collected with the pod. When no such pod exists in the namespace, the object
    /// has no owner.
    #[arg(long, env = "POD_NAME", default_value = "metallb-controller")]
    pod_name: String,

    /// The speakers' memberlist Secret: created with a random key when it does not exist
    /// (an existing one is left alone). Empty: not managed.
    #[arg(long, env = "METALLB_ML_SECRET_NAME", default_value = "")]
    ml_secret_name: String,
    /// The controller's Deployment, owner of the memberlist Secret (removed with it).
    #[arg(long, env = "METALLB_DEPLOYMENT")]
    deployment: Option<String>,

    #[command(flatten)]
    client: ClientArgs,

    #[command(flatten)]
    log: LogArgs,

    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

metallb_runtime::cert_args!(
    CertArgs,
    "METALLB",
    "metallb-webhook-service",
    "metallb-webhook-cert",
    "metallb-webhook-configuration",
    "bgppeers.metallb.io",
    "metallb-webhook-cert-writer"
);

impl Args {
    async fn run(self) -> anyhow::Result<()> {
        let Args {
            namespace,
            lb_class,
            webhook_mode,
            webhook_addr,
            certs,
            tls_cert_file,
            tls_key_file,
            webhook_insecure_http,
            pod_name,
            ml_secret_name,
            deployment,
            client,
            log,
            admin,
            runtime: _,
        } = self;
        let namespace = namespace
            .or_else(|| {
                std::fs::read_to_string(SA_NAMESPACE_FILE)
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "metallb-system".to_string());
        let process = start(&log, &client, &admin, Metrics::register).await?;
        // moved out one by one: `process` keeps the admin server up until run() returns
        let (client, shutdown, readiness) = (process.client, process.shutdown, process.readiness);
        let metrics = process.metrics;
        let controller_gate =
            (webhook_mode != WebhookMode::Onlywebhook).then(|| readiness.gate("controller"));
        let mut webhook_task = None;
        if webhook_mode != WebhookMode::Disabled {
            let files = TlsFiles {
                cert: tls_cert_file,
                key: tls_key_file,
            };
            let tls = match webhook_insecure_http {
                true => WebhookTls::InsecureHttp,
                false => certs.flags().tls(&namespace, &pod_name, files),
            };
            let (_, task) = metallb_runtime::certs::serve_webhook(
                webhook_addr,
                webhook::router(client.clone(), &namespace),
                &client,
                tls,
                &readiness,
                shutdown.clone(),
            )
            .await
            .context("starting the webhook server")?;
            webhook_task = Some(task);
        }
        tracing::info!(%namespace, lb_class = ?lb_class, mode = ?webhook_mode, "metallb-controller starting");
        if !ml_secret_name.is_empty() && webhook_mode != WebhookMode::Onlywebhook {
            tokio::spawn(metallb_controller::memberlist::ensure(
                client.clone(),
                namespace.clone(),
                ml_secret_name,
                deployment,
                shutdown.clone(),
            ));
        }
        if let Some(gate) = controller_gate {
            let mut settings = Settings::new(&namespace);
            settings.lb_class = lb_class;
            settings.owner = match metallb_runtime::owner::pod_owner(&client, &namespace, &pod_name)
                .await
            {
                Ok(owner) => owner,
                Err(e) => {
                    tracing::warn!(pod = %pod_name, error = %e, "cannot read the controller pod: its ConfigurationState gets no owner");
                    None
                }
            };
            if settings.owner.is_none() {
                tracing::info!(pod = %pod_name, "no such pod: the ConfigurationState gets no owner");
            }
            settings.instance = pod_name;
            Controller::new(client, settings, metrics)
                .run(shutdown.clone(), Some(gate))
                .await
                .context("controller failed")?;
        } else {
            shutdown.cancelled().await;
        }
        if let Some(t) = webhook_task {
            let _ = t.await;
        }
        tracing::info!("metallb-controller stopped");
        Ok(())
    }
}

// One thread by default (`RuntimeArgs`): the reconciler is a single task and the webhooks
// see little traffic; a multi-threaded runtime mostly adds per-thread malloc arenas (RSS).
fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.runtime.check_args {
        println!("{args:#?}");
        return Ok(());
    }
    args.runtime.clone().block_on(args.run())?
}
