//! MetalLB speaker.
//!
//! [`bgp`] is the pure core of BGP mode with frr-k8s: from plain cluster state it decides
//! what this node announces and builds the node's `FRRConfiguration` (`metallb-<node>`).
//! No kube client, socket or clock inside; the shell that watches, writes and runs the
//! embedded frr-k8s component comes next to it.

#![forbid(unsafe_code)]

pub mod bgp;
