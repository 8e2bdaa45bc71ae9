//! frr-k8s node component, pure core: pick the FRRConfigurations that apply to this node
//! ([`select`]), merge them into one resolved [`NodeConfig`] ([`merge`]) and render FRR's
//! configuration text ([`render`]). No Kubernetes client, socket or clock in here.
//!
//! Around that core: [`node`] (the node component's shell: watches, FRR driver, status
//! writers) and [`webhook`] (the FRRConfiguration validating webhook, which runs the same
//! [`merge()`] per selected node before an object is admitted).

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
