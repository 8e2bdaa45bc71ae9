//! What the controller's three watches keep, and what changed since the last batch.
//!
//! The watches run on the shared kit ([`metallb_runtime::watch`]): each event is applied
//! here under one lock and wakes the reconciler, which takes the changes ([`Changes`]) and
//! decides from this index in one batch. The re-list bookkeeping (objects deleted while a
//! watch was down) lives in the kit; here a re-list only means "look at everything again".
//!
//! Only what allocation reads is kept: Services decode into the slim type
//! ([`crate::slim`]), Namespaces into their labels.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use metallb_api::metallb::IPAddressPool;
use metallb_runtime::watch::{Index, ObjKey, WatchMetrics, WatchedState};

use crate::allocator::ServiceKey;
use crate::metrics::Metrics;
use crate::pools::NamespaceLabels;
use crate::service::key;
use crate::slim::Service;

/// The watched objects and the pending changes.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub services: HashMap<ServiceKey, Arc<Service>>,
    /// The IPAddressPools of the MetalLB namespace, by name.
    pub pools: BTreeMap<String, IPAddressPool>,
    /// Every Namespace's labels (pool namespace selectors read them).
    pub namespaces: NamespaceLabels,
    changes: Changes,
    added: HashSet<&'static str>,
    listed: HashSet<&'static str>,
}

/// What changed since the reconciler last looked.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Services created, changed or deleted.
    pub services: BTreeSet<ServiceKey>,
    /// A pool or a Namespace changed: the pool configuration must be rebuilt.
    pub config: bool,
    /// A Service watch (re-)listed: deletions may have been missed, look at everything.
    pub all_services: bool,
}

impl Watched {
    /// Every watch announced has listed at least once.
    pub fn listed(&self) -> bool {
        self.added.len() == self.listed.len()
    }

    /// The changes since the last call.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// The Service stored under `key` (`namespace/name`).
    pub fn service(&self, key: &str) -> Option<Arc<Service>> {
        self.services.get(key).cloned()
    }
}

impl WatchedState for Watched {
    fn watch_added(&mut self, what: &'static str) {
        self.added.insert(what);
    }
    fn watch_listed(&mut self, what: &'static str) {
        self.listed.insert(what);
    }
}

impl Index<Service> for Watched {
    fn apply(&mut self, svc: Service) {
        let k = key(&svc);
        self.changes.services.insert(k.clone());
        self.services.insert(k, Arc::new(svc));
    }
    fn delete(&mut self, svc: Service) {
        let k = key(&svc);
        self.services.remove(&k);
        self.changes.services.insert(k);
    }
    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.services.retain(|k, _| {
            k.split_once('/')
                .is_some_and(|(ns, name)| listed.contains(&(ns.to_string(), name.to_string())))
        });
        self.changes.all_services = true;
    }
}

impl Index<IPAddressPool> for Watched {
    fn apply(&mut self, pool: IPAddressPool) {
        self.pools.insert(pool.name_any(), pool);
        self.changes.config = true;
    }
    fn delete(&mut self, pool: IPAddressPool) {
        self.pools.remove(&pool.name_any());
        self.changes.config = true;
    }
    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.pools.retain(|name, p| {
            let ns = p.namespace().unwrap_or_default();
            listed.contains(&(ns, name.clone()))
        });
        self.changes.config = true;
    }
}

impl Index<Namespace> for Watched {
    fn apply(&mut self, ns: Namespace) {
        let name = ns.name_any();
        let labels = ns.metadata.labels.unwrap_or_default();
        if self.namespaces.get(&name) != Some(&labels) {
            self.namespaces.insert(name, labels);
            self.changes.config = true;
        }
    }
    fn delete(&mut self, ns: Namespace) {
        if self.namespaces.remove(&ns.name_any()).is_some() {
            self.changes.config = true;
        }
    }
    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.namespaces
            .retain(|name, _| listed.contains(&(String::new(), name.clone())));
        self.changes.config = true;
    }
}

/// The kit's watch counters on the controller's registry.
pub(crate) struct WatchCounters(pub Metrics);

impl WatchMetrics for WatchCounters {
    fn update(&self, _what: &'static str) {
        self.0.updates.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::watcher::Event;
    use metallb_runtime::watch::Relist;

    fn svc(ns: &str, name: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn service_changes_are_keyed_and_a_relist_drops_the_missing_and_asks_for_everything() {
        let mut w = Watched::default();
        let mut r = Relist::default();
        for ev in [
            Event::Init,
            Event::InitApply(svc("a", "x")),
            Event::InitApply(svc("b", "y")),
            Event::InitDone,
        ] {
            r.feed::<Service, _>(&mut w, ev);
        }
        let first = w.take_changes();
        assert!(first.all_services);
        assert_eq!(w.services.len(), 2);
        r.feed::<Service, _>(&mut w, Event::Delete(svc("a", "x")));
        assert_eq!(
            w.take_changes(),
            Changes {
                services: ["a/x".to_string()].into(),
                ..Default::default()
            }
        );
        assert!(w.service("a/x").is_none());
        // the watch drops; b/y goes meanwhile, c/z comes
        r.feed::<Service, _>(&mut w, Event::Init);
        r.feed::<Service, _>(&mut w, Event::InitApply(svc("c", "z")));
        r.feed::<Service, _>(&mut w, Event::InitDone);
        assert!(w.take_changes().all_services);
        assert_eq!(w.services.keys().collect::<Vec<_>>(), ["c/z"]);
    }

    #[test]
    fn a_namespace_that_comes_back_unchanged_does_not_rebuild_the_pools() {
        let mut w = Watched::default();
        Index::<Namespace>::apply(&mut w, namespace("ns", &[("team", "a")]));
        assert!(w.take_changes().config);
        Index::<Namespace>::apply(&mut w, namespace("ns", &[("team", "a")]));
        assert!(
            !w.take_changes().config,
            "an unchanged label set is no change"
        );
        Index::<Namespace>::apply(&mut w, namespace("ns", &[("team", "b")]));
        assert!(w.take_changes().config);
        assert_eq!(w.namespaces["ns"]["team"], "b");
    }

    #[test]
    fn listed_waits_for_every_announced_watch() {
        let mut w = Watched::default();
        w.watch_added("services");
        w.watch_added("namespaces");
        w.watch_listed("services");
        assert!(!w.listed());
        w.watch_listed("namespaces");
        assert!(w.listed());
    }
}
