//! Does this node announce a Service over BGP, and what exactly: the pure core of
//! upstream's `bgpController.ShouldAnnounce` / `SetBalancer` for one node.
//!
//! ```text
//!  MetalLbConfig + NodeInfo + SpeakerOptions ──compile──▶ NodeConfig (sessions, ads, pools)
//!                                                              │
//!  ServiceInfo + Endpoints ──────────────── announce_service ──┤──▶ ServiceAnnouncement
//!                                                              │        (reason, or per IP:
//!                                                              ▼         prefix → peers, attrs)
//!                                                       NodeAnnouncements
//!                                          (per Service results + RouteTable, kept in step)
//! ```
//!
//! Decisions per Service, in upstream's order (the first failing check is the reason):
//! not a LoadBalancer → no ingress IP → an IP outside every pool → no BGPAdvertisement of the
//! pool selects this node → none matches the Service (serviceSelectors) → node
//! NetworkUnavailable → node labelled exclude-from-external-load-balancers → ETP Local
//! without a serving endpoint on this node / ETP Cluster without any serving endpoint.
//!
//! Deliberate deviations from upstream (documented in the README):
//! * conflicting `localPref` for the same prefix and peer does not withdraw the Service
//!   (`conflictingAdvertisements`); it is reported and the highest value wins;
//! * the aggregated prefix never extends beyond the pool CIDR holding the IP (upstream
//!   masks the IP to `aggregationLength` even when that covers addresses outside the pool);
//! * one malformed object (peer, advertisement, pool, BFD profile) is skipped and
//!   reported instead of invalidating the whole configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Resource, ResourceExt};
use metallb_api::community::BgpCommunity;
use metallb_api::frrk8s::IpFamily;
use metallb_api::metallb::config::{community_aliases, frr_peer_compatibility};
use metallb_api::metallb::{BFDProfile, BGPPeer};
use metallb_api::selector::Selector;
use metallb_api::validation::{object_ref, FieldPath};

use super::input::{
    Endpoints, Labels, MetalLbConfig, NodeInfo, ServiceInfo, ServiceKey, SpeakerOptions,
};

// ===== configuration compiled for one node =====

/// A configuration object that was skipped or partly ignored on this node, with why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigIssue {
    pub kind: &'static str,
    /// `namespace/name`.
    pub name: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.name, self.message)
    }
}

/// A BGP session this node runs: a BGPPeer whose nodeSelectors match the node, that is
/// valid and compatible with the node's other peers.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The BGPPeer's object name (what `BGPAdvertisement.spec.peers` refers to).
    pub name: Arc<str>,
    pub peer: BGPPeer,
    /// Address family of the session as frr-k8s computes it.
    pub family: IpFamily,
    /// The BFD profile to reference (dropped when the profile does not exist).
    pub bfd_profile: Option<String>,
    /// `localASN` to present (dropped on iBGP sessions, which FRR rejects).
    pub local_asn: Option<u32>,
}

impl Session {
    pub fn vrf(&self) -> &str {
        self.peer.spec.vrf().unwrap_or("")
    }

    /// Whether the session carries prefixes of `ip`'s family.
    pub fn carries(&self, ip: &IpAddr) -> bool {
        self.family.carries(ip)
    }
}

#[derive(Clone, Debug, PartialEq)]
struct CompiledPool {
    name: Arc<str>,
    cidrs: Vec<IpNet>,
    /// Indexes into `NodeConfig::ads` of the advertisements of this pool selecting the node.
    ads: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
struct CompiledAd {
    name: Arc<str>,
    service_selectors: Vec<Selector>,
    agg_v4: u8,
    agg_v6: u8,
    local_pref: u32,
    communities: Arc<[BgpCommunity]>,
    /// Sessions of this node the ad targets, per family of the advertised IP.
    peers_v4: Arc<[Arc<str>]>,
    peers_v6: Arc<[Arc<str>]>,
}

impl CompiledAd {
    fn matches_service(&self, labels: &Labels) -> bool {
        self.service_selectors.is_empty()
            || self
                .service_selectors
                .iter()
                .any(|s| s.matches_with(|k| labels.get(k)))
    }
}

/// The MetalLB configuration as it applies to one node: the sessions it runs and the
/// advertisements selecting it, pre-parsed so that per-Service decisions are cheap.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    pub node: NodeInfo,
    pub options: SpeakerOptions,
    /// Sorted by name.
    pub sessions: Vec<Session>,
    /// Valid BFD profiles, sorted by name (all of them go into the FRRConfiguration).
    pub bfd_profiles: Vec<BFDProfile>,
    /// Skipped or partly ignored objects, sorted.
    pub issues: Vec<ConfigIssue>,
    pools: Vec<CompiledPool>,
    ads: Vec<CompiledAd>,
}

fn sorted_by_ref<T: Resource>(items: &[T]) -> Vec<&T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by_key(|o| object_ref(o.meta()));
    v
}

fn parse_selectors(sels: &[LabelSelector]) -> Option<Vec<Selector>> {
    sels.iter()
        .map(|s| Selector::parse(s, &FieldPath::default()).ok())
        .collect()
}

impl NodeConfig {
    /// Compile the configuration for `node`. Never fails: bad objects are skipped and
    /// listed in [`NodeConfig::issues`].
    pub fn compile(config: &MetalLbConfig, node: &NodeInfo, options: &SpeakerOptions) -> Self {
        let mut issues = Vec::new();
        let mut issue = |kind: &'static str, name: String, message: String| {
            issues.push(ConfigIssue {
                kind,
                name,
                message,
            })
        };

        // BFD profiles.
        let mut bfd_profiles = Vec::new();
        for p in sorted_by_ref(&config.bfd_profiles) {
            match p.validate() {
                Ok(()) => bfd_profiles.push(p.clone()),
                Err(e) => issue("BFDProfile", object_ref(p.meta()), format!("skipped: {e}")),
            }
        }
        bfd_profiles.sort_by_key(|p| p.name_any());
        let bfd_names: BTreeSet<String> = bfd_profiles.iter().map(|p| p.name_any()).collect();

        // Sessions: valid peers selecting this node, compatible with each other.
        let mut candidates: Vec<BGPPeer> = Vec::new();
        for p in sorted_by_ref(&config.peers) {
            if !p.selects_node(&node.labels) {
                continue;
            }
            match p.validate() {
                Ok(()) => candidates.push(p.clone()),
                Err(e) => issue("BGPPeer", object_ref(p.meta()), format!("skipped: {e}")),
            }
        }
        let incompatible: BTreeMap<String, String> =
            frr_peer_compatibility(&candidates, std::slice::from_ref(&node.labels))
                .into_iter()
                .map(|e| (e.name, e.errors.to_string()))
                .collect();
        let mut sessions = Vec::new();
        for p in candidates {
            let r = object_ref(p.meta());
            if let Some(msg) = incompatible.get(&r) {
                issue(
                    "BGPPeer",
                    r,
                    format!("skipped on node {}: {msg}", node.name),
                );
                continue;
            }
            let family = if p.spec.interface().is_some() || p.spec.dual_stack_address_family() {
                IpFamily::DualStack
            } else {
                match p.spec.peer_address().and_then(|a| a.parse::<IpAddr>().ok()) {
                    Some(IpAddr::V6(_)) => IpFamily::IPv6,
                    _ => IpFamily::IPv4,
                }
            };
            let mut bfd_profile = p.spec.bfd_profile().map(str::to_string);
            if let Some(b) = &bfd_profile {
                if !bfd_names.contains(b) {
                    issue(
                        "BGPPeer",
                        r.clone(),
                        format!("spec.bfdProfile: {b:?} names no valid BFDProfile: the session runs without BFD"),
                    );
                    bfd_profile = None;
                }
            }
            let mut local_asn = p.spec.local_asn();
            if local_asn.is_some() && p.spec.is_ibgp() {
                issue(
                    "BGPPeer",
                    r.clone(),
                    "spec.localASN: ignored, FRR does not support localASN on iBGP sessions"
                        .to_string(),
                );
                local_asn = None;
            }
            sessions.push(Session {
                name: Arc::from(p.name_any()),
                peer: p,
                family,
                bfd_profile,
                local_asn,
            });
        }
        sessions.sort_by(|a, b| a.name.cmp(&b.name));

        // Pools.
        let mut pools = Vec::new();
        let mut pool_objs = Vec::new();
        for p in sorted_by_ref(&config.pools) {
            match p.cidrs() {
                Ok(cidrs) => {
                    pools.push(CompiledPool {
                        name: Arc::from(p.name_any()),
                        cidrs,
                        ads: Vec::new(),
                    });
                    pool_objs.push(p);
                }
                Err(e) => issue(
                    "IPAddressPool",
                    object_ref(p.meta()),
                    format!("skipped: {e}"),
                ),
            }
        }

        // Advertisements selecting this node.
        let aliases = community_aliases(&config.communities);
        let mut ads = Vec::new();
        for ad in sorted_by_ref(&config.advertisements) {
            if !ad.selects_node(&node.labels) {
                continue;
            }
            let r = object_ref(ad.meta());
            if let Err(e) = ad.validate() {
                issue("BGPAdvertisement", r, format!("skipped: {e}"));
                continue;
            }
            let communities = match ad.resolved_communities(&aliases) {
                Ok(c) => c,
                Err(e) => {
                    issue("BGPAdvertisement", r, format!("skipped: {e}"));
                    continue;
                }
            };
            let Some(service_selectors) = parse_selectors(&ad.spec.service_selectors) else {
                issue(
                    "BGPAdvertisement",
                    r,
                    "skipped: invalid spec.serviceSelectors".to_string(),
                );
                continue;
            };
            let targets = |v6: bool| -> Arc<[Arc<str>]> {
                let probe: IpAddr = if v6 {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                };
                sessions
                    .iter()
                    .filter(|s| ad.selects_peer(&s.name) && s.carries(&probe))
                    .map(|s| s.name.clone())
                    .collect()
            };
            let idx = ads.len();
            ads.push(CompiledAd {
                name: Arc::from(ad.name_any()),
                service_selectors,
                agg_v4: ad.aggregation_length(),
                agg_v6: ad.aggregation_length_v6(),
                local_pref: ad.spec.local_pref(),
                communities: communities.into(),
                peers_v4: targets(false),
                peers_v6: targets(true),
            });
            for (pool, obj) in pools.iter_mut().zip(&pool_objs) {
                if ad.selects_pool(obj) {
                    pool.ads.push(idx);
                }
            }
        }

        issues.sort();
        issues.dedup();
        NodeConfig {
            node: node.clone(),
            options: options.clone(),
            sessions,
            bfd_profiles,
            issues,
            pools,
            ads,
        }
    }

    /// The session named `name`, if this node runs it.
    pub fn session(&self, name: &str) -> Option<&Session> {
        self.sessions
            .binary_search_by(|s| (*s.name).cmp(name))
            .ok()
            .map(|i| &self.sessions[i])
    }

    /// First pool (in name order) with a CIDR holding `ip`, and that CIDR.
    fn pool_for(&self, ip: &IpAddr) -> Option<(usize, IpNet)> {
        self.pools
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.cidrs.iter().find(|c| c.contains(ip)).map(|c| (i, *c)))
    }
}

// ===== per-Service decision =====

/// Why this node does not announce a Service (logged, and used for events).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// `spec.type` is not `LoadBalancer`.
    NotLoadBalancer,
    /// The controller has not assigned an IP yet.
    NoIngressIP,
    /// An assigned IP is in no IPAddressPool (upstream `ipNotAllowed`).
    IPNotInPool(IpAddr),
    /// No BGPAdvertisement of the IP's pool selects this node (upstream `notOwner`).
    NoAdvertisement,
    /// Advertisements select this node but their serviceSelectors exclude the Service.
    NoMatchingAdvertisement,
    /// The node has condition `NetworkUnavailable=True`.
    NodeNetworkUnavailable,
    /// The node carries `node.kubernetes.io/exclude-from-external-load-balancers`.
    NodeExcluded,
    /// `externalTrafficPolicy: Local` and no serving endpoint on this node.
    NoLocalEndpoint,
    /// `externalTrafficPolicy: Cluster` and no serving endpoint anywhere.
    NoEndpoints,
}

impl Reason {
    /// Stable camelCase name (upstream's wording where upstream has one).
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::NotLoadBalancer => "notLoadBalancer",
            Reason::NoIngressIP => "noIPAllocated",
            Reason::IPNotInPool(_) => "ipNotAllowed",
            Reason::NoAdvertisement => "notOwner",
            Reason::NoMatchingAdvertisement => "noMatchingAdvertisement",
            Reason::NodeNetworkUnavailable => "nodeNetworkUnavailable",
            Reason::NodeExcluded => "nodeLabeledExcludeBalancers",
            Reason::NoLocalEndpoint => "noLocalEndpoints",
            Reason::NoEndpoints => "noEndpoints",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::IPNotInPool(ip) => write!(f, "{} ({ip})", self.as_str()),
            _ => f.write_str(self.as_str()),
        }
    }
}

/// One route a matching advertisement produces for an IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// The IP masked to the aggregation length (never wider than the pool CIDR).
    pub prefix: IpNet,
    /// `prefix` as text, shared to keep rebuilding the FRRConfiguration cheap.
    pub prefix_text: Arc<str>,
    /// The BGPAdvertisement producing it.
    pub advertisement: Arc<str>,
    /// The sessions (BGPPeer names) receiving it, sorted.
    pub peers: Arc<[Arc<str>]>,
    /// LOCAL_PREF, 0 = not set.
    pub local_pref: u32,
    /// Resolved communities, sorted and deduplicated.
    pub communities: Arc<[BgpCommunity]>,
}

/// What this node announces for one IP of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpAnnouncement {
    pub ip: IpAddr,
    pub pool: Arc<str>,
    /// One per matching advertisement, in advertisement name order.
    pub adverts: Vec<Advert>,
}

/// The decision for one Service on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAnnouncement {
    pub key: ServiceKey,
    /// Why the node does not announce; `None` when it does.
    pub reason: Option<Reason>,
    /// Announced IPs (empty when `reason` is set). With dual-stack an IP whose pool has no
    /// matching advertisement is simply absent.
    pub ips: Vec<IpAnnouncement>,
}

impl ServiceAnnouncement {
    pub fn is_announced(&self) -> bool {
        self.reason.is_none()
    }

    /// The BGPPeers the Service is configured to be advertised to from this node, sorted
    /// (the content of `ServiceBGPStatus.status.peers`).
    pub fn peers(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .ips
            .iter()
            .flat_map(|i| i.adverts.iter())
            .flat_map(|a| a.peers.iter().map(|p| &**p))
            .collect();
        set.into_iter().map(str::to_string).collect()
    }

    fn not_announced(key: &ServiceKey, reason: Reason) -> Self {
        ServiceAnnouncement {
            key: key.clone(),
            reason: Some(reason),
            ips: Vec::new(),
        }
    }
}

/// Mask `ip` to `len` bits, never wider than `cidr` (the pool block holding it).
fn aggregate(ip: IpAddr, len: u8, cidr: &IpNet) -> IpNet {
    let len = len.max(cidr.prefix_len()).min(cidr.max_prefix_len());
    // `len` is within 0..=max for the family, so this cannot fail; fall back to the host
    // route rather than panicking.
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// Decide whether this node announces `svc`, and what. `None` when the Service has a
/// load-balancer class the speaker does not handle (it is ignored altogether).
pub fn announce_service(
    cfg: &NodeConfig,
    svc: &ServiceInfo,
    endpoints: Option<&Endpoints>,
) -> Option<ServiceAnnouncement> {
    if !cfg.options.handles(svc) {
        return None;
    }
    let key = &svc.key;
    if !svc.is_load_balancer {
        return Some(ServiceAnnouncement::not_announced(
            key,
            Reason::NotLoadBalancer,
        ));
    }
    if svc.ingress_ips.is_empty() {
        return Some(ServiceAnnouncement::not_announced(key, Reason::NoIngressIP));
    }
    let mut located = Vec::with_capacity(svc.ingress_ips.len());
    for ip in &svc.ingress_ips {
        match cfg.pool_for(ip) {
            Some((pool, cidr)) => located.push((*ip, pool, cidr)),
            None => {
                return Some(ServiceAnnouncement::not_announced(
                    key,
                    Reason::IPNotInPool(*ip),
                ))
            }
        }
    }

    // Advertisements: of the pool, selecting this node (compiled), matching the Service.
    let mut any_ad_for_node = false;
    let mut ips = Vec::with_capacity(located.len());
    for (ip, pool_idx, cidr) in located {
        let pool = &cfg.pools[pool_idx];
        any_ad_for_node |= !pool.ads.is_empty();
        let mut adverts = Vec::new();
        for &a in &pool.ads {
            let ad = &cfg.ads[a];
            if !ad.matches_service(&svc.labels) {
                continue;
            }
            let (len, peers) = match ip {
                IpAddr::V4(_) => (ad.agg_v4, &ad.peers_v4),
                IpAddr::V6(_) => (ad.agg_v6, &ad.peers_v6),
            };
            let prefix = aggregate(ip, len, &cidr);
            adverts.push(Advert {
                prefix,
                prefix_text: Arc::from(prefix.to_string()),
                advertisement: ad.name.clone(),
                peers: peers.clone(),
                local_pref: ad.local_pref,
                communities: ad.communities.clone(),
            });
        }
        if !adverts.is_empty() {
            // Kept for the Service's lifetime: no spare capacity (usually one advert).
            adverts.shrink_to_fit();
            ips.push(IpAnnouncement {
                ip,
                pool: pool.name.clone(),
                adverts,
            });
        }
    }
    if ips.is_empty() {
        let reason = if any_ad_for_node {
            Reason::NoMatchingAdvertisement
        } else {
            Reason::NoAdvertisement
        };
        return Some(ServiceAnnouncement::not_announced(key, reason));
    }

    let node = &cfg.node;
    if node.network_unavailable {
        return Some(ServiceAnnouncement::not_announced(
            key,
            Reason::NodeNetworkUnavailable,
        ));
    }
    if node.excluded_from_load_balancers() && !cfg.options.ignore_exclude_lb {
        return Some(ServiceAnnouncement::not_announced(
            key,
            Reason::NodeExcluded,
        ));
    }
    match svc.traffic_policy {
        super::input::TrafficPolicy::Local => {
            if !endpoints.is_some_and(|e| e.serving_on(&node.name)) {
                return Some(ServiceAnnouncement::not_announced(
                    key,
                    Reason::NoLocalEndpoint,
                ));
            }
        }
        super::input::TrafficPolicy::Cluster => {
            if !endpoints.is_some_and(|e| e.any_serving) {
                return Some(ServiceAnnouncement::not_announced(key, Reason::NoEndpoints));
            }
        }
    }
    Some(ServiceAnnouncement {
        key: key.clone(),
        reason: None,
        ips,
    })
}

// ===== the node's routes =====

/// Reference-counted attributes of one prefix sent to one peer: how many adverts carry it,
/// and how many of them ask for each localPref / community.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteAttrs {
    refs: u32,
    local_prefs: BTreeMap<u32, u32>,
    communities: BTreeMap<BgpCommunity, u32>,
}

impl RouteAttrs {
    /// The localPref to set (0 = none): the highest requested when adverts disagree.
    pub fn local_pref(&self) -> u32 {
        self.local_prefs.keys().next_back().copied().unwrap_or(0)
    }

    /// Every distinct non-zero localPref requested (more than one is a conflict).
    pub fn local_prefs(&self) -> impl Iterator<Item = u32> + '_ {
        self.local_prefs.keys().copied()
    }

    /// The union of requested communities, sorted.
    pub fn communities(&self) -> impl Iterator<Item = &BgpCommunity> + '_ {
        self.communities.keys()
    }

    fn add(&mut self, a: &Advert) {
        self.refs += 1;
        if a.local_pref != 0 {
            *self.local_prefs.entry(a.local_pref).or_default() += 1;
        }
        for c in a.communities.iter() {
            *self.communities.entry(*c).or_default() += 1;
        }
    }

    /// Returns true when nothing references the route any more.
    fn remove(&mut self, a: &Advert) -> bool {
        self.refs = self.refs.saturating_sub(1);
        if a.local_pref != 0 {
            dec(&mut self.local_prefs, &a.local_pref);
        }
        for c in a.communities.iter() {
            dec(&mut self.communities, c);
        }
        self.refs == 0
    }
}

fn dec<K: Ord>(m: &mut BTreeMap<K, u32>, k: &K) {
    if let Some(n) = m.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            m.remove(k);
        }
    }
}

/// Two or more advertisements ask for different localPrefs for the same prefix and peer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalPrefConflict {
    pub peer: String,
    pub prefix: String,
    /// Requested values, ascending; the last one is used.
    pub local_prefs: Vec<u32>,
}

impl fmt::Display for LocalPrefConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conflicting localPref {:?} for prefix {} to BGPPeer {}: using {}",
            self.local_prefs,
            self.prefix,
            self.peer,
            self.local_prefs.last().copied().unwrap_or(0)
        )
    }
}

/// Everything this node advertises, per session and per router (VRF), kept in step with
/// the per-Service results by reference counting so that one Service's change costs
/// O(its routes), not O(all Services).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// session name → prefix text → attributes. Prefix text order = upstream's sort order.
    peers: BTreeMap<Arc<str>, BTreeMap<Arc<str>, RouteAttrs>>,
    /// VRF → prefix text → number of (peer, advert) references.
    routers: BTreeMap<String, BTreeMap<Arc<str>, u32>>,
    /// session name → VRF.
    vrf_of: BTreeMap<Arc<str>, String>,
}

impl RouteTable {
    pub fn new(cfg: &NodeConfig) -> Self {
        RouteTable {
            peers: cfg
                .sessions
                .iter()
                .map(|s| (s.name.clone(), BTreeMap::new()))
                .collect(),
            routers: BTreeMap::new(),
            vrf_of: cfg
                .sessions
                .iter()
                .map(|s| (s.name.clone(), s.vrf().to_string()))
                .collect(),
        }
    }

    /// Routes to one session, in prefix text order.
    pub fn peer_routes(&self, peer: &str) -> impl Iterator<Item = (&str, &RouteAttrs)> + '_ {
        self.peers
            .get(peer)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (&**k, v)))
    }

    /// The route of `prefix` to `peer`, if any.
    pub fn peer_route(&self, peer: &str, prefix: &str) -> Option<&RouteAttrs> {
        self.peers.get(peer).and_then(|m| m.get(prefix))
    }

    /// Whether the router of `vrf` originates `prefix`.
    pub fn router_has(&self, vrf: &str, prefix: &str) -> bool {
        self.routers
            .get(vrf)
            .is_some_and(|m| m.contains_key(prefix))
    }

    /// The VRF of a session.
    pub fn vrf_of(&self, peer: &str) -> Option<&str> {
        self.vrf_of.get(peer).map(String::as_str)
    }

    /// Prefixes of the router of `vrf` (union over its sessions), in text order.
    pub fn router_prefixes(&self, vrf: &str) -> impl Iterator<Item = &str> + '_ {
        self.routers
            .get(vrf)
            .into_iter()
            .flat_map(|m| m.keys().map(|k| &**k))
    }

    /// Every localPref conflict, sorted.
    pub fn local_pref_conflicts(&self) -> Vec<LocalPrefConflict> {
        let mut out = Vec::new();
        for (peer, routes) in &self.peers {
            for (prefix, attrs) in routes {
                if attrs.local_prefs.len() > 1 {
                    out.push(LocalPrefConflict {
                        peer: peer.to_string(),
                        prefix: prefix.to_string(),
                        local_prefs: attrs.local_prefs().collect(),
                    });
                }
            }
        }
        out
    }

    /// Number of (peer, prefix) routes.
    pub fn len(&self) -> usize {
        self.peers.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&mut self, ann: &ServiceAnnouncement) {
        for a in ann.ips.iter().flat_map(|i| i.adverts.iter()) {
            for p in a.peers.iter() {
                let Some(routes) = self.peers.get_mut(p) else {
                    continue;
                };
                routes.entry(a.prefix_text.clone()).or_default().add(a);
                if let Some(vrf) = self.vrf_of.get(p) {
                    *self
                        .routers
                        .entry(vrf.clone())
                        .or_default()
                        .entry(a.prefix_text.clone())
                        .or_default() += 1;
                }
            }
        }
    }

    fn remove(&mut self, ann: &ServiceAnnouncement) {
        for a in ann.ips.iter().flat_map(|i| i.adverts.iter()) {
            for p in a.peers.iter() {
                let Some(routes) = self.peers.get_mut(p) else {
                    continue;
                };
                if let Some(attrs) = routes.get_mut(&a.prefix_text) {
                    if attrs.remove(a) {
                        routes.remove(&a.prefix_text);
                    }
                }
                if let Some(vrf) = self.vrf_of.get(p) {
                    if let Some(r) = self.routers.get_mut(vrf) {
                        dec(r, &a.prefix_text);
                        if r.is_empty() {
                            self.routers.remove(vrf);
                        }
                    }
                }
            }
        }
    }
}

/// Everything this node announces: the per-Service decisions and the route table they
/// produce. Services with a foreign load-balancer class are absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAnnouncements {
    pub services: BTreeMap<ServiceKey, ServiceAnnouncement>,
    pub routes: RouteTable,
}

impl NodeAnnouncements {
    /// Empty announcements for `cfg`'s sessions.
    pub fn new(cfg: &NodeConfig) -> Self {
        NodeAnnouncements {
            services: BTreeMap::new(),
            routes: RouteTable::new(cfg),
        }
    }

    /// Compute from scratch.
    pub fn compute<'a>(
        cfg: &NodeConfig,
        services: impl IntoIterator<Item = (&'a ServiceInfo, Option<&'a Endpoints>)>,
    ) -> Self {
        let mut out = NodeAnnouncements::new(cfg);
        for (svc, eps) in services {
            if let Some(a) = announce_service(cfg, svc, eps) {
                out.set(a);
            }
        }
        out
    }

    /// Replace the decision for one Service. Returns whether anything changed.
    pub fn set(&mut self, ann: ServiceAnnouncement) -> bool {
        if let Some(old) = self.services.get(&ann.key) {
            if *old == ann {
                return false;
            }
            self.routes.remove(old);
        }
        self.routes.add(&ann);
        self.services.insert(ann.key.clone(), ann);
        true
    }

    /// Forget a Service. Returns whether it was known.
    pub fn remove(&mut self, key: &ServiceKey) -> bool {
        match self.services.remove(key) {
            Some(old) => {
                self.routes.remove(&old);
                true
            }
            None => false,
        }
    }

    /// `ServiceBGPStatus` intent for this node: Service → sorted BGPPeer names, for every
    /// Service configured to be advertised to at least one peer.
    pub fn bgp_status_intents(&self) -> BTreeMap<ServiceKey, Vec<String>> {
        self.services
            .iter()
            .filter_map(|(k, a)| {
                let peers = a.peers();
                (!peers.is_empty()).then(|| (k.clone(), peers))
            })
            .collect()
    }
}
