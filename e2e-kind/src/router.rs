//! The external routers: the configuration of the main FRR router, and what the tests read
//! back from FRR (`show ip route json`, `show bgp ... json`, `show bgp neighbors json`) and
//! from BIRD (`birdc show route`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use metallb_netlab::FrrInstance;
use serde_json::Value;

/// Address of the main external router on the LAN.
pub const EXT_V4: &str = "192.0.2.1";
/// Its IPv6 address on the LAN.
pub const EXT_V6: &str = "2001:db8::1";
/// BIRD's address on the LAN.
pub const BIRD_V4: &str = "192.0.2.2";
/// The external router's loopback, reachable from nodes through 192.0.2.1 (multihop).
pub const EXT_LOOPBACK: &str = "198.19.255.1";
/// BIRD's AS number.
pub const BIRD_ASN: u32 = 64514;

/// Node `k` (1-based) on the LAN.
pub fn node_v4(k: usize) -> String {
    format!("192.0.2.{}", 10 + k)
}

/// Node `k` (1-based), IPv6.
pub fn node_v6(k: usize) -> String {
    format!("2001:db8::{}", 10 + k)
}

/// How the main external router (FRR) is set up. It has one explicit neighbor per node
/// (so its session counters survive a session reset) in the peer-group `NODES` (IPv4) and
/// `NODES6` (IPv6).
#[derive(Clone, Debug)]
pub struct ExtOptions {
    /// The router's AS.
    pub asn: u32,
    /// The nodes' AS (equal to `asn` for iBGP).
    pub node_asn: u32,
    /// Nodes (1-based) whose session uses BFD profile `fast` (300 ms × 3).
    pub bfd_nodes: Vec<usize>,
    /// `timers KEEPALIVE HOLD` on every node session.
    pub timers: Option<(u32, u32)>,
    /// TCP MD5 password on every node session.
    pub password: Option<String>,
    /// Also peer over IPv6 (node addresses 2001:db8::1K).
    pub ipv6: bool,
    /// Peer from the loopback 198.19.255.1 with `ebgp-multihop` (nodes get a static route).
    pub multihop: bool,
    /// Extra lines appended to the configuration.
    pub extra: String,
}

impl Default for ExtOptions {
    fn default() -> Self {
        ExtOptions {
            asn: 64513,
            node_asn: 64512,
            bfd_nodes: Vec::new(),
            timers: None,
            password: None,
            ipv6: false,
            multihop: false,
            extra: String::new(),
        }
    }
}

impl ExtOptions {
    /// The address nodes must peer with.
    pub fn peer_address(&self) -> &'static str {
        if self.multihop {
            EXT_LOOPBACK
        } else {
            EXT_V4
        }
    }
}

/// Renders the external router's FRR configuration for `nodes` nodes.
pub fn ext_config(o: &ExtOptions, nodes: usize, log_file: &str) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "frr defaults traditional");
    let _ = writeln!(c, "log file {log_file} informational");
    let _ = writeln!(c, "log timestamp precision 3");
    let _ = writeln!(c, "router bgp {}", o.asn);
    let _ = writeln!(c, " bgp router-id {EXT_V4}");
    let _ = writeln!(c, " bgp log-neighbor-changes");
    let _ = writeln!(c, " no bgp ebgp-requires-policy");
    let _ = writeln!(c, " no bgp default ipv4-unicast");
    let _ = writeln!(c, " bgp bestpath as-path multipath-relax");
    let mut groups = vec![("NODES", false)];
    if o.ipv6 {
        groups.push(("NODES6", true));
    }
    for (g, _) in &groups {
        let _ = writeln!(c, " neighbor {g} peer-group");
        let _ = writeln!(c, " neighbor {g} remote-as {}", o.node_asn);
        let _ = writeln!(c, " neighbor {g} timers connect 1");
        if let Some((k, h)) = o.timers {
            let _ = writeln!(c, " neighbor {g} timers {k} {h}");
        }
        if let Some(p) = &o.password {
            let _ = writeln!(c, " neighbor {g} password {p}");
        }
        if o.multihop && *g == "NODES" {
            let _ = writeln!(c, " neighbor {g} ebgp-multihop 4");
            let _ = writeln!(c, " neighbor {g} update-source {EXT_LOOPBACK}");
        }
    }
    for k in 1..=nodes {
        let a = node_v4(k);
        let _ = writeln!(c, " neighbor {a} peer-group NODES");
        if o.bfd_nodes.contains(&k) {
            let _ = writeln!(c, " neighbor {a} bfd profile fast");
        }
        if o.ipv6 {
            let a6 = node_v6(k);
            let _ = writeln!(c, " neighbor {a6} peer-group NODES6");
            if o.bfd_nodes.contains(&k) {
                let _ = writeln!(c, " neighbor {a6} bfd profile fast");
            }
        }
    }
    let _ = writeln!(c, " address-family ipv4 unicast");
    let _ = writeln!(c, "  neighbor NODES activate");
    let _ = writeln!(c, "  maximum-paths 16");
    let _ = writeln!(c, "  maximum-paths ibgp 16");
    let _ = writeln!(c, " exit-address-family");
    let _ = writeln!(c, " address-family ipv6 unicast");
    if o.ipv6 {
        let _ = writeln!(c, "  neighbor NODES6 activate");
    }
    let _ = writeln!(c, "  maximum-paths 16");
    let _ = writeln!(c, "  maximum-paths ibgp 16");
    let _ = writeln!(c, " exit-address-family");
    let _ = writeln!(c, "exit");
    let _ = writeln!(c, "bfd");
    let _ = writeln!(c, " profile fast");
    let _ = writeln!(c, "  receive-interval 300");
    let _ = writeln!(c, "  transmit-interval 300");
    let _ = writeln!(c, "  detect-multiplier 3");
    let _ = writeln!(c, " exit");
    let _ = writeln!(c, "exit");
    c.push_str(&o.extra);
    c
}

/// The BIRD configuration: one BGP session per node, kernel export with ECMP.
pub fn bird_config(nodes: usize, node_asn: u32, log_file: &str) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "router id {BIRD_V4};");
    let _ = writeln!(c, "log \"{log_file}\" all;");
    let _ = writeln!(c, "protocol device {{ }}");
    let _ = writeln!(c, "protocol direct {{ ipv4; interface \"eth0\"; }}");
    let _ = writeln!(
        c,
        "protocol kernel {{ ipv4 {{ export all; }}; merge paths on limit 16; }}"
    );
    let _ = writeln!(
        c,
        "template bgp nodes {{ local as {BIRD_ASN}; connect retry time 1; ipv4 {{ import all; export none; }}; }}"
    );
    for k in 1..=nodes {
        let _ = writeln!(
            c,
            "protocol bgp node{k} from nodes {{ neighbor {} as {node_asn}; }}",
            node_v4(k)
        );
    }
    c
}

/// One path of a prefix in the external router's BGP table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpPath {
    /// Next hop (global address).
    pub nexthop: String,
    /// The peer it came from.
    pub peer: String,
    pub bestpath: bool,
    pub multipath: bool,
    pub local_pref: Option<u64>,
    /// Communities as FRR prints them (`64512:100 no-export`).
    pub communities: String,
    pub large_communities: String,
    pub as_path: String,
}

/// Session counters of one neighbor (`show bgp neighbors json`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NeighborInfo {
    pub state: String,
    pub established: u64,
    pub dropped: u64,
    pub bfd_status: Option<String>,
    /// Time since the session came up (`bgpTimerUpMsec`; 0 when not Established).
    pub up_ms: u64,
}

fn is_v6(prefix: &str) -> bool {
    prefix.contains(':')
}

/// Read-only queries against an FRR router.
pub trait FrrQueries {
    /// Runs one JSON show command (`vtysh -N PATHSPACE -c CMD`); `None` on any error.
    fn query_json(&self, cmd: &str) -> Option<Value>;

    /// Active next hops of the selected BGP route for `prefix` in zebra's RIB/FIB
    /// (`show ip route PREFIX json`), sorted. IPv6 link-local next hops are kept as printed.
    fn fib_nexthops(&self, prefix: &str) -> Vec<String> {
        let cmd = if is_v6(prefix) {
            format!("show ipv6 route {prefix} json")
        } else {
            format!("show ip route {prefix} json")
        };
        let Some(v) = self.query_json(&cmd) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for route in v
            .get(prefix)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if route.get("protocol").and_then(Value::as_str) != Some("bgp")
                || route.get("selected").and_then(Value::as_bool) != Some(true)
            {
                continue;
            }
            for nh in route
                .get("nexthops")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if nh.get("active").and_then(Value::as_bool) == Some(true) {
                    if let Some(ip) = nh.get("ip").and_then(Value::as_str) {
                        out.push(ip.to_string());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Every path for `prefix` in the BGP table (`show bgp ipv4|ipv6 unicast PREFIX json`).
    fn bgp_paths(&self, prefix: &str) -> Vec<BgpPath> {
        self.bgp_paths_in(None, prefix)
    }

    /// Same in a VRF.
    fn bgp_paths_in(&self, vrf: Option<&str>, prefix: &str) -> Vec<BgpPath> {
        let afi = if is_v6(prefix) { "ipv6" } else { "ipv4" };
        let cmd = match vrf {
            Some(v) => format!("show bgp vrf {v} {afi} unicast {prefix} json"),
            None => format!("show bgp {afi} unicast {prefix} json"),
        };
        self.query_json(&cmd)
            .map(|v| parse_bgp_paths(&v))
            .unwrap_or_default()
    }

    /// Next hops of the usable (best or multipath) BGP paths for `prefix`, sorted.
    fn bgp_nexthops(&self, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .bgp_paths(prefix)
            .into_iter()
            .filter(|p| p.bestpath || p.multipath)
            .map(|p| p.nexthop)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The ECMP next hops the router forwards `prefix` to: the FIB for IPv4, the BGP
    /// multipath set for IPv6 (whose FIB shows link-local next hops).
    fn nexthops(&self, prefix: &str) -> Vec<String> {
        if is_v6(prefix) {
            self.bgp_nexthops(prefix)
        } else {
            self.fib_nexthops(prefix)
        }
    }

    /// Every neighbor's state and counters.
    fn neighbors(&self) -> BTreeMap<String, NeighborInfo> {
        self.query_json("show bgp neighbors json")
            .map(|v| parse_neighbors(&v))
            .unwrap_or_default()
    }

    /// Prefixes in the BGP table of `afi` (`ipv4`, `ipv6`).
    fn bgp_prefixes(&self, afi: &str) -> Vec<String> {
        let Some(v) = self.query_json(&format!("show bgp {afi} unicast json")) else {
            return Vec::new();
        };
        let mut out: Vec<String> = v
            .get("routes")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}

impl FrrQueries for FrrInstance {
    fn query_json(&self, cmd: &str) -> Option<Value> {
        self.vtysh_json(cmd).ok()
    }
}

/// Queries an FRR by pathspace only (an instance this process did not start).
#[derive(Clone, Debug)]
pub struct Pathspace(pub String);

impl FrrQueries for Pathspace {
    fn query_json(&self, cmd: &str) -> Option<Value> {
        let out = std::process::Command::new("vtysh")
            .args(["-N", &self.0, "-c", cmd])
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }
}

/// Parses `show bgp ipv4 unicast PREFIX json`.
pub fn parse_bgp_paths(v: &Value) -> Vec<BgpPath> {
    let mut out = Vec::new();
    for p in v
        .get("paths")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let nexthop = p
            .get("nexthops")
            .and_then(Value::as_array)
            .and_then(|n| {
                n.iter()
                    .find(|h| h.get("scope").and_then(Value::as_str) != Some("link-local"))
                    .or_else(|| n.first())
            })
            .and_then(|h| h.get("ip"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let bestpath = match p.get("bestpath") {
            Some(Value::Object(o)) => o.get("overall").and_then(Value::as_bool).unwrap_or(false),
            Some(Value::Bool(b)) => *b,
            _ => false,
        };
        let string_of = |key: &str| {
            p.get(key)
                .and_then(|c| c.get("string"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        out.push(BgpPath {
            nexthop,
            peer: p
                .get("peer")
                .and_then(|x| x.get("peerId"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            bestpath,
            multipath: p.get("multipath").and_then(Value::as_bool).unwrap_or(false),
            local_pref: p
                .get("localpref")
                .or_else(|| p.get("locPrf"))
                .and_then(Value::as_u64),
            communities: string_of("community"),
            large_communities: string_of("largeCommunity"),
            as_path: string_of("aspath"),
        });
    }
    out
}

/// Parses `show bgp neighbors json`.
pub fn parse_neighbors(v: &Value) -> BTreeMap<String, NeighborInfo> {
    let mut out = BTreeMap::new();
    let Some(m) = v.as_object() else {
        return out;
    };
    for (addr, n) in m {
        if !n.is_object() || n.get("bgpState").is_none() {
            continue;
        }
        out.insert(
            addr.clone(),
            NeighborInfo {
                state: n
                    .get("bgpState")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                established: n
                    .get("connectionsEstablished")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                dropped: n
                    .get("connectionsDropped")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                bfd_status: n
                    .get("peerBfdInfo")
                    .and_then(|b| b.get("status"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                up_ms: n.get("bgpTimerUpMsec").and_then(Value::as_u64).unwrap_or(0),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_paths() {
        let v = json!({"prefix":"198.18.0.1/32","paths":[
            {"aspath":{"string":"64512"},"multipath":true,"community":{"string":"64512:1"},
             "localpref":150,"nexthops":[{"ip":"192.0.2.12","afi":"ipv4","used":true}],
             "peer":{"peerId":"192.0.2.12"}},
            {"aspath":{"string":"64512"},"bestpath":{"overall":true},
             "nexthops":[{"ip":"2001:db8::11","scope":"global"},{"ip":"fe80::1","scope":"link-local"}],
             "peer":{"peerId":"2001:db8::11"}}]});
        let p = parse_bgp_paths(&v);
        assert_eq!(p.len(), 2);
        assert!(p[0].multipath && !p[0].bestpath);
        assert_eq!(p[0].local_pref, Some(150));
        assert_eq!(p[0].communities, "64512:1");
        assert_eq!(p[1].nexthop, "2001:db8::11");
        assert!(p[1].bestpath);
    }

    #[test]
    fn parses_neighbors() {
        let v = json!({"192.0.2.11":{"bgpState":"Established","connectionsEstablished":2,
            "connectionsDropped":1},"totalPeers":1});
        let n = parse_neighbors(&v);
        assert_eq!(n.len(), 1);
        assert_eq!(n["192.0.2.11"].dropped, 1);
    }

    #[test]
    fn ext_config_has_every_node() {
        let o = ExtOptions {
            bfd_nodes: vec![1],
            ipv6: true,
            ..Default::default()
        };
        let c = ext_config(&o, 2, "/tmp/x.log");
        assert!(c.contains("neighbor 192.0.2.11 peer-group NODES"));
        assert!(c.contains("neighbor 192.0.2.11 bfd profile fast"));
        assert!(!c.contains("neighbor 192.0.2.12 bfd"));
        assert!(c.contains("neighbor 2001:db8::12 peer-group NODES6"));
    }
}
