//! Which prefixes FRR originates (`network` lines of its `router bgp` contexts), from a
//! parsed configuration ([`originated`], [`withdrawn`]) or followed through the text of
//! running configurations and batches ([`scan`]). Pure; used by the applier, the
//! withdrawal audit and the all-in-one speaker's shutdown path.

use std::collections::BTreeSet;

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

fn networks(af: &Context) -> impl Iterator<Item = IpNet> + '_ {
    (af.lines.iter()).filter_map(|l| l.strip_prefix("network ").and_then(network_prefix))
}

/// Every prefix `cfg` originates with `network` lines (unicast address families).
pub fn originated(cfg: &FrrConfig) -> BTreeSet<Originated> {
    let mut out = BTreeSet::new();
    for router in cfg.routers() {
        let vrf = router_vrf(&router.header);
        for af in router.children.iter().filter(|c| {
            c.header.starts_with("address-family ipv") && c.header.ends_with(" unicast")
        }) {
            out.extend(networks(af).map(|prefix| Originated {
                vrf: vrf.clone(),
                prefix,
            }));
        }
    }
    out
}

/// Prefixes of `before` (what a configuration originated) that `after` does not originate.
pub fn withdrawn(before: BTreeSet<Originated>, after: &FrrConfig) -> BTreeSet<Originated> {
    if before.is_empty() {
        return before;
    }
    let after = originated(after);
    before.into_iter().filter(|o| !after.contains(o)).collect()
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
        } else if let Some(p) = t.strip_prefix("network ").and_then(network_prefix) {
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

    #[test]
    fn the_tree_and_the_text_agree() {
        let text = "router bgp 64512\n address-family ipv4 unicast\n  network 192.0.2.10/32\n exit-address-family\n address-family ipv6 unicast\n  network 2001:db8::7/128\n exit-address-family\nexit\n";
        let mut scanned = BTreeSet::new();
        scan(&mut scanned, text);
        let cfg = FrrConfig::parse(text);
        assert_eq!(originated(&cfg), scanned);
        assert_eq!(withdrawn(scanned, &FrrConfig::parse("")).len(), 2);
    }
}
