//! MetalLB speaker.
//!
//! [`bgp`] is the pure core of BGP mode with frr-k8s: from plain cluster state it decides
//! what this node announces and builds the node's `FRRConfiguration` (`metallb-<node>`).
//! No kube client, socket or clock inside.
//!
//! [`l2`] is L2 mode: the pure election (who answers ARP/NDP for which Service IPs), the
//! ARP/NDP frames, and the responder that answers on this node's interfaces (its raw
//! sockets are `metallb-rawsock`, the workspace's only unsafe code).
//!
//! [`status`]: the ServiceBGPStatus and ServiceL2Status intents, one shape for both.
//!
//! [`config_state`] is the pure part of this node's `ConfigurationState` (`speaker-<node>`):
//! whether the configuration that applies to the node compiled cleanly.
//!
//! [`shell`] watches the cluster, feeds the cores and writes `metallb-<node>`, the
//! `ServiceBGPStatus` and `ServiceL2Status` objects and `speaker-<node>`, and runs the L2
//! responder; [`allinone`] runs it together with the embedded frr-k8s node component (the
//! `metallb-speaker` binary) and withdraws cleanly on shutdown.

#![forbid(unsafe_code)]

pub mod allinone;
pub mod bgp;
pub mod config_state;
pub mod l2;
pub mod members;
pub mod metrics;
pub mod shell;
pub mod status;
