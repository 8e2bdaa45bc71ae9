//! Shared plumbing for the project's binaries, in the spirit of linkerd's `kubert`:
//! every binary builds its Kubernetes client, logging, admin endpoints and shutdown handling
//! the same way, so `main.rs` stays a few lines and behaviour is uniform across the
//! controller, the speaker and the standalone frr-k8s daemon.

pub mod admin;
pub mod cert_args;
pub mod certs;
pub mod client;
pub mod config_state;
pub mod events;
pub mod logging;
pub mod memo;
pub mod own;
pub mod owner;
pub mod rt;
pub mod shutdown;
pub mod start;
pub mod tasks;
pub mod tls_server;
pub mod watch;
pub mod write;

pub use admin::{AdminArgs, Readiness};
pub use certs::{CertSettings, WebhookTls};
pub use client::ClientArgs;
pub use logging::LogArgs;
pub use rt::RuntimeArgs;
pub use tasks::Tasks;
pub use tls_server::{CertStore, TlsFiles};
