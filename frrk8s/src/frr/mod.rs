//! The FRR driver: parse configuration text into a tree ([`config`]), compute one batch of
//! vtysh commands between two trees ([`diff`]), apply it to a live FRR without session
//! flaps and verify it ([`apply`]), and read BGP/BFD status ([`status`]).

pub mod apply;
pub mod config;
pub mod diff;
pub mod status;

pub use apply::{Applier, ApplyError, ApplyOptions, ApplyReport, ControlError, FrrControl, Vtysh};
pub use config::{Context, ContextKind, FrrConfig};
pub use diff::{diff, normalize, Delta};
pub use status::{parse_bfd_peers, parse_bgp_neighbors, BfdPeerStatus, BgpNeighborStatus};
