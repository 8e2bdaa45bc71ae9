//! The node's `FRRConfiguration` (`metallb-<node>`), built from its compiled configuration
//! and route table exactly as MetalLB writes it in frr-k8s mode
//! (`internal/bgp/frrk8s/frrk8s.go`), with upstream's gaps fixed.
//!
//! Layout: one router per VRF (sessions with another `myASN` or `routerID` on the same node
//! were already excluded and reported by [`NodeConfig::compile`], because frr-k8s merges
//! routers by VRF and would reject the object); its neighbors sorted by address/interface;
//! `prefixes` = union of what its neighbors receive; per neighbor `toAdvertise.allowed`
//! (mode left to the `filtered` default), `withLocalPref` grouped per value, `withCommunity`
//! grouped per community text (`A:B`, `large:A:B:C`), every list sorted as text; all valid
//! BFD profiles sorted by name with `echoMode`/`passiveMode` always explicit.
//!
//! Deviations from upstream (see the README):
//! * `sourceAddress` → `sourceaddress` and `localASN` → `localASN` are honoured (upstream
//!   drops both in frr-k8s mode); `localASN` is dropped (and reported) on iBGP sessions,
//!   which FRR rejects;
//! * a `passwordSecret` is always passed by reference with its namespace (the peer's, or
//!   the MetalLB namespace): our frr-k8s honours `passwordSecret.namespace`, so the speaker
//!   never copies a plain-text password out of a Secret;
//! * a derived keepalive (hold/3) is truncated to whole seconds, as FRR uses seconds;
//! * a peer naming a missing BFD profile keeps its session without BFD (upstream fails the
//!   whole configuration until the profile appears);
//! * deleting the last BFD profile removes it (upstream quirk 15).

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use metallb_api::community::BgpCommunity;
use metallb_api::frrk8s::{
    Advertise, AllowMode, AllowedOutPrefixes, BfdProfile, BgpConfig, CommunityPrefixes,
    DynamicAsnMode, FRRConfiguration, FRRConfigurationSpec, LocalPrefPrefixes, Neighbor, NextHop,
    PrefixSelector, RawConfig, Receive, Router, SecretReference, DEFAULT_PORT,
};
use metallb_api::metallb::{BFDProfile, DynamicASNMode};
use metallb_api::Duration;

use super::announce::{NodeConfig, RouteTable, Session};
use super::input::LABEL_HOSTNAME;

/// Where the generated object goes and where peer password Secrets live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrrTarget {
    /// Namespace of the FRRConfiguration (frr-k8s's namespace; upstream default: MetalLB's).
    pub frr_namespace: String,
    /// MetalLB's namespace: where `passwordSecret`s without a namespace live.
    pub secrets_namespace: String,
}

/// `metallb-<node>`.
pub fn config_name(node: &str) -> String {
    format!("metallb-{node}")
}

/// Go's `time.Duration.String()` for whole seconds (`90s` → `1m30s`), which is how
/// upstream serialises `metav1.Duration`; fractions are truncated (FRR takes seconds).
pub fn go_duration(d: StdDuration) -> Duration {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    Duration(if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    })
}

/// Community text as frr-k8s expects it: `A:B` or `large:A:B:C`.
pub fn community_text(c: &BgpCommunity) -> String {
    match c {
        BgpCommunity::Standard(a, b) => format!("{a}:{b}"),
        BgpCommunity::Large(a, b, c) => format!("large:{a}:{b}:{c}"),
    }
}

fn bfd_profile(p: &BFDProfile) -> BfdProfile {
    BfdProfile {
        name: p.name_any(),
        receive_interval: p.spec.receive_interval,
        transmit_interval: p.spec.transmit_interval,
        detect_multiplier: p.spec.detect_multiplier,
        echo_interval: p.spec.echo_interval,
        echo_mode: Some(p.spec.echo_mode()),
        passive_mode: Some(p.spec.passive_mode()),
        minimum_ttl: p.spec.minimum_ttl,
    }
}

fn neighbor(s: &Session, routes: &RouteTable, target: &FrrTarget) -> Neighbor {
    let spec = &s.peer.spec;
    let timers = spec.timers();
    let password_secret = spec.password_secret().map(|r| SecretReference {
        name: r.name.clone(),
        namespace: Some(
            r.namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| target.secrets_namespace.clone()),
        ),
    });

    let mut allowed = Vec::new();
    let mut by_pref: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut by_community: BTreeMap<BgpCommunity, Vec<String>> = BTreeMap::new();
    for (prefix, attrs) in routes.peer_routes(&s.name) {
        allowed.push(prefix.to_string());
        let lp = attrs.local_pref();
        if lp != 0 {
            by_pref.entry(lp).or_default().push(prefix.to_string());
        }
        for c in attrs.communities() {
            by_community.entry(*c).or_default().push(prefix.to_string());
        }
    }
    let mut with_community: Vec<CommunityPrefixes> = by_community
        .into_iter()
        .map(|(c, prefixes)| CommunityPrefixes {
            prefixes,
            community: Some(community_text(&c)),
        })
        .collect();
    with_community.sort_by(|a, b| a.community.cmp(&b.community));

    Neighbor {
        asn: spec.peer_asn(),
        dynamic_asn: match (spec.peer_asn(), spec.dynamic_asn) {
            (None, Some(DynamicASNMode::Internal)) => Some(DynamicAsnMode::Internal),
            (None, Some(DynamicASNMode::External)) => Some(DynamicAsnMode::External),
            _ => None,
        },
        local_asn: s.local_asn,
        source_address: spec.source_address().map(str::to_string),
        address: spec.peer_address().map(str::to_string),
        interface: if spec.peer_address().is_some() {
            None
        } else {
            spec.interface().map(str::to_string)
        },
        port: Some(spec.peer_port()),
        password: spec.password().map(str::to_string),
        password_secret,
        hold_time: timers.map(|t| go_duration(t.hold)),
        keepalive_time: timers.map(|t| go_duration(t.keepalive)),
        connect_time: spec.connect_time().map(go_duration),
        ebgp_multi_hop: spec.ebgp_multi_hop().then_some(true),
        bfd_profile: s.bfd_profile.clone(),
        enable_graceful_restart: spec.enable_graceful_restart().then_some(true),
        to_advertise: Some(Advertise {
            allowed: Some(AllowedOutPrefixes {
                prefixes: allowed,
                mode: None,
            }),
            next_hop: None,
            with_local_pref: by_pref
                .into_iter()
                .map(|(lp, prefixes)| LocalPrefPrefixes {
                    prefixes,
                    local_pref: Some(lp),
                })
                .collect(),
            with_community,
        }),
        to_receive: None,
        disable_mp: spec.disable_mp().then_some(true),
        dual_stack_address_family: spec.dual_stack_address_family().then_some(true),
        address_families: Vec::new(),
    }
}

/// Build `metallb-<node>` for `cfg.node` from its route table.
pub fn build_frr_configuration(
    cfg: &NodeConfig,
    routes: &RouteTable,
    target: &FrrTarget,
) -> FRRConfiguration {
    build_with_positions(cfg, routes, target).0
}

/// Where each session's neighbor sits: session name → (router index, neighbor index).
pub(crate) type NeighborPositions = BTreeMap<std::sync::Arc<str>, (usize, usize)>;

pub(crate) fn build_with_positions(
    cfg: &NodeConfig,
    routes: &RouteTable,
    target: &FrrTarget,
) -> (FRRConfiguration, NeighborPositions) {
    // Sessions grouped by VRF ("" first), neighbors by address/interface.
    let mut by_vrf: BTreeMap<&str, Vec<&Session>> = BTreeMap::new();
    for s in &cfg.sessions {
        by_vrf.entry(s.vrf()).or_default().push(s);
    }
    let mut positions = NeighborPositions::new();
    let mut routers = Vec::with_capacity(by_vrf.len());
    for (vrf, mut sessions) in by_vrf {
        sessions.sort_by(|a, b| {
            neighbor_key(a)
                .cmp(neighbor_key(b))
                .then_with(|| a.name.cmp(&b.name))
        });
        let Some(first) = sessions.first() else {
            continue;
        };
        for (i, s) in sessions.iter().enumerate() {
            positions.insert(s.name.clone(), (routers.len(), i));
        }
        routers.push(Router {
            asn: first.peer.spec.my_asn,
            id: sessions
                .iter()
                .find_map(|s| s.peer.spec.router_id())
                .map(str::to_string),
            vrf: (!vrf.is_empty()).then(|| vrf.to_string()),
            neighbors: sessions
                .iter()
                .map(|s| neighbor(s, routes, target))
                .collect(),
            prefixes: routes.router_prefixes(vrf).map(str::to_string).collect(),
            imports: Vec::new(),
            evpn: None,
        });
    }

    let node = &cfg.node.name;
    let config = FRRConfiguration {
        metadata: ObjectMeta {
            name: Some(config_name(node)),
            namespace: Some(target.frr_namespace.clone()),
            ..Default::default()
        },
        spec: FRRConfigurationSpec {
            bgp: Some(BgpConfig {
                routers,
                bfd_profiles: cfg.bfd_profiles.iter().map(bfd_profile).collect(),
            }),
            raw: None,
            node_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(LABEL_HOSTNAME.to_string(), node.clone())])),
                match_expressions: None,
            }),
        },
        status: None,
    };
    (config, positions)
}

/// frr-k8s's neighbor order inside a router: address or interface.
fn neighbor_key(s: &Session) -> &str {
    s.peer
        .spec
        .peer_address()
        .or(s.peer.spec.interface())
        .unwrap_or("")
}

/// Bring one (neighbor, prefix) of a built configuration in line with the route table:
/// presence in `toAdvertise.allowed`, the `withLocalPref` group, the `withCommunity`
/// groups. O(length of the lists) instead of rebuilding every list.
pub(crate) fn patch_neighbor_prefix(
    n: &mut Neighbor,
    prefix: &str,
    routes: &RouteTable,
    peer: &str,
) {
    let attrs = routes.peer_route(peer, prefix);
    let adv = n.to_advertise.get_or_insert_with(Default::default);
    let allowed = &mut adv.allowed.get_or_insert_with(Default::default).prefixes;
    set_member(allowed, prefix, attrs.is_some());

    let lp = attrs.map(|a| a.local_pref()).unwrap_or(0);
    for g in adv.with_local_pref.iter_mut() {
        let want = lp != 0 && g.local_pref == Some(lp);
        set_member(&mut g.prefixes, prefix, want);
    }
    if lp != 0 && !adv.with_local_pref.iter().any(|g| g.local_pref == Some(lp)) {
        let at = adv
            .with_local_pref
            .partition_point(|g| g.local_pref.unwrap_or(0) < lp);
        adv.with_local_pref.insert(
            at,
            LocalPrefPrefixes {
                prefixes: vec![prefix.to_string()],
                local_pref: Some(lp),
            },
        );
    }
    adv.with_local_pref.retain(|g| !g.prefixes.is_empty());

    let wanted: Vec<String> = attrs
        .map(|a| a.communities().map(community_text).collect())
        .unwrap_or_default();
    for g in adv.with_community.iter_mut() {
        let want = g.community.as_ref().is_some_and(|c| wanted.contains(c));
        set_member(&mut g.prefixes, prefix, want);
    }
    for c in wanted {
        if !adv
            .with_community
            .iter()
            .any(|g| g.community.as_deref() == Some(c.as_str()))
        {
            let at = adv
                .with_community
                .partition_point(|g| g.community.as_deref().unwrap_or("") < c.as_str());
            adv.with_community.insert(
                at,
                CommunityPrefixes {
                    prefixes: vec![prefix.to_string()],
                    community: Some(c),
                },
            );
        }
    }
    adv.with_community.retain(|g| !g.prefixes.is_empty());
}

/// Insert into / remove from a sorted list of strings.
pub(crate) fn set_member(list: &mut Vec<String>, item: &str, present: bool) {
    match (list.binary_search_by(|p| p.as_str().cmp(item)), present) {
        (Err(at), true) => list.insert(at, item.to_string()),
        (Ok(at), false) => {
            list.remove(at);
        }
        _ => {}
    }
}

// ===== change detection =====
//
// Compares field by field with the normalisation below instead of cloning and normalising
// both objects: a 10,000-Service configuration holds hundreds of thousands of strings.
// The destructuring patterns are exhaustive on purpose, so that a new API field fails to
// compile here instead of being silently ignored.

fn text(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn flag(b: Option<bool>) -> bool {
    b.unwrap_or(false)
}

fn raw_eq(a: Option<&RawConfig>, b: Option<&RawConfig>) -> bool {
    fn norm(r: Option<&RawConfig>) -> (i64, &str) {
        (
            r.and_then(|r| r.priority).unwrap_or(0),
            r.map(|r| text(&r.config)).unwrap_or(""),
        )
    }
    norm(a) == norm(b)
}

fn bgp_eq(a: Option<&BgpConfig>, b: Option<&BgpConfig>) -> bool {
    let empty = BgpConfig::default();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let BgpConfig {
        routers,
        bfd_profiles,
    } = a;
    *bfd_profiles == b.bfd_profiles
        && routers.len() == b.routers.len()
        && routers.iter().zip(&b.routers).all(|(x, y)| router_eq(x, y))
}

fn router_eq(a: &Router, b: &Router) -> bool {
    let Router {
        asn,
        id,
        vrf,
        neighbors,
        prefixes,
        imports,
        evpn,
    } = a;
    *asn == b.asn
        && text(id) == text(&b.id)
        && text(vrf) == text(&b.vrf)
        && *prefixes == b.prefixes
        && *imports == b.imports
        && *evpn == b.evpn
        && neighbors.len() == b.neighbors.len()
        && neighbors
            .iter()
            .zip(&b.neighbors)
            .all(|(x, y)| neighbor_eq(x, y))
}

fn secret_eq(a: Option<&SecretReference>, b: Option<&SecretReference>) -> bool {
    fn norm(s: Option<&SecretReference>) -> Option<(&str, &str)> {
        s.filter(|s| s.name_value().is_some())
            .map(|s| (text(&s.name), text(&s.namespace)))
    }
    norm(a) == norm(b)
}

fn advertise_eq(a: Option<&Advertise>, b: Option<&Advertise>) -> bool {
    let empty = Advertise::default();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let Advertise {
        allowed,
        next_hop,
        with_local_pref,
        with_community,
    } = a;
    fn allowed_norm(x: Option<&AllowedOutPrefixes>) -> (AllowMode, &[String]) {
        x.map(|x| (x.effective_mode(), x.prefixes.as_slice()))
            .unwrap_or((AllowMode::Filtered, &[]))
    }
    fn hop_norm(h: Option<&NextHop>) -> (&str, &str) {
        h.map(|h| (text(&h.ipv4), text(&h.ipv6)))
            .unwrap_or(("", ""))
    }
    allowed_norm(allowed.as_ref()) == allowed_norm(b.allowed.as_ref())
        && hop_norm(next_hop.as_ref()) == hop_norm(b.next_hop.as_ref())
        && *with_local_pref == b.with_local_pref
        && *with_community == b.with_community
}

fn receive_eq(a: Option<&Receive>, b: Option<&Receive>) -> bool {
    fn norm(r: Option<&Receive>) -> (AllowMode, &[PrefixSelector]) {
        r.and_then(|r| r.allowed.as_ref())
            .map(|x| (x.effective_mode(), x.prefixes.as_slice()))
            .unwrap_or((AllowMode::Filtered, &[]))
    }
    norm(a) == norm(b)
}

fn neighbor_eq(a: &Neighbor, b: &Neighbor) -> bool {
    let Neighbor {
        asn,
        dynamic_asn,
        local_asn,
        source_address,
        address,
        interface,
        port,
        password,
        password_secret,
        hold_time,
        keepalive_time,
        connect_time,
        ebgp_multi_hop,
        bfd_profile,
        enable_graceful_restart,
        to_advertise,
        to_receive,
        disable_mp,
        dual_stack_address_family,
        address_families: _, // compared through effective_address_families()
    } = a;
    asn.unwrap_or(0) == b.asn.unwrap_or(0)
        && *dynamic_asn == b.dynamic_asn
        && local_asn.unwrap_or(0) == b.local_asn.unwrap_or(0)
        && text(source_address) == text(&b.source_address)
        && text(address) == text(&b.address)
        && text(interface) == text(&b.interface)
        && port.unwrap_or(DEFAULT_PORT) == b.port.unwrap_or(DEFAULT_PORT)
        && text(password) == text(&b.password)
        && secret_eq(password_secret.as_ref(), b.password_secret.as_ref())
        && *hold_time == b.hold_time
        && *keepalive_time == b.keepalive_time
        && *connect_time == b.connect_time
        && flag(*ebgp_multi_hop) == flag(b.ebgp_multi_hop)
        && text(bfd_profile) == text(&b.bfd_profile)
        && flag(*enable_graceful_restart) == flag(b.enable_graceful_restart)
        && advertise_eq(to_advertise.as_ref(), b.to_advertise.as_ref())
        && receive_eq(to_receive.as_ref(), b.to_receive.as_ref())
        && flag(*disable_mp) == flag(b.disable_mp)
        && flag(*dual_stack_address_family) == flag(b.dual_stack_address_family)
        && a.effective_address_families() == b.effective_address_families()
}

/// Whether an object with spec `current` (read from the cluster) must be rewritten to
/// have spec `desired`.
///
/// Compares the specs as frr-k8s reads them: CRD schema defaults (`mode: filtered`,
/// `disableMP: false`, `dualStackAddressFamily: false`, `addressFamilies: [unicast]`), port
/// 179, and the empty structs an older writer or the apiserver may leave (`raw: {}`,
/// `passwordSecret: {}`, `nextHop: {}`, `toReceive: {allowed: {}}`, empty strings) are
/// equal to their absence, so that apiserver defaulting never causes a rewrite loop.
pub fn spec_changed(current: &FRRConfigurationSpec, desired: &FRRConfigurationSpec) -> bool {
    let (a, b) = (current, desired);
    if a == b {
        return false;
    }
    let FRRConfigurationSpec {
        bgp,
        raw,
        node_selector,
    } = a;
    let sel_norm = |s: &Option<LabelSelector>| s.clone().unwrap_or_default();
    let same = raw_eq(raw.as_ref(), b.raw.as_ref())
        && (node_selector == &b.node_selector
            || sel_norm(node_selector) == sel_norm(&b.node_selector))
        && bgp_eq(bgp.as_ref(), b.bgp.as_ref());
    !same
}
