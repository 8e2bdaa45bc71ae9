//! Speaker membership: which nodes' speakers are alive, learnt from the speakers themselves
//! over SWIM (the `foca` crate), so that L2 fails over in about a second when a node or
//! its speaker dies abruptly, long before its Node turns NotReady (40 s by default).
//!
//! Upstream MetalLB runs hashicorp/memberlist for the same purpose. Two choices differ:
//!
//! * **Membership only subtracts.** A node is an L2 candidate while its Node is ready and
//!   its speaker Pod runs (see `l2::view`); membership removes the nodes whose speaker SWIM
//!   has declared *down*. A speaker that has not met the others yet (start-up, UDP blocked
//!   by a firewall) therefore elects exactly as they do, instead of electing itself for
//!   everything as a memberlist of one would. A partitioned node still believes it alone
//!   is alive and answers on its own side of the partition, as upstream's does.
//! * **Authentication, not encryption.** With a key, every packet carries an HMAC-SHA256
//!   tag ([`auth`]); packets without a valid tag are dropped. Membership carries node names
//!   and addresses only, so confidentiality buys nothing; forging a "down" is what must be
//!   impossible. The key is upstream's memberlist Secret (`secretkey`).
//!
//! Why SWIM and not per-node Leases: a Lease that detects a loss in under 2 s must be
//! renewed every ~0.5 s, two API writes per node per second (2,000 writes/s for 1,000
//! nodes, all through etcd). SWIM's cost is one small UDP probe per node per probe
//! period, peer to peer, independent of the API server.
//!
//! * [`SpeakerId`]: a member's identity (node name, address, a start-time "bump" so a
//!   restarted speaker replaces its predecessor).
//! * [`down_nodes`], [`Timing::config`]: pure.
//! * [`agent`]: the I/O: a UDP socket, timers, and the foca state machine; [`args`]: its
//!   flags.

pub mod agent;
pub mod args;
pub mod auth;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use foca::{Config, Member, PeriodicParams, State};
use serde::{Deserialize, Serialize};

/// Upstream's memberlist port.
pub const DEFAULT_PORT: u16 = 7946;

/// A speaker as a member. Two identities with the same node name are the same member; the
/// larger `bump` wins (a restart, or a rejoin after being declared down).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SpeakerId {
    pub node: String,
    pub addr: SocketAddr,
    pub bump: u64,
}

impl SpeakerId {
    /// A peer known only from its Pod: announced to, replaced by its real identity once it
    /// answers.
    pub fn peer(node: &str, addr: SocketAddr) -> Self {
        SpeakerId {
            node: node.to_string(),
            addr,
            bump: 0,
        }
    }
}

impl foca::Identity for SpeakerId {
    type Addr = String;

    /// Declared down while still running (a pause, a lossy link): rejoin under a new bump.
    fn renew(&self) -> Option<Self> {
        Some(SpeakerId {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> String {
        self.node.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// Failure-detection timing. A crash is seen within about `probe_period` (until someone
/// probes the node) + `probe_period` (the probe and the indirect probes fail) +
/// `suspicion` (the node may refute), then gossiped in a few 200 ms rounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub probe_period: Duration,
    pub suspicion: Duration,
}

impl Default for Timing {
    /// 300 ms probes and 900 ms of suspicion: a crash is acted on in about 1.5 s at
    /// worst; a speaker that misses its acks for under a second (CPU starvation, a lost
    /// packet) refutes the suspicion before it is declared down.
    fn default() -> Self {
        Timing {
            probe_period: Duration::from_millis(300),
            suspicion: Duration::from_millis(900),
        }
    }
}

impl Timing {
    /// foca's configuration: its LAN profile with our timing. `max_packet_size` leaves
    /// room for the authentication tag.
    pub fn config(&self, tag_len: usize) -> Config {
        let mut c = Config::new_lan(NonZeroU32::new(16).expect("non-zero"));
        c.probe_period = self.probe_period;
        c.probe_rtt = self.probe_period / 2;
        c.suspect_to_down_after = self.suspicion;
        c.max_packet_size = NonZeroUsize::new(1400 - tag_len).expect("non-zero");
        // a member down for a day is forgotten (its Node has long been NotReady or gone)
        c.remove_down_after = Some(Duration::from_secs(24 * 3600));
        c.periodic_gossip = Some(PeriodicParams {
            frequency: Duration::from_millis(200),
            num_members: NonZeroUsize::new(3).expect("non-zero"),
        });
        c
    }
}

/// What the agent reports: the nodes whose speaker answers, and those SWIM declared down.
/// A node is in at most one of the two; one never met is in neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub alive: BTreeSet<String>,
    pub down: BTreeSet<String>,
}

/// The membership from foca's member list: per node, the newest identity decides.
pub fn down_nodes<'a>(members: impl Iterator<Item = &'a Member<SpeakerId>>) -> Membership {
    let mut newest: std::collections::BTreeMap<&str, (u64, bool)> = Default::default();
    for m in members {
        let id = m.id();
        let down = m.state() == State::Down;
        let e = newest.entry(id.node.as_str()).or_insert((id.bump, down));
        if id.bump >= e.0 {
            *e = (id.bump, down);
        }
    }
    let mut out = Membership::default();
    for (node, (_, down)) in newest {
        match down {
            true => out.down.insert(node.to_string()),
            false => out.alive.insert(node.to_string()),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(node: &str, bump: u64) -> SpeakerId {
        SpeakerId {
            node: node.into(),
            addr: "192.0.2.1:7946".parse().unwrap(),
            bump,
        }
    }

    #[test]
    fn the_newest_identity_of_a_node_decides() {
        let members = [
            Member::down(id("a", 1)),
            Member::alive(id("a", 2)),
            Member::alive(id("b", 5)),
            Member::down(id("b", 6)),
            Member::new(id("c", 1), 3, State::Suspect),
        ];
        let m = down_nodes(members.iter());
        assert_eq!(m.down, BTreeSet::from(["b".to_string()]));
        // a suspect is alive until declared down
        assert_eq!(m.alive, BTreeSet::from(["a".to_string(), "c".to_string()]));
    }

    #[test]
    fn a_restarted_speaker_replaces_its_predecessor() {
        let old = id("a", 10);
        let new = old.renew().unwrap();
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        assert_eq!(new.addr(), old.addr());
        assert!(new.win_addr_conflict(&SpeakerId::peer("a", old.addr)));
    }

    #[test]
    fn timing_bounds_failure_detection_under_two_seconds() {
        let t = Timing::default();
        let c = t.config(auth::TAG_LEN);
        let worst = c.probe_period * 2 + c.suspect_to_down_after;
        assert!(worst < Duration::from_secs(2), "{worst:?}");
        assert!(c.probe_rtt < c.probe_period);
        assert_eq!(c.max_packet_size.get() + auth::TAG_LEN, 1400);
    }
}
