//! Standalone in-memory Kubernetes API server for the netns lab and the local demo.
//!
//! Prints the URL on stdout, writes a kubeconfig, serves until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "test-apiserver",
    about = "In-memory Kubernetes API server (metallb-testkit)"
)]
struct Args {
    /// Address to listen on (port 0: pick a free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "TEST_APISERVER_LISTEN")]
    listen: SocketAddr,
    /// Where to write the kubeconfig.
    #[arg(
        long,
        default_value = "kubeconfig",
        env = "TEST_APISERVER_KUBECONFIG_OUT"
    )]
    kubeconfig_out: PathBuf,
    /// Namespace of the kubeconfig context.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Number of watch events kept (older resourceVersions get 410 Expired).
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Bookmark period in seconds.
    #[arg(long, default_value_t = 5)]
    bookmark_seconds: u64,
    /// Do not register the metallb-api CRDs at start-up.
    #[arg(long)]
    no_crds: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut opts = metallb_testkit::Options {
        listen: args.listen,
        kubeconfig_out: Some(args.kubeconfig_out.clone()),
        namespace: args.namespace,
        history: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_seconds.max(1)),
        ..Default::default()
    };
    if args.no_crds {
        opts.crds.clear();
    }
    let api = metallb_testkit::start_with(opts).await?;
    println!("{}", api.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    api.shutdown().await;
    Ok(())
}
