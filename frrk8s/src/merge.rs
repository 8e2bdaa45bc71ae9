//! Merge the FRRConfigurations selected for a node into one [`NodeConfig`].
//!
//! Upstream's three rules hold:
//! - **self-contained**: each object is validated on its own (`FRRConfiguration::validate`),
//!   `mode: all` expands to the prefixes of *that* object's router (and the VRFs it imports in
//!   that object), BFD profiles must be declared in the same object;
//! - **additive**: routers (by VRF) and neighbors (by ID) are unions; prefixes, imports,
//!   advertised prefixes, communities and receive filters are unioned;
//! - **more permissive wins**: `toReceive` all beats filters, filters are unioned and
//!   deduplicated on (prefix, le, ge).
//!
//! Where this module deliberately differs from upstream:
//! - **Bad input is skipped, not fatal.** An object that is invalid, references a missing
//!   Secret, uses an unsupported feature or conflicts with what was already accepted is
//!   dropped *as a whole* (so every accepted object is applied completely, never half) and
//!   reported in [`MergeOutcome::errors`]; everything else is merged.
//! - **Which object wins a conflict does not depend on input order.** Objects are folded
//!   oldest first (`metadata.creationTimestamp`, objects without one last), ties broken by
//!   `namespace/name` (and, for identical names, by content). So a newly created object that
//!   conflicts with a running configuration is the one rejected, as in Gateway API's
//!   conflict resolution, and the running sessions stay.
//! - **`enableGracefulRestart`: true wins** (upstream: the first seen wins, arbitrary order).
//!   Go's `omitempty` makes `false` indistinguishable from "unset", so like `bfdProfile` the
//!   set value wins over the unset one.
//! - **`password`: equal or one unset** (the set value wins), like `bfdProfile`; a cleartext
//!   password and a Secret holding the same value are compatible.
//! - **`passwordSecret.namespace` is honoured** (empty = the daemon's namespace).
//! - **`connectTime` explicitly set is rendered even when it is 60 s**: FRR's own default is
//!   120 s, so upstream's default-stripping silently changed the value.
//! - Strings that end up in FRR's configuration (VRF, interface, source address, password,
//!   BFD profile names) must be single tokens without whitespace or control characters (a
//!   newline in a password would otherwise inject configuration).
//! - EVPN is not merged yet: an object using it is skipped with an "unsupported" error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration as StdDuration;

use ipnet::IpNet;
use metallb_api::community::BgpCommunity;
use metallb_api::frrk8s::validate::parse_cidr;
use metallb_api::frrk8s::{
    AddressFamily, AllowMode, BfdProfile, FRRConfiguration, Neighbor, Router,
};
use metallb_api::validation::{object_ref, FieldErrors, FieldPath};

use crate::model::{
    AdvertiseConfig, BfdProfileConfig, NeighborConfig, NodeConfig, Password, Peer, PrefixFilter,
    RawSnippet, ReceiveConfig, RouterConfig, DEFAULT_CONNECT_SECS,
};
use crate::secrets::{resolve_password, SecretError, SecretLookup};

/// Longest BGP password the kernel's TCP MD5 signature option accepts.
pub const MAX_PASSWORD_LEN: usize = 80;

/// The merged configuration and the objects that were left out.
#[derive(Debug, Default)]
pub struct MergeOutcome {
    pub config: NodeConfig,
    pub errors: MergeErrors,
}

impl MergeOutcome {
    /// Strict view: the configuration only when every object was merged.
    pub fn into_result(self) -> Result<NodeConfig, MergeErrors> {
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(self.errors)
        }
    }
}

/// Every skipped object with its reasons, sorted by object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeErrors(pub Vec<ObjectIssue>);

impl MergeErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ObjectIssue> {
        self.0.iter()
    }

    /// `namespace/name` of every skipped object.
    pub fn skipped_objects(&self) -> Vec<&str> {
        self.0.iter().map(|i| i.object.as_str()).collect()
    }
}

impl fmt::Display for MergeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MergeErrors {}

/// One skipped object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectIssue {
    /// `namespace/name`.
    pub object: String,
    pub errors: Vec<MergeError>,
}

impl fmt::Display for ObjectIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FRRConfiguration {} skipped: ", self.object)?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Why an object was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The object's own validation failed (or a rendered string is not a single token).
    #[error("{0}")]
    Invalid(FieldErrors),
    /// A `passwordSecret` could not be resolved.
    #[error("{neighbor}: {path}: {source}")]
    Secret {
        /// `neighbor 10.0.0.1 (vrf default)`.
        neighbor: String,
        path: FieldPath,
        source: SecretError,
    },
    /// The object disagrees with an object merged before it.
    #[error("{0}")]
    Conflict(Box<Conflict>),
    /// A feature this implementation does not render yet.
    #[error("{path}: {what} is not supported yet")]
    Unsupported { path: FieldPath, what: String },
}

/// Two objects disagree on one field of one subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// `neighbor 172.18.0.5 (vrf default)`, `router (vrf red)`, `bfd profile fast`.
    pub subject: String,
    /// `asn`, `holdTime`, `local preference of 192.0.2.0/24`, ...
    pub field: String,
    /// The value already merged and the object it came from.
    pub kept: String,
    pub kept_in: String,
    /// The rejected value and its object.
    pub value: String,
    pub value_in: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} in {} vs {} in {}",
            self.subject, self.field, self.kept, self.kept_in, self.value, self.value_in
        )
    }
}

/// Merge the selected objects; `namespace` is the daemon's namespace (for `passwordSecret`
/// references without a namespace). The result does not depend on the order of `configs`.
pub fn merge(
    configs: &[&FRRConfiguration],
    secrets: &dyn SecretLookup,
    namespace: &str,
) -> MergeOutcome {
    let mut ordered: Vec<(&FRRConfiguration, String)> = configs
        .iter()
        .map(|c| (*c, object_ref(&c.metadata)))
        .collect();
    ordered.sort_by(|(a, an), (b, bn)| {
        let at = &a.metadata.creation_timestamp;
        let bt = &b.metadata.creation_timestamp;
        (at.is_none(), at, an)
            .cmp(&(bt.is_none(), bt, bn))
            .then_with(|| {
                let aj = serde_json::to_string(&a.spec).unwrap_or_default();
                let bj = serde_json::to_string(&b.spec).unwrap_or_default();
                aj.cmp(&bj)
            })
    });

    let mut acc = Acc::default();
    let mut errors = Vec::new();
    for (cfg, name) in ordered {
        let frag = match object_acc(cfg, &name, secrets, namespace) {
            Ok(f) => f,
            Err(errs) => {
                errors.push(ObjectIssue {
                    object: name,
                    errors: errs,
                });
                continue;
            }
        };
        let conflicts = acc.conflicts(&frag);
        if conflicts.is_empty() {
            acc.absorb(frag);
        } else {
            errors.push(ObjectIssue {
                object: name,
                errors: conflicts
                    .into_iter()
                    .map(|c| MergeError::Conflict(Box::new(c)))
                    .collect(),
            });
        }
    }
    errors.sort_by(|a, b| a.object.cmp(&b.object));
    MergeOutcome {
        config: acc.finish(),
        errors: MergeErrors(errors),
    }
}

// ---------------------------------------------------------------------------------------------
// Accumulator with provenance (which object set which value), for conflict messages.

#[derive(Debug, Default)]
struct Acc {
    routers: BTreeMap<String, RouterAcc>,
    bfd: BTreeMap<String, (BfdProfileConfig, String)>,
    raw: Vec<RawSnippet>,
}

#[derive(Debug)]
struct RouterAcc {
    cfg: RouterConfig,
    asn_origin: String,
    id_origin: String,
    neighbors: BTreeMap<String, NeighborAcc>,
}

#[derive(Debug)]
struct NeighborAcc {
    n: NeighborConfig,
    vrf: String,
    /// The object that first declared the neighbor: origin of the fields every declaration
    /// must agree on.
    origin: String,
    /// Origins of the "equal or unset" fields.
    origins: BTreeMap<&'static str, String>,
    local_pref_origin: BTreeMap<IpNet, String>,
}

fn vrf_label(vrf: &str) -> &str {
    if vrf.is_empty() {
        "default"
    } else {
        vrf
    }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "<unset>".to_string(),
    }
}

impl Acc {
    fn conflicts(&self, other: &Acc) -> Vec<Conflict> {
        let mut out = Vec::new();
        for (vrf, r) in &other.routers {
            if let Some(mine) = self.routers.get(vrf) {
                mine.conflicts(r, &mut out);
            }
        }
        for (name, (p, origin)) in &other.bfd {
            if let Some((mine, mine_origin)) = self.bfd.get(name) {
                if mine != p {
                    out.push(Conflict {
                        subject: format!("bfd profile {name}"),
                        field: "definition".to_string(),
                        kept: format!("{mine:?}"),
                        kept_in: mine_origin.clone(),
                        value: format!("{p:?}"),
                        value_in: origin.clone(),
                    });
                }
            }
        }
        out
    }

    fn absorb(&mut self, other: Acc) {
        for (vrf, r) in other.routers {
            match self.routers.get_mut(&vrf) {
                Some(mine) => mine.absorb(r),
                None => {
                    self.routers.insert(vrf, r);
                }
            }
        }
        for (name, p) in other.bfd {
            self.bfd.entry(name).or_insert(p);
        }
        self.raw.extend(other.raw);
    }

    fn finish(self) -> NodeConfig {
        let routers = self
            .routers
            .into_iter()
            .map(|(vrf, r)| {
                let mut cfg = r.cfg;
                cfg.neighbors = r.neighbors.into_iter().map(|(id, n)| (id, n.n)).collect();
                (vrf, cfg)
            })
            .collect();
        let mut raw = self.raw;
        raw.sort_by(|a, b| (a.priority, &a.origin).cmp(&(b.priority, &b.origin)));
        NodeConfig {
            routers,
            bfd_profiles: self.bfd.into_iter().map(|(k, (p, _))| (k, p)).collect(),
            raw,
        }
    }
}

impl RouterAcc {
    fn conflicts(&self, other: &RouterAcc, out: &mut Vec<Conflict>) {
        let subject = format!("router (vrf {})", vrf_label(&self.cfg.vrf));
        if self.cfg.asn != other.cfg.asn {
            out.push(Conflict {
                subject: subject.clone(),
                field: "asn".to_string(),
                kept: self.cfg.asn.to_string(),
                kept_in: self.asn_origin.clone(),
                value: other.cfg.asn.to_string(),
                value_in: other.asn_origin.clone(),
            });
        }
        if let (Some(a), Some(b)) = (self.cfg.router_id, other.cfg.router_id) {
            if a != b {
                out.push(Conflict {
                    subject,
                    field: "id".to_string(),
                    kept: a.to_string(),
                    kept_in: self.id_origin.clone(),
                    value: b.to_string(),
                    value_in: other.id_origin.clone(),
                });
            }
        }
        for (id, n) in &other.neighbors {
            if let Some(mine) = self.neighbors.get(id) {
                mine.conflicts(n, out);
            }
        }
    }

    fn absorb(&mut self, other: RouterAcc) {
        if self.cfg.router_id.is_none() && other.cfg.router_id.is_some() {
            self.cfg.router_id = other.cfg.router_id;
            self.id_origin = other.id_origin;
        }
        self.cfg.prefixes.extend(other.cfg.prefixes);
        self.cfg.imports.extend(other.cfg.imports);
        for (id, n) in other.neighbors {
            match self.neighbors.get_mut(&id) {
                Some(mine) => mine.absorb(n),
                None => {
                    self.neighbors.insert(id, n);
                }
            }
        }
    }
}

impl NeighborAcc {
    fn conflicts(&self, other: &NeighborAcc, out: &mut Vec<Conflict>) {
        let subject = format!("neighbor {} (vrf {})", self.n.peer, vrf_label(&self.vrf));
        let (a, b) = (&self.n, &other.n);
        let mut strict = |field: &str, x: String, y: String| {
            if x != y {
                out.push(Conflict {
                    subject: subject.clone(),
                    field: field.to_string(),
                    kept: x,
                    kept_in: self.origin.clone(),
                    value: y,
                    value_in: other.origin.clone(),
                });
            }
        };
        strict("asn", a.remote_asn.to_string(), b.remote_asn.to_string());
        strict("port", a.port.to_string(), b.port.to_string());
        strict(
            "sourceaddress",
            opt(&a.source_address),
            opt(&b.source_address),
        );
        strict(
            "ebgpMultiHop",
            a.ebgp_multihop.to_string(),
            b.ebgp_multihop.to_string(),
        );
        strict(
            "address family (dualStackAddressFamily/interface)",
            a.family.to_string(),
            b.family.to_string(),
        );
        strict(
            "holdTime",
            format!("{}s", a.hold_secs),
            format!("{}s", b.hold_secs),
        );
        strict(
            "keepaliveTime",
            format!("{}s", a.keepalive_secs),
            format!("{}s", b.keepalive_secs),
        );
        strict(
            "connectTime",
            format!("{}s", a.connect_secs.unwrap_or(DEFAULT_CONNECT_SECS)),
            format!("{}s", b.connect_secs.unwrap_or(DEFAULT_CONNECT_SECS)),
        );
        strict("localASN", opt(&a.local_asn), opt(&b.local_asn));

        // "Equal or one unset" fields.
        let mut loose = |field: &'static str, x: Option<String>, y: Option<String>| {
            if let (Some(x), Some(y)) = (x, y) {
                if x != y {
                    out.push(Conflict {
                        subject: subject.clone(),
                        field: field.to_string(),
                        kept: x,
                        kept_in: self.origin_of(field),
                        value: y,
                        value_in: other.origin_of(field),
                    });
                }
            }
        };
        loose("bfdProfile", a.bfd_profile.clone(), b.bfd_profile.clone());
        loose(
            "toAdvertise.nextHop.ipv4",
            a.advertise.next_hop_v4.map(|v| v.to_string()),
            b.advertise.next_hop_v4.map(|v| v.to_string()),
        );
        loose(
            "toAdvertise.nextHop.ipv6",
            a.advertise.next_hop_v6.map(|v| v.to_string()),
            b.advertise.next_hop_v6.map(|v| v.to_string()),
        );
        if let (Some(x), Some(y)) = (&a.password, &b.password) {
            if x != y {
                // Never print the values.
                out.push(Conflict {
                    subject: subject.clone(),
                    field: "password".to_string(),
                    kept: "<redacted>".to_string(),
                    kept_in: self.origin_of("password"),
                    value: "<a different value>".to_string(),
                    value_in: other.origin_of("password"),
                });
            }
        }
        for (p, lp) in &b.advertise.local_pref {
            if let Some(mine) = a.advertise.local_pref.get(p) {
                if mine != lp {
                    out.push(Conflict {
                        subject: subject.clone(),
                        field: format!("local preference of {p}"),
                        kept: mine.to_string(),
                        kept_in: self
                            .local_pref_origin
                            .get(p)
                            .cloned()
                            .unwrap_or_else(|| self.origin.clone()),
                        value: lp.to_string(),
                        value_in: other
                            .local_pref_origin
                            .get(p)
                            .cloned()
                            .unwrap_or_else(|| other.origin.clone()),
                    });
                }
            }
        }
    }

    fn origin_of(&self, field: &str) -> String {
        self.origins
            .get(field)
            .cloned()
            .unwrap_or_else(|| self.origin.clone())
    }

    fn absorb(&mut self, other: NeighborAcc) {
        let NeighborAcc {
            n: o,
            origins,
            local_pref_origin,
            ..
        } = other;
        let mut take = |field: &'static str, mine_set: bool| {
            if !mine_set {
                if let Some(orig) = origins.get(field) {
                    self.origins.insert(field, orig.clone());
                }
            }
        };
        take("password", self.n.password.is_some());
        take("bfdProfile", self.n.bfd_profile.is_some());
        take(
            "toAdvertise.nextHop.ipv4",
            self.n.advertise.next_hop_v4.is_some(),
        );
        take(
            "toAdvertise.nextHop.ipv6",
            self.n.advertise.next_hop_v6.is_some(),
        );
        let n = &mut self.n;
        if n.password.is_none() {
            n.password = o.password;
        }
        if n.bfd_profile.is_none() {
            n.bfd_profile = o.bfd_profile;
        }
        if n.connect_secs.is_none() {
            n.connect_secs = o.connect_secs;
        }
        n.graceful_restart |= o.graceful_restart;
        let adv = &mut n.advertise;
        adv.prefixes.extend(o.advertise.prefixes);
        for (p, lp) in o.advertise.local_pref {
            if let std::collections::btree_map::Entry::Vacant(e) = adv.local_pref.entry(p) {
                e.insert(lp);
                if let Some(orig) = local_pref_origin.get(&p) {
                    self.local_pref_origin.insert(p, orig.clone());
                }
            }
        }
        for (p, cs) in o.advertise.communities {
            adv.communities.entry(p).or_default().extend(cs);
        }
        if adv.next_hop_v4.is_none() {
            adv.next_hop_v4 = o.advertise.next_hop_v4;
        }
        if adv.next_hop_v6.is_none() {
            adv.next_hop_v6 = o.advertise.next_hop_v6;
        }
        n.receive = match (std::mem::take(&mut n.receive), o.receive) {
            (ReceiveConfig::Filtered(mut a), ReceiveConfig::Filtered(b)) => {
                a.extend(b);
                ReceiveConfig::Filtered(a)
            }
            _ => ReceiveConfig::All,
        };
    }
}

// ---------------------------------------------------------------------------------------------
// One object → its own accumulator.

fn object_acc(
    cfg: &FRRConfiguration,
    name: &str,
    secrets: &dyn SecretLookup,
    namespace: &str,
) -> Result<Acc, Vec<MergeError>> {
    if let Err(e) = cfg.validate() {
        return Err(vec![MergeError::Invalid(e)]);
    }
    let mut errs: Vec<MergeError> = Vec::new();
    let mut tokens = FieldErrors::new();
    let spec = &cfg.spec;
    let bgp = FieldPath::new("spec").child("bgp");

    let mut acc = Acc::default();
    for (i, p) in spec.bfd_profiles().iter().enumerate() {
        check_token(
            &bgp.child("bfdProfiles").index(i).child("name"),
            &p.name,
            &mut tokens,
        );
        acc.bfd
            .insert(p.name.clone(), (bfd_profile(p), name.to_string()));
    }

    // `mode: all` expands to every advertisable prefix of the object's routers in that VRF.
    let mut advertisable: BTreeMap<&str, BTreeSet<IpNet>> = BTreeMap::new();
    for r in spec.routers() {
        advertisable
            .entry(r.vrf_name())
            .or_default()
            .extend(spec.advertisable_prefixes(r).into_iter().map(|p| p.trunc()));
    }

    for (i, r) in spec.routers().iter().enumerate() {
        let rp = bgp.child("routers").index(i);
        if r.evpn.is_some() {
            errs.push(MergeError::Unsupported {
                path: rp.child("evpn"),
                what: "EVPN".to_string(),
            });
            continue;
        }
        if let Some(v) = &r.vrf {
            if !v.is_empty() {
                check_token(&rp.child("vrf"), v, &mut tokens);
            }
        }
        for (k, v) in r.import_vrfs().enumerate() {
            check_token(&rp.child("imports").index(k).child("vrf"), v, &mut tokens);
        }
        let mut router = router_acc(r, name);
        let adv = advertisable.get(r.vrf_name()).cloned().unwrap_or_default();
        for (j, n) in r.neighbors.iter().enumerate() {
            let np = rp.child("neighbors").index(j);
            if n.effective_address_families() != [AddressFamily::Unicast] {
                errs.push(MergeError::Unsupported {
                    path: np.child("addressFamilies"),
                    what: "the evpn address family".to_string(),
                });
                continue;
            }
            match neighbor_acc(n, r, &adv, &np, name, secrets, namespace, &mut tokens) {
                Ok(Some(na)) => {
                    let mut c = Vec::new();
                    if let Some(mine) = router.neighbors.get(&na.n.id) {
                        mine.conflicts(&na, &mut c);
                    }
                    if c.is_empty() {
                        match router.neighbors.get_mut(&na.n.id) {
                            Some(mine) => mine.absorb(na),
                            None => {
                                router.neighbors.insert(na.n.id.clone(), na);
                            }
                        }
                    } else {
                        errs.extend(c.into_iter().map(|c| MergeError::Conflict(Box::new(c))));
                    }
                }
                Ok(None) => {}
                Err(e) => errs.push(e),
            }
        }
        let mut frag = Acc::default();
        frag.routers.insert(r.vrf_name().to_string(), router);
        let c = acc.conflicts(&frag);
        if c.is_empty() {
            acc.absorb(frag);
        } else {
            errs.extend(c.into_iter().map(|c| MergeError::Conflict(Box::new(c))));
        }
    }

    if let Some(raw) = spec.raw_config() {
        acc.raw.push(RawSnippet {
            priority: spec.raw_priority(),
            origin: name.to_string(),
            config: raw.to_string(),
        });
    }

    if !tokens.is_empty() {
        errs.insert(0, MergeError::Invalid(tokens));
    }
    if errs.is_empty() {
        Ok(acc)
    } else {
        Err(errs)
    }
}

/// A value copied into FRR's configuration must be one token.
fn check_token(path: &FieldPath, value: &str, errs: &mut FieldErrors) {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errs.invalid(
            path,
            value,
            "must be a single word without whitespace or control characters",
        );
    }
}

fn router_acc(r: &Router, origin: &str) -> RouterAcc {
    RouterAcc {
        cfg: RouterConfig {
            asn: r.asn,
            vrf: r.vrf_name().to_string(),
            // Validated as an IPv4 address.
            router_id: r.router_id().and_then(|id| id.parse().ok()),
            prefixes: r
                .prefixes
                .iter()
                .filter_map(|p| parse_cidr(p))
                .map(|p| p.trunc())
                .collect(),
            imports: r.import_vrfs().map(str::to_string).collect(),
            neighbors: BTreeMap::new(),
        },
        asn_origin: origin.to_string(),
        id_origin: origin.to_string(),
        neighbors: BTreeMap::new(),
    }
}

fn bfd_profile(p: &BfdProfile) -> BfdProfileConfig {
    BfdProfileConfig {
        name: p.name.clone(),
        receive_interval: p.receive_interval,
        transmit_interval: p.transmit_interval,
        detect_multiplier: p.detect_multiplier,
        echo_interval: p.echo_interval,
        echo_mode: p.echo_mode.unwrap_or(false),
        passive_mode: p.passive_mode.unwrap_or(false),
        minimum_ttl: p.minimum_ttl,
    }
}

fn secs(d: Result<StdDuration, impl fmt::Debug>) -> u64 {
    // Validated before; whole seconds as upstream (truncation).
    d.map(|d| d.as_secs()).unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
fn neighbor_acc(
    n: &Neighbor,
    r: &Router,
    advertisable: &BTreeSet<IpNet>,
    path: &FieldPath,
    origin: &str,
    secrets: &dyn SecretLookup,
    namespace: &str,
    tokens: &mut FieldErrors,
) -> Result<Option<NeighborAcc>, MergeError> {
    let vrf = r.vrf_name();
    let peer = match (n.address_ip(), n.interface_name()) {
        (Some(ip), _) => Peer::Address(ip),
        (None, Some(i)) => {
            check_token(&path.child("interface"), i, tokens);
            Peer::Interface(i.to_string())
        }
        // Rejected by validation.
        (None, None) => return Ok(None),
    };
    let (Some(remote_asn), Some(family)) = (n.remote_asn(), n.ip_family()) else {
        return Ok(None);
    };
    let subject = format!("neighbor {peer} (vrf {})", vrf_label(vrf));

    if let Some(s) = n.source_address_value() {
        check_token(&path.child("sourceaddress"), s, tokens);
    }
    let mut origins = BTreeMap::new();
    let password = if let Some(p) = n.password_value() {
        check_password(&path.child("password"), p, tokens);
        Some(Password::new(p))
    } else if let Some(sr) = n.password_secret_ref() {
        let secret_ns = sr.namespace_value().unwrap_or(namespace);
        let sname = sr.name_value().unwrap_or("");
        let pp = path.child("passwordSecret");
        let pw =
            resolve_password(secrets, secret_ns, sname).map_err(|source| MergeError::Secret {
                neighbor: subject.clone(),
                path: pp.clone(),
                source,
            })?;
        check_password(&pp, pw.expose(), tokens);
        Some(pw)
    } else {
        None
    };
    if password.is_some() {
        origins.insert("password", origin.to_string());
    }
    if let Some(b) = n.bfd_profile_name() {
        check_token(&path.child("bfdProfile"), b, tokens);
        origins.insert("bfdProfile", origin.to_string());
    }

    // Advertisements.
    let mut adv = AdvertiseConfig::default();
    if let Some(a) = n.advertise_allowed() {
        adv.prefixes.extend(
            a.prefixes
                .iter()
                .filter_map(|p| parse_cidr(p))
                .map(|p| p.trunc()),
        );
        if a.effective_mode() == AllowMode::All {
            adv.prefixes.extend(
                advertisable
                    .iter()
                    .filter(|p| family.carries(&p.addr()))
                    .copied(),
            );
        }
    }
    let mut local_pref_origin = BTreeMap::new();
    for lp in n.with_local_pref() {
        for p in lp.prefixes.iter().filter_map(|p| parse_cidr(p)) {
            adv.local_pref.insert(p.trunc(), lp.local_pref_value());
            local_pref_origin.insert(p.trunc(), origin.to_string());
        }
    }
    for c in n.with_community() {
        let Some(Ok(comm)) = c.community.as_deref().map(BgpCommunity::parse) else {
            continue;
        };
        for p in c.prefixes.iter().filter_map(|p| parse_cidr(p)) {
            adv.communities.entry(p.trunc()).or_default().insert(comm);
        }
    }
    if let Some(nh) = n.next_hop() {
        adv.next_hop_v4 = nh.ipv4.as_deref().and_then(|v| v.parse().ok());
        adv.next_hop_v6 = nh.ipv6.as_deref().and_then(|v| v.parse().ok());
        if adv.next_hop_v4.is_some() {
            origins.insert("toAdvertise.nextHop.ipv4", origin.to_string());
        }
        if adv.next_hop_v6.is_some() {
            origins.insert("toAdvertise.nextHop.ipv6", origin.to_string());
        }
    }

    // Receiving.
    let receive = match n.receive_allowed() {
        Some(a) if a.effective_mode() == AllowMode::All => ReceiveConfig::All,
        Some(a) => ReceiveConfig::Filtered(
            a.prefixes
                .iter()
                .filter_map(|s| {
                    let prefix = parse_cidr(s.prefix.as_deref()?)?.trunc();
                    let len =
                        |v: Option<u32>| v.filter(|v| *v != 0).and_then(|v| u8::try_from(v).ok());
                    Some(PrefixFilter {
                        prefix,
                        le: len(s.le),
                        ge: len(s.ge),
                    })
                })
                .collect(),
        ),
        None => ReceiveConfig::default(),
    };

    let cfg = NeighborConfig {
        id: n.id(vrf),
        peer,
        remote_asn,
        family,
        port: n.effective_port(),
        source_address: n.source_address_value().map(str::to_string),
        password,
        hold_secs: secs(n.effective_hold_time()),
        keepalive_secs: secs(n.effective_keepalive_time()),
        connect_secs: n.connect_time.as_ref().map(|d| secs(d.parse())),
        ebgp_multihop: n.ebgp_multi_hop(),
        bfd_profile: n.bfd_profile_name().map(str::to_string),
        graceful_restart: n.graceful_restart(),
        local_asn: n.local_asn_value(),
        advertise: adv,
        receive,
    };
    Ok(Some(NeighborAcc {
        n: cfg,
        vrf: vrf.to_string(),
        origin: origin.to_string(),
        origins,
        local_pref_origin,
    }))
}

fn check_password(path: &FieldPath, p: &str, errs: &mut FieldErrors) {
    if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // Never echo the value.
        errs.problem(
            path,
            "the password must be a single word without whitespace or control characters",
        );
    } else if p.len() > MAX_PASSWORD_LEN {
        errs.problem(
            path,
            format!("the password must be at most {MAX_PASSWORD_LEN} bytes (TCP MD5 key limit)"),
        );
    }
}
