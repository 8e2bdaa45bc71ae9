//! Which node answers ARP/NDP for a Service's IPs: upstream's `layer2_controller.go`
//! (`ShouldAnnounce`) as a pure function of the cluster, evaluated the same way by every
//! speaker.
//!
//! Checks in upstream's order (the first failing one is the reason nobody announces):
//! not handled (class) → not a LoadBalancer → no ingress IP → an IP outside every pool →
//! no serving endpoint anywhere (`notOwner`) → no L2Advertisement of the pool matches the
//! Service (`noMatchingAdvertisement`; a shared-IP Service and an advertisement with
//! serviceSelectors: `sharedIPWithServiceSelector`) → no live, eligible node.
//!
//! Election: candidates are the live nodes (membership, or Node readiness without it),
//! minus `NetworkUnavailable=True`, minus nodes labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers` (unless `--ignore-exclude-lb`),
//! restricted to nodes that some applicable advertisement's `nodeSelectors` select, and with
//! `externalTrafficPolicy: Local` to nodes with a serving endpoint. They are ordered by the
//! summed `preferredNodeSelectors` weight (descending), then by
//! `sha256(node + "#" + first IP)` (ascending, bytewise); the first one announces.
//!
//! The hash order is rendezvous hashing: each (node, IP) pair has its own rank, so Services
//! spread evenly over the candidates, losing a node moves only the Services it announced,
//! and a new node takes over only the Services for which it ranks first. Using the first
//! IP keeps a dual-stack Service's addresses on one node, and Services sharing an IP on
//! the same node when their candidate sets agree.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use kube::Resource;
use metallb_api::metallb::{IPAddressPool, L2Advertisement};
use metallb_api::selector::Selector;
use metallb_api::validation::{object_ref, FieldPath};
use sha2::{Digest, Sha256};

use crate::bgp::input::TrafficPolicy;
use crate::bgp::{ConfigIssue, Endpoints, NodeInfo, ServiceInfo, ServiceKey, SpeakerOptions};

/// Why nobody (or not this node) announces a Service in L2 mode. Names are upstream's
/// where upstream has one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L2Reason {
    NotLoadBalancer,
    NoIngressIP,
    /// An assigned IP is in no IPAddressPool.
    IPNotInPool(IpAddr),
    /// No serving endpoint anywhere (upstream `notOwner`).
    NoEndpoints,
    /// The IPs' pools have no L2Advertisement (the Service is BGP-only or not announced).
    NoAdvertisement,
    /// L2Advertisements exist for the pool but their serviceSelectors exclude the Service.
    NoMatchingAdvertisement,
    /// The Service shares its IP (`metallb.io/allow-shared-ip`) and an applicable
    /// advertisement has serviceSelectors: upstream refuses to announce it.
    SharedIPWithServiceSelector,
    /// No live node passes the node checks (selectors, exclusion, NetworkUnavailable,
    /// ETP Local endpoints).
    NoEligibleNode,
    /// Another node won the election (upstream `notOwner` on the losers).
    NotElected,
}

impl L2Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            L2Reason::NotLoadBalancer => "notLoadBalancer",
            L2Reason::NoIngressIP => "noIPAllocated",
            L2Reason::IPNotInPool(_) => "ipNotAllowed",
            L2Reason::NoEndpoints => "notOwner",
            L2Reason::NoAdvertisement => "noL2Advertisement",
            L2Reason::NoMatchingAdvertisement => "noMatchingAdvertisement",
            L2Reason::SharedIPWithServiceSelector => "sharedIPWithServiceSelector",
            L2Reason::NoEligibleNode => "noEligibleNode",
            L2Reason::NotElected => "notOwner",
        }
    }
}

impl std::fmt::Display for L2Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            L2Reason::IPNotInPool(ip) => write!(f, "{} ({ip})", self.as_str()),
            _ => f.write_str(self.as_str()),
        }
    }
}

/// Interfaces to answer on: every suitable one, or only those named by the advertisements.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interfaces {
    All,
    Only(BTreeSet<String>),
}

impl Interfaces {
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Interfaces::All => true,
            Interfaces::Only(set) => set.contains(name),
        }
    }

    /// Names for `ServiceL2Status.status.interfaces`: only when restricted (as upstream).
    pub fn listed(&self) -> Vec<String> {
        match self {
            Interfaces::All => Vec::new(),
            Interfaces::Only(set) => set.iter().cloned().collect(),
        }
    }
}

/// A node as the election sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2Node {
    pub info: NodeInfo,
    /// Its speaker is alive (membership), or without membership its Node is not known to
    /// be down (condition `Ready` is not `False`/`Unknown`).
    pub alive: bool,
}

/// The outcome for one Service, the same on every speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2Decision {
    pub key: ServiceKey,
    /// The elected node, with the IPs it answers for and on which interfaces.
    pub winner: Option<Winner>,
    /// Why nobody announces (`None` when there is a winner).
    pub reason: Option<L2Reason>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Winner {
    pub node: String,
    pub ips: Vec<IpAddr>,
    pub interfaces: Interfaces,
}

impl L2Decision {
    /// What `node` does: the IPs and interfaces it answers on, or why it does not.
    pub fn for_node(&self, node: &str) -> Result<&Winner, L2Reason> {
        match (&self.winner, &self.reason) {
            (Some(w), _) if w.node == node => Ok(w),
            (Some(_), _) => Err(L2Reason::NotElected),
            (None, Some(r)) => Err(r.clone()),
            (None, None) => Err(L2Reason::NoEligibleNode),
        }
    }
}

#[derive(Clone, Debug)]
struct Pool {
    cidrs: Vec<IpNet>,
    /// Indexes into `L2Config::ads`.
    ads: Vec<usize>,
}

#[derive(Clone, Debug)]
struct Ad {
    node_selectors: Vec<Selector>,
    interfaces: Vec<String>,
    service_selectors: Vec<Selector>,
    preferences: Vec<(i64, Selector)>,
}

impl Ad {
    fn selects_node(&self, node: &NodeInfo) -> bool {
        self.node_selectors.is_empty()
            || self.node_selectors.iter().any(|s| s.matches(&node.labels))
    }

    fn matches_service(&self, svc: &ServiceInfo) -> bool {
        self.service_selectors.is_empty()
            || (self.service_selectors.iter()).any(|s| s.matches_with(|k| svc.labels.get(k)))
    }

    fn weight(&self, node: &NodeInfo) -> i64 {
        (self.preferences.iter())
            .filter(|(_, s)| s.matches(&node.labels))
            .map(|(w, _)| w)
            .sum()
    }
}

/// The pools and L2Advertisements, pre-parsed for per-Service decisions.
#[derive(Clone, Debug, Default)]
pub struct L2Config {
    pools: Vec<Pool>,
    ads: Vec<Ad>,
    /// L2Advertisements that were skipped, with why (sorted).
    pub issues: Vec<ConfigIssue>,
}

fn parse_all(
    sels: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector],
) -> Option<Vec<Selector>> {
    sels.iter()
        .map(|s| Selector::parse(s, &FieldPath::default()).ok())
        .collect()
}

impl L2Config {
    /// Compile. Invalid pools are skipped silently here (the BGP compile reports them);
    /// invalid advertisements are skipped and listed in `issues`.
    pub fn compile(pools: &[IPAddressPool], ads: &[L2Advertisement]) -> Self {
        let mut sorted_pools: Vec<&IPAddressPool> = pools.iter().collect();
        sorted_pools.sort_by_key(|p| object_ref(p.meta()));
        let mut sorted_ads: Vec<&L2Advertisement> = ads.iter().collect();
        sorted_ads.sort_by_key(|a| object_ref(a.meta()));

        let mut out = L2Config::default();
        let mut pool_objs = Vec::new();
        for p in sorted_pools {
            if let Ok(cidrs) = p.cidrs() {
                out.pools.push(Pool {
                    cidrs,
                    ads: Vec::new(),
                });
                pool_objs.push(p);
            }
        }
        for ad in sorted_ads {
            let r = object_ref(ad.meta());
            let skipped = |message: String| ConfigIssue {
                kind: "L2Advertisement",
                name: r.clone(),
                message,
            };
            if let Err(e) = ad.validate() {
                out.issues.push(skipped(format!("skipped: {e}")));
                continue;
            }
            let parsed = (
                parse_all(&ad.spec.node_selectors),
                parse_all(&ad.spec.service_selectors),
                (ad.spec.preferred_node_selectors.iter())
                    .map(|p| {
                        Selector::parse(&p.preference, &FieldPath::default())
                            .ok()
                            .map(|s| (i64::from(p.weight), s))
                    })
                    .collect::<Option<Vec<_>>>(),
            );
            let (Some(node_selectors), Some(service_selectors), Some(preferences)) = parsed else {
                out.issues
                    .push(skipped("skipped: a label selector does not parse".into()));
                continue;
            };
            let idx = out.ads.len();
            out.ads.push(Ad {
                node_selectors,
                interfaces: ad.spec.interfaces.clone(),
                service_selectors,
                preferences,
            });
            for (pool, obj) in out.pools.iter_mut().zip(&pool_objs) {
                if ad.selects_pool(obj) {
                    pool.ads.push(idx);
                }
            }
        }
        out.issues.sort();
        out.issues.dedup();
        out
    }

    /// First pool (in name order) with a CIDR holding `ip`.
    fn pool_for(&self, ip: &IpAddr) -> Option<&Pool> {
        self.pools
            .iter()
            .find(|p| p.cidrs.iter().any(|c| c.contains(ip)))
    }

    /// Whether some L2Advertisement covers the pool holding `ip`.
    pub fn covers(&self, ip: &IpAddr) -> bool {
        self.pool_for(ip).is_some_and(|p| !p.ads.is_empty())
    }
}

/// The election rank of `node` for a Service whose first IP is `ip` (lower wins among
/// equal weights): upstream's `sha256(node + "#" + ip)`.
pub fn rank(node: &str, ip: &IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(ip.to_string().as_bytes());
    h.finalize().into()
}

/// Decide who announces `svc`. `None` when the speaker does not handle the Service's class
/// or none of its IPs is in a pool with an L2Advertisement (it is not an L2 Service: the
/// BGP side reports it).
pub fn decide(
    cfg: &L2Config,
    svc: &ServiceInfo,
    endpoints: Option<&Endpoints>,
    nodes: &[L2Node],
    options: &SpeakerOptions,
) -> Option<L2Decision> {
    if !options.handles(svc) {
        return None;
    }
    let nobody = |reason| {
        Some(L2Decision {
            key: svc.key.clone(),
            winner: None,
            reason: Some(reason),
        })
    };
    if !svc.is_load_balancer || svc.ingress_ips.is_empty() {
        // Nothing to answer for; not an L2 Service as far as anyone can tell.
        return None;
    }
    let mut pools = Vec::with_capacity(svc.ingress_ips.len());
    for ip in &svc.ingress_ips {
        match cfg.pool_for(ip) {
            Some(p) => pools.push(p),
            None => return nobody(L2Reason::IPNotInPool(*ip)),
        }
    }
    if pools.iter().all(|p| p.ads.is_empty()) {
        return None;
    }
    if !endpoints.is_some_and(|e| e.any_serving) {
        return nobody(L2Reason::NoEndpoints);
    }
    let mut applicable: BTreeSet<usize> = BTreeSet::new();
    for p in &pools {
        applicable.extend(
            p.ads
                .iter()
                .copied()
                .filter(|&a| cfg.ads[a].matches_service(svc)),
        );
    }
    if applicable.is_empty() {
        return nobody(L2Reason::NoMatchingAdvertisement);
    }
    let ads: Vec<&Ad> = applicable.iter().map(|&a| &cfg.ads[a]).collect();
    if svc.shares_ip && ads.iter().any(|a| !a.service_selectors.is_empty()) {
        return nobody(L2Reason::SharedIPWithServiceSelector);
    }

    let first = svc.ingress_ips[0];
    let local = svc.traffic_policy == TrafficPolicy::Local;
    let best = nodes
        .iter()
        .filter(|n| n.alive && !n.info.network_unavailable)
        .filter(|n| options.ignore_exclude_lb || !n.info.excluded_from_load_balancers())
        .filter(|n| ads.iter().any(|a| a.selects_node(&n.info)))
        .filter(|n| !local || endpoints.is_some_and(|e| e.serving_on(&n.info.name)))
        .map(|n| {
            let weight: i64 = ads.iter().map(|a| a.weight(&n.info)).sum();
            (std::cmp::Reverse(weight), rank(&n.info.name, &first), n)
        })
        .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let Some((_, _, node)) = best else {
        return nobody(L2Reason::NoEligibleNode);
    };
    // The winner answers on the interfaces of the advertisements selecting it: all of them
    // if one of those names none.
    let mut names = BTreeSet::new();
    let mut all = false;
    for a in ads.iter().filter(|a| a.selects_node(&node.info)) {
        if a.interfaces.is_empty() {
            all = true;
        }
        names.extend(a.interfaces.iter().cloned());
    }
    let ips = (svc.ingress_ips.iter().zip(&pools))
        .filter(|(_, p)| p.ads.iter().any(|a| applicable.contains(a)))
        .map(|(ip, _)| *ip)
        .collect();
    Some(L2Decision {
        key: svc.key.clone(),
        winner: Some(Winner {
            node: node.info.name.clone(),
            ips,
            interfaces: if all {
                Interfaces::All
            } else {
                Interfaces::Only(names)
            },
        }),
        reason: None,
    })
}

/// What one node answers for: each IP with the interfaces it is answered on (union over
/// the Services holding it).
pub fn node_ips<'a>(
    decisions: impl IntoIterator<Item = &'a L2Decision>,
    node: &str,
) -> BTreeMap<IpAddr, Interfaces> {
    let mut out: BTreeMap<IpAddr, Interfaces> = BTreeMap::new();
    for w in decisions.into_iter().filter_map(|d| d.for_node(node).ok()) {
        for ip in &w.ips {
            let merged = match (out.remove(ip), &w.interfaces) {
                (None, i) => i.clone(),
                (Some(Interfaces::All), _) | (_, Interfaces::All) => Interfaces::All,
                (Some(Interfaces::Only(mut a)), Interfaces::Only(b)) => {
                    a.extend(b.iter().cloned());
                    Interfaces::Only(a)
                }
            };
            out.insert(*ip, merged);
        }
    }
    out
}
