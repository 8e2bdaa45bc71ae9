//! Render a [`NodeConfig`] as FRR configuration text (for `frr-reload.py` or `vtysh -f`).
//!
//! Layout follows upstream frr-k8s (header, per-neighbor prefix-lists and route-maps, one
//! `router bgp` per VRF, `bfd` block, raw snippets last), written the way FRR's
//! `show running-config` prints it (one-space indentation, `exit`/`exit-address-family`),
//! so frr-reload's diff has nothing spurious to do. Deliberate differences:
//! - prefix-lists are collapsed and chunked ([`crate::prefix_list`]) so no list exceeds
//!   [`RenderOptions::max_prefix_list_entries`] entries; each list gets its own route-map entry;
//! - only the families a neighbor is activated in get lists; no `deny any` lists: every
//!   route-map ends with an explicit catch-all `deny` entry instead;
//! - incoming lists are named after *their* family (`<id>-inpl-ipv4` / `<id>-inpl-ipv6`) with
//!   independent sequence numbers (upstream quirk 3); route-map entries are numbered per
//!   route-map;
//! - `timers KA HOLD` is rendered when either value differs from the default (quirk 1);
//! - `disable-connected-check` only for single-hop eBGP to an IPv6 *address*, never for
//!   interface (unnumbered) peers (quirk 4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::IpNet;
use metallb_api::community::BgpCommunity;
use metallb_api::frrk8s::{LogLevel, RemoteAsn};

use crate::model::{NeighborConfig, NodeConfig, Peer, ReceiveConfig, RouterConfig, DEFAULT_PORT};
use crate::prefix_list::{self, chunk_name, Entry};

/// Knobs that do not come from FRRConfigurations.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderOptions {
    /// `hostname X`; should equal the node's UTS hostname (FRR prints that one anyway).
    pub hostname: Option<String>,
    /// `log stdout <level>` (and FRR debug lines at debug/all).
    pub log_level: LogLevel,
    /// Router id for routers without one (upstream derives it on IPv6-only nodes).
    pub fallback_router_id: Option<Ipv4Addr>,
    /// Prefixes never accepted from any neighbor (upstream `--always-block`).
    pub always_block: Vec<IpNet>,
    /// Longest generated prefix-list (≥ 1).
    pub max_prefix_list_entries: usize,
    /// Collapse complete blocks of same-length prefixes into range entries.
    pub collapse_ranges: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            hostname: None,
            log_level: LogLevel::Info,
            fallback_router_id: None,
            always_block: Vec::new(),
            max_prefix_list_entries: prefix_list::MAX_ENTRIES,
            collapse_ranges: true,
        }
    }
}

const DEBUG_LINES: &[&str] = &[
    "debug zebra events",
    "debug zebra nht",
    "debug zebra kernel",
    "debug zebra rib",
    "debug zebra nexthop",
    "debug bgp neighbor-events",
    "debug bgp updates",
    "debug bgp keepalives",
    "debug bgp nht",
    "debug bgp zebra",
    "debug bfd network",
    "debug bfd peer",
    "debug bfd zebra",
];

macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Render the whole file. Deterministic: the same inputs give the same bytes.
pub fn render(cfg: &NodeConfig, opts: &RenderOptions) -> String {
    let mut out = String::with_capacity(4096);
    w!(out, "frr defaults traditional");
    if let Some(h) = &opts.hostname {
        w!(out, "hostname {h}");
    }
    w!(out, "log stdout {}", opts.log_level.frr_level());
    w!(out, "log timestamp precision 3");
    if opts.log_level.frr_debugging() {
        for l in DEBUG_LINES {
            w!(out, "{l}");
        }
    }
    w!(out, "ip nht resolve-via-default");
    w!(out, "ipv6 nht resolve-via-default");
    // Route-map and prefix-list changes take effect after this many seconds (FRR's default
    // is 5). It also bounds how long bgpd 8.4 holds a neighbor created by a `vtysh -f`
    // batch that changed a route-map (the "config-pending hold": the remaining delay, so
    // new sessions came up ~4.1 s after the first configuration; with 1 they come up in
    // ~0.15 s). Not 0: that stops route-map re-evaluation altogether.
    w!(out, "bgp route-map delay-timer 1");
    w!(out, "!");

    let mut filters = String::new();
    let mut shortcut_used = false;
    for r in cfg.routers.values() {
        let originated = originated_shortcut_safe(r).then_some(&r.prefixes);
        for n in r.neighbors.values() {
            render_filters(&mut filters, n, opts, originated, &mut shortcut_used);
        }
    }
    if shortcut_used {
        w!(
            out,
            "bgp as-path access-list {ORIGINATED_AS_PATH} seq 5 permit ^$"
        );
        w!(
            out,
            "ip prefix-list {ANY_IPV4} seq 5 permit 0.0.0.0/0 le 32"
        );
        w!(out, "ipv6 prefix-list {ANY_IPV6} seq 5 permit ::/0 le 128");
    }
    out.push_str(&filters);
    for r in cfg.routers.values() {
        render_router(&mut out, r, opts);
    }

    if !cfg.bfd_profiles.is_empty() {
        w!(out, "bfd");
        for p in cfg.bfd_profiles.values() {
            w!(out, " profile {}", p.name);
            if let Some(v) = p.receive_interval {
                w!(out, "  receive-interval {v}");
            }
            if let Some(v) = p.transmit_interval {
                w!(out, "  transmit-interval {v}");
            }
            if let Some(v) = p.detect_multiplier {
                w!(out, "  detect-multiplier {v}");
            }
            if p.echo_mode {
                w!(out, "  echo-mode");
            }
            if let Some(v) = p.echo_interval {
                w!(out, "  echo transmit-interval {v}");
                w!(out, "  echo receive-interval {v}");
            }
            if p.passive_mode {
                w!(out, "  passive-mode");
            }
            if let Some(v) = p.minimum_ttl {
                w!(out, "  minimum-ttl {v}");
            }
            w!(out, " exit");
        }
        w!(out, "exit");
        w!(out, "!");
    }

    for raw in &cfg.raw {
        out.push_str(&raw.config);
        if !raw.config.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `ip` / `ipv6` keyword of a prefix's family.
fn fam(v4: bool) -> &'static str {
    if v4 {
        "ip"
    } else {
        "ipv6"
    }
}

fn fam_name(v4: bool) -> &'static str {
    if v4 {
        "ipv4"
    } else {
        "ipv6"
    }
}

/// Writes chunked prefix-lists and the route-map entries that match them.
struct RouteMap<'a> {
    out: &'a mut String,
    name: String,
    seq: u32,
    max: usize,
}

impl RouteMap<'_> {
    /// Emit lists `base`, `base-2`, ... for `entries` (one family), and for each list a
    /// route-map entry `action` matching it followed by `sets`.
    fn entries(&mut self, base: &str, v4: bool, entries: &[Entry], action: &str, sets: &[String]) {
        for (k, chunk) in prefix_list::chunk_stable(entries, self.max)
            .into_iter()
            .enumerate()
        {
            let list = chunk_name(base, k);
            for (i, e) in chunk.iter().enumerate() {
                w!(
                    self.out,
                    "{} prefix-list {list} seq {} permit {e}",
                    fam(v4),
                    i + 1
                );
            }
            self.seq += 1;
            w!(self.out, "route-map {} {action} {}", self.name, self.seq);
            w!(self.out, " match {} address prefix-list {list}", fam(v4));
            for s in sets {
                w!(self.out, " {s}");
            }
            w!(self.out, "exit");
        }
    }

    /// A route-map entry matching every route this router originates in one family (see
    /// [`originated_shortcut_safe`]).
    fn originated(&mut self, v4: bool, action: &str, sets: &[String]) {
        self.seq += 1;
        w!(self.out, "route-map {} {action} {}", self.name, self.seq);
        w!(self.out, " match as-path {ORIGINATED_AS_PATH}");
        w!(
            self.out,
            " match {} address prefix-list {}",
            fam(v4),
            if v4 { ANY_IPV4 } else { ANY_IPV6 }
        );
        for s in sets {
            w!(self.out, " {s}");
        }
        w!(self.out, "exit");
    }

    /// A route-map entry without match clause (matches everything).
    fn catch_all(&mut self, action: &str) {
        self.seq += 1;
        w!(self.out, "route-map {} {action} {}", self.name, self.seq);
        w!(self.out, "exit");
    }
}

fn entries_for(prefixes: &[IpNet], collapse: bool) -> Vec<Entry> {
    if collapse {
        prefix_list::collapse(prefixes)
    } else {
        prefix_list::exact(prefixes)
    }
}

/// Shared filter objects of the "originated" shortcut.
const ORIGINATED_AS_PATH: &str = "frrk8s-originated";
const ANY_IPV4: &str = "frrk8s-any-ipv4";
const ANY_IPV6: &str = "frrk8s-any-ipv6";

/// Whether, in this router, "has an empty AS path" identifies exactly the routes the router
/// originates with its `network` statements. Then a neighbor allowed every originated prefix
/// of a family needs no prefix-list at all: one route-map entry matching the empty AS path
/// (and the family) admits exactly that set, whatever its size.
///
/// Why: FRR 8.4 pays for every prefix-list entry in every daemon and re-evaluates route-maps
/// that use changed lists; 10,000 advertised /32s to 10 neighbors took minutes to load as
/// prefix-lists. With the shortcut, adding or withdrawing a service is one `network` line.
///
/// Safe only when no other empty-AS-path route can be in the table: routes leaked from an
/// imported VRF, or routes accepted from an iBGP neighbor (eBGP-learned routes always carry
/// the neighbor's AS). Proven on FRR in `tests/frr_match_local.rs`.
fn originated_shortcut_safe(r: &RouterConfig) -> bool {
    r.imports.is_empty()
        && r.neighbors.values().all(|n| {
            let ibgp = match n.remote_asn {
                RemoteAsn::Number(asn) => asn == r.asn,
                RemoteAsn::Internal => true,
                RemoteAsn::External => false,
            };
            !ibgp || n.receive == ReceiveConfig::Filtered(Default::default())
        })
}

fn render_filters(
    out: &mut String,
    n: &NeighborConfig,
    opts: &RenderOptions,
    originated: Option<&std::collections::BTreeSet<IpNet>>,
    shortcut_used: &mut bool,
) {
    let id = &n.id;
    let families: Vec<bool> = [(true, n.has_ipv4()), (false, n.has_ipv6())]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(v4, _)| v4)
        .collect();
    let max = opts.max_prefix_list_entries;

    // Outgoing: property entries (on-match next), then the allowed set, then deny.
    let mut rm = RouteMap {
        out,
        name: format!("{id}-out"),
        seq: 0,
        max,
    };
    // A permit entry for `ps` (one family): the "originated" shortcut when `ps` is every
    // prefix the router originates in that family, prefix-lists named `list` otherwise.
    let mut permit = |rm: &mut RouteMap, list: String, v4: bool, ps: &[IpNet], sets: &[String]| {
        // Both sides are sorted (they come from ordered sets), so equality is one pass; an
        // unsorted `ps` could only make this false, which is always safe.
        let whole = originated.is_some_and(|orig| {
            let mut fam = orig.iter().filter(|p| p.addr().is_ipv4() == v4);
            !ps.is_empty() && ps.iter().all(|p| fam.next() == Some(p)) && fam.next().is_none()
        });
        if whole {
            *shortcut_used = true;
            rm.originated(v4, "permit", sets);
        } else {
            rm.entries(
                &list,
                v4,
                &entries_for(ps, opts.collapse_ranges),
                "permit",
                sets,
            );
        }
    };
    let adv = &n.advertise;
    let mut by_pref: BTreeMap<u32, Vec<IpNet>> = BTreeMap::new();
    for (p, lp) in &adv.local_pref {
        if adv.prefixes.contains(p) {
            by_pref.entry(*lp).or_default().push(*p);
        }
    }
    let mut by_comm: BTreeMap<BgpCommunity, Vec<IpNet>> = BTreeMap::new();
    for (p, cs) in &adv.communities {
        if adv.prefixes.contains(p) {
            for c in cs {
                by_comm.entry(*c).or_default().push(*p);
            }
        }
    }
    for &v4 in &families {
        for (lp, ps) in &by_pref {
            let ps: Vec<IpNet> = ps
                .iter()
                .filter(|p| p.addr().is_ipv4() == v4)
                .copied()
                .collect();
            if ps.is_empty() {
                continue;
            }
            let sets = [
                format!("set local-preference {lp}"),
                "on-match next".to_string(),
            ];
            let list = format!("{id}-{lp}-{}-localpref-prefixes", fam(v4));
            permit(&mut rm, list, v4, &ps, &sets);
        }
    }
    for &v4 in &families {
        for (c, ps) in &by_comm {
            let ps: Vec<IpNet> = ps
                .iter()
                .filter(|p| p.addr().is_ipv4() == v4)
                .copied()
                .collect();
            if ps.is_empty() {
                continue;
            }
            let (label, set) = match c {
                BgpCommunity::Standard(..) => {
                    (c.to_string(), format!("set community {c} additive"))
                }
                BgpCommunity::Large(..) => (
                    format!("large:{c}"),
                    format!("set large-community {c} additive"),
                ),
            };
            let sets = [set, "on-match next".to_string()];
            let list = format!("{id}-{label}-{}-community-prefixes", fam(v4));
            permit(&mut rm, list, v4, &ps, &sets);
        }
    }
    for &v4 in &families {
        let ps: Vec<IpNet> = adv
            .prefixes
            .iter()
            .filter(|p| p.addr().is_ipv4() == v4)
            .copied()
            .collect();
        if ps.is_empty() {
            continue;
        }
        let sets: Vec<String> = if v4 {
            adv.next_hop_v4
                .map(|nh| format!("set ip next-hop {nh}"))
                .into_iter()
                .collect()
        } else {
            adv.next_hop_v6
                .map(|nh| format!("set ipv6 next-hop global {nh}"))
                .into_iter()
                .collect()
        };
        let list = format!("{id}-allowed-{}", fam_name(v4));
        permit(&mut rm, list, v4, &ps, &sets);
    }
    rm.catch_all("deny");

    // Incoming: always-block denies, then the allowed filters (or everything), then deny.
    let mut rm = RouteMap {
        out: rm.out,
        name: format!("{id}-in"),
        seq: 0,
        max,
    };
    for &v4 in &families {
        let blocked: Vec<Entry> = opts
            .always_block
            .iter()
            .filter(|p| p.addr().is_ipv4() == v4)
            .map(|p| Entry {
                prefix: p.trunc(),
                ge: None,
                le: Some(p.max_prefix_len()),
            })
            .collect();
        if !blocked.is_empty() {
            rm.entries(
                &format!("{id}-denied-inpl-{}", fam_name(v4)),
                v4,
                &blocked,
                "deny",
                &[],
            );
        }
    }
    match &n.receive {
        ReceiveConfig::All => rm.catch_all("permit"),
        ReceiveConfig::Filtered(filters) => {
            for &v4 in &families {
                let es: Vec<Entry> = filters
                    .iter()
                    .filter(|f| f.prefix.addr().is_ipv4() == v4)
                    .map(|f| Entry {
                        prefix: f.prefix,
                        ge: f.ge,
                        le: f.le,
                    })
                    .collect();
                if !es.is_empty() {
                    rm.entries(
                        &format!("{id}-inpl-{}", fam_name(v4)),
                        v4,
                        &es,
                        "permit",
                        &[],
                    );
                }
            }
            rm.catch_all("deny");
        }
    }
    w!(rm.out, "!");
}

fn render_router(out: &mut String, r: &RouterConfig, opts: &RenderOptions) {
    if r.vrf.is_empty() {
        w!(out, "router bgp {}", r.asn);
    } else {
        w!(out, "router bgp {} vrf {}", r.asn, r.vrf);
    }
    if let Some(id) = r.router_id.or(opts.fallback_router_id) {
        w!(out, " bgp router-id {id}");
    }
    w!(out, " no bgp ebgp-requires-policy");
    w!(out, " no bgp default ipv4-unicast");
    w!(out, " no bgp network import-check");
    w!(out, " bgp graceful-restart preserve-fw-state");
    // No coalescing of a new session's first announcement. In FRR 8.4 a `no network`
    // processed during that window (1 s + 50 ms per peer after Established) is never sent
    // to the new peer once a route-map pass has announced the prefix: the prefix stays on
    // the peer indefinitely (FRRouting/frr#17667). Every neighbor here has its own
    // route-maps, hence its own update-group, so coalescing had nothing to batch anyway.
    // `crate::frr::audit` remains as the safety net.
    w!(out, " coalesce-time 0");
    for n in r.neighbors.values() {
        render_session(out, r, n);
    }
    for v4 in [true, false] {
        let mut body = String::new();
        for p in r.prefixes.iter().filter(|p| p.addr().is_ipv4() == v4) {
            w!(body, "  network {p}");
        }
        for n in r.neighbors.values() {
            if (v4 && n.has_ipv4()) || (!v4 && n.has_ipv6()) {
                let p = &n.peer;
                w!(body, "  neighbor {p} activate");
                w!(body, "  neighbor {p} route-map {}-in in", n.id);
                w!(body, "  neighbor {p} route-map {}-out out", n.id);
            }
        }
        for i in &r.imports {
            w!(body, "  import vrf {i}");
        }
        if !body.is_empty() {
            w!(out, " !");
            w!(out, " address-family {} unicast", fam_name(v4));
            out.push_str(&body);
            w!(out, " exit-address-family");
        }
    }
    w!(out, "exit");
    w!(out, "!");
}

fn render_session(out: &mut String, r: &RouterConfig, n: &NeighborConfig) {
    let p = &n.peer;
    match p {
        Peer::Interface(_) => w!(out, " neighbor {p} interface remote-as {}", n.remote_asn),
        Peer::Address(_) => w!(out, " neighbor {p} remote-as {}", n.remote_asn),
    }
    if let Some(l) = n.local_asn {
        w!(out, " neighbor {p} local-as {l} no-prepend replace-as");
    }
    if n.port != DEFAULT_PORT {
        w!(out, " neighbor {p} port {}", n.port);
    }
    if let Some((ka, hold)) = n.timers() {
        w!(out, " neighbor {p} timers {ka} {hold}");
    }
    if let Some(c) = n.connect_secs {
        w!(out, " neighbor {p} timers connect {c}");
    }
    if let Some(pw) = &n.password {
        w!(out, " neighbor {p} password {}", pw.expose());
    }
    if let Some(s) = &n.source_address {
        w!(out, " neighbor {p} update-source {s}");
    }
    if n.ebgp_multihop {
        w!(out, " neighbor {p} ebgp-multihop");
    }
    if needs_disable_connected_check(r, n) {
        w!(out, " neighbor {p} disable-connected-check");
    }
    if let Some(b) = &n.bfd_profile {
        // Both lines on purpose: with only the second, frr-reload removes `bfd` (flap).
        w!(out, " neighbor {p} bfd");
        w!(out, " neighbor {p} bfd profile {b}");
    }
    if n.graceful_restart {
        w!(out, " neighbor {p} graceful-restart");
    }
}

/// Single-hop eBGP to an IPv6 address (upstream's rule, fixed for interface peers).
fn needs_disable_connected_check(r: &RouterConfig, n: &NeighborConfig) -> bool {
    let Peer::Address(ip) = &n.peer else {
        return false;
    };
    let ebgp = match n.remote_asn {
        RemoteAsn::Number(a) => a != r.asn,
        RemoteAsn::External => true,
        RemoteAsn::Internal => false,
    };
    ip.is_ipv6() && ebgp && !n.ebgp_multihop
}
