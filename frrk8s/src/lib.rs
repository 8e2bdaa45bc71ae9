//! frr-k8s: the node component, usable standalone (the `frr-k8s` binary) or embedded in
//! the all-in-one `metallb-speaker`.
//!
//! The pure core picks the FRRConfigurations that apply to this node ([`select`]), merges
//! them into one resolved [`NodeConfig`] ([`merge`], [`versions`]) and renders FRR's
//! configuration text ([`render`]); no Kubernetes client, socket or clock in those modules.
//!
//! Around that core, with I/O: [`frr`] (the FRR driver: vtysh, incremental apply, audit,
//! session status), [`node`] (the node component's shell: watches, FRR driver loop,
//! FRRNodeState and BGPSessionState writers), [`webhook`] (the FRRConfiguration validating
//! webhook, which runs the same [`merge()`] per selected node before an object is admitted)
//! and [`args`] (the FRR options both binaries take).

pub mod args;
pub mod frr;
pub mod merge;
pub mod metrics;
pub mod model;
pub mod node;
pub mod prefix_list;
pub mod render;
pub mod secrets;
pub mod select;
pub mod stub;
pub mod versions;
pub mod webhook;

pub use merge::{merge, Conflict, MergeError, MergeErrors, MergeOutcome, ObjectIssue};
pub use model::{
    AdvertiseConfig, BfdProfileConfig, NeighborConfig, NodeConfig, Password, Peer, PrefixFilter,
    RawSnippet, ReceiveConfig, RouterConfig,
};
pub use render::{render, RenderOptions};
pub use secrets::{resolve_password, NoSecrets, SecretError, SecretLookup};
pub use select::{select, SelectError, Selection};
