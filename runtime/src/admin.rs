//! The admin server: `/metrics` (Prometheus text format), `/healthz` (the process is alive)
//! and `/readyz` (every watch has synced and the component says it is ready).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Where the admin server listens.
#[derive(Clone, Debug, clap::Args)]
pub struct AdminArgs {
    /// Address for /metrics, /healthz and /readyz (port 0 picks a free port; "off" disables).
    #[arg(long, env = "METALLB_ADMIN_ADDR", default_value = "0.0.0.0:7472")]
    pub admin_addr: String,
}

/// Readiness shared between the tasks that must sync and the admin server.
///
/// Each task registers a named gate and opens it when its watch has synced; `/readyz`
/// answers 200 only when every gate is open, and lists the closed ones otherwise.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    gates: Arc<Mutex<Vec<NamedGate>>>,
}

type NamedGate = (String, Arc<AtomicBool>);

/// One readiness condition; cheap to clone, open it with [`Gate::ready`].
#[derive(Clone, Debug)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    pub fn ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn unready(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Readiness {
    pub fn gate(&self, name: &str) -> Gate {
        let flag = Arc::new(AtomicBool::new(false));
        self.gates
            .lock()
            .expect("readiness lock poisoned")
            .push((name.to_string(), flag.clone()));
        Gate(flag)
    }

    /// Names of the gates still closed.
    pub fn pending(&self) -> Vec<String> {
        self.gates
            .lock()
            .expect("readiness lock poisoned")
            .iter()
            .filter(|(_, f)| !f.load(Ordering::SeqCst))
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn is_ready(&self) -> bool {
        self.pending().is_empty()
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// Build the admin router (exposed for tests and for embedding extra routes).
pub fn router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState {
            registry,
            readiness,
        })
}

async fn metrics(State(st): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &st.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(st): State<AdminState>) -> impl IntoResponse {
    let pending = st.readiness.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: waiting for {}\n", pending.join(", ")),
        )
    }
}

/// Serve the admin endpoints until `shutdown` is cancelled. Returns the bound address
/// through `bound` (useful with port 0).
pub async fn serve(
    addr: &str,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    if addr == "off" {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding admin server to {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "admin server listening (/metrics, /healthz, /readyz)");
    let app = router(registry, readiness);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok(Some(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_every_gate() {
        let r = Readiness::default();
        let a = r.gate("services");
        let b = r.gate("pools");
        assert_eq!(r.pending(), vec!["services", "pools"]);
        a.ready();
        assert!(!r.is_ready());
        b.ready();
        assert!(r.is_ready());
        b.unready();
        assert_eq!(r.pending(), vec!["pools"]);
    }
}
