//! Address pools as the allocator sees them: plain values, already parsed and validated.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use metallb_api::selector::Selector;

/// IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

/// `serviceAllocation`, with namespace selectors already resolved to namespace names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceAllocation {
    /// 0 (or unset) is the lowest priority; otherwise lower numbers come first.
    pub priority: i32,
    /// Namespaces named directly or matched by `namespaceSelectors`.
    pub namespaces: BTreeSet<String>,
    /// True when `namespaces` or `namespaceSelectors` were given (an empty resolved set then
    /// means "no namespace matches", not "all namespaces").
    pub restricts_namespaces: bool,
    pub service_selectors: Vec<Selector>,
}

/// One IPAddressPool, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub name: String,
    /// CIDRs in `spec.addresses` order, ranges already summarized.
    pub cidrs: Vec<IpNet>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub allocation: Option<ServiceAllocation>,
}

impl Pool {
    pub fn new(name: &str, cidrs: &[&str]) -> Pool {
        Pool {
            name: name.to_string(),
            cidrs: cidrs
                .iter()
                .map(|c| c.parse().expect("test CIDR"))
                .collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }

    /// Whether `ip` belongs to the pool (inside a CIDR and, with `avoidBuggyIPs`, not a
    /// `.0`/`.255` IPv4 address).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(ip)) && !(self.avoid_buggy_ips && is_buggy(ip))
    }

    pub fn has_family(&self, f: Family) -> bool {
        self.cidrs.iter().any(|c| Family::of(&c.network()) == f)
    }

    /// Whether a service in `namespace` with `labels` may take addresses from this pool.
    pub fn compatible(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        let Some(a) = &self.allocation else {
            return true;
        };
        if a.restricts_namespaces && !a.namespaces.contains(namespace) {
            return false;
        }
        a.service_selectors.is_empty() || a.service_selectors.iter().any(|s| s.matches(labels))
    }

    /// Number of usable addresses of a family, saturating at `i64::MAX` as upstream does for
    /// pools with 62 or more host bits.
    pub fn capacity(&self, f: Family) -> i64 {
        let mut total: i128 = 0;
        for c in self.cidrs.iter().filter(|c| Family::of(&c.network()) == f) {
            let host_bits = c.max_prefix_len() - c.prefix_len();
            if host_bits >= 62 {
                return i64::MAX;
            }
            let size = 1i128 << host_bits;
            let buggy = if self.avoid_buggy_ips && f == Family::V4 {
                buggy_in(c)
            } else {
                0
            };
            total += size - buggy;
        }
        total.min(i64::MAX as i128) as i64
    }
}

/// IPv4 addresses ending in .0 or .255: some old client stacks mishandle them.
pub fn is_buggy(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

fn buggy_in(c: &IpNet) -> i128 {
    let IpNet::V4(n) = c else { return 0 };
    let start = u32::from(n.network()) as i128;
    let end = u32::from(n.broadcast()) as i128;
    // count x in [start, end] with x % 256 in {0, 255}
    let count = |v: i128, r: i128| -> i128 {
        // numbers <= v congruent to r mod 256
        if v < r {
            0
        } else {
            (v - r) / 256 + 1
        }
    };
    let in_range = |r: i128| count(end, r) - count(start - 1, r);
    in_range(0) + in_range(255)
}

pub(crate) fn to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(*a) as u128,
        IpAddr::V6(a) => u128::from(*a),
    }
}

pub(crate) fn from_u128(f: Family, v: u128) -> IpAddr {
    match f {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

pub(crate) fn bounds(c: &IpNet) -> (u128, u128) {
    (to_u128(&c.network()), to_u128(&c.broadcast()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_counts_and_saturates() {
        let mut p = Pool::new(
            "p",
            &[
                "192.0.2.0/24",
                "198.18.0.0/23",
                "2001:db8::/120",
                "2001:db8:1::/64",
            ],
        );
        assert_eq!(p.capacity(Family::V4), 256 + 512);
        assert_eq!(p.capacity(Family::V6), i64::MAX);
        p.avoid_buggy_ips = true;
        assert_eq!(p.capacity(Family::V4), 254 + 508);
        let small = Pool {
            avoid_buggy_ips: true,
            ..Pool::new("s", &["192.0.2.250/31", "192.0.2.255/32"])
        };
        assert_eq!(small.capacity(Family::V4), 2);
        assert!(!small.contains(&"192.0.2.255".parse().unwrap()));
    }
}
