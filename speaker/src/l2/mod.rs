//! L2 mode: one node answers ARP (IPv4) and NDP (IPv6) for a Service's IPs on the local
//! network.
//!
//! * [`decide`]: the pure election: from the pools, L2Advertisements, Nodes (and which
//!   speakers are alive), Services and their endpoints, which node answers for which IPs
//!   and on which interfaces. Every speaker computes the same answer; there is no lock.
//! * [`packet`]: the ARP and NDP frames, pure; [`links`]: the node's interfaces from
//!   rtnetlink and which of them are answered on.
//! * [`responder`]: the I/O: one worker per interface answering for the IPs the election
//!   gave this node, over the raw sockets of `metallb-rawsock`.

pub mod decide;
pub mod links;
pub mod packet;
pub mod responder;
pub mod view;

#[cfg(test)]
mod tests;

pub use decide::{
    decide, node_ips, rank, Interfaces, L2Config, L2Decision, L2Node, L2Reason, Winner,
};
