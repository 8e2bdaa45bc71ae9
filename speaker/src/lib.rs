//! MetalLB speaker.
//!
//! [`bgp`] is the pure core of BGP mode with frr-k8s: from plain cluster state it decides
//! what this node announces and builds the node's `FRRConfiguration` (`metallb-<node>`).
//! No kube client, socket or clock inside.
//!
//! [`shell`] watches the cluster, feeds the core and writes `metallb-<node>` and the
//! `ServiceBGPStatus` objects; [`allinone`] runs it together with the embedded frr-k8s
//! node component (the `metallb-speaker` binary) and withdraws cleanly on shutdown.

#![forbid(unsafe_code)]

pub mod allinone;
pub mod bgp;
pub mod metrics;
pub mod shell;
