//! Prometheus metrics with frr-k8s's names.
//!
//! BGP and BFD figures come from FRR's JSON (`show bgp vrf all neighbors json`,
//! `show bfd peers json`, `... counters json`) on each status poll, not on each scrape, so a
//! scrape never waits on vtysh. Values FRR counts are exported as gauges under upstream's exact
//! names (a prometheus-client counter would append `_total` and change them).

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::frr::status::{BfdPeerStatus, BgpNeighborStatus};

/// Labels of per-session metrics (`peer` has no port, as upstream since v0.0.16).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
    pub vrf: String,
}

type G = Family<PeerLabels, Gauge>;

/// Every metric of the node component.
#[derive(Debug, Default)]
pub struct FrrMetrics {
    pub bgp_session_up: G,
    pub bgp_announced_prefixes_total: G,
    pub bgp_received_prefixes_total: G,
    pub bgp_opens_sent: G,
    pub bgp_opens_received: G,
    pub bgp_notifications_sent: G,
    pub bgp_updates_total: G,
    pub bgp_updates_total_received: G,
    pub bgp_keepalives_sent: G,
    pub bgp_keepalives_received: G,
    pub bgp_route_refresh_sent: G,
    pub bgp_total_sent: G,
    pub bgp_total_received: G,
    pub bfd_session_up: G,
    pub bfd_control_packet_input: G,
    pub bfd_control_packet_output: G,
    pub bfd_echo_packet_input: G,
    pub bfd_echo_packet_output: G,
    pub bfd_session_up_events: G,
    pub bfd_session_down_events: G,
    pub bfd_zebra_notifications: G,
    /// Kubernetes writes (FRRNodeState, BGPSessionState) and failed writes.
    pub k8s_client_updates_total: Counter,
    pub k8s_client_update_errors_total: Counter,
    /// 1 when the last configuration was merged without skipping any object.
    pub k8s_client_config_loaded_bool: Gauge,
    /// 1 when the running FRR configuration is not the desired one (apply failed).
    pub k8s_client_config_stale_bool: Gauge,
    /// FRR configuration applies and how many commands they sent.
    pub reloads_total: Counter,
    pub reload_errors_total: Counter,
    pub reload_commands_total: Counter,
    /// Neighbors whose adj-out kept withdrawn prefixes and were repaired (see
    /// [`crate::frr::audit`]).
    pub stale_advertisement_repairs_total: Counter,
    /// Withdrawal audits run to their end (see [`crate::frr::audit`]).
    pub withdrawal_audits_total: Counter,
    seen_bgp: Mutex<BTreeSet<PeerLabels>>,
    seen_bfd: Mutex<BTreeSet<PeerLabels>>,
}

impl FrrMetrics {
    /// Create the metrics and register them under `frrk8s_`.
    pub fn register(registry: &mut Registry) -> std::sync::Arc<Self> {
        let m = FrrMetrics::default();
        let r = registry.sub_registry_with_prefix("frrk8s");
        let gauges = m.bgp_gauges().into_iter().chain(m.bfd_gauges());
        for (name, help, g) in gauges {
            r.register(name, help, g.clone());
        }
        r.register(
            "k8s_client_updates",
            "Kubernetes object writes",
            m.k8s_client_updates_total.clone(),
        );
        r.register(
            "k8s_client_update_errors",
            "Failed Kubernetes object writes",
            m.k8s_client_update_errors_total.clone(),
        );
        r.register(
            "k8s_client_config_loaded_bool",
            "1 if every selected FRRConfiguration was merged",
            m.k8s_client_config_loaded_bool.clone(),
        );
        r.register(
            "k8s_client_config_stale_bool",
            "1 if FRR does not run the desired configuration",
            m.k8s_client_config_stale_bool.clone(),
        );
        r.register(
            "reloads",
            "FRR configuration applies",
            m.reloads_total.clone(),
        );
        r.register(
            "reload_errors",
            "Failed FRR configuration applies",
            m.reload_errors_total.clone(),
        );
        r.register(
            "reload_commands",
            "Configuration commands sent to FRR",
            m.reload_commands_total.clone(),
        );
        r.register(
            "stale_advertisement_repairs",
            "Neighbors found still advertising withdrawn prefixes (an FRR race) and repaired",
            m.stale_advertisement_repairs_total.clone(),
        );
        r.register(
            "withdrawal_audits",
            "Audits of the neighbors' adj-out after withdrawals, run to their end",
            m.withdrawal_audits_total.clone(),
        );
        std::sync::Arc::new(m)
    }

    /// Per-session BGP gauges with their metric names and help: the one list used both to
    /// register them and to forget vanished peers.
    fn bgp_gauges(&self) -> [(&'static str, &'static str, &G); 13] {
        [
            (
                "bgp_session_up",
                "BGP session state (1 established, 0 otherwise)",
                &self.bgp_session_up,
            ),
            (
                "bgp_announced_prefixes_total",
                "Prefixes announced to the peer",
                &self.bgp_announced_prefixes_total,
            ),
            (
                "bgp_received_prefixes_total",
                "Prefixes received from the peer",
                &self.bgp_received_prefixes_total,
            ),
            (
                "bgp_opens_sent",
                "BGP OPEN messages sent",
                &self.bgp_opens_sent,
            ),
            (
                "bgp_opens_received",
                "BGP OPEN messages received",
                &self.bgp_opens_received,
            ),
            (
                "bgp_notifications_sent",
                "BGP NOTIFICATION messages sent",
                &self.bgp_notifications_sent,
            ),
            (
                "bgp_updates_total",
                "BGP UPDATE messages sent",
                &self.bgp_updates_total,
            ),
            (
                "bgp_updates_total_received",
                "BGP UPDATE messages received",
                &self.bgp_updates_total_received,
            ),
            (
                "bgp_keepalives_sent",
                "BGP KEEPALIVE messages sent",
                &self.bgp_keepalives_sent,
            ),
            (
                "bgp_keepalives_received",
                "BGP KEEPALIVE messages received",
                &self.bgp_keepalives_received,
            ),
            (
                "bgp_route_refresh_sent",
                "BGP ROUTE-REFRESH messages sent",
                &self.bgp_route_refresh_sent,
            ),
            ("bgp_total_sent", "BGP messages sent", &self.bgp_total_sent),
            (
                "bgp_total_received",
                "BGP messages received",
                &self.bgp_total_received,
            ),
        ]
    }

    /// Per-session BFD gauges, like [`FrrMetrics::bgp_gauges`].
    fn bfd_gauges(&self) -> [(&'static str, &'static str, &G); 8] {
        [
            (
                "bfd_session_up",
                "BFD session state (1 up, 0 otherwise)",
                &self.bfd_session_up,
            ),
            (
                "bfd_control_packet_input",
                "BFD control packets received",
                &self.bfd_control_packet_input,
            ),
            (
                "bfd_control_packet_output",
                "BFD control packets sent",
                &self.bfd_control_packet_output,
            ),
            (
                "bfd_echo_packet_input",
                "BFD echo packets received",
                &self.bfd_echo_packet_input,
            ),
            (
                "bfd_echo_packet_output",
                "BFD echo packets sent",
                &self.bfd_echo_packet_output,
            ),
            (
                "bfd_session_up_events",
                "BFD session up transitions",
                &self.bfd_session_up_events,
            ),
            (
                "bfd_session_down_events",
                "BFD session down transitions",
                &self.bfd_session_down_events,
            ),
            (
                "bfd_zebra_notifications",
                "BFD notifications from zebra",
                &self.bfd_zebra_notifications,
            ),
        ]
    }

    /// Publish one poll of FRR's status; series of peers that vanished are removed.
    pub fn observe(&self, bgp: &[BgpNeighborStatus], bfd: &[BfdPeerStatus]) {
        let g = |v: u64| v.min(i64::MAX as u64) as i64;
        let mut now = BTreeSet::new();
        for n in bgp {
            let l = PeerLabels {
                peer: n.peer.clone(),
                vrf: n.vrf.clone(),
            };
            self.bgp_session_up
                .get_or_create(&l)
                .set(n.established as i64);
            self.bgp_announced_prefixes_total
                .get_or_create(&l)
                .set(g(n.prefixes_sent));
            self.bgp_received_prefixes_total
                .get_or_create(&l)
                .set(g(n.prefixes_received));
            self.bgp_opens_sent.get_or_create(&l).set(g(n.opens_sent));
            self.bgp_opens_received
                .get_or_create(&l)
                .set(g(n.opens_received));
            self.bgp_notifications_sent
                .get_or_create(&l)
                .set(g(n.notifications_sent));
            self.bgp_updates_total
                .get_or_create(&l)
                .set(g(n.updates_sent));
            self.bgp_updates_total_received
                .get_or_create(&l)
                .set(g(n.updates_received));
            self.bgp_keepalives_sent
                .get_or_create(&l)
                .set(g(n.keepalives_sent));
            self.bgp_keepalives_received
                .get_or_create(&l)
                .set(g(n.keepalives_received));
            self.bgp_route_refresh_sent
                .get_or_create(&l)
                .set(g(n.route_refresh_sent));
            self.bgp_total_sent.get_or_create(&l).set(g(n.total_sent));
            self.bgp_total_received
                .get_or_create(&l)
                .set(g(n.total_received));
            now.insert(l);
        }
        let bgp_families = self.bgp_gauges().map(|(_, _, g)| g);
        forget_vanished(&self.seen_bgp, now, &bgp_families);

        let mut now = BTreeSet::new();
        for p in bfd {
            let l = PeerLabels {
                peer: p.peer.clone(),
                vrf: p.vrf.clone(),
            };
            self.bfd_session_up.get_or_create(&l).set(p.up as i64);
            self.bfd_control_packet_input
                .get_or_create(&l)
                .set(g(p.control_packet_input));
            self.bfd_control_packet_output
                .get_or_create(&l)
                .set(g(p.control_packet_output));
            self.bfd_echo_packet_input
                .get_or_create(&l)
                .set(g(p.echo_packet_input));
            self.bfd_echo_packet_output
                .get_or_create(&l)
                .set(g(p.echo_packet_output));
            self.bfd_session_up_events
                .get_or_create(&l)
                .set(g(p.session_up_events));
            self.bfd_session_down_events
                .get_or_create(&l)
                .set(g(p.session_down_events));
            self.bfd_zebra_notifications
                .get_or_create(&l)
                .set(g(p.zebra_notifications));
            now.insert(l);
        }
        let bfd_families = self.bfd_gauges().map(|(_, _, g)| g);
        forget_vanished(&self.seen_bfd, now, &bfd_families);
    }
}

fn forget_vanished(seen: &Mutex<BTreeSet<PeerLabels>>, now: BTreeSet<PeerLabels>, families: &[&G]) {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    for gone in seen.difference(&now) {
        for f in families {
            f.remove(gone);
        }
    }
    *seen = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_upstream_and_vanished_peers_disappear() {
        let mut registry = Registry::default();
        let m = FrrMetrics::register(&mut registry);
        let up = BgpNeighborStatus {
            peer: "192.0.2.1".into(),
            established: true,
            prefixes_sent: 3,
            ..Default::default()
        };
        let bfd = BfdPeerStatus {
            peer: "192.0.2.1".into(),
            up: true,
            ..Default::default()
        };
        m.observe(&[up], &[bfd]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("frrk8s_bgp_session_up{peer=\"192.0.2.1\",vrf=\"\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("frrk8s_bgp_announced_prefixes_total{peer=\"192.0.2.1\",vrf=\"\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("frrk8s_bfd_session_up{peer=\"192.0.2.1\",vrf=\"\"} 1"),
            "{text}"
        );
        m.observe(&[], &[]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("peer=\"192.0.2.1\""), "{text}");
    }
}
