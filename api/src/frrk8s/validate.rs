//! Per-object validation of `FRRConfiguration`: every rule that can be decided from one object
//! alone (upstream's `api_to_config.go` conversion checks, the CRD schema ranges and CEL rules,
//! plus a few checks upstream leaves to FRR's reload). Cross-object rules (router ASN/ID
//! agreement between objects, neighbor compatibility across objects, EVPN rules that need the
//! merged view) belong to the merge.
//!
//! Every problem is reported, each with its JSON field path:
//! `spec.bgp.routers[0].neighbors[1].holdTime: "2s" must be 0 or at least 3s`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration as StdDuration;

use ipnet::IpNet;

use crate::community::BgpCommunity;
use crate::selector;
use crate::validation::{object_ref, FieldErrors, FieldPath, ObjectError};

use super::frrconfiguration::{
    non_empty, AllowMode, BfdProfile, EvpnConfig, FRRConfiguration, FRRConfigurationSpec, IpFamily,
    L2Vni, L3Vni, Neighbor, Router,
};
use super::schema::{CONNECT_TIME_RANGE_MESSAGE, CONNECT_TIME_WHOLE_MESSAGE};
use crate::duration::ParseDurationError;

/// Maximum number of routers in one object (CRD `maxItems`).
pub const MAX_ROUTERS: usize = 50;
/// Largest VXLAN network identifier.
pub const MAX_VNI: u32 = 16_777_215;
/// Largest BGP timer FRR accepts, in seconds.
const MAX_BGP_TIMER_SECS: u64 = 65_535;

impl FRRConfiguration {
    /// Validate this object on its own; returns every problem with its field path.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        self.spec.validate_at(&FieldPath::new("spec"))
    }

    /// [`FRRConfiguration::validate`], wrapped with the object's kind and `namespace/name`.
    pub fn validate_object(&self) -> Result<(), ObjectError> {
        self.validate().map_err(|errors| ObjectError {
            kind: "FRRConfiguration",
            name: object_ref(&self.metadata),
            errors,
        })
    }
}

impl FRRConfigurationSpec {
    /// Validate a spec whose JSON path is `path` (normally `spec`).
    pub fn validate_at(&self, path: &FieldPath) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::new();
        if let Some(sel) = &self.node_selector {
            selector::validate(sel, &path.child("nodeSelector"), &mut errs);
        }
        if self.bgp.is_some() {
            let bgp = path.child("bgp");
            validate_bfd_profiles(self.bfd_profiles(), &bgp.child("bfdProfiles"), &mut errs);
            validate_routers(self, &bgp.child("routers"), &mut errs);
        }
        errs.into_result()
    }

    /// The prefixes `router` may advertise: its own `prefixes` plus those of the routers in
    /// this same object whose VRF it imports (`default` = the default-VRF router). Only valid
    /// CIDRs, deduplicated, in first-seen order. This is the set `mode: all` expands to.
    pub fn advertisable_prefixes(&self, router: &Router) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = Vec::new();
        // a set beside the list: MetalLB's per-node object has a prefix per Service (10,000
        // and more), and a lookup in the list made every validation quadratic
        let mut seen: HashSet<IpNet> = HashSet::new();
        let mut push = |r: &Router| {
            for p in &r.prefixes {
                if let Some(n) = parse_cidr(p) {
                    if seen.insert(n) {
                        out.push(n);
                    }
                }
            }
        };
        push(router);
        for vrf in router.import_vrfs() {
            let target = if vrf == "default" { "" } else { vrf };
            for r in self.routers() {
                if r.vrf_name() == target && !std::ptr::eq(r, router) {
                    push(r);
                }
            }
        }
        out
    }
}

/// Parse a CIDR (`10.0.0.0/24`, `2001:db8::/64`); a bare address is not a CIDR.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    if s.trim() != s {
        return None;
    }
    s.parse::<IpNet>().ok()
}

fn family_name(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ipv4"
    } else {
        "ipv6"
    }
}

// ---------------------------------------------------------------------------------------------
// BFD profiles

fn validate_bfd_profiles(profiles: &[BfdProfile], path: &FieldPath, errs: &mut FieldErrors) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in profiles.iter().enumerate() {
        let pp = path.index(i);
        if p.name.is_empty() {
            errs.problem(&pp.child("name"), "a BFD profile needs a name");
        } else if let Some(first) = seen.get(p.name.as_str()) {
            errs.invalid(
                &pp.child("name"),
                &p.name,
                format!("duplicate bfd profile name (also {})", path.index(*first)),
            );
        } else {
            seen.insert(&p.name, i);
        }
        let ranges: [(&str, Option<u32>, u32, u32); 5] = [
            ("receiveInterval", p.receive_interval, 10, 60_000),
            ("transmitInterval", p.transmit_interval, 10, 60_000),
            ("echoInterval", p.echo_interval, 10, 60_000),
            ("detectMultiplier", p.detect_multiplier, 2, 255),
            ("minimumTtl", p.minimum_ttl, 1, 254),
        ];
        for (field, value, min, max) in ranges {
            if let Some(v) = value {
                if v < min || v > max {
                    errs.invalid(
                        &pp.child(field),
                        v,
                        format!("must be between {min} and {max}"),
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Routers

fn validate_routers(spec: &FRRConfigurationSpec, path: &FieldPath, errs: &mut FieldErrors) {
    let routers = spec.routers();
    if routers.len() > MAX_ROUTERS {
        errs.invalid(
            path,
            format!("{} routers", routers.len()),
            format!("must have at most {MAX_ROUTERS} items"),
        );
    }
    let bfd_names: BTreeSet<&str> = spec
        .bfd_profiles()
        .iter()
        .map(|p| p.name.as_str())
        .collect();

    // Routers sharing a VRF inside one object must agree (they are merged by VRF).
    let mut by_vrf: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in routers.iter().enumerate() {
        let rp = path.index(i);
        match by_vrf.get(r.vrf_name()) {
            Some(&first) => {
                let f = &routers[first];
                if f.asn != r.asn {
                    errs.invalid(
                        &rp.child("asn"),
                        r.asn,
                        format!(
                            "differs from the ASN {} of {} for the same vrf {:?}",
                            f.asn,
                            path.index(first),
                            r.vrf_name()
                        ),
                    );
                }
                if let (Some(a), Some(b)) = (f.router_id(), r.router_id()) {
                    if a != b {
                        errs.invalid(
                            &rp.child("id"),
                            b,
                            format!(
                                "differs from the router id {a:?} of {} for the same vrf {:?}",
                                path.index(first),
                                r.vrf_name()
                            ),
                        );
                    }
                }
            }
            None => {
                by_vrf.insert(r.vrf_name(), i);
            }
        }
        validate_router(spec, r, &rp, &bfd_names, errs);
    }

    // Duplicate neighbors (same ID in the same VRF) must not conflict.
    let mut neighbors: BTreeMap<String, (FieldPath, &Neighbor)> = BTreeMap::new();
    for (i, r) in routers.iter().enumerate() {
        for (j, n) in r.neighbors.iter().enumerate() {
            if n.peer().is_empty() {
                continue;
            }
            let np = path.index(i).child("neighbors").index(j);
            let id = n.id(r.vrf_name());
            match neighbors.get(&id) {
                Some((first_path, first)) => {
                    let conflicts = first.session_conflicts(n);
                    if !conflicts.is_empty() {
                        errs.invalid(
                            &np,
                            n.display_name(),
                            format!(
                                "duplicates neighbor {first_path} with conflicting {}",
                                conflicts.join(", ")
                            ),
                        );
                    }
                }
                None => {
                    neighbors.insert(id, (np, n));
                }
            }
        }
    }
}

fn validate_router(
    spec: &FRRConfigurationSpec,
    r: &Router,
    path: &FieldPath,
    bfd_names: &BTreeSet<&str>,
    errs: &mut FieldErrors,
) {
    if r.asn == 0 {
        errs.invalid(
            &path.child("asn"),
            r.asn,
            "must be between 1 and 4294967295",
        );
    }
    if let Some(id) = r.router_id() {
        if id.parse::<Ipv4Addr>().is_err() {
            errs.invalid(
                &path.child("id"),
                id,
                "is not a valid router id (an IPv4 address)",
            );
        }
    }
    for (j, p) in r.prefixes.iter().enumerate() {
        if parse_cidr(p).is_none() {
            errs.invalid(&path.child("prefixes").index(j), p, "is not a valid CIDR");
        }
    }
    for (k, imp) in r.imports.iter().enumerate() {
        let ip = path.child("imports").index(k).child("vrf");
        match non_empty(&imp.vrf) {
            None => errs.problem(&ip, "an import needs a vrf name"),
            Some("default") => {}
            Some(v) => {
                if v == r.vrf_name() {
                    errs.invalid(&ip, v, "a router cannot import its own vrf");
                } else if !spec.routers().iter().any(|o| o.vrf_name() == v) {
                    errs.invalid(
                        &ip,
                        v,
                        "is not the vrf of a router in this FRRConfiguration (nor \"default\")",
                    );
                }
            }
        }
    }
    let advertisable = spec.advertisable_prefixes(r);
    for (j, n) in r.neighbors.iter().enumerate() {
        validate_neighbor(
            n,
            r,
            &advertisable,
            bfd_names,
            &path.child("neighbors").index(j),
            errs,
        );
    }
    if let Some(evpn) = &r.evpn {
        validate_evpn(evpn, r, &path.child("evpn"), errs);
    }
}

// ---------------------------------------------------------------------------------------------
// Neighbors

fn validate_neighbor(
    n: &Neighbor,
    r: &Router,
    advertisable: &[IpNet],
    bfd_names: &BTreeSet<&str>,
    path: &FieldPath,
    errs: &mut FieldErrors,
) {
    // address / interface
    match (n.address_str(), n.interface_name()) {
        (None, None) => errs.problem(path, "neighbor has no address and no interface"),
        (Some(_), Some(_)) => errs.problem(
            &path.child("interface"),
            "address and interface are mutually exclusive",
        ),
        (Some(a), None) => {
            if a.parse::<IpAddr>().is_err() {
                errs.invalid(&path.child("address"), a, "is not a valid IP address");
            }
        }
        (None, Some(_)) => {}
    }

    // asn / dynamicASN / localASN
    let asn = n.asn.filter(|a| *a != 0);
    match (asn, n.dynamic_asn) {
        (None, None) => errs.problem(path, "one of asn or dynamicASN must be set"),
        (Some(_), Some(_)) => errs.problem(
            &path.child("dynamicASN"),
            "asn and dynamicASN are mutually exclusive",
        ),
        _ => {}
    }
    if let Some(local) = n.local_asn {
        if local == 0 {
            errs.invalid(
                &path.child("localASN"),
                local,
                "must be between 1 and 4294967295",
            );
        } else if n.is_ibgp(r.asn) {
            errs.invalid(
                &path.child("localASN"),
                local,
                format!(
                    "is not supported for iBGP sessions (neighbor {} in router ASN {})",
                    n.display_name(),
                    r.asn
                ),
            );
        }
    }

    if n.port == Some(0) {
        errs.invalid(&path.child("port"), 0, "must be between 1 and 65535");
    }

    validate_timers(n, path, errs);

    // passwords
    if let Some(sr) = &n.password_secret {
        if n.password_value().is_some() && n.password_secret_ref().is_some() {
            errs.problem(
                &path.child("passwordSecret"),
                "password and passwordSecret are mutually exclusive",
            );
        }
        if sr.name_value().is_none() && sr.namespace_value().is_some() {
            errs.problem(
                &path.child("passwordSecret").child("name"),
                "a secret reference needs a name",
            );
        }
    }

    if let Some(b) = n.bfd_profile_name() {
        if !bfd_names.contains(b) {
            errs.invalid(
                &path.child("bfdProfile"),
                b,
                "does not name a BFD profile of this FRRConfiguration's spec.bgp.bfdProfiles",
            );
        }
    }

    if n.address_families.len() > 2 {
        errs.invalid(
            &path.child("addressFamilies"),
            format!("{} items", n.address_families.len()),
            "must have at most 2 items",
        );
    }

    validate_advertise(n, r, advertisable, path, errs);
    validate_receive(n, path, errs);
}

fn parse_timer(
    d: &Option<crate::Duration>,
    path: &FieldPath,
    errs: &mut FieldErrors,
) -> Option<StdDuration> {
    let d = d.as_ref()?;
    match d.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            errs.invalid(
                path,
                d,
                "is not a valid duration (expected e.g. \"90s\", \"1m30s\")",
            );
            None
        }
    }
}

fn validate_timers(n: &Neighbor, path: &FieldPath, errs: &mut FieldErrors) {
    let hp = path.child("holdTime");
    let kp = path.child("keepaliveTime");
    let hold = parse_timer(&n.hold_time, &hp, errs);
    let keepalive = parse_timer(&n.keepalive_time, &kp, errs);
    match (&n.hold_time, &n.keepalive_time) {
        (Some(_), None) => errs.problem(
            &kp,
            "holdTime is set: keepaliveTime and holdTime must be set together or not at all",
        ),
        (None, Some(_)) => errs.problem(
            &hp,
            "keepaliveTime is set: keepaliveTime and holdTime must be set together or not at all",
        ),
        _ => {}
    }
    if let Some(h) = hold {
        if h != StdDuration::ZERO && h < StdDuration::from_secs(3) {
            errs.invalid(&hp, h_text(n, true), "must be 0 or at least 3s");
        }
        if h > StdDuration::from_secs(MAX_BGP_TIMER_SECS) {
            errs.invalid(&hp, h_text(n, true), "must be at most 65535s");
        }
    }
    if let Some(k) = keepalive {
        if k > StdDuration::from_secs(MAX_BGP_TIMER_SECS) {
            errs.invalid(&kp, h_text(n, false), "must be at most 65535s");
        }
        if let Some(h) = hold {
            if k > h {
                errs.invalid(
                    &kp,
                    h_text(n, false),
                    format!("must not be greater than holdTime {}", h_text(n, true)),
                );
            }
        }
    }
    let cp = path.child("connectTime");
    if let Some(c) = parse_timer(&n.connect_time, &cp, errs) {
        let text = n.connect_time.as_ref().map(|d| d.0.as_str()).unwrap_or("");
        if c < StdDuration::from_secs(1) || c.as_secs() > MAX_BGP_TIMER_SECS {
            errs.invalid(&cp, text, CONNECT_TIME_RANGE_MESSAGE);
        }
        if c.subsec_nanos() != 0 {
            errs.invalid(&cp, text, CONNECT_TIME_WHOLE_MESSAGE);
        }
    }
}

fn h_text(n: &Neighbor, hold: bool) -> &str {
    let d = if hold {
        &n.hold_time
    } else {
        &n.keepalive_time
    };
    d.as_ref().map(|d| d.0.as_str()).unwrap_or("")
}

/// Check that a prefix's family can be carried by the neighbor's session.
fn check_family(
    net: &IpNet,
    text: &str,
    family: Option<IpFamily>,
    path: &FieldPath,
    errs: &mut FieldErrors,
) {
    if let Some(f) = family {
        if !f.carries(&net.addr()) {
            errs.invalid(
                path,
                text,
                format!(
                    "is an {} prefix but the neighbor's session is {} only (set dualStackAddressFamily to carry both families)",
                    family_name(&net.addr()),
                    f
                ),
            );
        }
    }
}

fn validate_advertise(
    n: &Neighbor,
    r: &Router,
    advertisable: &[IpNet],
    path: &FieldPath,
    errs: &mut FieldErrors,
) {
    let Some(adv) = &n.to_advertise else {
        return;
    };
    let ap = path.child("toAdvertise");
    let family = n.ip_family();
    let vrf = r.vrf_name();

    // The set of prefixes this neighbor is allowed to receive from us. Sets, not lists: a
    // neighbor of MetalLB's object may be allowed 10,000 prefixes and more.
    let mut allowed: HashSet<IpNet> = HashSet::new();
    if let Some(a) = &adv.allowed {
        let advertisable_set: HashSet<&IpNet> = match a.prefixes.is_empty() {
            true => HashSet::new(),
            false => advertisable.iter().collect(),
        };
        let pp = ap.child("allowed").child("prefixes");
        for (k, p) in a.prefixes.iter().enumerate() {
            let Some(net) = parse_cidr(p) else {
                errs.invalid(&pp.index(k), p, "is not a valid CIDR");
                continue;
            };
            if !advertisable_set.contains(&net) {
                errs.invalid(
                    &pp.index(k),
                    p,
                    format!(
                        "is not a prefix of router {} (its prefixes and those of the vrfs it imports in this FRRConfiguration){}",
                        r.asn,
                        if vrf.is_empty() { String::new() } else { format!(", vrf {vrf}") }
                    ),
                );
                continue;
            }
            check_family(&net, p, family, &pp.index(k), errs);
            allowed.insert(net);
        }
        if a.effective_mode() == AllowMode::All {
            allowed.extend(
                advertisable
                    .iter()
                    .filter(|p| family.is_none_or(|f| f.carries(&p.addr()))),
            );
        }
    }

    // Local preferences.
    let mut pref_of: BTreeMap<IpNet, u32> = BTreeMap::new();
    let mut seen_prefs: BTreeMap<u32, usize> = BTreeMap::new();
    for (k, lp) in adv.with_local_pref.iter().enumerate() {
        let lpp = ap.child("withLocalPref").index(k);
        let value = lp.local_pref_value();
        if let Some(first) = seen_prefs.get(&value) {
            errs.invalid(
                &lpp.child("localPref"),
                value,
                format!(
                    "local preference is already defined in {}",
                    ap.child("withLocalPref").index(*first)
                ),
            );
        } else {
            seen_prefs.insert(value, k);
        }
        if lp.prefixes.is_empty() {
            errs.problem(&lpp.child("prefixes"), "must have at least 1 item");
        }
        let mut in_entry: BTreeSet<IpNet> = BTreeSet::new();
        for (m, p) in lp.prefixes.iter().enumerate() {
            let pp = lpp.child("prefixes").index(m);
            let Some(net) = parse_cidr(p) else {
                errs.invalid(&pp, p, "is not a valid CIDR");
                continue;
            };
            if !in_entry.insert(net) {
                errs.invalid(
                    &pp,
                    p,
                    format!("prefix is already defined for local preference {value}"),
                );
                continue;
            }
            check_family(&net, p, family, &pp, errs);
            if !allowed.contains(&net) {
                errs.invalid(
                    &pp,
                    p,
                    format!("local preference {value} is associated to a prefix that is not advertised to this neighbor (toAdvertise.allowed)"),
                );
            }
            match pref_of.get(&net) {
                Some(other) if *other != value => errs.invalid(
                    &pp,
                    p,
                    format!("prefix is configured with both local preference {other} and {value}"),
                ),
                _ => {
                    pref_of.insert(net, value);
                }
            }
        }
    }

    // Communities.
    let mut seen_comms: BTreeMap<BgpCommunity, usize> = BTreeMap::new();
    for (k, cp) in adv.with_community.iter().enumerate() {
        let cpp = ap.child("withCommunity").index(k);
        let text = non_empty(&cp.community).unwrap_or("");
        match BgpCommunity::parse(text) {
            Err(_) => errs.invalid(
                &cpp.child("community"),
                text,
                "is not a valid community: expected \"A:B\" (16-bit numbers) or \"large:A:B:C\" (32-bit numbers)",
            ),
            Ok(c) => {
                if let Some(first) = seen_comms.get(&c) {
                    errs.invalid(
                        &cpp.child("community"),
                        text,
                        format!(
                            "community is already defined in {}",
                            ap.child("withCommunity").index(*first)
                        ),
                    );
                } else {
                    seen_comms.insert(c, k);
                }
            }
        }
        if cp.prefixes.is_empty() {
            errs.problem(&cpp.child("prefixes"), "must have at least 1 item");
        }
        for (m, p) in cp.prefixes.iter().enumerate() {
            let pp = cpp.child("prefixes").index(m);
            let Some(net) = parse_cidr(p) else {
                errs.invalid(&pp, p, "is not a valid CIDR");
                continue;
            };
            check_family(&net, p, family, &pp, errs);
            if !allowed.contains(&net) {
                errs.invalid(
                    &pp,
                    p,
                    format!("is advertised for community {text} but it's not in the advertisement list of the neighbor (toAdvertise.allowed)"),
                );
            }
        }
    }

    // Next hops.
    if let Some(nh) = &adv.next_hop {
        let np = ap.child("nextHop");
        if let Some(v4) = non_empty(&nh.ipv4) {
            match v4.parse::<Ipv4Addr>() {
                Err(_) => errs.invalid(&np.child("ipv4"), v4, "is not a valid IPv4 address"),
                Ok(ip) => {
                    if family.is_some_and(|f| !f.carries(&IpAddr::V4(ip))) {
                        errs.invalid(
                            &np.child("ipv4"),
                            v4,
                            "is an IPv4 next hop for a neighbor without the IPv4 address family",
                        );
                    }
                }
            }
        }
        if let Some(v6) = non_empty(&nh.ipv6) {
            match v6.parse::<Ipv6Addr>() {
                Err(_) => errs.invalid(&np.child("ipv6"), v6, "is not a valid IPv6 address"),
                Ok(ip) => {
                    if family.is_some_and(|f| !f.carries(&IpAddr::V6(ip))) {
                        errs.invalid(
                            &np.child("ipv6"),
                            v6,
                            "is an IPv6 next hop for a neighbor without the IPv6 address family",
                        );
                    }
                }
            }
        }
    }
}

fn validate_receive(n: &Neighbor, path: &FieldPath, errs: &mut FieldErrors) {
    let Some(allowed) = n.receive_allowed() else {
        return;
    };
    let pp = path.child("toReceive").child("allowed").child("prefixes");
    for (k, sel) in allowed.prefixes.iter().enumerate() {
        let sp = pp.index(k);
        let Some(text) = non_empty(&sel.prefix) else {
            errs.problem(&sp.child("prefix"), "a prefix selector needs a prefix");
            continue;
        };
        let Some(net) = parse_cidr(text) else {
            errs.invalid(&sp.child("prefix"), text, "is not a valid CIDR");
            continue;
        };
        let max = u32::from(net.max_prefix_len());
        let mask = u32::from(net.prefix_len());
        let le = sel.le.filter(|v| *v != 0);
        let ge = sel.ge.filter(|v| *v != 0);
        for (field, v) in [("le", le), ("ge", ge)] {
            if let Some(v) = v {
                if v > max {
                    errs.invalid(
                        &sp.child(field),
                        v,
                        format!(
                            "must be at most {max} for the {} prefix {text}",
                            family_name(&net.addr())
                        ),
                    );
                }
            }
        }
        if let Some(le) = le {
            if let Some(ge) = ge {
                if ge > le {
                    errs.invalid(
                        &sp.child("ge"),
                        ge,
                        format!("invalid selector lengths: ge {ge} is bigger than le {le}"),
                    );
                }
            }
            if mask > le {
                errs.invalid(
                    &sp.child("le"),
                    le,
                    format!("invalid selector lengths: cidr mask {mask} is bigger than le {le}"),
                );
            }
        }
        if let Some(ge) = ge {
            if mask > ge {
                errs.invalid(
                    &sp.child("ge"),
                    ge,
                    format!("invalid selector lengths: cidr mask {mask} is bigger than ge {ge}"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Neighbor compatibility (shared with the merge)

impl Neighbor {
    /// Names of the session settings on which two declarations of the same neighbor (same
    /// ID) disagree, upstream's merge rules: remote ASN, port (unset = 179), sourceaddress,
    /// cleartext password, bfdProfile (equal or one unset), ebgpMultiHop, IP family,
    /// hold/keepalive/connect time (unset = default), localASN. Secret-referenced
    /// passwords need the secret's value and are left to the caller; `enableGracefulRestart`
    /// is not compared (upstream).
    pub fn session_conflicts(&self, other: &Neighbor) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.remote_asn() != other.remote_asn() {
            out.push("asn");
        }
        if self.effective_port() != other.effective_port() {
            out.push("port");
        }
        if self.source_address_value() != other.source_address_value() {
            out.push("sourceaddress");
        }
        if let (Some(a), Some(b)) = (self.password_value(), other.password_value()) {
            if a != b {
                out.push("password");
            }
        }
        if let (Some(a), Some(b)) = (self.bfd_profile_name(), other.bfd_profile_name()) {
            if a != b {
                out.push("bfdProfile");
            }
        }
        if self.ebgp_multi_hop() != other.ebgp_multi_hop() {
            out.push("ebgpMultiHop");
        }
        if self.ip_family() != other.ip_family() {
            out.push("dualStackAddressFamily");
        }
        // Upstream truncates timers to whole seconds; unset compares as the default.
        let secs = |d: Result<StdDuration, ParseDurationError>| d.ok().map(|v| v.as_secs());
        if secs(self.effective_hold_time()) != secs(other.effective_hold_time()) {
            out.push("holdTime");
        }
        if secs(self.effective_keepalive_time()) != secs(other.effective_keepalive_time()) {
            out.push("keepaliveTime");
        }
        if secs(self.effective_connect_time()) != secs(other.effective_connect_time()) {
            out.push("connectTime");
        }
        if self.local_asn_value() != other.local_asn_value() {
            out.push("localASN");
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// EVPN (format rules; the rules that need the merged view are the merge's)

fn validate_evpn(evpn: &EvpnConfig, r: &Router, path: &FieldPath, errs: &mut FieldErrors) {
    if evpn.l2_vnis.len() > 10 {
        errs.invalid(
            &path.child("l2vnis"),
            format!("{} items", evpn.l2_vnis.len()),
            "must have at most 10 items",
        );
    }
    let mut vnis: BTreeMap<u32, FieldPath> = BTreeMap::new();
    let mut check_vni = |vni: u32, p: FieldPath, errs: &mut FieldErrors| {
        if vni == 0 || vni > MAX_VNI {
            errs.invalid(&p, vni, format!("must be between 1 and {MAX_VNI}"));
        } else if let Some(first) = vnis.get(&vni) {
            errs.invalid(&p, vni, format!("duplicate VNI (also {first})"));
        } else {
            vnis.insert(vni, p);
        }
    };
    for (i, l2) in evpn.l2_vnis.iter().enumerate() {
        let lp = path.child("l2vnis").index(i);
        check_vni(l2.vni, lp.child("vni"), errs);
        validate_vni_common(l2_parts(l2), &lp, errs);
    }
    if let Some(l3) = &evpn.l3_vni {
        let lp = path.child("l3vni");
        check_vni(l3.vni, lp.child("vni"), errs);
        validate_vni_common(l3_parts(l3), &lp, errs);
        if l3.advertise_prefixes.len() != 1 || l3.advertise_prefixes[0] != "unicast" {
            errs.invalid(
                &lp.child("advertisePrefixes"),
                format!("{:?}", l3.advertise_prefixes),
                "must be exactly [\"unicast\"]",
            );
        }
        if !r.neighbors.is_empty() {
            errs.problem(
                &lp,
                "l3vni can only be configured on routers with no neighbors",
            );
        }
    }
}

type VniParts<'a> = (&'a Option<String>, &'a [String], &'a [String]);

fn l2_parts(v: &L2Vni) -> VniParts<'_> {
    (&v.rd, &v.import_rts, &v.export_rts)
}

fn l3_parts(v: &L3Vni) -> VniParts<'_> {
    (&v.rd, &v.import_rts, &v.export_rts)
}

fn validate_vni_common(
    (rd, imports, exports): VniParts<'_>,
    path: &FieldPath,
    errs: &mut FieldErrors,
) {
    if let Some(rd) = non_empty(rd) {
        if let Err(m) = check_rd_rt(rd, false) {
            errs.invalid(
                &path.child("rd"),
                rd,
                format!("is not a valid route distinguisher: {m}"),
            );
        }
    }
    for (field, list, wildcard) in [("importRTs", imports, true), ("exportRTs", exports, false)] {
        if list.len() > 100 {
            errs.invalid(
                &path.child(field),
                format!("{} items", list.len()),
                "must have at most 100 items",
            );
        }
        for (k, rt) in list.iter().enumerate() {
            if let Err(m) = check_rd_rt(rt, wildcard) {
                errs.invalid(
                    &path.child(field).index(k),
                    rt,
                    format!("is not a valid route target: {m}"),
                );
            }
        }
    }
}

/// Check an EVPN route distinguisher / route target text as upstream's CEL rules do:
/// `A.B.C.D:MN` (MN ≤ 65535), `EF:OPQR` (EF ≤ 65535, OPQR ≤ 4294967295), `GHJK:MN`
/// (GHJK ≤ 4294967295, MN ≤ 65535), and, for import route targets, `*:OPQR`.
pub fn check_rd_rt(s: &str, wildcard_ok: bool) -> Result<(), &'static str> {
    let parts: Vec<&str> = s.split(':').collect();
    let [admin, assigned] = parts.as_slice() else {
        return Err("must contain exactly one colon");
    };
    let num = |p: &str| -> Option<u64> {
        if !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()
        } else {
            None
        }
    };
    let assigned = num(assigned).ok_or("the assigned number must be a decimal number")?;
    if *admin == "*" {
        if !wildcard_ok {
            return Err("a wildcard administrator is only allowed for import route targets");
        }
        if assigned > u64::from(u32::MAX) {
            return Err("must have format *:OPQR where OPQR <= 4294967295");
        }
        return Ok(());
    }
    if admin.contains('.') {
        if admin.parse::<Ipv4Addr>().is_err() || assigned > 65_535 {
            return Err("must have format A.B.C.D:MN where MN <= 65535");
        }
        return Ok(());
    }
    let admin = num(admin).ok_or("the administrator must be an IPv4 address or an AS number")?;
    if admin > u64::from(u32::MAX) {
        return Err("the AS number administrator must be <= 4294967295");
    }
    if admin > 65_535 && assigned > 65_535 {
        return Err("with a 4-byte ASN administrator must have format GHJK:MN where MN <= 65535");
    }
    if assigned > u64::from(u32::MAX) {
        return Err(
            "with a 2-byte ASN administrator must have format EF:OPQR where OPQR <= 4294967295",
        );
    }
    Ok(())
}
