//! BGP mode (frr-k8s): which Services this node announces, and the `FRRConfiguration`
//! that tells the node's frr-k8s component to announce them.
//!
//! * [`input`]: plain inputs decoded from Kubernetes objects;
//! * [`announce`]: the per-node compiled configuration and per-Service decisions;
//! * [`index`]: the same, incrementally, event by event;
//! * [`frrconfig`]: `metallb-<node>` and the "has it changed" comparison;
//! * ServiceBGPStatus intents: [`crate::status`] (shared with L2).

pub mod announce;
pub mod effective;
pub mod frrconfig;
pub mod index;
pub mod input;

#[cfg(test)]
mod tests;

pub use crate::status::BgpStatusIntent;
pub use announce::{
    announce_service, Advert, ConfigIssue, IpAnnouncement, LocalPrefConflict, NodeAnnouncements,
    NodeConfig, Reason, RouteAttrs, RouteTable, ServiceAnnouncement, Session,
};
pub use frrconfig::{build_frr_configuration, config_name, spec_changed, FrrTarget};
pub use index::NodeAnnouncer;
pub use input::{
    ClusterState, Endpoints, KeyParts, Labels, MetalLbConfig, NodeInfo, ServiceInfo, ServiceKey,
    SpeakerOptions, TrafficPolicy,
};
