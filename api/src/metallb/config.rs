//! Cross-object validation: rules that need several objects at once.
//!
//! Every function is pure, takes plain slices, processes objects in precedence order (so
//! output does not depend on list order) and returns one [`ObjectError`] per offending
//! object, naming it and, for conflicts, the other object. For a conflict between two objects
//! the error is reported on the later one in precedence order: the older object wins.
//!
//! Precedence is `metadata.creationTimestamp` (oldest first; an object without one, such as
//! a candidate at admission, comes last), then `namespace/name`, as frr-k8s folds
//! FRRConfigurations. Which *version* of an object is in effect (an edit that breaks a
//! rule does not win by the object's age) is decided by [`super::effective`].

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use kube::{Resource, ResourceExt};

use super::bfdprofile::BFDProfile;
use super::bgpadvertisement::BGPAdvertisement;
use super::bgppeer::BGPPeer;
use super::community::Community;
use super::ipaddresspool::{overlaps, IPAddressPool};
use super::l2advertisement::L2Advertisement;
use crate::community::BgpCommunity;
use crate::selector;
use crate::validation::{object_ref, FieldErrors, FieldPath, ObjectError};

/// Node labels, one map per node (only labels matter to these rules).
pub type NodeLabels = BTreeMap<String, String>;

pub use crate::versions::{precedence_key, Key};

fn sorted<T: ResourceExt>(items: &[T]) -> Vec<&T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by_cached_key(|o| precedence_key(o.meta()));
    v
}

/// Append `errs` for `obj` to `out`, merging with a previous entry for the same object.
fn push(out: &mut Vec<ObjectError>, kind: &'static str, name: String, errs: FieldErrors) {
    if errs.is_empty() {
        return;
    }
    if let Some(e) = out.iter_mut().find(|e| e.kind == kind && e.name == name) {
        e.errors.extend(errs);
    } else {
        out.push(ObjectError {
            kind,
            name,
            errors: errs,
        });
    }
}

/// Per-object validation of a list, as `ObjectError`s in name order.
fn per_object<T: ResourceExt>(
    kind: &'static str,
    items: &[T],
    validate: impl Fn(&T) -> Result<(), FieldErrors>,
) -> Vec<ObjectError> {
    let mut out = Vec::new();
    for o in sorted(items) {
        if let Err(e) = validate(o) {
            push(&mut out, kind, object_ref(o.meta()), e);
        }
    }
    out
}

/// No CIDR of a pool may overlap a CIDR of another pool:
/// `spec.addresses[0]: "10.0.0.0/24" overlaps with 10.0.0.128/25 in IPAddressPool metallb-system/other`.
/// Pools whose addresses do not parse are skipped (their own validation reports them).
pub fn pool_overlaps(pools: &[IPAddressPool]) -> Vec<ObjectError> {
    let mut out = Vec::new();
    let mut seen: Vec<(String, Vec<IpNet>)> = Vec::new();
    for pool in sorted(pools) {
        let name = object_ref(pool.meta());
        let Ok(entries) = pool.address_cidrs() else {
            continue;
        };
        let path = FieldPath::new("spec").child("addresses");
        let mut errs = FieldErrors::new();
        for (i, nets) in entries.iter().enumerate() {
            'entry: for n in nets {
                for (other, others) in &seen {
                    if let Some(o) = others.iter().find(|o| overlaps(o, n)) {
                        errs.invalid(
                            &path.index(i),
                            &pool.spec.addresses[i],
                            format!("overlaps with {o} in IPAddressPool {other}"),
                        );
                        break 'entry;
                    }
                }
            }
        }
        push(&mut out, "IPAddressPool", name.clone(), errs);
        seen.push((name, entries.into_iter().flatten().collect()));
    }
    out
}

/// Alias names are global across Community objects: a name defined in two objects is an
/// error on the later one.
pub fn community_alias_conflicts(communities: &[Community]) -> Vec<ObjectError> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for c in sorted(communities) {
        let name = object_ref(c.meta());
        let cp = FieldPath::new("spec").child("communities");
        let mut errs = FieldErrors::new();
        let mut mine = BTreeSet::new();
        for (i, a) in c.spec.communities.iter().enumerate() {
            if a.name().is_empty() || !mine.insert(a.name()) {
                continue; // empty or duplicated within the object: per-object validation
            }
            if let Some(other) = seen.get(a.name()) {
                errs.invalid(
                    &cp.index(i).child("name"),
                    a.name(),
                    format!(
                        "duplicate definition of community: already defined in Community {other}"
                    ),
                );
            }
        }
        for n in mine {
            seen.entry(n.to_string()).or_insert_with(|| name.clone());
        }
        push(&mut out, "Community", name, errs);
    }
    out
}

/// Every valid alias across all Community objects (first definition in precedence order wins).
pub fn community_aliases(communities: &[Community]) -> BTreeMap<String, BgpCommunity> {
    let mut out = BTreeMap::new();
    for c in sorted(communities) {
        for (k, v) in c.spec.aliases() {
            out.entry(k).or_insert(v);
        }
    }
    out
}

/// Communities of advertisements that are neither valid literals nor known aliases.
pub fn advertisement_communities(
    ads: &[BGPAdvertisement],
    aliases: &BTreeMap<String, BgpCommunity>,
) -> Vec<ObjectError> {
    let mut out = Vec::new();
    for ad in sorted(ads) {
        if let Err(e) = ad.resolved_communities(aliases) {
            push(&mut out, "BGPAdvertisement", object_ref(ad.meta()), e);
        }
    }
    out
}

/// An advertisement cannot aggregate wider than the blocks of a pool it applies to: for each
/// address entry of each selected pool, the aggregation length of the entry's family must be
/// at least the shortest prefix length among the entry's CIDRs.
pub fn advertisement_aggregation(
    ads: &[BGPAdvertisement],
    pools: &[IPAddressPool],
) -> Vec<ObjectError> {
    let mut out = Vec::new();
    let pools = sorted(pools);
    for ad in sorted(ads) {
        let mut errs = FieldErrors::new();
        for pool in pools.iter().filter(|p| ad.selects_pool(p)) {
            let Ok(entries) = pool.address_cidrs() else {
                continue;
            };
            for (i, nets) in entries.iter().enumerate() {
                let Some(lowest) = nets.iter().map(|n| n.prefix_len()).min() else {
                    continue;
                };
                let v4 = matches!(nets[0], IpNet::V4(_));
                let (field, len) = if v4 {
                    ("aggregationLength", ad.aggregation_length())
                } else {
                    ("aggregationLengthV6", ad.aggregation_length_v6())
                };
                if len < lowest {
                    errs.invalid(
                        &FieldPath::new("spec").child(field),
                        len,
                        format!(
                            "is invalid: prefix length {lowest} of {:?} (spec.addresses[{i}] of IPAddressPool {}) is more specific than the aggregation length",
                            pool.spec.addresses[i],
                            object_ref(pool.meta())
                        ),
                    );
                }
            }
        }
        push(&mut out, "BGPAdvertisement", object_ref(ad.meta()), errs);
    }
    out
}

/// Two advertisements (both without serviceSelectors) that apply to the same pool must not
/// set different localPref for the same kind of update, unless they differ in both
/// aggregation lengths, or have disjoint non-empty `peers`, or select disjoint node sets
/// (computed over `nodes`).
pub fn local_pref_conflicts(
    ads: &[BGPAdvertisement],
    pools: &[IPAddressPool],
    nodes: &[NodeLabels],
) -> Vec<ObjectError> {
    let mut out = Vec::new();
    let ads = sorted(ads);
    let pools = sorted(pools);
    let node_set = |ad: &BGPAdvertisement| -> BTreeSet<usize> {
        (0..nodes.len())
            .filter(|i| ad.selects_node(&nodes[*i]))
            .collect()
    };
    for (j, b) in ads.iter().enumerate() {
        if !b.spec.service_selectors.is_empty() {
            continue;
        }
        let mut errs = FieldErrors::new();
        for a in &ads[..j] {
            if !a.spec.service_selectors.is_empty() || a.spec.local_pref() == b.spec.local_pref() {
                continue;
            }
            let Some(pool) = pools
                .iter()
                .find(|p| a.selects_pool(p) && b.selects_pool(p))
            else {
                continue;
            };
            let compatible = (a.aggregation_length() != b.aggregation_length()
                && a.aggregation_length_v6() != b.aggregation_length_v6())
                || (!a.spec.peers.is_empty()
                    && !b.spec.peers.is_empty()
                    && !a.spec.peers.iter().any(|p| b.spec.peers.contains(p)))
                || node_set(a).is_disjoint(&node_set(b));
            if !compatible {
                errs.invalid(
                    &FieldPath::new("spec").child("localPref"),
                    b.spec.local_pref(),
                    format!(
                        "conflicts with localPref {} of BGPAdvertisement {} for the same type of BGP update of IPAddressPool {}",
                        a.spec.local_pref(),
                        object_ref(a.meta()),
                        object_ref(pool.meta())
                    ),
                );
            }
        }
        push(&mut out, "BGPAdvertisement", object_ref(b.meta()), errs);
    }
    out
}

/// Peers whose `bfdProfile` names no BFDProfile (a transient condition upstream: report it,
/// the object may appear later).
pub fn missing_bfd_profiles(peers: &[BGPPeer], profiles: &[BFDProfile]) -> Vec<ObjectError> {
    let names: BTreeSet<String> = profiles.iter().map(|p| p.name_any()).collect();
    let mut out = Vec::new();
    for p in sorted(peers) {
        if let Some(bfd) = p.spec.bfd_profile() {
            if !names.contains(bfd) {
                let mut errs = FieldErrors::new();
                errs.invalid(
                    &FieldPath::new("spec").child("bfdProfile"),
                    bfd,
                    "names a BFDProfile that does not exist",
                );
                push(&mut out, "BGPPeer", object_ref(p.meta()), errs);
            }
        }
    }
    out
}

/// FRR-mode compatibility of peers that can land on the same node (their node selectors
/// select a common node in `nodes`, or `nodes` is empty): same routerID; not the same
/// address/interface in the same VRF; same myASN in the same VRF.
pub fn frr_peer_compatibility(peers: &[BGPPeer], nodes: &[NodeLabels]) -> Vec<ObjectError> {
    let mut out = Vec::new();
    let peers = sorted(peers);
    let node_sets: Vec<BTreeSet<usize>> = peers
        .iter()
        .map(|p| {
            (0..nodes.len())
                .filter(|i| p.selects_node(&nodes[*i]))
                .collect()
        })
        .collect();
    let spec = FieldPath::new("spec");
    for (j, b) in peers.iter().enumerate() {
        let mut errs = FieldErrors::new();
        for (i, a) in peers[..j].iter().enumerate() {
            if !nodes.is_empty() && node_sets[i].is_disjoint(&node_sets[j]) {
                continue;
            }
            let other = object_ref(a.meta());
            if a.spec.router_id() != b.spec.router_id() {
                errs.invalid(
                    &spec.child("routerID"),
                    b.spec.router_id().unwrap_or(""),
                    format!(
                        "differs from routerID {:?} of BGPPeer {other} on a common node: FRR mode requires all peers of a node to share the same routerID",
                        a.spec.router_id().unwrap_or("")
                    ),
                );
            }
            if a.spec.vrf() == b.spec.vrf() {
                let ident = |p: &BGPPeer| {
                    p.spec
                        .peer_address()
                        .map(|a| ("peerAddress", a.to_string()))
                        .or_else(|| p.spec.interface().map(|i| ("interface", i.to_string())))
                };
                if let (Some((fa, va)), Some((fb, vb))) = (ident(a), ident(b)) {
                    if fa == fb && same_identifier(&va, &vb) {
                        errs.invalid(
                            &spec.child(fb),
                            vb,
                            format!("duplicates BGPPeer {other} on a common node: FRR mode doesn't support duplicate BGPPeers selecting the same node"),
                        );
                    }
                }
                if a.spec.my_asn != b.spec.my_asn {
                    errs.invalid(
                        &spec.child("myASN"),
                        b.spec.my_asn,
                        format!(
                            "differs from myASN {} of BGPPeer {other} in the same VRF on a common node",
                            a.spec.my_asn
                        ),
                    );
                }
            }
        }
        push(&mut out, "BGPPeer", object_ref(b.meta()), errs);
    }
    out
}

/// Addresses compare as IPs when both parse (so `fc00::1` equals `fc00:0::1`).
fn same_identifier(a: &str, b: &str) -> bool {
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Everything the MetalLB configuration consists of, as plain lists.
#[derive(Clone, Debug, Default)]
pub struct ConfigObjects {
    pub pools: Vec<IPAddressPool>,
    pub peers: Vec<BGPPeer>,
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    pub l2_advertisements: Vec<L2Advertisement>,
    pub bfd_profiles: Vec<BFDProfile>,
    pub communities: Vec<Community>,
    /// Labels of every node (used for node-selector overlap rules).
    pub nodes: Vec<NodeLabels>,
}

impl ConfigObjects {
    /// Every per-object and cross-object problem (FRR-based mode rules), grouped per object
    /// and sorted by kind then name. Per-object validation comes first for each object.
    pub fn validate(&self) -> Vec<ObjectError> {
        let mut all = Vec::new();
        all.extend(per_object(
            "IPAddressPool",
            &self.pools,
            IPAddressPool::validate,
        ));
        all.extend(per_object("BGPPeer", &self.peers, BGPPeer::validate));
        all.extend(per_object(
            "BGPAdvertisement",
            &self.bgp_advertisements,
            BGPAdvertisement::validate,
        ));
        all.extend(per_object(
            "L2Advertisement",
            &self.l2_advertisements,
            L2Advertisement::validate,
        ));
        all.extend(per_object(
            "BFDProfile",
            &self.bfd_profiles,
            BFDProfile::validate,
        ));
        all.extend(per_object(
            "Community",
            &self.communities,
            Community::validate,
        ));
        let aliases = community_aliases(&self.communities);
        all.extend(pool_overlaps(&self.pools));
        all.extend(community_alias_conflicts(&self.communities));
        all.extend(advertisement_communities(
            &self.bgp_advertisements,
            &aliases,
        ));
        all.extend(advertisement_aggregation(
            &self.bgp_advertisements,
            &self.pools,
        ));
        all.extend(local_pref_conflicts(
            &self.bgp_advertisements,
            &self.pools,
            &self.nodes,
        ));
        all.extend(missing_bfd_profiles(&self.peers, &self.bfd_profiles));
        all.extend(frr_peer_compatibility(&self.peers, &self.nodes));

        // Merge per object, keep a stable deterministic order.
        let mut merged: Vec<ObjectError> = Vec::new();
        for e in all {
            push(&mut merged, e.kind, e.name, e.errors);
        }
        merged.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        merged
    }
}

/// Whether any selector in a list matches (re-exported for callers building node sets).
pub fn selects(
    sels: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector],
    labels: &NodeLabels,
) -> bool {
    selector::any_matches(sels, labels)
}
