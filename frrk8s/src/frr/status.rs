//! BGP and BFD status from FRR's JSON, as plain values.
//!
//! Sources: `show bgp vrf all neighbors json` ([`parse_bgp_neighbors`]), `show bfd peers
//! json` + `show bfd peers counters json` ([`parse_bfd_peers`]). Feeds BGPSessionState
//! (`bgpStatus` = [`BgpNeighborStatus::state`], `bfdStatus` =
//! [`BgpNeighborStatus::bfd_status_label`]) and the metrics:
//!
//! | metric (labels `peer`, `vrf`) | field |
//! |---|---|
//! | `frrk8s_bgp_session_up` | `established` |
//! | `frrk8s_bgp_announced_prefixes_total` | `prefixes_sent` |
//! | `frrk8s_bgp_received_prefixes_total` | `prefixes_received` |
//! | `frrk8s_bgp_opens_sent` / `_opens_received` | `opens_sent` / `opens_received` |
//! | `frrk8s_bgp_notifications_sent` | `notifications_sent` |
//! | `frrk8s_bgp_updates_total` / `_updates_total_received` | `updates_sent` / `updates_received` |
//! | `frrk8s_bgp_keepalives_sent` / `_keepalives_received` | `keepalives_sent` / `keepalives_received` |
//! | `frrk8s_bgp_route_refresh_sent` | `route_refresh_sent` |
//! | `frrk8s_bgp_total_sent` / `_total_received` | `total_sent` / `total_received` |
//! | `frrk8s_bfd_session_up` | [`BfdPeerStatus::up`] |
//! | `frrk8s_bfd_control_packet_input` / `_output` | `control_packet_input` / `_output` |
//! | `frrk8s_bfd_echo_packet_input` / `_output` | `echo_packet_input` / `_output` |
//! | `frrk8s_bfd_session_up_events` / `_down_events` | `session_up_events` / `_down_events` |
//! | `frrk8s_bfd_zebra_notifications` | `zebra_notifications` |

use serde_json::Value;

use super::control::{ControlError, FrrControl};

/// One BGP neighbor in one VRF.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpNeighborStatus {
    /// Address or interface, as FRR keys it.
    pub peer: String,
    /// `""` for the default VRF (as BGPSessionState stores it).
    pub vrf: String,
    /// `Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`, `Established`.
    pub state: String,
    pub established: bool,
    pub remote_as: u64,
    /// Time in the current state (up time while established), milliseconds.
    pub uptime_msec: u64,
    pub connections_established: u64,
    pub connections_dropped: u64,
    pub last_reset_reason: Option<String>,
    /// Summed over address families.
    pub prefixes_sent: u64,
    pub prefixes_received: u64,
    pub opens_sent: u64,
    pub opens_received: u64,
    pub notifications_sent: u64,
    pub notifications_received: u64,
    pub updates_sent: u64,
    pub updates_received: u64,
    pub keepalives_sent: u64,
    pub keepalives_received: u64,
    pub route_refresh_sent: u64,
    pub total_sent: u64,
    pub total_received: u64,
    /// `Up`, `Down`, ... when BFD is configured for the neighbor.
    pub bfd_status: Option<String>,
}

impl BgpNeighborStatus {
    /// BGPSessionState's `bfdStatus`: the BFD status or `N/A`.
    pub fn bfd_status_label(&self) -> &str {
        self.bfd_status.as_deref().unwrap_or("N/A")
    }
}

/// One BFD session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BfdPeerStatus {
    pub peer: String,
    pub local: Option<String>,
    /// `""` for the default VRF.
    pub vrf: String,
    pub interface: Option<String>,
    pub multihop: bool,
    /// `up`, `down`, `init`, `shutdown`.
    pub status: String,
    pub up: bool,
    pub uptime_secs: u64,
    pub receive_interval: u64,
    pub transmit_interval: u64,
    pub detect_multiplier: u64,
    pub control_packet_input: u64,
    pub control_packet_output: u64,
    pub echo_packet_input: u64,
    pub echo_packet_output: u64,
    pub session_up_events: u64,
    pub session_down_events: u64,
    pub zebra_notifications: u64,
}

fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn vrf_label(name: &str) -> String {
    if name == "default" {
        String::new()
    } else {
        name.to_string()
    }
}

/// Parses `show bgp vrf all neighbors json` (also accepts the single-VRF
/// `show bgp neighbors json` shape). Sorted by (vrf, peer).
pub fn parse_bgp_neighbors(v: &Value) -> Vec<BgpNeighborStatus> {
    let mut out = Vec::new();
    let Some(obj) = v.as_object() else {
        return out;
    };
    // vrf all: {"default": {"vrfId":0,"vrfName":"default","192.0.2.1":{...}}, ...}
    // single:  {"192.0.2.1": {...}}
    let single = obj.values().any(|x| x.get("bgpState").is_some());
    let vrfs: Vec<(String, &serde_json::Map<String, Value>)> = if single {
        vec![(String::new(), obj)]
    } else {
        obj.iter()
            .filter_map(|(name, vrf)| {
                let o = vrf.as_object()?;
                let vname = o.get("vrfName").and_then(Value::as_str).unwrap_or(name);
                Some((vrf_label(vname), o))
            })
            .collect()
    };
    for (vrf, peers) in vrfs {
        for (peer, n) in peers {
            let Some(state) = n.get("bgpState").and_then(Value::as_str) else {
                continue;
            };
            let established = state == "Established";
            let stats = n.get("messageStats").cloned().unwrap_or(Value::Null);
            let (mut sent, mut recv) = (0, 0);
            if let Some(afs) = n.get("addressFamilyInfo").and_then(Value::as_object) {
                for af in afs.values() {
                    sent += u(af, "sentPrefixCounter");
                    recv += u(af, "acceptedPrefixCounter");
                }
            }
            let uptime = if established {
                u(n, "bgpTimerUpMsec")
            } else {
                u(n, "lastResetTimerMsecs")
            };
            out.push(BgpNeighborStatus {
                peer: peer.clone(),
                vrf: vrf.clone(),
                state: state.to_string(),
                established,
                remote_as: u(n, "remoteAs"),
                uptime_msec: uptime,
                connections_established: u(n, "connectionsEstablished"),
                connections_dropped: u(n, "connectionsDropped"),
                last_reset_reason: n
                    .get("lastResetDueTo")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                prefixes_sent: sent,
                prefixes_received: recv,
                opens_sent: u(&stats, "opensSent"),
                opens_received: u(&stats, "opensRecv"),
                notifications_sent: u(&stats, "notificationsSent"),
                notifications_received: u(&stats, "notificationsRecv"),
                updates_sent: u(&stats, "updatesSent"),
                updates_received: u(&stats, "updatesRecv"),
                keepalives_sent: u(&stats, "keepalivesSent"),
                keepalives_received: u(&stats, "keepalivesRecv"),
                route_refresh_sent: u(&stats, "routeRefreshSent"),
                total_sent: u(&stats, "totalSent"),
                total_received: u(&stats, "totalRecv"),
                bfd_status: n
                    .get("peerBfdInfo")
                    .and_then(|b| b.get("status"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
    }
    out.sort_by(|a, b| (&a.vrf, &a.peer).cmp(&(&b.vrf, &b.peer)));
    out
}

/// Parses `show bfd peers json`, joined with `show bfd peers counters json` when given.
pub fn parse_bfd_peers(peers: &Value, counters: Option<&Value>) -> Vec<BfdPeerStatus> {
    let key = |p: &Value| {
        (
            p.get("peer")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            p.get("vrf")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            p.get("local").and_then(Value::as_str).map(str::to_string),
            p.get("multihop").and_then(Value::as_bool).unwrap_or(false),
        )
    };
    let counters: Vec<&Value> = counters
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut out: Vec<BfdPeerStatus> = peers
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let k = key(p);
            let c = counters
                .iter()
                .find(|c| key(c) == k)
                .copied()
                .unwrap_or(&Value::Null);
            let status = p
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            BfdPeerStatus {
                peer: k.0,
                vrf: vrf_label(&k.1),
                local: k.2,
                multihop: k.3,
                interface: p
                    .get("interface")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                up: status == "up",
                status,
                uptime_secs: u(p, "uptime"),
                receive_interval: u(p, "receive-interval"),
                transmit_interval: u(p, "transmit-interval"),
                detect_multiplier: u(p, "detect-multiplier"),
                control_packet_input: u(c, "control-packet-input"),
                control_packet_output: u(c, "control-packet-output"),
                echo_packet_input: u(c, "echo-packet-input"),
                echo_packet_output: u(c, "echo-packet-output"),
                session_up_events: u(c, "session-up"),
                session_down_events: u(c, "session-down"),
                zebra_notifications: u(c, "zebra-notifications"),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.vrf, &a.peer).cmp(&(&b.vrf, &b.peer)));
    out
}

/// Reads BGP neighbor status of every VRF from FRR.
pub fn read_bgp_status(c: &impl FrrControl) -> Result<Vec<BgpNeighborStatus>, ControlError> {
    Ok(parse_bgp_neighbors(
        &c.show_json("show bgp vrf all neighbors json")?,
    ))
}

/// Reads BFD peers with their counters from FRR.
pub fn read_bfd_status(c: &impl FrrControl) -> Result<Vec<BfdPeerStatus>, ControlError> {
    let peers = c.show_json("show bfd peers json")?;
    let counters = c.show_json("show bfd peers counters json")?;
    Ok(parse_bfd_peers(&peers, Some(&counters)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }

    #[test]
    fn bgp_neighbors_from_real_frr() {
        let n = parse_bgp_neighbors(&fixture("bgp_vrf_all_neighbors.json"));
        assert_eq!(n.len(), 2);
        let up = &n[0];
        assert_eq!(up.peer, "192.0.2.1");
        assert_eq!(up.vrf, "");
        assert_eq!(up.state, "Established");
        assert!(up.established);
        assert_eq!(up.remote_as, 64513);
        assert_eq!(up.prefixes_sent, 1);
        assert_eq!(up.prefixes_received, 0);
        assert_eq!(up.connections_established, 2);
        assert_eq!(up.opens_sent, 2);
        assert_eq!(up.total_sent, 7);
        assert_eq!(up.bfd_status_label(), "Up");
        assert!(up.uptime_msec > 0);
        let idle = &n[1];
        assert_eq!(idle.peer, "192.0.2.99");
        assert_eq!(idle.state, "Idle");
        assert!(!idle.established);
        assert_eq!(idle.bfd_status_label(), "N/A");
    }

    #[test]
    fn bfd_peers_from_real_frr() {
        let p = parse_bfd_peers(
            &fixture("bfd_peers.json"),
            Some(&fixture("bfd_peers_counters.json")),
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].peer, "192.0.2.1");
        assert_eq!(p[0].vrf, "");
        assert!(p[0].up);
        assert_eq!(p[0].receive_interval, 300);
        assert_eq!(p[0].control_packet_input, 7);
        assert_eq!(p[0].session_up_events, 1);
        assert_eq!(p[0].zebra_notifications, 2);
    }

    #[test]
    fn single_vrf_shape_and_garbage() {
        let v = serde_json::json!({"192.0.2.5": {"bgpState": "Active", "remoteAs": 1}});
        let n = parse_bgp_neighbors(&v);
        assert_eq!(n[0].state, "Active");
        assert!(parse_bgp_neighbors(&serde_json::json!([])).is_empty());
        assert!(parse_bfd_peers(&serde_json::json!({}), None).is_empty());
    }
}
