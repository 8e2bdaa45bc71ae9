//! The start-up every binary shares: logging, the Kubernetes client, the shutdown signal,
//! the metrics registry and the admin server (`/metrics`, `/healthz`, `/readyz`), in that
//! order, so that a client error is logged and the admin server only listens once the
//! metrics are registered.
//!
//! The admin server outlives the shutdown signal: it stops when the [`Process`] is dropped,
//! so `/healthz` keeps answering (and metrics keep being scraped) while a binary finishes
//! its shutdown work (the speaker's withdrawal, for one).

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{admin, shutdown, AdminArgs, ClientArgs, LogArgs, Readiness};

/// A started binary.
pub struct Process<M> {
    pub client: kube::Client,
    /// Cancelled on SIGTERM or SIGINT.
    pub shutdown: CancellationToken,
    pub readiness: Readiness,
    /// What the binary registered.
    pub metrics: M,
    _admin: DropGuard,
}

/// Start a binary: `register` adds its metrics to the registry the admin server exports.
pub async fn start<M>(
    log: &LogArgs,
    client: &ClientArgs,
    admin: &AdminArgs,
    register: impl FnOnce(&mut Registry) -> M,
) -> anyhow::Result<Process<M>> {
    log.init();
    let client = client.client().await?;
    let shutdown = shutdown::on_signal();
    let mut registry = Registry::default();
    let metrics = register(&mut registry);
    let readiness = Readiness::default();
    let admin_stop = CancellationToken::new();
    admin::serve(
        &admin.admin_addr,
        Arc::new(registry),
        readiness.clone(),
        admin_stop.clone(),
    )
    .await?;
    Ok(Process {
        client,
        shutdown,
        readiness,
        metrics,
        _admin: admin_stop.drop_guard(),
    })
}
