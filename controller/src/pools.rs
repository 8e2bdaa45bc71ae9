//! IPAddressPool objects → allocator [`Pool`]s.
//!
//! A pool that fails its own validation, or overlaps a valid pool that sorts before it, is
//! reported and skipped; every other pool keeps serving. `serviceAllocation.namespaceSelectors`
//! are resolved against the current Namespace labels here, so the allocator only sees names.

use std::collections::{BTreeMap, BTreeSet};

use kube::{Resource, ResourceExt};
use metallb_api::metallb::config::pool_overlaps;
use metallb_api::metallb::IPAddressPool;
use metallb_api::selector::Selector;
use metallb_api::validation::{object_ref, FieldPath, ObjectError};

use crate::allocator::{Pool, ServiceAllocation};

/// Labels of one namespace, by namespace name.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// The usable pools and the problems with the others.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolConfig {
    /// Valid pools, sorted by name.
    pub pools: Vec<Pool>,
    /// One entry per skipped pool, sorted by name.
    pub errors: Vec<ObjectError>,
}

impl PoolConfig {
    /// `ConfigurationState.status.errorSummary`: one line per problem.
    pub fn error_summary(&self) -> Option<String> {
        if self.errors.is_empty() {
            None
        } else {
            Some(
                self.errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
    }
}

/// Parse every pool; skip (and report) invalid and overlapping ones.
pub fn build_pools(objects: &[IPAddressPool], namespaces: &NamespaceLabels) -> PoolConfig {
    let mut sorted: Vec<&IPAddressPool> = objects.iter().collect();
    sorted.sort_by_key(|p| object_ref(p.meta()));
    let mut errors = Vec::new();
    let mut valid: Vec<IPAddressPool> = Vec::new();
    for p in sorted {
        match p.validate() {
            Ok(()) => valid.push(p.clone()),
            Err(errs) => errors.push(ObjectError {
                kind: "IPAddressPool",
                name: object_ref(p.meta()),
                errors: errs,
            }),
        }
    }
    let overlapping = pool_overlaps(&valid);
    let bad: BTreeSet<&str> = overlapping.iter().map(|e| e.name.as_str()).collect();
    let mut pools = Vec::new();
    for p in &valid {
        if bad.contains(object_ref(p.meta()).as_str()) {
            continue;
        }
        if let Some(pool) = to_pool(p, namespaces) {
            pools.push(pool);
        }
    }
    errors.extend(overlapping);
    errors.sort_by(|a, b| a.name.cmp(&b.name));
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    PoolConfig { pools, errors }
}

/// One validated pool as the allocator sees it (`None` only if validation was skipped and
/// the addresses do not parse).
pub fn to_pool(p: &IPAddressPool, namespaces: &NamespaceLabels) -> Option<Pool> {
    let cidrs = p.cidrs().ok()?;
    let allocation = p.spec.service_allocation.as_ref().map(|a| {
        let mut names: BTreeSet<String> = a.namespaces.iter().cloned().collect();
        let path = FieldPath::new("spec")
            .child("serviceAllocation")
            .child("namespaceSelectors");
        for (i, sel) in a.namespace_selectors.iter().enumerate() {
            // Validated above; an invalid selector never matches.
            if let Ok(s) = Selector::parse(sel, &path.index(i)) {
                names.extend(
                    namespaces
                        .iter()
                        .filter(|(_, labels)| s.matches(labels))
                        .map(|(n, _)| n.clone()),
                );
            }
        }
        let spath = FieldPath::new("spec")
            .child("serviceAllocation")
            .child("serviceSelectors");
        ServiceAllocation {
            priority: a.priority(),
            restricts_namespaces: !a.namespaces.is_empty() || !a.namespace_selectors.is_empty(),
            namespaces: names,
            service_selectors: a
                .service_selectors
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Selector::parse(s, &spath.index(i)).ok())
                .collect(),
        }
    });
    Some(Pool {
        name: p.name_any(),
        cidrs,
        auto_assign: p.auto_assign(),
        avoid_buggy_ips: p.avoid_buggy_ips(),
        allocation,
    })
}

#[cfg(test)]
pub(crate) mod tests_support {
    use metallb_api::metallb::{IPAddressPool, IPAddressPoolSpec};

    pub(crate) fn mk_pool(name: &str, addrs: &[&str]) -> IPAddressPool {
        let mut p = IPAddressPool::new(
            name,
            IPAddressPoolSpec {
                addresses: addrs.iter().map(|s| s.to_string()).collect(),
                auto_assign: None,
                avoid_buggy_ips: None,
                service_allocation: None,
            },
        );
        p.metadata.namespace = Some("metallb-system".into());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::mk_pool;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    #[test]
    fn invalid_and_overlapping_pools_are_skipped() {
        let pools = vec![
            mk_pool("a", &["192.0.2.0/24"]),
            mk_pool("b", &["192.0.2.128/25"]),
            mk_pool("c", &["10.0.0.0/33"]),
            mk_pool("d", &["198.18.0.0/24"]),
        ];
        let cfg = build_pools(&pools, &NamespaceLabels::new());
        let names: Vec<&str> = cfg.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "d"]);
        let bad: Vec<&str> = cfg.errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(bad, ["metallb-system/b", "metallb-system/c"]);
        let summary = cfg.error_summary().unwrap();
        assert!(summary.contains("overlaps with 192.0.2.0/24 in IPAddressPool metallb-system/a"));
    }

    #[test]
    fn namespace_selectors_resolve_to_names() {
        let mut p = mk_pool("a", &["192.0.2.0/24"]);
        p.spec.service_allocation = Some(metallb_api::metallb::ServiceAllocation {
            priority: Some(5),
            namespaces: vec!["explicit".into()],
            namespace_selectors: vec![LabelSelector {
                match_labels: Some(BTreeMap::from([("team".into(), "x".into())])),
                ..Default::default()
            }],
            service_selectors: vec![],
        });
        let ns = NamespaceLabels::from([
            ("one".into(), BTreeMap::from([("team".into(), "x".into())])),
            ("two".into(), BTreeMap::new()),
        ]);
        let pool = to_pool(&p, &ns).unwrap();
        let a = pool.allocation.unwrap();
        assert_eq!(
            a.namespaces.into_iter().collect::<Vec<_>>(),
            ["explicit", "one"]
        );
        assert!(a.restricts_namespaces);
        assert_eq!(a.priority, 5);
    }
}
