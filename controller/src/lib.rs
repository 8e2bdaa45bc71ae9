//! MetalLB's controller: IP address allocation for LoadBalancer Services.
//!
//! ```text
//!   slim.rs      the parts of a Service the controller decodes and keeps
//!   service.rs   Service → ServiceRequest (pure)
//!   pools.rs     IPAddressPool + Namespace labels → allocator Pools (pure)
//!   allocator/   the allocator (pure)
//!   converge.rs  per-service decision: desired IPs, pool, notes (pure)
//!   status.rs    desired vs observed → merge patches (pure)
//!   events.rs    event de-duplication (pure) and Event objects
//!   watched.rs   what the watches keep (Services, pools, Namespace labels) and what changed
//!   reconcile.rs the single task owning the allocator, the writer
//!   webhook.rs   validating admission and BGPPeer conversion (axum)
//!   metrics.rs   metallb_allocator_*, metallb_k8s_client_*
//! ```

pub mod allocator;
pub mod converge;
pub mod events;
pub mod memberlist;
pub mod metrics;
pub mod pools;
pub mod reconcile;
pub mod service;
pub mod slim;
pub mod status;
mod watched;
pub mod webhook;

pub use metrics::Metrics;
pub use reconcile::{Controller, Progress, Settings};

/// Errors of the controller library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A watch ended or panicked (named in the message).
    #[error("a task of the reconciler stopped: {0}")]
    Task(String),
    #[error("webhook TLS configuration: {0}")]
    Tls(String),
    #[error("webhook server: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Task(_) => "task",
            Error::Tls(_) => "tls",
            Error::Io(_) => "io",
        }
    }
}
