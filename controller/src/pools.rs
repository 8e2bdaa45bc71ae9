//! IPAddressPool objects → allocator [`Pool`]s.
//!
//! Which version of each pool is in effect is decided by
//! [`metallb_api::metallb::effective::Resolver`]: a pool edited into an invalid state keeps
//! its last valid version, a new pool that overlaps an established one is the one skipped,
//! and every problem is reported. `serviceAllocation.namespaceSelectors` are resolved
//! against the current Namespace labels here, so the allocator only sees names.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use metallb_api::metallb::config::ConfigObjects;
use metallb_api::metallb::effective::{Problem, Resolver};
use metallb_api::metallb::IPAddressPool;
use metallb_api::selector::Selector;
use metallb_api::validation::FieldPath;

use crate::allocator::{Pool, ServiceAllocation};

/// Labels of one namespace, by namespace name.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// The pools in effect and the problems with the others.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolConfig {
    /// Pools in effect, sorted by name.
    pub pools: Vec<Pool>,
    /// One entry per pool whose current version is not in effect (kept at its last valid
    /// version, or skipped), sorted by name.
    pub problems: Vec<Problem>,
}

impl PoolConfig {
    /// `ConfigurationState.status.errorSummary`: one line per problem.
    pub fn error_summary(&self) -> Option<String> {
        if self.problems.is_empty() {
            None
        } else {
            Some(
                self.problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
    }
}

/// Decide which version of every pool is in effect (remembering the decision in
/// `resolver`) and turn those into allocator pools.
pub fn build_pools(
    objects: &[IPAddressPool],
    namespaces: &NamespaceLabels,
    resolver: &mut Resolver,
    now: Timestamp,
) -> PoolConfig {
    let current = ConfigObjects {
        pools: objects.to_vec(),
        ..Default::default()
    };
    // The pool rules: each pool's own and the overlap rule (the only rules over pools
    // alone; the speakers check the rules that involve advertisements).
    let resolution = resolver.resolve(&current, now, ConfigObjects::validate);
    let mut pools: Vec<Pool> = (resolution.effective.pools.iter())
        .filter_map(|p| to_pool(p, namespaces))
        .collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    PoolConfig {
        pools,
        problems: resolution.problems,
    }
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
        let now = Timestamp::UNIX_EPOCH;
        let mut r = Resolver::new();
        let cfg = build_pools(&pools, &NamespaceLabels::new(), &mut r, now);
        let names: Vec<&str> = cfg.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "d"]);
        let bad: Vec<&str> = cfg.problems.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(bad, ["metallb-system/b", "metallb-system/c"]);
        let summary = cfg.error_summary().unwrap();
        assert!(summary.contains("overlaps with 192.0.2.0/24 in IPAddressPool metallb-system/a"));
    }

    #[test]
    fn a_new_overlapping_pool_never_takes_addresses_from_the_established_one() {
        // The incident of issue 13: `overlap` sorts before `seed` by name, and was created
        // later; `seed` serves on, `overlap` is the one skipped.
        let now = Timestamp::UNIX_EPOCH;
        let mut r = Resolver::new();
        let seed = mk_pool("seed", &["198.18.0.0/24"]);
        let cfg = build_pools(
            std::slice::from_ref(&seed),
            &NamespaceLabels::new(),
            &mut r,
            now,
        );
        assert!(cfg.problems.is_empty());
        let both = [mk_pool("a-overlap", &["198.18.0.128/25"]), seed.clone()];
        let cfg = build_pools(&both, &NamespaceLabels::new(), &mut r, now);
        let names: Vec<&str> = cfg.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["seed"]);
        let summary = cfg.error_summary().unwrap();
        assert!(
            summary.starts_with("IPAddressPool metallb-system/a-overlap: skipped: ")
                && summary.contains("IPAddressPool metallb-system/seed"),
            "{summary}"
        );
        // An invalid edit of `seed` keeps its last valid version.
        let mut typo = seed.clone();
        typo.spec.addresses = vec!["198.18.0.0/33".into()];
        typo.metadata.generation = Some(2);
        let cfg = build_pools(
            &[both[0].clone(), typo],
            &NamespaceLabels::new(),
            &mut r,
            now,
        );
        assert_eq!(cfg.pools.len(), 1);
        assert_eq!(cfg.pools[0].cidrs, ["198.18.0.0/24".parse().unwrap()]);
        assert!(
            cfg.error_summary()
                .unwrap()
                .contains("IPAddressPool metallb-system/seed: keeping the last valid version"),
            "{:?}",
            cfg.error_summary()
        );
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
