//! Which prefixes FRR originates (`network` lines of its `router bgp` contexts), from a
//! parsed configuration ([`originated`], [`withdrawn`]) or followed through the text of
//! running configurations and batches ([`scan`]). Pure; used by the applier, the
//! withdrawal audit and the all-in-one speaker's shutdown path.

use std::collections::{BTreeSet, HashMap, HashSet};

use ipnet::IpNet;

use super::config::{Context, FrrConfig};

/// An address family of `network` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Afi {
    Ipv4,
    Ipv6,
}

impl Afi {
    pub fn of(p: &IpNet) -> Afi {
        match p {
            IpNet::V4(_) => Afi::Ipv4,
            IpNet::V6(_) => Afi::Ipv6,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Afi::Ipv4 => "ipv4",
            Afi::Ipv6 => "ipv6",
        }
    }
}

/// A prefix a router originates with a `network` line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Originated {
    /// `""` for the default VRF (as [`BgpNeighborStatus::vrf`]).
    pub vrf: String,
    pub prefix: IpNet,
}

/// The VRF of a `router bgp ASN [vrf NAME]` header.
pub fn router_vrf(header: &str) -> String {
    let mut words = header.split_whitespace().skip(3);
    match (words.next(), words.next()) {
        (Some("vrf"), Some(v)) if v != "default" => v.to_string(),
        _ => String::new(),
    }
}

/// The prefix of a `network P ...` line's rest (after `network `), canonical.
fn network_prefix(rest: &str) -> Option<IpNet> {
    rest.split_whitespace()
        .next()
        .and_then(|p| p.parse::<IpNet>().ok())
        .map(|p| p.trunc())
}

/// The prefix of a `network P ...` line (`None` for any other line).
fn line_prefix(line: &str) -> Option<IpNet> {
    line.strip_prefix("network ").and_then(network_prefix)
}

fn networks(af: &Context) -> impl Iterator<Item = IpNet> + '_ {
    network_lines(af).filter_map(line_prefix)
}

/// Every prefix `cfg` originates with `network` lines (unicast address families).
pub fn originated(cfg: &FrrConfig) -> BTreeSet<Originated> {
    unicast_families(cfg)
        .flat_map(|(vrf, af)| {
            networks(af).map(move |prefix| Originated {
                vrf: vrf.clone(),
                prefix,
            })
        })
        .collect()
}

/// Prefixes `before` originates that `after` does not: `originated(before)` minus
/// `originated(after)`, without building either set. It runs on every apply, and at 10,000
/// prefixes building both ordered sets (a VRF name and a parsed prefix per line) was a
/// quarter of the speaker's CPU in a burst; here a `network` line found verbatim in the same
/// VRF of `after` is settled by a hash lookup, and only lines that are not (removals, or a
/// line that changed its route-map) are parsed.
pub fn withdrawn(before: &FrrConfig, after: &FrrConfig) -> BTreeSet<Originated> {
    let mut out = BTreeSet::new();
    // VRF -> the `network ...` lines `after` has in it (every unicast address family)
    let mut lines: HashMap<String, HashSet<&str>> = HashMap::new();
    for (vrf, af) in unicast_families(after) {
        (lines.entry(vrf).or_default()).extend(network_lines(af));
    }
    // VRF -> the prefixes `after` originates in it; parsed only when a line is missing
    let mut prefixes: HashMap<String, HashSet<IpNet>> = HashMap::new();
    for (vrf, af) in unicast_families(before) {
        let kept = lines.get(&vrf);
        for line in network_lines(af) {
            if kept.is_some_and(|k| k.contains(line)) {
                continue;
            }
            let Some(prefix) = line_prefix(line) else {
                continue;
            };
            let there = prefixes.entry(vrf.clone()).or_insert_with(|| {
                unicast_families(after)
                    .filter(|(v, _)| *v == vrf)
                    .flat_map(|(_, af)| networks(af))
                    .collect()
            });
            if !there.contains(&prefix) {
                out.insert(Originated {
                    vrf: vrf.clone(),
                    prefix,
                });
            }
        }
    }
    out
}

/// The unicast address families of every `router bgp` of `cfg`, with the router's VRF.
fn unicast_families(cfg: &FrrConfig) -> impl Iterator<Item = (String, &Context)> {
    cfg.routers().flat_map(|router| {
        let vrf = router_vrf(&router.header);
        (router.children.iter())
            .filter(|c| {
                c.header.starts_with("address-family ipv") && c.header.ends_with(" unicast")
            })
            .map(move |af| (vrf.clone(), af))
    })
}

fn network_lines(af: &Context) -> impl Iterator<Item = &str> {
    (af.lines.iter())
        .map(String::as_str)
        .filter(|l| l.starts_with("network "))
}

/// Applies the `network` additions and removals of `text` (a running configuration or a
/// vtysh batch), in order, to `set`: what FRR originates after it ran `text`. A running
/// configuration describes everything: start from an empty set for one.
pub fn scan(set: &mut BTreeSet<Originated>, text: &str) {
    let mut vrf = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("router bgp ") {
            vrf = router_vrf(t);
        } else if let Some(h) = t.strip_prefix("no router bgp ") {
            let gone = router_vrf(&format!("router bgp {h}"));
            set.retain(|o| o.vrf != gone);
        } else if let Some(p) = t.strip_prefix("no network ").and_then(network_prefix) {
            set.remove(&Originated {
                vrf: vrf.clone(),
                prefix: p,
            });
        } else if let Some(p) = line_prefix(t) {
            set.insert(Originated {
                vrf: vrf.clone(),
                prefix: p,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(vrf: &str, p: &str) -> Originated {
        Originated {
            vrf: vrf.into(),
            prefix: p.parse().unwrap(),
        }
    }

    #[test]
    fn scanning_batches_follows_additions_and_removals_per_vrf() {
        let mut set = BTreeSet::new();
        scan(
            &mut set,
            "router bgp 64512\n address-family ipv4 unicast\n  network 192.0.2.10/32\n  network 192.0.2.11/32 route-map x\n exit-address-family\nexit\nrouter bgp 64512 vrf red\n address-family ipv6 unicast\n  network 2001:db8::1/128\n",
        );
        assert_eq!(
            set,
            BTreeSet::from([
                o("", "192.0.2.10/32"),
                o("", "192.0.2.11/32"),
                o("red", "2001:db8::1/128")
            ])
        );
        scan(
            &mut set,
            "router bgp 64512\n address-family ipv4 unicast\n  no network 192.0.2.10/32\n",
        );
        assert_eq!(set.len(), 2);
        scan(&mut set, "no router bgp 64512 vrf red\n");
        assert_eq!(set, BTreeSet::from([o("", "192.0.2.11/32")]));
    }

    /// What `withdrawn` must equal: the difference of the two sets.
    fn reference(before: &FrrConfig, after: &FrrConfig) -> BTreeSet<Originated> {
        let after = originated(after);
        (originated(before).into_iter())
            .filter(|o| !after.contains(o))
            .collect()
    }

    #[test]
    fn a_network_line_that_only_changes_its_route_map_is_not_withdrawn() {
        let before = FrrConfig::parse("router bgp 64512\n address-family ipv4 unicast\n  network 192.0.2.10/32\n  network 192.0.2.11/32\n exit-address-family\nexit\n");
        let after = FrrConfig::parse("router bgp 64512\n address-family ipv4 unicast\n  network 192.0.2.10/32 route-map x\n exit-address-family\nexit\nrouter bgp 64512 vrf red\n address-family ipv4 unicast\n  network 192.0.2.11/32\n exit-address-family\nexit\n");
        assert_eq!(
            withdrawn(&before, &after),
            BTreeSet::from([o("", "192.0.2.11/32")])
        );
        assert_eq!(withdrawn(&before, &after), reference(&before, &after));
    }

    /// A configuration of some of 8 prefixes in the default VRF or `red`, each `network` line
    /// with or without a route-map, some written unaligned (`/24` of a host address).
    fn config_of(picks: &[(u8, bool, bool)]) -> FrrConfig {
        let mut text = String::new();
        for vrf in ["", " vrf red"] {
            text.push_str(&format!(
                "router bgp 64512{vrf}\n address-family ipv4 unicast\n"
            ));
            for &(p, in_red, route_map) in picks {
                if in_red != vrf.is_empty() {
                    let len = if p % 4 == 3 { 24 } else { 32 };
                    let rm = if route_map { " route-map x" } else { "" };
                    text.push_str(&format!("  network 192.0.2.{}/{len}{rm}\n", p % 8));
                }
            }
            text.push_str(" exit-address-family\nexit\n");
        }
        FrrConfig::parse(&text)
    }

    proptest::proptest! {
        #[test]
        fn withdrawn_is_the_difference_of_what_each_originates(
            before in proptest::collection::vec((0u8..16, proptest::bool::ANY, proptest::bool::ANY), 0..10),
            after in proptest::collection::vec((0u8..16, proptest::bool::ANY, proptest::bool::ANY), 0..10),
        ) {
            let (b, a) = (config_of(&before), config_of(&after));
            proptest::prop_assert_eq!(withdrawn(&b, &a), reference(&b, &a));
        }
    }

    #[test]
    fn the_tree_and_the_text_agree() {
        let text = "router bgp 64512\n address-family ipv4 unicast\n  network 192.0.2.10/32\n exit-address-family\n address-family ipv6 unicast\n  network 2001:db8::7/128\n exit-address-family\nexit\n";
        let mut scanned = BTreeSet::new();
        scan(&mut scanned, text);
        let cfg = FrrConfig::parse(text);
        assert_eq!(originated(&cfg), scanned);
        assert_eq!(withdrawn(&cfg, &FrrConfig::parse("")).len(), 2);
    }
}
