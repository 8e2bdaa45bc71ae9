//! `IPAddressPool` (`metallb.io/v1beta1`): the addresses MetalLB may hand out.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::check_duplicates;
use crate::selector;
use crate::validation::{FieldErrors, FieldPath};

/// IPAddressPoolSpec defines the desired state of IPAddressPool.
// kube's repeated `printcolumn(type_ = ...)` trips this lint (false positive).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    singular = "ipaddresspool",
    namespaced,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    doc = "IPAddressPool represents a pool of IP addresses that can be allocated to LoadBalancer services.",
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses")
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// A list of IP address ranges over which MetalLB has authority.
    /// You can list multiple ranges in a single pool, they will all share the
    /// same settings. Each range can be either a CIDR prefix, or an explicit
    /// start-end range of IPs.
    pub addresses: Vec<String>,

    /// AutoAssign flag used to prevent MetallB from automatic allocation
    /// for a pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub auto_assign: Option<bool>,

    /// AvoidBuggyIPs prevents addresses ending with .0 and .255
    /// to be used by a pool.
    #[serde(
        default,
        rename = "avoidBuggyIPs",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = false))]
    pub avoid_buggy_ips: Option<bool>,

    /// AllocateTo makes ip pool allocation to specific namespace and/or service.
    /// The controller will use the pool with lowest value of priority in case of
    /// multiple matches. A pool with no priority set will be used only if the
    /// pools with priority can't be used. If multiple matching IPAddressPools are
    /// available it will check for the availability of IPs sorting the matching
    /// IPAddressPools by priority, starting from the highest to the lowest. If
    /// multiple IPAddressPools have the same priority, the pools are tried in name order.
    #[serde(
        default,
        rename = "serviceAllocation",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_allocation: Option<ServiceAllocation>,
}

/// ServiceAllocation defines ip pool allocation to namespace and/or service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Priority priority given for ip pool while ip allocation on a service.
    /// Lower is preferred; 0 or unset means "used last".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Namespaces list of namespace(s) on which ip pool can be attached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// NamespaceSelectors list of label selectors to select namespace(s) for ip pool,
    /// an alternative to using namespace list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// ServiceSelectors list of label selector to select service(s) for which ip pool
    /// can be used for ip allocation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// IPAddressPoolStatus defines the observed state of IPAddressPool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct IPAddressPoolStatus {
    /// AssignedIPv4 is the number of assigned IPv4 addresses.
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    /// AssignedIPv6 is the number of assigned IPv6 addresses.
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// AvailableIPv4 is the number of available IPv4 addresses.
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: i64,
    /// AvailableIPv6 is the number of available IPv6 addresses.
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: i64,
}

impl IPAddressPoolSpec {
    /// Effective `autoAssign` (default `true`).
    pub fn auto_assign(&self) -> bool {
        self.auto_assign.unwrap_or(true)
    }

    /// Effective `avoidBuggyIPs` (default `false`).
    pub fn avoid_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips.unwrap_or(false)
    }
}

impl ServiceAllocation {
    /// Effective priority (0 = lowest, used last).
    pub fn priority(&self) -> i32 {
        self.priority.unwrap_or(0)
    }

    /// True when the allocation restricts nothing (only a priority, or nothing at all): since
    /// v0.15 such a pool matches every service.
    pub fn matches_everything(&self) -> bool {
        self.namespaces.is_empty()
            && self.namespace_selectors.is_empty()
            && self.service_selectors.is_empty()
    }
}

impl IPAddressPool {
    /// Effective `autoAssign` (default `true`).
    pub fn auto_assign(&self) -> bool {
        self.spec.auto_assign()
    }

    /// Effective `avoidBuggyIPs` (default `false`).
    pub fn avoid_buggy_ips(&self) -> bool {
        self.spec.avoid_buggy_ips()
    }

    /// Every problem with this pool on its own (cross-pool overlap is
    /// [`super::config::pool_overlaps`]). Paths start at `spec.`.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        self.spec.validate()
    }

    /// The pool's addresses as the minimal sorted list of CIDRs (ranges are summarized,
    /// overlapping or adjacent blocks are merged). Errors are those of [`Self::validate`]
    /// concerning `spec.addresses`.
    pub fn cidrs(&self) -> Result<Vec<IpNet>, FieldErrors> {
        let entries = self.spec.address_cidrs()?;
        let all: Vec<IpNet> = entries.into_iter().flatten().collect();
        Ok(IpNet::aggregate(&all))
    }

    /// The CIDRs of each `spec.addresses` entry, in order (a range may give several).
    pub fn address_cidrs(&self) -> Result<Vec<Vec<IpNet>>, FieldErrors> {
        self.spec.address_cidrs()
    }
}

impl IPAddressPoolSpec {
    /// See [`IPAddressPool::validate`].
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let spec = FieldPath::new("spec");
        let mut errs = FieldErrors::new();
        if let Err(e) = self.address_cidrs() {
            errs.extend(e);
        }
        if let Some(alloc) = &self.service_allocation {
            let p = spec.child("serviceAllocation");
            if let Some(prio) = alloc.priority {
                if prio < 0 {
                    errs.invalid(&p.child("priority"), prio, "must not be negative");
                }
            }
            let np = p.child("namespaces");
            check_duplicates(&alloc.namespaces, &np, &mut errs);
            for (i, ns) in alloc.namespaces.iter().enumerate() {
                if !super::common::is_dns_label(ns) {
                    errs.invalid(&np.index(i), ns, "is not a valid namespace name");
                }
            }
            selector::validate_list(
                &alloc.namespace_selectors,
                &p.child("namespaceSelectors"),
                &mut errs,
            );
            selector::validate_list(
                &alloc.service_selectors,
                &p.child("serviceSelectors"),
                &mut errs,
            );
        }
        errs.into_result()
    }

    /// Parse every address entry; also rejects an empty list and overlaps between entries of
    /// this pool.
    pub fn address_cidrs(&self) -> Result<Vec<Vec<IpNet>>, FieldErrors> {
        let path = FieldPath::new("spec").child("addresses");
        let mut errs = FieldErrors::new();
        if self.addresses.is_empty() {
            errs.problem(&path, "pool has no prefixes defined");
        }
        let mut out: Vec<Vec<IpNet>> = Vec::with_capacity(self.addresses.len());
        for (i, a) in self.addresses.iter().enumerate() {
            match parse_address_entry(a) {
                Ok(nets) => {
                    'outer: for n in &nets {
                        for (j, prev) in out.iter().enumerate() {
                            if let Some(o) = prev.iter().find(|o| overlaps(o, n)) {
                                errs.invalid(
                                    &path.index(i),
                                    a,
                                    format!("overlaps with {o} of {}", path.index(j)),
                                );
                                break 'outer;
                            }
                        }
                    }
                    out.push(nets);
                }
                Err(msg) => {
                    errs.invalid(&path.index(i), a, msg);
                    out.push(Vec::new());
                }
            }
        }
        errs.into_result().map(|()| out)
    }
}

/// Whether two CIDRs share at least one address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Parse one `spec.addresses` entry: a CIDR (`10.0.0.0/24`; host bits are cleared like Go's
/// `net.ParseCIDR`) or an inclusive range `start-end` (whitespace around the dash tolerated),
/// summarized into CIDRs. The error is the message part of a field error (`is not ...`).
pub fn parse_address_entry(entry: &str) -> Result<Vec<IpNet>, String> {
    if let Some((a, b)) = entry.split_once('-') {
        let start: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("is not a valid IP range: invalid start IP {:?}", a.trim()))?;
        let end: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("is not a valid IP range: invalid end IP {:?}", b.trim()))?;
        return summarize_range(start, end);
    }
    let net: IpNet = entry
        .trim()
        .parse()
        .map_err(|_| "is not a valid CIDR".to_string())?;
    Ok(vec![net.trunc()])
}

/// The minimal list of CIDRs covering exactly `start..=end`.
pub fn summarize_range(start: IpAddr, end: IpAddr) -> Result<Vec<IpNet>, String> {
    let (s, e, bits) = match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => (u32::from(s) as u128, u32::from(e) as u128, 32u32),
        (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s), u128::from(e), 128u32),
        _ => {
            return Err(format!(
                "is not a valid IP range: start {start} and end {end} are not of the same IP family"
            ))
        }
    };
    if s > e {
        return Err(format!(
            "is not a valid IP range: start IP {start} is after the end IP {end}"
        ));
    }
    let block_last = |cur: u128, size: u32| -> u128 {
        if size >= 128 {
            u128::MAX
        } else {
            // `cur` is aligned to 2^size, so this cannot overflow.
            cur + ((1u128 << size) - 1)
        }
    };
    let mut out = Vec::new();
    let mut cur = s;
    loop {
        // Largest block aligned at `cur` that does not pass `e`.
        let mut size = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        while size > 0 && block_last(cur, size) > e {
            size -= 1;
        }
        let prefix = (bits - size) as u8;
        let net = if bits == 32 {
            IpNet::new(IpAddr::V4((cur as u32).into()), prefix)
        } else {
            IpNet::new(IpAddr::V6(cur.into()), prefix)
        }
        .map_err(|e| format!("internal error summarizing range: {e}"))?;
        out.push(net);
        let last = block_last(cur, size);
        if last >= e {
            break;
        }
        cur = last + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn summarizes_ranges() {
        assert_eq!(
            parse_address_entry("172.18.0.100-172.18.0.255").unwrap(),
            nets(&[
                "172.18.0.100/30",
                "172.18.0.104/29",
                "172.18.0.112/28",
                "172.18.0.128/25"
            ])
        );
        assert_eq!(
            parse_address_entry("10.0.0.0 - 10.0.0.255").unwrap(),
            nets(&["10.0.0.0/24"])
        );
        assert_eq!(
            parse_address_entry("10.0.0.5-10.0.0.5").unwrap(),
            nets(&["10.0.0.5/32"])
        );
        assert_eq!(
            parse_address_entry("0.0.0.0-255.255.255.255").unwrap(),
            nets(&["0.0.0.0/0"])
        );
        assert_eq!(
            parse_address_entry("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").unwrap(),
            nets(&["::/0"])
        );
        assert_eq!(
            parse_address_entry("fc00::1-fc00::4").unwrap(),
            nets(&["fc00::1/128", "fc00::2/127", "fc00::4/128"])
        );
        assert_eq!(
            parse_address_entry("10.0.0.1/24").unwrap(),
            nets(&["10.0.0.0/24"])
        );
    }

    #[test]
    fn rejects_bad_entries() {
        for (e, msg) in [
            ("10.0.0.0/33", "is not a valid CIDR"),
            ("banana", "is not a valid CIDR"),
            ("10.0.0.9-10.0.0.1", "is after the end IP"),
            ("10.0.0.1-fc00::1", "not of the same IP family"),
            ("10.0.0.1-", "invalid end IP"),
            ("x-10.0.0.1", "invalid start IP"),
        ] {
            let err = parse_address_entry(e).unwrap_err();
            assert!(err.contains(msg), "{e}: {err}");
        }
    }
}
