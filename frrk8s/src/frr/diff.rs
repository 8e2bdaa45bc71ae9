//! One batch of vtysh commands that turns one configuration tree into another.
//!
//! Order of the batch (every phase only when it has something to do):
//! 1. top-level line additions/replacements (prefix-list entries, community lists, `log`,
//!    `ip nht`...): filters exist before anything references them;
//! 2. non-router contexts added or changed (route-maps, `bfd` profiles, `vrf`, ...);
//! 3. `router bgp` contexts added or changed: deleted neighbors first (`no neighbor X`, one
//!    line), then the router's own lines (removals in reverse order, so
//!    `no neighbor X bfd profile P` precedes `no neighbor X bfd`), then address families;
//! 4. whole contexts removed with one `no` line (`no route-map NAME permit N`,
//!    `no profile P` inside `bfd`, `no router bgp ASN vrf V` before the default VRF's router);
//!    a `vrf` context is never deleted (FRR refuses while the VRF is active): its lines are
//!    removed one by one, except those FRR writes itself ([`is_frr_owned`]);
//! 5. top-level removals: `no ip prefix-list NAME` when a whole list goes, else per entry.
//!
//! A line whose "key" (e.g. `neighbor X remote-as`, `neighbor X bfd profile`,
//! `ip prefix-list L seq N`, `set local-preference`) exists on both sides with different
//! values is replaced by emitting only the new line, never `no` + add: lines that did not
//! change are never touched, so a neighbor's session lines stay put.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{exit_line, kind_of, Context, ContextKind, FrrConfig};

/// The commands of one batch, as `vtysh -f` text (no `configure terminal`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Lines in order, with context entries and exits, indented for readability.
    pub lines: Vec<String>,
    /// Number of configuration changes (lines other than context entries/exits).
    pub changes: usize,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }

    /// The batch as text for `vtysh -f`.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(self.lines.iter().map(|l| l.len() + 1).sum());
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// At most `limit` of the lines, passwords redacted, and how many more there are: for
    /// logs and errors (a whole batch can be every prefix of 10,000 Services, megabytes in
    /// one log line or one status field).
    pub fn sample(&self, limit: usize) -> Vec<String> {
        let mut out: Vec<String> = self
            .lines
            .iter()
            .take(limit)
            .map(|l| super::control::redact(l))
            .collect();
        if self.lines.len() > limit {
            out.push(format!("... and {} more lines", self.lines.len() - limit));
        }
        out
    }

    fn change(&mut self, depth: usize, line: String) {
        self.lines.push(format!("{}{}", " ".repeat(depth), line));
        self.changes += 1;
    }

    fn structural(&mut self, depth: usize, line: &str) {
        self.lines.push(format!("{}{}", " ".repeat(depth), line));
    }
}

/// Top-level lines FRR writes by itself or that belong to the host: never added, never
/// removed, ignored when comparing (`hostname` is the UTS name in every netns; forwarding
/// follows the sysctl).
pub fn is_unmanaged(line: &str) -> bool {
    line.starts_with("frr version")
        || line.starts_with("frr defaults")
        || line.starts_with("hostname ")
        || line == "service integrated-vtysh-config"
        || matches!(
            line,
            "ip forwarding" | "no ip forwarding" | "ipv6 forwarding" | "no ipv6 forwarding"
        )
}

/// Lines FRR writes by itself inside a context of `kind`, that we never remove (they are
/// still added when the desired configuration has them). With FRR's netns VRF backend,
/// zebra shows every VRF it found as `vrf NAME` / ` netns /run/netns/NAME`: `no netns`
/// would detach the namespace, and the VRF itself cannot be deleted while it is active.
pub fn is_frr_owned(kind: ContextKind, line: &str) -> bool {
    match kind {
        ContextKind::Vrf => line == "netns" || line.starts_with("netns "),
        _ => false,
    }
}

/// The key of a single-valued line in a context of `kind`: setting a new value replaces
/// the old one, so a change is emitted as the new line alone.
pub fn replace_key(kind: ContextKind, line: &str) -> Option<String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let take = |n: usize| Some(w[..n.min(w.len())].join(" "));
    match kind {
        ContextKind::Root => match w.as_slice() {
            ["ip" | "ipv6", "prefix-list", _, "seq", _, ..] => take(5),
            ["log", "stdout" | "syslog" | "file", ..] => take(2),
            ["log", "timestamp", "precision", ..] => take(3),
            ["bgp", "route-map", "delay-timer", ..] => take(3),
            _ => None,
        },
        ContextKind::RouterBgp => match w.as_slice() {
            ["bgp", "router-id", ..] => take(2),
            ["timers", "bgp", ..] => take(2),
            ["neighbor", _, "interface", "remote-as", ..] => take(4),
            ["neighbor", _, "timers", "connect", ..] => take(4),
            ["neighbor", _, "timers", ..] => take(3),
            ["neighbor", _, "bfd", "profile", ..] => take(4),
            ["neighbor", _, "remote-as" | "password" | "update-source" | "ebgp-multihop" | "port" | "local-as"
            | "description", ..] => take(3),
            _ => None,
        },
        ContextKind::AddressFamily => match w.as_slice() {
            ["neighbor", n, "route-map", _, dir] => Some(format!("neighbor {n} route-map {dir}")),
            ["neighbor", _, "allowas-in", ..] => take(3),
            ["maximum-paths", "ibgp", ..] => take(2),
            ["maximum-paths", ..] => take(1),
            _ => None,
        },
        ContextKind::RouteMap => match w.as_slice() {
            ["set", "ip" | "ipv6", "next-hop", ..] => take(3),
            ["set", "local-preference" | "community" | "large-community" | "metric", ..] => take(2),
            ["match", "ip" | "ipv6", "address", "prefix-list", ..] => take(4),
            ["on-match", ..] => take(1),
            _ => None,
        },
        ContextKind::BfdProfile | ContextKind::BfdPeer => match w.as_slice() {
            ["echo", "transmit-interval" | "receive-interval", ..] => take(2),
            ["receive-interval" | "transmit-interval" | "detect-multiplier" | "echo-interval"
            | "minimum-ttl", ..] => take(1),
            _ => None,
        },
        _ => None,
    }
}

/// The command that removes `line`.
pub fn negate(line: &str) -> String {
    match line.strip_prefix("no ") {
        Some(positive) => positive.to_string(),
        None => format!("no {line}"),
    }
}

/// The command that removes a whole context.
fn negate_context(header: &str) -> String {
    format!("no {header}")
}

/// Neighbors defined in a router context (by `neighbor X remote-as` / `interface` /
/// `peer-group`).
fn defined_neighbors(router: &Context) -> BTreeSet<String> {
    router
        .lines
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["neighbor", n, "remote-as" | "interface" | "peer-group", ..] => {
                    Some((*n).to_string())
                }
                _ => None,
            }
        })
        .collect()
}

fn neighbor_of(line: &str) -> Option<&str> {
    let mut w = line.split_whitespace();
    match (w.next(), w.next()) {
        (Some("neighbor"), Some(n)) => Some(n),
        _ => None,
    }
}

/// Line-level changes of one context: (removals in emission order, additions in order).
fn line_changes(
    kind: ContextKind,
    old: &[String],
    new: &[String],
    skip_removal: &dyn Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let old_set: BTreeSet<&str> = old.iter().map(String::as_str).collect();
    let new_set: BTreeSet<&str> = new.iter().map(String::as_str).collect();
    let new_keys: BTreeSet<String> = new.iter().filter_map(|l| replace_key(kind, l)).collect();
    let removals = old
        .iter()
        .rev()
        .filter(|l| !new_set.contains(l.as_str()))
        .filter(|l| kind != ContextKind::Root || !is_unmanaged(l))
        .filter(|l| !is_frr_owned(kind, l))
        .filter(|l| !replace_key(kind, l).is_some_and(|k| new_keys.contains(&k)))
        .filter(|l| !skip_removal(l))
        .map(|l| negate(l))
        .collect();
    let additions = new
        .iter()
        .filter(|l| !old_set.contains(l.as_str()))
        .filter(|l| kind != ContextKind::Root || !is_unmanaged(l))
        .cloned()
        .collect();
    (removals, additions)
}

/// Emits the changes turning `old` into `new` for a context that exists on both sides
/// (or only in `new` when `old` is empty). `path` are the headers to enter first.
fn emit_context_changes(
    out: &mut Delta,
    path: &mut Vec<String>,
    old: &Context,
    new: &Context,
    skip_removal: &dyn Fn(&str) -> bool,
    remove_children: bool,
) {
    let kind = kind_of(&new.header);
    let (removals, additions) = line_changes(kind, &old.lines, &new.lines, skip_removal);
    let mut body = Delta::default();
    let depth = path.len() + 1;
    for l in removals {
        body.change(depth, l);
    }
    for l in additions {
        body.change(depth, l);
    }
    path.push(new.header.clone());
    for child in &new.children {
        let empty = Context {
            header: child.header.clone(),
            ..Default::default()
        };
        let old_child = old.child(&child.header).unwrap_or(&empty);
        emit_context_changes(&mut body, path, old_child, child, skip_removal, true);
    }
    // children that vanish: contexts with a `no` form are deleted whole; an address
    // family cannot be deleted, so its lines are removed one by one
    for child in old.children.iter().filter(|_| remove_children) {
        if new.child(&child.header).is_none() {
            match kind_of(&child.header) {
                ContextKind::AddressFamily | ContextKind::Vni => {
                    let empty = Context {
                        header: child.header.clone(),
                        ..Default::default()
                    };
                    emit_context_changes(&mut body, path, child, &empty, skip_removal, true);
                }
                _ => body.change(depth, negate_context(&child.header)),
            }
        }
    }
    path.pop();
    if body.changes > 0 {
        let d = path.len();
        out.structural(d, &new.header);
        out.changes += body.changes;
        out.lines.extend(body.lines);
        out.structural(d, exit_line(kind));
    }
}

fn emit_whole(out: &mut Delta, c: &Context, depth: usize) {
    out.structural(depth, &c.header);
    out.changes += 1;
    for l in &c.lines {
        out.change(depth + 1, l.clone());
    }
    for ch in &c.children {
        emit_whole(out, ch, depth + 1);
    }
    out.structural(depth, exit_line(kind_of(&c.header)));
}

/// `(family, list name)` of a prefix-list line.
fn prefix_list_of(line: &str) -> Option<(&str, &str)> {
    let mut w = line.split_whitespace();
    match (w.next(), w.next(), w.next()) {
        (Some(fam @ ("ip" | "ipv6")), Some("prefix-list"), Some(name)) => Some((fam, name)),
        _ => None,
    }
}

/// What FRR considers the same context whatever its other words: a route-map entry is
/// identified by (name, sequence), not by its action.
fn context_identity(header: &str) -> Option<String> {
    match header.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["route-map", name, "permit" | "deny", seq] => Some(format!("route-map {name} {seq}")),
        _ => None,
    }
}

fn is_router(c: &Context) -> bool {
    kind_of(&c.header) == ContextKind::RouterBgp
}

fn is_vrf_router(c: &Context) -> bool {
    is_router(c) && c.header.split_whitespace().nth(3) == Some("vrf")
}

/// `ip[v6] prefix-list NAME seq N` and the rest (`permit 198.18.0.1/32`) of a line.
fn prefix_list_entry(line: &str) -> Option<(String, &str)> {
    let w: Vec<&str> = line.splitn(6, ' ').collect();
    match w.as_slice() {
        [fam @ ("ip" | "ipv6"), "prefix-list", name, "seq", _, rest] => {
            Some((format!("{fam} {name}"), *rest))
        }
        _ => None,
    }
}

/// The old prefix-list lines whose entry (list, action and prefix) the new configuration
/// has under another sequence number.
fn moved_prefix_list_entries<'a>(old: &'a [String], new: &[String]) -> Vec<&'a String> {
    let new_set: BTreeSet<&str> = new.iter().map(String::as_str).collect();
    let new_entries: BTreeSet<(String, &str)> =
        new.iter().filter_map(|l| prefix_list_entry(l)).collect();
    old.iter()
        .filter(|l| !new_set.contains(l.as_str()))
        .filter(|l| prefix_list_entry(l).is_some_and(|e| new_entries.contains(&e)))
        .collect()
}

/// Computes the batch turning `old` into `new`.
pub fn diff(old: &FrrConfig, new: &FrrConfig) -> Delta {
    let mut out = Delta::default();
    let (old_root, new_root) = (&old.root, &new.root);
    // Top-level contexts by header: thousands of route-map entries at scale, so linear
    // lookups would make the diff quadratic.
    let old_by_header: std::collections::HashMap<&str, &Context> = old_root
        .children
        .iter()
        .map(|c| (c.header.as_str(), c))
        .collect();
    let new_by_header: std::collections::HashMap<&str, &Context> = new_root
        .children
        .iter()
        .map(|c| (c.header.as_str(), c))
        .collect();
    let old_child = |h: &str| old_by_header.get(h).copied();
    let new_child = |h: &str| new_by_header.get(h).copied();

    // 1. top-level additions / replacements
    let (mut root_removals, root_additions) =
        line_changes(ContextKind::Root, &old_root.lines, &new_root.lines, &|_| {
            false
        });
    // A prefix-list entry whose value moves to another sequence number (an entry before it
    // was removed, and the list renumbered) must leave its old number first: FRR silently
    // ignores an entry whose action and prefix the list already has under another number.
    // Between the two lines nothing re-evaluates the policy (`bgp route-map delay-timer`).
    let moving = moved_prefix_list_entries(&old_root.lines, &new_root.lines);
    for l in &moving {
        out.change(0, negate(l));
    }
    root_removals.retain(|r| !moving.iter().any(|l| negate(l) == *r));
    for l in root_additions {
        out.change(0, l);
    }

    // 2. non-router contexts added or changed. A route-map entry whose action changes
    //    (`deny 1` -> `permit 1`) is the same entry to FRR: adding the new header converts
    //    it, and a later `no route-map NAME deny 1` would then delete the converted entry.
    //    So such replaced entries are removed first, and the new entry is then sent whole,
    //    also when the old configuration shows it already: FRR 10 can show both actions of
    //    one entry for a moment (one daemon behind the others when a route-map is created
    //    again right after its deletion), and the removal takes both.
    let new_ids: BTreeSet<String> = new_root
        .children
        .iter()
        .filter_map(|c| context_identity(&c.header))
        .collect();
    let mut replaced: BTreeSet<&str> = BTreeSet::new();
    let mut replaced_ids: BTreeSet<String> = BTreeSet::new();
    for c in old_root
        .children
        .iter()
        .filter(|c| new_child(&c.header).is_none())
    {
        if let Some(id) = context_identity(&c.header).filter(|id| new_ids.contains(id)) {
            out.change(0, negate_context(&c.header));
            replaced.insert(&c.header);
            replaced_ids.insert(id);
        }
    }
    for c in new_root.children.iter().filter(|c| !is_router(c)) {
        let resent = context_identity(&c.header).is_some_and(|id| replaced_ids.contains(&id));
        match old_child(&c.header).filter(|_| !resent) {
            // vanished children (e.g. a bfd profile) go in phase 4, after the neighbors
            // stopped using them
            Some(o) => emit_context_changes(&mut out, &mut Vec::new(), o, c, &|_| false, false),
            None => emit_whole(&mut out, c, 0),
        }
    }

    // 3. routers added or changed; the default VRF's router first
    let mut routers: Vec<&Context> = new_root.children.iter().filter(|c| is_router(c)).collect();
    routers.sort_by_key(|c| is_vrf_router(c));
    for c in routers {
        match old_child(&c.header) {
            None => emit_whole(&mut out, c, 0),
            Some(o) => {
                let gone: BTreeSet<String> = defined_neighbors(o)
                    .difference(&defined_neighbors(c))
                    .cloned()
                    .collect();
                let skip = |l: &str| neighbor_of(l).is_some_and(|n| gone.contains(n));
                let mut body = Delta::default();
                for n in &gone {
                    body.change(1, format!("no neighbor {n}"));
                }
                let mut tmp = Delta::default();
                emit_context_changes(&mut tmp, &mut Vec::new(), o, c, &skip, true);
                if tmp.changes > 0 {
                    // drop tmp's own header/exit: we wrap everything once below
                    body.lines
                        .extend(tmp.lines[1..tmp.lines.len() - 1].iter().cloned());
                    body.changes += tmp.changes;
                }
                if body.changes > 0 {
                    out.structural(0, &c.header);
                    out.changes += body.changes;
                    out.lines.extend(body.lines);
                    out.structural(0, "exit");
                }
            }
        }
    }

    // 4. whole contexts removed: non-routers, then VRF routers, then default routers
    let mut removed: Vec<&Context> = old_root
        .children
        .iter()
        .filter(|c| new_child(&c.header).is_none() && !replaced.contains(c.header.as_str()))
        .collect();
    removed.sort_by_key(|c| match (is_router(c), is_vrf_router(c)) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 2,
    });
    for c in new_root.children.iter().filter(|c| !is_router(c)) {
        if let Some(o) = old_child(&c.header) {
            let gone: Vec<&Context> = o
                .children
                .iter()
                .filter(|ch| c.child(&ch.header).is_none())
                .collect();
            if !gone.is_empty() {
                out.structural(0, &c.header);
                for ch in gone {
                    out.change(1, negate_context(&ch.header));
                }
                out.structural(0, exit_line(kind_of(&c.header)));
            }
        }
    }
    for c in removed {
        if kind_of(&c.header) == ContextKind::Vrf {
            // `no vrf X` fails on an active VRF ("Only inactive VRFs can be deleted") and
            // the stanza may be FRR's own (`netns`): remove our lines one by one, like
            // frr-reload.py, and leave a context holding only FRR's lines alone.
            let empty = Context {
                header: c.header.clone(),
                ..Default::default()
            };
            emit_context_changes(&mut out, &mut Vec::new(), c, &empty, &|_| false, true);
        } else {
            out.change(0, negate_context(&c.header));
        }
    }

    // 5. top-level removals; a prefix-list that disappears entirely goes with one line
    let new_lists: BTreeSet<(&str, &str)> = new_root
        .lines
        .iter()
        .filter_map(|l| prefix_list_of(l))
        .collect();
    let mut whole_lists: BTreeMap<(String, String), ()> = BTreeMap::new();
    for l in root_removals {
        // `l` is the negated line: `no ip prefix-list NAME seq ...`
        let positive = l.strip_prefix("no ").unwrap_or(&l);
        if let Some((fam, name)) = prefix_list_of(positive) {
            if !new_lists.contains(&(fam, name)) {
                let key = (fam.to_string(), name.to_string());
                if whole_lists.insert(key, ()).is_none() {
                    out.change(0, format!("no {fam} prefix-list {name}"));
                }
                continue;
            }
        }
        out.change(0, l);
    }
    out
}

/// Drops lines whose value equals FRR's default (FRR does not print them), so rendered
/// and running trees compare equal. Also drops unmanaged top-level lines. The defaults
/// are those of the FRR that `cfg` names (its `frr version` line; FRR 8.4's without one):
/// to compare a desired tree with a running one, use [`normalize_with`] and the running
/// one's [`FrrDefaults`] for both.
pub fn normalize(cfg: &FrrConfig) -> FrrConfig {
    normalize_with(cfg, FrrDefaults::of(cfg))
}

/// [`normalize`] with the defaults of a chosen FRR.
pub fn normalize_with(cfg: &FrrConfig, defaults: FrrDefaults) -> FrrConfig {
    fn walk(c: &Context, defaults: FrrDefaults) -> Context {
        let kind = kind_of(&c.header);
        let lines = c
            .lines
            .iter()
            .filter(|l| !(kind == ContextKind::Root && is_unmanaged(l)))
            .filter(|l| !defaults.is_default_line(kind, l) && !is_write_only(kind, l))
            .map(|l| canonical(kind, l))
            .collect();
        Context {
            header: c.header.clone(),
            lines,
            children: c.children.iter().map(|c| walk(c, defaults)).collect(),
        }
    }
    FrrConfig {
        root: walk(&cfg.root, defaults),
    }
}

/// The defaults of one FRR that decide what `show running-config` leaves out, where they
/// differ between releases. FRR keys its own defaults the same way: by the `frr version`
/// and `frr defaults` lines at the top of a configuration (its `FRR_CFG_DEFAULT_*`
/// tables), so reading them from the running configuration is reading FRR's own key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrrDefaults {
    /// `ip nht resolve-via-default` and `ipv6 nht resolve-via-default` are on unless
    /// configured off: FRR 9.1 and later with the traditional profile (FRR pull request
    /// 14162). `show running-config` then prints nothing when they are on and
    /// `no ip nht resolve-via-default` when off; 8.4 prints the line when on.
    pub nht_resolve_via_default: bool,
}

impl FrrDefaults {
    /// The defaults of the FRR whose configuration `cfg` is (FRR 8.4's when it names no
    /// version, as a rendered configuration does).
    pub fn of(cfg: &FrrConfig) -> FrrDefaults {
        let mut version = None;
        let mut profile = "traditional";
        for line in &cfg.root.lines {
            if let Some(v) = line.strip_prefix("frr version ") {
                version = parse_version(v);
            } else if let Some(p) = line.strip_prefix("frr defaults ") {
                profile = p.trim();
            }
        }
        FrrDefaults {
            nht_resolve_via_default: profile == "traditional"
                && version.is_some_and(|v| v >= (9, 1)),
        }
    }

    /// Whether FRR leaves `line` (in a context of `kind`) out of `show running-config`
    /// because it holds the default value.
    pub fn is_default_line(self, kind: ContextKind, line: &str) -> bool {
        if kind == ContextKind::Root
            && self.nht_resolve_via_default
            && matches!(
                line,
                "ip nht resolve-via-default" | "ipv6 nht resolve-via-default"
            )
        {
            return true;
        }
        is_default_line(kind, line)
    }
}

/// "10.3", "8.4.4", "10.4-dev-mybuild" → (major, minor).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The form FRR prints `line` in (inside a context of `kind`), where it differs from what
/// was configured; found by applying every golden configuration to FRR 8.4 and 10.3 and
/// reading it back (`tests/frr_golden_roundtrip.rs`):
/// - `neighbor X ebgp-multihop` comes back as `neighbor X ebgp-multihop 255`;
/// - `neighbor X timers K H` keeps `min(K, H/3)` as the keepalive (bgpd's
///   `peer_timers_set`): `timers 60 90` comes back as `timers 30 90`;
/// - `log stdout debugging` comes back as `log stdout` (debugging is its default level);
/// - well-known communities come back by name ([`numeric_communities`]).
pub fn canonical(kind: ContextKind, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match (kind, words.as_slice()) {
        (ContextKind::RouterBgp, ["neighbor", n, "ebgp-multihop"]) => {
            format!("neighbor {n} ebgp-multihop 255")
        }
        (ContextKind::RouterBgp, ["neighbor", n, "timers", k, h]) => {
            match (k.parse::<u32>(), h.parse::<u32>()) {
                (Ok(k), Ok(h)) => format!("neighbor {n} timers {} {h}", k.min(h / 3)),
                _ => line.to_string(),
            }
        }
        (ContextKind::Root, ["log", "stdout", "debugging"]) => "log stdout".to_string(),
        _ => numeric_communities(line),
    }
}

/// Lines FRR accepts but never prints in `show running-config` (so the verification cannot
/// see them either way): `debug bgp updates` (8.4 and 10.3 keep it in `show debugging`
/// only).
pub fn is_write_only(kind: ContextKind, line: &str) -> bool {
    kind == ContextKind::Root && line == "debug bgp updates"
}

/// FRR prints well-known communities by name (`set community 65535:65281` comes back as
/// `set community no-export`); we render numbers. Map names to numbers so both compare
/// equal.
pub fn numeric_communities(line: &str) -> String {
    let Some(rest) = line.strip_prefix("set community ") else {
        return line.to_string();
    };
    let words: Vec<String> = rest
        .split_whitespace()
        .map(|w| {
            match w {
                "graceful-shutdown" => "65535:0",
                "accept-own" => "65535:1",
                "route-filter-translated-v4" => "65535:2",
                "route-filter-v4" => "65535:3",
                "route-filter-translated-v6" => "65535:4",
                "route-filter-v6" => "65535:5",
                "llgr-stale" => "65535:6",
                "no-llgr" => "65535:7",
                "accept-own-nexthop" => "65535:8",
                "blackhole" => "65535:666",
                "no-export" => "65535:65281",
                "no-advertise" => "65535:65282",
                "local-AS" => "65535:65283",
                "no-peer" => "65535:65284",
                other => other,
            }
            .to_string()
        })
        .collect();
    format!("set community {}", words.join(" "))
}

/// Lines every FRR we support (8.4 to 10) omits from `show running-config` because they
/// hold the default value; [`FrrDefaults::is_default_line`] adds those of one release.
pub fn is_default_line(kind: ContextKind, line: &str) -> bool {
    match kind {
        ContextKind::BfdProfile | ContextKind::BfdPeer => matches!(
            line,
            "receive-interval 300"
                | "transmit-interval 300"
                | "detect-multiplier 3"
                | "echo-interval 50"
                | "echo transmit-interval 50"
                | "echo receive-interval 50"
                | "minimum-ttl 254"
                | "no echo-mode"
                | "no passive-mode"
                | "no shutdown"
        ),
        ContextKind::RouterBgp => {
            let w: Vec<&str> = line.split_whitespace().collect();
            matches!(w.as_slice(), ["neighbor", _, "port", "179"])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(old: &str, new: &str) -> Vec<String> {
        diff(&FrrConfig::parse(old), &FrrConfig::parse(new))
            .lines
            .iter()
            .map(|l| l.trim().to_string())
            .collect()
    }

    #[test]
    fn a_sample_is_bounded_redacted_and_counts_the_rest() {
        let delta = Delta {
            lines: (0..25)
                .map(|i| format!(" neighbor 192.0.2.{i} password s3cret{i}"))
                .collect(),
            changes: 25,
        };
        let s = delta.sample(20);
        assert_eq!(s.len(), 21);
        assert!(s.iter().all(|l| !l.contains("s3cret")), "{s:?}");
        assert_eq!(s[20], "... and 5 more lines");
        assert_eq!(delta.sample(30).len(), 25, "nothing to elide");
    }

    /// An entry removed from the middle renumbers the rest: each moving entry leaves its old
    /// number before it takes the new one (FRR drops an entry the list has under another
    /// number); what is only replaced in place or removed at the end keeps its order.
    #[test]
    fn renumbered_prefix_list_entries_leave_their_old_numbers_first() {
        let list = |ps: &[u32]| {
            ps.iter()
                .enumerate()
                .map(|(i, p)| format!("ip prefix-list l seq {} permit 198.18.0.{p}/32\n", i + 1))
                .collect::<String>()
        };
        assert_eq!(
            d(&list(&[1, 2, 3, 4]), &list(&[1, 3, 4])),
            vec![
                "no ip prefix-list l seq 3 permit 198.18.0.3/32",
                "no ip prefix-list l seq 4 permit 198.18.0.4/32",
                "ip prefix-list l seq 2 permit 198.18.0.3/32",
                "ip prefix-list l seq 3 permit 198.18.0.4/32",
            ]
        );
        // nothing moves: additions first, removals last, as before
        assert_eq!(
            d(&list(&[1, 2]), &list(&[1, 5, 6])),
            vec![
                "ip prefix-list l seq 2 permit 198.18.0.5/32",
                "ip prefix-list l seq 3 permit 198.18.0.6/32",
            ]
        );
        assert_eq!(
            d(&list(&[1, 2, 3]), &list(&[1, 2])),
            vec!["no ip prefix-list l seq 3 permit 198.18.0.3/32"]
        );
    }

    const BASE: &str = "ip prefix-list p-allowed seq 1 permit 198.18.0.1/32
route-map p-out permit 1
 match ip address prefix-list p-allowed
router bgp 64512
 no bgp ebgp-requires-policy
 neighbor 192.0.2.1 remote-as 64513
 neighbor 192.0.2.1 timers 3 9
 neighbor 192.0.2.1 bfd
 neighbor 192.0.2.1 bfd profile fast
 address-family ipv4 unicast
  neighbor 192.0.2.1 activate
  neighbor 192.0.2.1 route-map p-out out
  network 198.18.0.1/32
 exit-address-family
bfd
 profile fast
  receive-interval 100
";

    #[test]
    fn table_cases() {
        struct Case {
            name: &'static str,
            old: String,
            new: String,
            want: Vec<&'static str>,
        }
        let cases = vec![
            Case {
                name: "no-op",
                old: BASE.into(),
                new: BASE.into(),
                want: vec![],
            },
            Case {
                name: "add a prefix: list entry before network line",
                old: BASE.into(),
                new: BASE
                    .replace(
                        "seq 1 permit 198.18.0.1/32\n",
                        "seq 1 permit 198.18.0.1/32\nip prefix-list p-allowed seq 2 permit 198.18.0.2/32\n",
                    )
                    .replace(
                        "  network 198.18.0.1/32\n",
                        "  network 198.18.0.1/32\n  network 198.18.0.2/32\n",
                    ),
                want: vec![
                    "ip prefix-list p-allowed seq 2 permit 198.18.0.2/32",
                    "router bgp 64512",
                    "address-family ipv4 unicast",
                    "network 198.18.0.2/32",
                    "exit-address-family",
                    "exit",
                ],
            },
            Case {
                name: "change bfd profile: replace, never remove bfd",
                old: BASE.into(),
                new: BASE
                    .replace("bfd profile fast", "bfd profile slow")
                    .replace("profile fast\n  receive-interval 100", "profile slow\n  receive-interval 200"),
                want: vec![
                    "bfd",
                    "profile slow",
                    "receive-interval 200",
                    "exit",
                    "exit",
                    "router bgp 64512",
                    "neighbor 192.0.2.1 bfd profile slow",
                    "exit",
                    "bfd",
                    "no profile fast",
                    "exit",
                ],
            },
            Case {
                name: "remove bfd: profile line before bfd line",
                old: BASE.into(),
                new: BASE
                    .replace(" neighbor 192.0.2.1 bfd\n neighbor 192.0.2.1 bfd profile fast\n", "")
                    .replace("bfd\n profile fast\n  receive-interval 100\n", ""),
                want: vec![
                    "router bgp 64512",
                    "no neighbor 192.0.2.1 bfd profile fast",
                    "no neighbor 192.0.2.1 bfd",
                    "exit",
                    "no bfd",
                ],
            },
            Case {
                name: "timers change is one line, remote-as untouched",
                old: BASE.into(),
                new: BASE.replace("timers 3 9", "timers 10 30"),
                want: vec!["router bgp 64512", "neighbor 192.0.2.1 timers 10 30", "exit"],
            },
            Case {
                name: "remove neighbor: one line",
                old: BASE.into(),
                new: BASE
                    .lines()
                    .filter(|l| !l.contains("neighbor 192.0.2.1"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                want: vec!["router bgp 64512", "no neighbor 192.0.2.1", "exit"],
            },
            Case {
                name: "remove router, route-map and whole prefix-list",
                old: BASE.into(),
                new: "bfd\n profile fast\n  receive-interval 100\n".into(),
                want: vec![
                    "no route-map p-out permit 1",
                    "no router bgp 64512",
                    "no ip prefix-list p-allowed",
                ],
            },
            Case {
                name: "route-map entry changes action: removed before re-added",
                old: "route-map r deny 1\nexit\n".into(),
                new: "route-map r permit 1\n match as-path a\nexit\nroute-map r deny 2\nexit\n".into(),
                want: vec![
                    "no route-map r deny 1",
                    "route-map r permit 1",
                    "match as-path a",
                    "exit",
                    "route-map r deny 2",
                    "exit",
                ],
            },
            Case {
                // FRR 10 showed this for a moment (CI): the removal of `permit 1` takes
                // `deny 1` with it, so `deny 1` is sent again after it
                name: "route-map entry shown with both actions: the wanted one sent again",
                old: "route-map r permit 1\n match as-path a\nexit\nroute-map r deny 1\nexit\n"
                    .into(),
                new: "route-map r deny 1\nexit\n".into(),
                want: vec!["no route-map r permit 1", "route-map r deny 1", "exit"],
            },
            Case {
                name: "route-map value change replaces",
                old: "route-map r permit 1\n set local-preference 100\n on-match next\n".into(),
                new: "route-map r permit 1\n set local-preference 200\n on-match next\n".into(),
                want: vec!["route-map r permit 1", "set local-preference 200", "exit"],
            },
            Case {
                name: "negated line removal",
                old: "router bgp 1\n no bgp default ipv4-unicast\n".into(),
                new: "router bgp 1\n".into(),
                want: vec!["router bgp 1", "bgp default ipv4-unicast", "exit"],
            },
            Case {
                name: "vrf router removed before default router",
                old: "router bgp 1\nexit\nrouter bgp 1 vrf red\nexit\n".into(),
                new: "".into(),
                want: vec!["no router bgp 1 vrf red", "no router bgp 1"],
            },
            Case {
                name: "prefix-list entry removal within a surviving list",
                old: "ip prefix-list a seq 1 permit 198.18.0.1/32\nip prefix-list a seq 2 permit 198.18.0.2/32\n".into(),
                new: "ip prefix-list a seq 1 permit 198.18.0.1/32\n".into(),
                want: vec!["no ip prefix-list a seq 2 permit 198.18.0.2/32"],
            },
            Case {
                name: "prefix-list seq replaced in place",
                old: "ip prefix-list a seq 1 deny any\n".into(),
                new: "ip prefix-list a seq 1 permit 198.18.0.1/32\n".into(),
                want: vec!["ip prefix-list a seq 1 permit 198.18.0.1/32"],
            },
            Case {
                name: "unmanaged lines are never touched",
                old: "frr version 8.4.4\nhostname vm\nno ip forwarding\nservice integrated-vtysh-config\n".into(),
                new: "hostname node-a\n".into(),
                want: vec![],
            },
            Case {
                name: "address family emptied line by line",
                old: "router bgp 1\n neighbor 192.0.2.1 remote-as 2\n address-family ipv6 unicast\n  network 2001:db8::1/128\n exit-address-family\n".into(),
                new: "router bgp 1\n neighbor 192.0.2.1 remote-as 2\n".into(),
                want: vec![
                    "router bgp 1",
                    "address-family ipv6 unicast",
                    "no network 2001:db8::1/128",
                    "exit-address-family",
                    "exit",
                ],
            },
        ];
        for c in cases {
            let got = d(&c.old, &c.new);
            assert_eq!(got, c.want, "case {:?}", c.name);
        }
    }

    /// `show running-config` of FRR with the netns VRF backend: zebra writes the VRF's
    /// namespace itself. We never wrote it, and `no vrf red` fails ("Only inactive VRFs can
    /// be deleted"), so it must not make every reload fail.
    const NETNS_VRF: &str = "vrf red\n netns /run/netns/red\nexit-vrf\n";

    #[test]
    fn netns_vrf_stanza_written_by_frr_is_left_alone() {
        let running = format!(
            "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\n\
frr defaults traditional\nhostname node-1\n!\n{NETNS_VRF}!\n{BASE}!\nend\n"
        );
        // exactly FRR's stanza, nothing desired: no change
        let parsed = FrrConfig::parse(NETNS_VRF);
        assert_eq!(
            parsed.root.child("vrf red").unwrap().lines,
            vec!["netns /run/netns/red"]
        );
        assert_eq!(d(NETNS_VRF, ""), Vec::<String>::new());
        // the way the applier compares: normalized running config against the desired one
        let delta = diff(
            &normalize(&FrrConfig::parse(&running)),
            &normalize(&FrrConfig::parse(BASE)),
        );
        assert!(delta.is_empty(), "{:?}", delta.lines);

        // our own content in the same VRF is diffed normally, FRR's line stays
        let ours = "vrf red\n vni 100\nexit-vrf\n";
        assert_eq!(d(NETNS_VRF, ours), vec!["vrf red", "vni 100", "exit-vrf"]);
        let both = "vrf red\n netns /run/netns/red\n vni 100\nexit-vrf\n";
        assert_eq!(d(both, ours), Vec::<String>::new());
        assert_eq!(d(both, both), Vec::<String>::new());
        // our content goes away: removed line by line, the VRF is never deleted
        assert_eq!(d(both, ""), vec!["vrf red", "no vni 100", "exit-vrf"]);
        assert_eq!(
            d(both, NETNS_VRF),
            vec!["vrf red", "no vni 100", "exit-vrf"]
        );
        assert_eq!(d(ours, ""), vec!["vrf red", "no vni 100", "exit-vrf"]);
        // other VRFs' stanzas are independent
        assert_eq!(
            d(
                &format!("{NETNS_VRF}vrf blue\n netns /run/netns/blue\nexit-vrf\n"),
                ours
            ),
            vec!["vrf red", "vni 100", "exit-vrf"]
        );
    }

    #[test]
    fn applying_the_diff_text_reaches_the_target() {
        // simulate: old + delta parsed as additions is not possible generally, but a
        // diff of the result against itself must be empty and the delta is stable
        let old = FrrConfig::parse(BASE);
        let new = FrrConfig::parse(&BASE.replace("198.18.0.1", "198.18.0.9"));
        let delta = diff(&old, &new);
        assert!(delta.changes >= 3);
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn normalize_drops_defaults() {
        let c = FrrConfig::parse(
            "frr version 8.4.4\nbfd\n profile a\n  receive-interval 300\n  transmit-interval 100\n",
        );
        let n = normalize(&c);
        assert!(n.root.lines.is_empty());
        assert_eq!(
            n.root.children[0].children[0].lines,
            vec!["transmit-interval 100"]
        );
    }

    /// FRR 10.3's running config after `ip nht resolve-via-default` (measured on Debian
    /// 13's 10.3: the line is its default and not printed) compares equal to a rendered
    /// configuration holding the line; 8.4's running config must still show it.
    #[test]
    fn nht_resolve_via_default_is_a_default_from_frr_9_1_on() {
        let rendered = FrrConfig::parse(
            "frr defaults traditional\nip nht resolve-via-default\nipv6 nht resolve-via-default\n",
        );
        let running_10 = FrrConfig::parse(
            "frr version 10.3\nfrr defaults traditional\nhostname vm\nno ip forwarding\n",
        );
        let d = FrrDefaults::of(&running_10);
        assert!(d.nht_resolve_via_default);
        assert!(diff(
            &normalize_with(&running_10, d),
            &normalize_with(&rendered, d)
        )
        .is_empty());
        // turned off on 10, FRR prints the `no` form: a real difference
        let off_10 = FrrConfig::parse("frr version 10.3\nno ip nht resolve-via-default\n");
        let d = FrrDefaults::of(&off_10);
        let delta = diff(&normalize_with(&off_10, d), &normalize_with(&rendered, d));
        assert_eq!(delta.lines, ["ip nht resolve-via-default"]);
        // 8.4 without the line: missing, to be added
        let running_84 = FrrConfig::parse("frr version 8.4.4\nfrr defaults traditional\n");
        let d = FrrDefaults::of(&running_84);
        assert!(!d.nht_resolve_via_default);
        assert_eq!(
            diff(
                &normalize_with(&running_84, d),
                &normalize_with(&rendered, d)
            )
            .changes,
            2
        );
        // the key is FRR's own: version and profile
        for (text, on) in [
            ("frr version 9.1\n", true),
            ("frr version 9.0.2\n", false),
            ("frr version 10.4-dev-mybuild\n", true),
            ("frr version 10.3\nfrr defaults datacenter\n", false),
            ("", false),
        ] {
            assert_eq!(
                FrrDefaults::of(&FrrConfig::parse(text)).nht_resolve_via_default,
                on,
                "{text:?}"
            );
        }
    }

    /// What FRR 8.4.4 printed back for golden cases 10, 12 and 23 (before, every apply of
    /// them ended in a Mismatch after its repair).
    #[test]
    fn lines_frr_prints_in_another_form_compare_equal() {
        let desired = FrrConfig::parse(
            "log stdout debugging\ndebug bgp updates\ndebug bgp nht\nrouter bgp 64512\n \
             neighbor 192.0.2.3 ebgp-multihop\n neighbor 192.0.2.5 timers 60 90\n \
             neighbor 192.0.2.6 timers 30 180\n neighbor 192.0.2.7 timers 3 9\nexit\n",
        );
        let running = FrrConfig::parse(
            "frr version 8.4.4\nlog stdout\ndebug bgp nht\nrouter bgp 64512\n \
             neighbor 192.0.2.3 ebgp-multihop 255\n neighbor 192.0.2.5 timers 30 90\n \
             neighbor 192.0.2.6 timers 30 180\n neighbor 192.0.2.7 timers 3 9\nexit\n",
        );
        let d = FrrDefaults::of(&running);
        let delta = diff(&normalize_with(&running, d), &normalize_with(&desired, d));
        assert!(delta.is_empty(), "{:?}", delta.lines);
        // a real difference still shows: another hop count, another hold time
        let other = FrrConfig::parse(
            "router bgp 64512\n neighbor 192.0.2.3 ebgp-multihop 2\n \
             neighbor 192.0.2.5 timers 30 120\nexit\n",
        );
        let delta = diff(&normalize_with(&other, d), &normalize_with(&desired, d));
        assert!(
            delta
                .lines
                .iter()
                .any(|l| l.trim() == "neighbor 192.0.2.3 ebgp-multihop 255")
                && delta
                    .lines
                    .iter()
                    .any(|l| l.trim() == "neighbor 192.0.2.5 timers 30 90"),
            "{:?}",
            delta.lines
        );
    }

    #[test]
    fn well_known_community_names_compare_as_numbers() {
        assert_eq!(
            numeric_communities("set community no-export 64512:10 additive"),
            "set community 65535:65281 64512:10 additive"
        );
        assert_eq!(
            numeric_communities("set local-preference 100"),
            "set local-preference 100"
        );
        let running =
            FrrConfig::parse("route-map r permit 1\n set community no-export additive\nexit\n");
        let desired =
            FrrConfig::parse("route-map r permit 1\n set community 65535:65281 additive\nexit\n");
        assert!(diff(&normalize(&running), &normalize(&desired)).is_empty());
    }
}
