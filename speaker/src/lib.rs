//! MetalLB speaker.
//!
//! [`bgp`] is the pure core of BGP mode with frr-k8s: from plain cluster state it decides
//! what this node announces and builds the node's `FRRConfiguration` (`metallb-<node>`).
//! No kube client, socket or clock inside.
//!
//! [`config_state`] is the pure part of this node's `ConfigurationState` (`speaker-<node>`):
//! whether the configuration that applies to the node compiled cleanly.
//!
//! [`shell`] watches the cluster, feeds the core and writes `metallb-<node>`, the
//! `ServiceBGPStatus` objects and `speaker-<node>`; [`allinone`] runs it together with the embedded frr-k8s
//! node component (the `metallb-speaker` binary) and withdraws cleanly on shutdown.

#![forbid(unsafe_code)]

pub mod allinone;
pub mod bgp;
pub mod config_state;
pub mod l2;
pub mod metrics;
pub mod shell;
pub mod status;
