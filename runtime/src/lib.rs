//! Shared plumbing for the project's binaries, in the spirit of linkerd's `kubert`:
//! every binary builds its Kubernetes client, logging, admin endpoints and shutdown handling
//! the same way, so `main.rs` stays a few lines and behaviour is uniform across the
//! controller, the speaker and the standalone frr-k8s daemon.
//!
//! The kit a shell is built from, each part written once:
//!
//! ```text
//!   start.rs   start-up: logging, client, signals, metrics registry, admin server
//!   watch.rs   watches into an Index (re-lists, stripping, metrics, readiness gates),
//!              restartable watches, burst coalescing (settle, Settle)
//!   tasks.rs   supervised tasks: one that ends or panics makes the process unready and exit
//!   write.rs   writers: backoff, field manager and patch parameters, API error helpers
//!   own.rs     own-write tracking for writers that watch the objects they write
//!   config_state.rs  the ConfigurationState writer of the controller and the speaker
//! ```
//!
//! A writer is an intent: a pure plan from its inputs to operations, an execute that does
//! the I/O, and the responses absorbed into its index. Time is tokio's everywhere, so the
//! shells' timing (backoff, debounce, polls) is tested on a paused clock.

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
