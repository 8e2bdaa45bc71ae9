//! The FRR driver, a one-way chain (each module imports only those listed before it;
//! `tests/frr_chain.rs` enforces it):
//!
//! * [`vty`]: the daemons' own sockets, for small batches without a `vtysh` process;
//! * [`control`]: talking to FRR, the [`FrrControl`] trait and [`Vtysh`];
//! * [`config`]: configuration text as a tree (pure);
//! * [`diff`]: one batch of vtysh commands between two trees (pure);
//! * [`originated`]: which prefixes FRR originates, from a tree or followed through
//!   batches (pure; also the all-in-one speaker's shutdown path);
//! * [`status`]: BGP/BFD status read through [`control`];
//! * [`audit`]: catches withdrawals FRR lost and plans their repair;
//! * [`apply`]: applies a tree to a live FRR without session flaps, and verifies it.
//!
//! Measured with FRR 8.4.4 (`cargo bench -p frr-k8s --bench apply`, 10 neighbors, shared
//! allow-lists in chunks of 100): first /32 on idle sessions reaches the peer in ~0.2 s;
//! one /32 added next to ~10k: 2 commands, ~0.25 s in `vtysh -f`, ~0.75 s on all 10
//! sessions of the peer; no-op: 0 commands. A cold 10k x 10 apply takes ~220 s and
//! withdrawing 1000 ~27 s: the time is spent inside FRR 8.4 (prefix-list and route-map
//! updates), and position-based chunks rewrite every later list when the front
//! changes; keep chunk membership stable (e.g. by hash) and prefer range entries.

pub mod apply;
pub mod audit;
pub mod config;
pub mod control;
pub mod diff;
pub mod originated;
pub mod status;
pub mod vty;

pub use apply::{Applier, ApplyError, ApplyOptions, ApplyReport};
pub use config::{Context, ContextKind, FrrConfig};
pub use control::{ControlError, FrrControl, Vtysh};
pub use diff::{diff, normalize, normalize_with, Delta, FrrDefaults};
pub use status::{parse_bfd_peers, parse_bgp_neighbors, BfdPeerStatus, BgpNeighborStatus};
