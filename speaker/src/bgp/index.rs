//! Incremental form of the announcement logic: holds the node's compiled configuration,
//! the Service and endpoint inputs, and the per-Service results with their route table.
//! A Service or endpoint change recomputes that one Service and patches the route table;
//! a configuration or node change recomputes everything. The result is always equal to
//! [`NodeAnnouncements::compute`] over the same inputs (checked by the tests).
//!
//! The node's `FRRConfiguration` is cached too: a Service change records the (peer,
//! prefix) pairs it touches, and the next [`NodeAnnouncer::frr_configuration`] patches
//! only those entries of the sorted prefix lists instead of rebuilding 20 peers × 10,000
//! prefixes (the result is identical to [`build_frr_configuration`], checked by the
//! tests).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use metallb_api::frrk8s::FRRConfiguration;

use super::announce::{announce_service, NodeAnnouncements, NodeConfig, ServiceAnnouncement};
use super::frrconfig::{
    build_frr_configuration, build_with_positions, patch_neighbor_prefix, set_member, FrrTarget,
    NeighborPositions,
};
use super::input::{Endpoints, ServiceInfo, ServiceKey};

/// Above this many pending (peer, prefix) changes a full rebuild is cheaper than patching.
const MAX_PATCHES: usize = 20_000;

#[derive(Clone, Debug)]
struct FrrCache {
    target: FrrTarget,
    config: FRRConfiguration,
    positions: NeighborPositions,
    /// (peer, prefix) pairs changed since `config` was brought up to date.
    dirty: BTreeSet<(Arc<str>, Arc<str>)>,
    /// Names this content of `config`; see [`NodeAnnouncer::frr_generation`].
    generation: u64,
}

/// Generations are unique in the process, so that a number taken from one announcer never
/// names the content of another (the shell replaces its announcer on configuration changes).
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One node's announcement state, updated event by event.
#[derive(Clone, Debug)]
pub struct NodeAnnouncer {
    cfg: NodeConfig,
    services: BTreeMap<ServiceKey, ServiceInfo>,
    endpoints: BTreeMap<ServiceKey, Endpoints>,
    announcements: NodeAnnouncements,
    frr: Option<FrrCache>,
}

impl NodeAnnouncer {
    pub fn new(cfg: NodeConfig) -> Self {
        let announcements = NodeAnnouncements::new(&cfg);
        NodeAnnouncer {
            cfg,
            services: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            announcements,
            frr: None,
        }
    }

    /// Whether the Service is known (applied and not deleted).
    pub fn has_service(&self, key: &ServiceKey) -> bool {
        self.services.contains_key(key)
    }

    /// Keys of the known Services, sorted.
    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceInfo> {
        self.services.get(key)
    }

    pub fn service_keys(&self) -> impl Iterator<Item = &ServiceKey> + '_ {
        self.services.keys()
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub fn announcements(&self) -> &NodeAnnouncements {
        &self.announcements
    }

    /// Replace the compiled configuration (MetalLB objects or the node changed).
    /// Recomputes every Service; returns whether the configuration differed.
    pub fn set_config(&mut self, cfg: NodeConfig) -> bool {
        if cfg == self.cfg {
            return false;
        }
        self.cfg = cfg;
        self.frr = None;
        self.announcements = NodeAnnouncements::compute(
            &self.cfg,
            self.services
                .iter()
                .map(|(k, s)| (s, self.endpoints.get(k))),
        );
        true
    }

    /// A Service was created or updated. Returns whether the announcements changed.
    pub fn apply_service(&mut self, svc: ServiceInfo) -> bool {
        let key = svc.key.clone();
        self.services.insert(key.clone(), svc);
        self.recompute(&key)
    }

    /// A Service was deleted. Returns whether the announcements changed.
    pub fn delete_service(&mut self, key: &ServiceKey) -> bool {
        self.services.remove(key);
        let old = self.announcements.services.get(key).cloned();
        let changed = self.announcements.remove(key);
        if let Some(old) = old {
            self.mark_dirty(&old);
        }
        changed
    }

    /// The endpoints of a Service changed. Returns whether the announcements changed.
    pub fn apply_endpoints(&mut self, key: &ServiceKey, eps: Endpoints) -> bool {
        self.endpoints.insert(key.clone(), eps);
        self.recompute(key)
    }

    /// All EndpointSlices of a Service are gone.
    pub fn delete_endpoints(&mut self, key: &ServiceKey) -> bool {
        self.endpoints.remove(key);
        self.recompute(key)
    }

    fn recompute(&mut self, key: &ServiceKey) -> bool {
        let Some(svc) = self.services.get(key) else {
            return false;
        };
        let new = announce_service(&self.cfg, svc, self.endpoints.get(key));
        let old = self.announcements.services.get(key);
        if old == new.as_ref() {
            return false;
        }
        if let Some(old) = old.cloned() {
            self.mark_dirty(&old);
        }
        match new {
            Some(a) => {
                self.mark_dirty(&a);
                self.announcements.set(a)
            }
            None => self.announcements.remove(key),
        }
    }

    fn mark_dirty(&mut self, ann: &ServiceAnnouncement) {
        let Some(cache) = self.frr.as_mut() else {
            return;
        };
        if cache.dirty.len() > MAX_PATCHES {
            return; // a rebuild is coming anyway
        }
        for a in ann.ips.iter().flat_map(|i| i.adverts.iter()) {
            for p in a.peers.iter() {
                cache.dirty.insert((p.clone(), a.prefix_text.clone()));
            }
        }
    }

    /// The node's desired `FRRConfiguration`, brought up to date from the cache.
    pub fn frr_configuration(&mut self, target: &FrrTarget) -> &FRRConfiguration {
        self.desired_frr(target).0
    }

    /// [`Self::frr_configuration`] with its generation ([`Self::frr_generation`]).
    pub fn desired_frr(&mut self, target: &FrrTarget) -> (&FRRConfiguration, u64) {
        let routes = &self.announcements.routes;
        let reuse = self
            .frr
            .as_ref()
            .is_some_and(|c| c.target == *target && c.dirty.len() <= MAX_PATCHES);
        if !reuse {
            self.frr = None;
        }
        let cache = self.frr.get_or_insert_with(|| {
            let (config, positions) = build_with_positions(&self.cfg, routes, target);
            FrrCache {
                target: target.clone(),
                config,
                positions,
                dirty: BTreeSet::new(),
                generation: next_generation(),
            }
        });
        let dirty = std::mem::take(&mut cache.dirty);
        if !dirty.is_empty() {
            cache.generation = next_generation();
        }
        if let Some(bgp) = cache.config.spec.bgp.as_mut() {
            for (peer, prefix) in &dirty {
                let Some(&(r, n)) = cache.positions.get(peer) else {
                    continue;
                };
                let Some(router) = bgp.routers.get_mut(r) else {
                    continue;
                };
                if let Some(neighbor) = router.neighbors.get_mut(n) {
                    patch_neighbor_prefix(neighbor, prefix, routes, peer);
                }
                let vrf = routes.vrf_of(peer).unwrap_or("");
                set_member(&mut router.prefixes, prefix, routes.router_has(vrf, prefix));
            }
        }
        (&cache.config, cache.generation)
    }

    /// Names the content [`Self::frr_configuration`] returned last: equal numbers mean the
    /// same content. A new number may name the same content (a change and its undoing
    /// between two calls), which costs at most one needless write. Lets the writer
    /// remember what it wrote by number instead of by a copy of a 10,000-prefix spec.
    pub fn frr_generation(&self) -> Option<u64> {
        self.frr.as_ref().map(|c| c.generation)
    }

    /// The node's desired `FRRConfiguration`, built from scratch (no cache).
    pub fn build_frr_configuration(&self, target: &FrrTarget) -> FRRConfiguration {
        build_frr_configuration(&self.cfg, &self.announcements.routes, target)
    }
}

impl NodeAnnouncer {
    /// Load the announcer of node `node` from a whole cluster state (start-up, tests, the
    /// golden files). `None` when the node is not in `state`.
    pub fn from_cluster(
        state: &super::input::ClusterState,
        node: &str,
        options: &super::input::SpeakerOptions,
    ) -> Option<Self> {
        let n = state
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node))?;
        let info = super::input::NodeInfo::from_node(n);
        let mut out = NodeAnnouncer::new(NodeConfig::compile(&state.config, &info, options));
        for (k, e) in state.endpoints() {
            out.endpoints.insert(k, e);
        }
        for s in &state.services {
            out.apply_service(ServiceInfo::from_service(s));
        }
        Some(out)
    }
}
