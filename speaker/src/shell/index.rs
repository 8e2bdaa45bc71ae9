//! The shell's in-memory index: watch events in, plain values out.
//!
//! Services and EndpointSlices are reduced to what the decision needs the moment they
//! arrive: a [`ServiceInfo`] for the LoadBalancer Services this speaker handles (other
//! Services are not kept at all) and two booleans per EndpointSlice ("serves somewhere",
//! "serves on this node"). Memory therefore grows with the number of handled Services and
//! slices, not with their size or with the number of nodes. Configuration objects (few,
//! small) are kept whole, without `managedFields`, and recompiled on any change.
//!
//! The index also holds what the writers observed: this node's `FRRConfiguration`, its
//! `ServiceBGPStatus` objects and its `ConfigurationState`, with the bookkeeping that keeps a lagging watch from undoing
//! what was just written (a write's response replaces the observed object; watch events
//! for the versions it superseded are ignored).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use metallb_api::frrk8s::{FRRConfiguration, FRRConfigurationSpec, FRRConfigurationStatus};
use metallb_api::metallb::status::{LABEL_NODE, LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE};
use metallb_api::metallb::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, ConfigurationState, IPAddressPool,
    L2Advertisement, ServiceBGPStatus, ServiceL2Status,
};

use metallb_api::metallb::effective::{KeptVersion, Resolver};
use metallb_runtime::own::{OwnObject, OwnObjectWatch, Versions};
use metallb_runtime::watch::{obj_key, strip, Index, ObjKey, WatchedState};

use crate::bgp::input::{is_serving, slice_service};
use crate::bgp::{
    spec_changed, ConfigIssue, Endpoints, MetalLbConfig, NodeAnnouncer, NodeConfig, NodeInfo,
    ServiceInfo, ServiceKey, SpeakerOptions,
};
use crate::l2::view::{L2View, SpeakerPod};
use crate::l2::{L2Config, L2Node};
use crate::status::{StatusIntent, StatusKind};

// ===== dirty sets =====

/// Services whose decision changed since a consumer last looked.
#[derive(Debug, Default)]
pub struct DirtySet {
    keys: BTreeSet<ServiceKey>,
    all: bool,
}

impl DirtySet {
    pub fn mark(&mut self, key: &ServiceKey) {
        if !self.all {
            self.keys.insert(key.clone());
        }
    }

    pub fn mark_all(&mut self) {
        self.all = true;
        self.keys.clear();
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.keys.is_empty()
    }

    /// Take everything (`None` = every Service).
    pub fn take(&mut self) -> Option<BTreeSet<ServiceKey>> {
        let all = std::mem::take(&mut self.all);
        let keys = std::mem::take(&mut self.keys);
        (!all).then_some(keys)
    }

    /// Whether everything is dirty (call [`DirtySet::expand`] before [`DirtySet::take_some`]).
    pub fn wants_all(&self) -> bool {
        self.all
    }

    /// Replace "everything" by the explicit set of keys.
    pub fn expand(&mut self, universe: BTreeSet<ServiceKey>) {
        self.all = false;
        self.keys = universe;
    }

    /// Take at most `n` keys.
    pub fn take_some(&mut self, n: usize) -> Vec<ServiceKey> {
        let mut out = Vec::with_capacity(n.min(self.keys.len()));
        while out.len() < n {
            match self.keys.pop_first() {
                Some(k) => out.push(k),
                None => break,
            }
        }
        out
    }
}

// ===== configuration objects =====

/// Whether `a` and `b` differ in their resourceVersion at most.
fn same_but_version<K: Resource + Clone + PartialEq>(a: &K, b: &K) -> bool {
    if a.meta().resource_version == b.meta().resource_version {
        return a == b;
    }
    let mut a = a.clone();
    a.meta_mut().resource_version = b.meta().resource_version.clone();
    a == *b
}

/// Objects of one kind by `namespace/name`. Each method returns whether the set of
/// objects changed.
#[derive(Debug)]
pub struct Keyed<K> {
    items: BTreeMap<ObjKey, K>,
}

impl<K> Default for Keyed<K> {
    fn default() -> Self {
        Keyed {
            items: BTreeMap::new(),
        }
    }
}

impl<K: Resource + Clone + PartialEq> Keyed<K> {
    /// A new resourceVersion alone is no change: the object is kept (with it) but the
    /// configuration is not compiled again for it.
    pub fn apply(&mut self, o: K) -> bool {
        let k = obj_key(&o);
        let changed = match self.items.get(&k) {
            Some(old) => !same_but_version(old, &o),
            None => true,
        };
        self.items.insert(k, o);
        changed
    }

    pub fn delete(&mut self, o: &K) -> bool {
        self.items.remove(&obj_key(o)).is_some()
    }

    pub fn reset(&mut self, listed: &HashSet<ObjKey>) -> bool {
        let before = self.items.len();
        self.items.retain(|k, _| listed.contains(k));
        self.items.len() != before
    }

    pub fn values(&self) -> Vec<K> {
        self.items.values().cloned().collect()
    }
}

/// The MetalLB configuration objects of the MetalLB namespace.
#[derive(Debug, Default)]
pub struct ConfigObjects {
    pub pools: Keyed<IPAddressPool>,
    pub peers: Keyed<BGPPeer>,
    pub advertisements: Keyed<BGPAdvertisement>,
    pub communities: Keyed<Community>,
    pub bfd_profiles: Keyed<BFDProfile>,
    pub l2_advertisements: Keyed<L2Advertisement>,
}

impl ConfigObjects {
    pub fn to_config(&self) -> MetalLbConfig {
        MetalLbConfig {
            pools: self.pools.values(),
            peers: self.peers.values(),
            advertisements: self.advertisements.values(),
            communities: self.communities.values(),
            bfd_profiles: self.bfd_profiles.values(),
            l2_advertisements: self.l2_advertisements.values(),
        }
    }
}

// Stale-read protection (our writes' echoes): [`metallb_runtime::own`].

// ===== this node's FRRConfiguration as observed =====

/// The spec of the observed `metallb-<node>`.
#[derive(Debug)]
pub enum ObservedSpec {
    /// What we wrote for the desired configuration of this generation
    /// ([`crate::bgp::NodeAnnouncer::frr_generation`]). The spec itself is not kept: it is
    /// the announcer's, and a second copy of a 10,000-prefix spec is about 1 MB.
    Ours { generation: u64 },
    /// Someone else's edit, or a fresh read: kept until compared with the desired spec.
    Held(Box<FRRConfigurationSpec>),
}

/// `metallb-<node>` as last seen by the watch or returned by our own write: metadata
/// (without managedFields), status and [`ObservedSpec`].
#[derive(Debug)]
pub struct ObservedObject {
    pub metadata: ObjectMeta,
    pub status: Option<FRRConfigurationStatus>,
    pub spec: ObservedSpec,
}

impl ObservedObject {
    fn held(o: FRRConfiguration) -> Self {
        ObservedObject {
            metadata: o.metadata,
            status: o.status,
            spec: ObservedSpec::Held(Box::new(o.spec)),
        }
    }
}

/// `metallb-<node>` as last seen by the watch or returned by our own write.
#[derive(Debug, Default)]
pub struct FrrObserved {
    pub obj: Option<ObservedObject>,
    watch: OwnObjectWatch,
}

impl Index<FRRConfiguration> for FrrObserved {
    fn apply(&mut self, o: FRRConfiguration) {
        if let Some(o) = self.watch.apply(o) {
            self.obj = Some(ObservedObject::held(o));
        }
    }

    fn delete(&mut self, _: FRRConfiguration) {
        self.obj = None;
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        if OwnObjectWatch::gone(self.obj.as_ref().map(|o| &o.metadata), listed) {
            self.obj = None;
        }
    }

    fn listing(&mut self) {
        self.watch.listing();
    }
}

impl FrrObserved {
    /// Our write of the desired configuration of `generation` succeeded; `metadata` and
    /// `status` are from the server's response.
    pub fn record_write(
        &mut self,
        mut metadata: ObjectMeta,
        status: Option<FRRConfigurationStatus>,
        generation: u64,
    ) {
        let replaced = self
            .obj
            .as_ref()
            .and_then(|o| o.metadata.resource_version.as_deref());
        self.watch
            .wrote(replaced, metadata.resource_version.as_deref());
        metadata.managed_fields = None;
        self.obj = Some(ObservedObject {
            metadata,
            status,
            spec: ObservedSpec::Ours { generation },
        });
    }

    /// A fresh read (after a conflict).
    pub fn record_read(&mut self, current: Option<FRRConfiguration>) {
        self.obj = current.map(|mut o| {
            strip(&mut o);
            ObservedObject::held(o)
        });
    }

    /// Whether the observed object must be rewritten to become `desired` (of
    /// `generation`). A held spec found equal is dropped: from then on the object is known
    /// by the generation alone.
    pub fn differs_from(&mut self, desired: &FRRConfigurationSpec, generation: u64) -> bool {
        let Some(obj) = self.obj.as_mut() else {
            return true;
        };
        match &obj.spec {
            ObservedSpec::Ours { generation: g } => *g != generation,
            ObservedSpec::Held(spec) => {
                if spec_changed(spec, desired) {
                    return true;
                }
                obj.spec = ObservedSpec::Ours { generation };
                false
            }
        }
    }
}

// ===== this node's ServiceBGPStatus / ServiceL2Status objects as observed =====

/// One observed status object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusObs {
    pub key: ServiceKey,
    /// The status's items (peers, interfaces) when the status names this node and Service
    /// (else `None`: the status must be rewritten). Interned: thousands of objects name
    /// the same peers.
    pub items: Option<Arc<[String]>>,
    pub rv: Option<String>,
    /// The node that wrote it (its `metallb.io/node` label): ours, or, for kinds watched
    /// across nodes (ServiceL2Status), another's.
    pub node: Option<String>,
}

/// What must be done to one Service's status objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusOp {
    Create(StatusIntent),
    Patch { name: String, intent: StatusIntent },
    Delete { name: String, key: ServiceKey },
}

/// The node's status objects of one kind by name and by Service.
#[derive(Debug)]
pub struct StatusIndex<K> {
    objs: HashMap<String, StatusObs>,
    /// Distinct item lists, shared by the objects that carry them.
    item_lists: HashSet<Arc<[String]>>,
    by_service: HashMap<ServiceKey, Vec<String>>,
    versions: Versions,
    /// Names we deleted: later watch events for them (older than the delete) are ignored.
    tombstones: HashSet<String>,
    /// Names whose deletion the watch reported, most recent last (bounded): a write
    /// response that arrives after its object's deletion event (another node deleted it
    /// right after we wrote it) must not bring the object back into the index, where it
    /// would stay, believed right, until the next re-list.
    gone: (HashSet<String>, std::collections::VecDeque<String>),
    kind: std::marker::PhantomData<fn() -> K>,
}

/// How many deleted names [`StatusIndex`] remembers (far more than writes in flight).
const GONE_KEPT: usize = 4096;

impl<K> Default for StatusIndex<K> {
    fn default() -> Self {
        StatusIndex {
            objs: HashMap::new(),
            item_lists: HashSet::new(),
            by_service: HashMap::new(),
            versions: Versions::default(),
            tombstones: HashSet::new(),
            gone: Default::default(),
            kind: std::marker::PhantomData,
        }
    }
}

fn status_key<K: StatusKind>(o: &K) -> Option<ServiceKey> {
    let labels = o.labels();
    match (
        labels.get(LABEL_SERVICE_NAME),
        labels.get(LABEL_SERVICE_NAMESPACE),
    ) {
        (Some(name), Some(ns)) => Some(ServiceKey::new(ns.clone(), name.clone())),
        _ => o.status_service(),
    }
}

impl<K: StatusKind> StatusIndex<K> {
    /// A status object was created, changed or listed. Returns its Service when what we
    /// hold for it changed.
    pub fn apply(&mut self, o: K) -> Option<ServiceKey> {
        let name = o.name_any();
        if self.tombstones.contains(&name) {
            return None;
        }
        if self.versions.stale(o.meta().resource_version.as_deref()) {
            return None;
        }
        let key = status_key(&o)?;
        let rv = o.meta().resource_version.clone();
        let items = o.status_items(&key);
        self.insert(
            name,
            key.clone(),
            items,
            rv,
            o.labels().get(LABEL_NODE).cloned(),
        );
        Some(key)
    }

    /// A status object was deleted. Returns its Service, if we held it.
    pub fn delete(&mut self, o: &K) -> Option<ServiceKey> {
        let name = o.name_any();
        self.tombstones.remove(&name);
        if self.gone.0.insert(name.clone()) {
            self.gone.1.push_back(name.clone());
            if self.gone.1.len() > GONE_KEPT {
                if let Some(old) = self.gone.1.pop_front() {
                    self.gone.0.remove(&old);
                }
            }
        }
        self.remove(&name)
    }

    /// A re-list ended (all in one namespace). Returns the Services of the objects it did
    /// not return.
    pub fn reset(&mut self, listed: &HashSet<ObjKey>) -> Vec<ServiceKey> {
        self.versions.clear();
        self.tombstones.clear();
        let listed: HashSet<&str> = listed.iter().map(|(_, n)| n.as_str()).collect();
        let gone: Vec<String> = self
            .objs
            .keys()
            .filter(|n| !listed.contains(n.as_str()))
            .cloned()
            .collect();
        gone.iter().filter_map(|n| self.remove(n)).collect()
    }

    fn insert(
        &mut self,
        name: String,
        key: ServiceKey,
        items: Option<Vec<String>>,
        rv: Option<String>,
        node: Option<String>,
    ) {
        if let Some(old) = self.objs.get(&name) {
            if old.key != key {
                let old_key = old.key.clone();
                self.unlink(&name, &old_key);
            }
        }
        let items = items.map(|i| self.intern(i));
        // Keep the key this index already holds for the Service (one allocation each).
        let key = match self.by_service.get_key_value(&key) {
            Some((k, _)) => k.clone(),
            None => key,
        };
        let names = self.by_service.entry(key.clone()).or_default();
        if !names.contains(&name) {
            names.push(name.clone());
            names.sort();
            names.shrink_to_fit();
        }
        self.objs.insert(
            name,
            StatusObs {
                key,
                items,
                rv,
                node,
            },
        );
    }

    fn intern(&mut self, items: Vec<String>) -> Arc<[String]> {
        if let Some(p) = self.item_lists.get(items.as_slice()) {
            return p.clone();
        }
        let p: Arc<[String]> = items.into();
        // Bounded by the distinct lists in use; dropped ones are pruned here.
        if self.item_lists.len() > 1024 {
            self.item_lists.retain(|p| Arc::strong_count(p) > 1);
        }
        self.item_lists.insert(p.clone());
        p
    }

    fn unlink(&mut self, name: &str, key: &ServiceKey) {
        if let Some(set) = self.by_service.get_mut(key) {
            set.retain(|n| n != name);
            if set.is_empty() {
                self.by_service.remove(key);
            }
        }
    }

    fn remove(&mut self, name: &str) -> Option<ServiceKey> {
        let obs = self.objs.remove(name)?;
        self.unlink(name, &obs.key);
        Some(obs.key)
    }

    /// Services having at least one object.
    pub fn services(&self) -> impl Iterator<Item = &ServiceKey> + '_ {
        self.by_service.keys()
    }

    pub fn len(&self) -> usize {
        self.objs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objs.is_empty()
    }

    /// The operations bringing `own`'s objects for `key` to `desired`. With
    /// `clean_others`, a node that wants an object (the elected one: one object per
    /// Service) also deletes the other nodes' objects for the Service, as upstream's L2
    /// leader does: a node that died abruptly cannot delete its own.
    pub fn ops(
        &self,
        key: &ServiceKey,
        desired: Option<&StatusIntent>,
        own: &str,
        clean_others: bool,
    ) -> Vec<StatusOp> {
        let all: Vec<&String> = self
            .by_service
            .get(key)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let mine = |n: &&String| self.objs.get(*n).and_then(|o| o.node.as_deref()) == Some(own);
        let (names, others): (Vec<&String>, Vec<&String>) = all.into_iter().partition(mine);
        let mut out = Vec::new();
        if clean_others && desired.is_some() {
            for n in others {
                out.push(StatusOp::Delete {
                    name: n.clone(),
                    key: key.clone(),
                });
            }
        }
        match desired {
            None => {
                for n in names {
                    out.push(StatusOp::Delete {
                        name: n.clone(),
                        key: key.clone(),
                    });
                }
            }
            Some(intent) => {
                let right = |n: &String| {
                    self.objs.get(n).and_then(|o| o.items.as_deref())
                        == Some(intent.items.as_slice())
                };
                // keep the object already right, else the first one; delete duplicates
                let keep = names.iter().find(|n| right(n)).or(names.first()).copied();
                match keep {
                    None => out.push(StatusOp::Create(intent.clone())),
                    Some(k) => {
                        if !right(k) {
                            out.push(StatusOp::Patch {
                                name: k.clone(),
                                intent: intent.clone(),
                            });
                        }
                    }
                }
                for n in names.into_iter().filter(|n| Some(*n) != keep) {
                    out.push(StatusOp::Delete {
                        name: n.clone(),
                        key: key.clone(),
                    });
                }
            }
        }
        out
    }

    /// Our create or status patch of `obj` succeeded (the server's response).
    pub fn record_written(&mut self, obj: &K) {
        let name = obj.name_any();
        if self.gone.0.contains(&name) {
            // deleted (by another node) before our response was handled
            return;
        }
        let replaced = self.objs.get(&name).and_then(|o| o.rv.clone());
        let rv = obj.meta().resource_version.clone();
        self.versions.wrote(replaced.as_deref(), rv.as_deref());
        if let Some(key) = status_key(obj) {
            let items = obj.status_items(&key);
            self.insert(name, key, items, rv, obj.labels().get(LABEL_NODE).cloned());
        }
    }

    /// Versions of our writes the watch has not confirmed yet (bounded by the lag).
    pub fn in_flight(&self) -> usize {
        self.versions.in_flight()
    }

    /// Our delete succeeded (or the object was already gone).
    pub fn record_deleted(&mut self, name: &str) {
        self.remove(name);
        self.tombstones.insert(name.to_string());
    }
}

// ===== this node's ConfigurationState as observed =====

/// `speaker-<node>` as last seen by its watch or returned by our own write, and whether
/// its writer has something to look at.
#[derive(Debug)]
pub struct ConfigStateObserved {
    /// The object (without managedFields) and the versions of our writes in flight.
    pub own: OwnObject<ConfigurationState>,
    /// Set when the issues changed, when someone else edited or deleted the object and
    /// after a failed write; cleared by the writer once the object says what it must.
    pub dirty: bool,
}

impl Default for ConfigStateObserved {
    fn default() -> Self {
        ConfigStateObserved {
            own: OwnObject::default(),
            // the first pass after the watches synced compares, and creates if needed
            dirty: true,
        }
    }
}

impl Index<ConfigurationState> for ConfigStateObserved {
    fn apply(&mut self, o: ConfigurationState) {
        self.dirty |= self.own.observe(o);
    }

    fn delete(&mut self, deleted: ConfigurationState) {
        self.dirty |= self.own.forget(&deleted);
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.dirty |= self.own.relisted(listed);
    }

    fn listing(&mut self) {
        Index::<ConfigurationState>::listing(&mut self.own);
    }
}

impl ConfigStateObserved {
    /// Our write succeeded: `obj` is the server's response.
    pub fn record_write(&mut self, obj: ConfigurationState) {
        self.own.wrote(obj);
    }

    /// A fresh read (after our write found the object missing or already there).
    pub fn record_read(&mut self, current: Option<ConfigurationState>) {
        self.own.read(current);
        self.dirty = true;
    }
}

// ===== the whole index =====

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SliceSummary {
    any_serving: bool,
    local_serving: bool,
    /// Nodes with a serving endpoint (L2 elects among them with ETP Local), sorted.
    serving_nodes: Box<[Arc<str>]>,
}

/// Everything the speaker shell knows, behind one lock (never held across `.await`).
#[derive(Debug)]
pub struct Inputs {
    node_name: String,
    options: SpeakerOptions,
    pub node: Option<NodeInfo>,
    pub config: ConfigObjects,
    /// Which version of each configuration object is in effect (seeded at start from the
    /// persisted record, see [`Inputs::seed_kept_versions`]).
    resolver: Resolver,
    config_dirty: bool,
    last_issues: Vec<ConfigIssue>,
    pub announcer: NodeAnnouncer,
    /// slice → (its Service, summary).
    slices: HashMap<ObjKey, (ServiceKey, SliceSummary)>,
    /// Service → names of its slices (few: a Vec).
    service_slices: HashMap<ServiceKey, Vec<String>>,
    /// Watches that have not delivered their first complete list.
    unlisted: BTreeSet<&'static str>,
    /// Services whose decision changed, for the metrics and for the status writer.
    pub metrics_dirty: DirtySet,
    pub status_dirty: DirtySet,
    pub frr: FrrObserved,
    pub status: StatusIndex<ServiceBGPStatus>,
    /// This node's ServiceL2Status objects, and the Services whose one must be checked.
    pub l2_status: StatusIndex<ServiceL2Status>,
    pub l2_status_dirty: DirtySet,
    pub config_state: ConfigStateObserved,
    /// Every Node and the L2 decisions.
    pub l2: L2View,
}

impl Inputs {
    pub fn new(node_name: &str, options: SpeakerOptions) -> Self {
        let node = NodeInfo::new(node_name);
        let empty = NodeConfig::compile(&MetalLbConfig::default(), &node, &options);
        Inputs {
            node_name: node_name.to_string(),
            options,
            node: None,
            config: ConfigObjects::default(),
            resolver: Resolver::new(),
            config_dirty: true,
            last_issues: Vec::new(),
            announcer: NodeAnnouncer::new(empty),
            slices: HashMap::new(),
            service_slices: HashMap::new(),
            unlisted: BTreeSet::new(),
            metrics_dirty: DirtySet::default(),
            status_dirty: DirtySet::default(),
            frr: FrrObserved::default(),
            status: StatusIndex::default(),
            l2_status: StatusIndex::default(),
            l2_status_dirty: DirtySet::default(),
            config_state: ConfigStateObserved::default(),
            l2: L2View::default(),
        }
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Every watch has listed once and the Node was seen: decisions are complete.
    pub fn ready(&self) -> bool {
        self.unlisted.is_empty() && self.node.is_some()
    }

    fn mark(&mut self, key: &ServiceKey) {
        self.metrics_dirty.mark(key);
        self.status_dirty.mark(key);
        self.l2.mark(key);
    }

    // --- node and configuration ---

    /// A configuration object changed: recompile before the next decision.
    pub fn config_changed(&mut self) {
        self.config_dirty = true;
    }

    /// Recompile the node's configuration if an input changed. Returns the issues when
    /// they differ from the last compile (to be logged).
    pub fn compile_if_dirty(&mut self) -> Option<Vec<ConfigIssue>> {
        if !self.config_dirty {
            return None;
        }
        let node = self.node.as_ref()?;
        self.config_dirty = false;
        let (effective, mut kept) = crate::bgp::effective::resolve(
            &mut self.resolver,
            &self.config.to_config(),
            node,
            k8s_openapi::jiff::Timestamp::now(),
        );
        self.l2.set_config(L2Config::compile(
            &effective.pools,
            &effective.l2_advertisements,
        ));
        let cfg = NodeConfig::compile(&effective, node, &self.options);
        let mut issues = cfg.issues.clone();
        issues.append(&mut kept);
        issues.sort();
        issues.dedup();
        if self.announcer.set_config(cfg) {
            self.metrics_dirty.mark_all();
            self.status_dirty.mark_all();
        }
        if issues != self.last_issues {
            self.last_issues = issues.clone();
            self.config_state.dirty = true;
            return Some(issues);
        }
        None
    }

    /// Continue from a persisted record. Before the first compile, which must see every
    /// object (the shell compiles only once every watch has listed): an object the first
    /// resolution does not see loses its record.
    pub fn seed_kept_versions(&mut self, record: &[KeptVersion]) {
        self.resolver = Resolver::seeded(record);
    }

    /// What to persist so that a restart makes the same choices.
    pub fn kept_versions(&self) -> Vec<KeptVersion> {
        self.resolver.record()
    }

    pub fn config_issues(&self) -> &[ConfigIssue] {
        &self.last_issues
    }

    // --- Services ---

    pub fn apply_service(&mut self, svc: &Service) {
        self.apply_service_info(ServiceInfo::from_service(svc));
    }

    fn apply_service_info(&mut self, info: ServiceInfo) {
        if !info.is_load_balancer || !self.options.handles(&info) {
            self.forget_service(&info.key);
            return;
        }
        let key = info.key.clone();
        if !self.announcer.has_service(&key) {
            if let Some(eps) = self.endpoints_of(&key) {
                self.announcer.apply_endpoints(&key, eps);
            }
        }
        if self.announcer.apply_service(info) {
            self.mark(&key);
        }
    }

    fn forget_service(&mut self, key: &ServiceKey) {
        if self.announcer.has_service(key) {
            let changed = self.announcer.delete_service(key);
            self.announcer.delete_endpoints(key);
            if changed {
                self.mark(key);
            }
        }
    }

    /// Number of handled Services.
    pub fn services_len(&self) -> usize {
        self.announcer.service_keys().count()
    }

    // --- EndpointSlices ---

    fn apply_slice(&mut self, slice: &EndpointSlice) {
        let key = obj_key(slice);
        let Some(svc) = slice_service(slice) else {
            self.remove_slice(&key);
            return;
        };
        let mut summary = SliceSummary::default();
        let mut nodes: BTreeSet<&str> = BTreeSet::new();
        for ep in slice.endpoints.iter().filter(|e| is_serving(e)) {
            summary.any_serving = true;
            if ep.node_name.as_deref() == Some(self.node_name.as_str()) {
                summary.local_serving = true;
            }
            if let Some(n) = ep.node_name.as_deref().filter(|n| !n.is_empty()) {
                nodes.insert(n);
            }
        }
        summary.serving_nodes = nodes.into_iter().map(Arc::from).collect();
        match self.slices.get(&key) {
            Some((s, sum)) if *s == svc && *sum == summary => return,
            Some((s, _)) if *s != svc => self.remove_slice(&key),
            _ => {}
        }
        let names = self.service_slices.entry(svc.clone()).or_default();
        if !names.contains(&key.1) {
            names.push(key.1.clone());
            names.shrink_to_fit();
        }
        self.slices.insert(key, (svc.clone(), summary));
        self.refresh_endpoints(&svc);
    }

    fn remove_slice(&mut self, key: &ObjKey) {
        let Some((svc, _)) = self.slices.remove(key) else {
            return;
        };
        if let Some(names) = self.service_slices.get_mut(&svc) {
            names.retain(|n| *n != key.1);
            if names.is_empty() {
                self.service_slices.remove(&svc);
            }
        }
        self.refresh_endpoints(&svc);
    }

    /// The endpoint summary of a Service from its slices (`None`: no slice).
    fn endpoints_of(&self, svc: &ServiceKey) -> Option<Endpoints> {
        let names = self.service_slices.get(svc)?;
        let mut out = Endpoints::default();
        for n in names {
            if let Some((_, s)) = self.slices.get(&(svc.namespace.clone(), n.clone())) {
                out.any_serving |= s.any_serving;
                if s.local_serving {
                    out.serving_nodes.insert(self.node_name.clone());
                }
            }
        }
        Some(out)
    }

    // --- L2 ---

    /// Recompute the L2 decisions the last events touched; the Services whose decision
    /// changed.
    pub fn refresh_l2(&mut self) -> Vec<ServiceKey> {
        if !self.l2.is_dirty() {
            return Vec::new();
        }
        let (slices, by_service, announcer) = (&self.slices, &self.service_slices, &self.announcer);
        self.l2.refresh(
            announcer.service_keys(),
            |k| {
                let eps = cluster_endpoints(slices, by_service, k);
                announcer.service(k).map(|s| (s, eps))
            },
            &self.options,
        )
    }

    fn refresh_endpoints(&mut self, svc: &ServiceKey) {
        if !self.announcer.has_service(svc) {
            return;
        }
        // A slice summary changed: which nodes serve matters to the L2 election even when
        // this node's BGP view (serving here, serving anywhere) stays the same.
        self.l2.mark(svc);
        let changed = match self.endpoints_of(svc) {
            Some(e) => self.announcer.apply_endpoints(svc, e),
            None => self.announcer.delete_endpoints(svc),
        };
        if changed {
            self.mark(svc);
        }
    }

    /// Number of EndpointSlices summarised.
    pub fn slices_len(&self) -> usize {
        self.slices.len()
    }

    // --- status intents ---

    /// The `ServiceBGPStatus` this node wants for `key`.
    pub fn status_intent(&self, key: &ServiceKey) -> Option<StatusIntent> {
        let a = self.announcer.announcements().services.get(key)?;
        let peers = a.peers();
        (!peers.is_empty()).then(|| StatusIntent {
            service: key.clone(),
            node: self.node_name.clone(),
            items: peers,
        })
    }

    /// The `ServiceL2Status` this node wants for `key`: one when it is elected, with the
    /// interfaces when the advertisements restrict them.
    pub fn l2_status_intent(&self, key: &ServiceKey) -> Option<StatusIntent> {
        let w = self.l2.decision(key)?.for_node(&self.node_name).ok()?;
        Some(StatusIntent {
            service: key.clone(),
            node: self.node_name.clone(),
            items: w.interfaces.listed(),
        })
    }

    /// Every Service this node announces over L2 or has a ServiceL2Status for.
    pub fn l2_status_universe(&self) -> BTreeSet<ServiceKey> {
        (self.l2.decisions())
            .filter(|d| d.for_node(&self.node_name).is_ok())
            .map(|d| &d.key)
            .chain(self.l2_status.services())
            .cloned()
            .collect()
    }

    /// Every Service that has a decision or a status object.
    pub fn status_universe(&self) -> BTreeSet<ServiceKey> {
        self.announcer
            .announcements()
            .services
            .keys()
            .chain(self.status.services())
            .cloned()
            .collect()
    }
}

/// A Service's endpoint summary with every serving node (for the L2 election), from its
/// slices' summaries.
fn cluster_endpoints(
    slices: &HashMap<ObjKey, (ServiceKey, SliceSummary)>,
    by_service: &HashMap<ServiceKey, Vec<String>>,
    svc: &ServiceKey,
) -> Option<Endpoints> {
    let names = by_service.get(svc)?;
    let mut out = Endpoints::default();
    for n in names {
        if let Some((_, s)) = slices.get(&(svc.namespace.clone(), n.clone())) {
            out.any_serving |= s.any_serving;
            out.serving_nodes
                .extend(s.serving_nodes.iter().map(|n| n.to_string()));
        }
    }
    Some(out)
}

// ===== watches into the index =====

impl WatchedState for Inputs {
    fn watch_added(&mut self, what: &'static str) {
        self.unlisted.insert(what);
    }

    fn watch_listed(&mut self, what: &'static str) {
        self.unlisted.remove(what);
    }
}

/// Every Node: this one decides what the node announces over BGP, all of them are the
/// candidates of the L2 election.
impl Index<Node> for Inputs {
    fn apply(&mut self, n: Node) {
        let l2 = L2Node::from_node(&n);
        if l2.info.name == self.node_name && self.node.as_ref() != Some(&l2.info) {
            self.node = Some(l2.info.clone());
            self.config_dirty = true;
        }
        self.l2.apply_node(l2);
    }

    // This node going away (and this pod with it): keep deciding from what was last seen
    // rather than from an unlabelled node. Another node: no longer a candidate.
    fn delete(&mut self, n: Node) {
        if n.metadata.name.as_deref() != Some(self.node_name.as_str()) {
            self.l2.delete_node(&n.name_any());
        }
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        let own = self.node_name.as_str();
        let names: HashSet<&str> = listed.iter().map(|(_, n)| n.as_str()).collect();
        self.l2.retain_nodes(|n| n == own || names.contains(n));
    }
}

impl Index<Service> for Inputs {
    fn apply(&mut self, s: Service) {
        self.apply_service(&s);
    }

    fn delete(&mut self, s: Service) {
        self.forget_service(&ServiceInfo::from_service(&s).key);
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        let gone: Vec<ServiceKey> = self
            .announcer
            .service_keys()
            .filter(|k| !listed.contains(&(k.namespace.clone(), k.name.clone())))
            .cloned()
            .collect();
        for k in gone {
            self.forget_service(&k);
        }
    }
}

impl Index<EndpointSlice> for Inputs {
    fn apply(&mut self, s: EndpointSlice) {
        self.apply_slice(&s);
    }

    fn delete(&mut self, s: EndpointSlice) {
        self.remove_slice(&obj_key(&s));
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        let gone: Vec<ObjKey> = self
            .slices
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            self.remove_slice(&k);
        }
    }
}

/// A MetalLB configuration kind: where [`ConfigObjects`] keeps it.
pub trait ConfigKind: Resource + Clone + PartialEq + Sized {
    fn keyed(c: &mut ConfigObjects) -> &mut Keyed<Self>;
    /// Drops what the speaker never reads and others keep writing, before indexing.
    fn clear_unread(&mut self) {}
}

macro_rules! config_kind {
    ($($kind:ty => $field:ident $({ $($extra:tt)* })?),* $(,)?) => {$(
        impl ConfigKind for $kind {
            fn keyed(c: &mut ConfigObjects) -> &mut Keyed<Self> {
                &mut c.$field
            }
            $($($extra)*)?
        }
    )*};
}

config_kind!(
    // The controller writes a pool's status (its allocation counts) after allocations:
    // during a burst of Services several times a second, each of which would compile the
    // node's whole configuration again on every speaker.
    IPAddressPool => pools {
        fn clear_unread(&mut self) {
            self.status = None;
        }
    },
    BGPPeer => peers,
    BGPAdvertisement => advertisements,
    Community => communities,
    BFDProfile => bfd_profiles,
    L2Advertisement => l2_advertisements,
);

/// Any change to a configuration object recompiles the node's configuration.
impl<K: ConfigKind> Index<K> for Inputs {
    fn apply(&mut self, mut o: K) {
        o.clear_unread();
        if K::keyed(&mut self.config).apply(o) {
            self.config_changed();
        }
    }

    fn delete(&mut self, o: K) {
        if K::keyed(&mut self.config).delete(&o) {
            self.config_changed();
        }
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        if K::keyed(&mut self.config).reset(listed) {
            self.config_changed();
        }
    }
}

impl Index<FRRConfiguration> for Inputs {
    fn apply(&mut self, o: FRRConfiguration) {
        self.frr.apply(o);
    }

    fn delete(&mut self, o: FRRConfiguration) {
        self.frr.delete(o);
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.frr.reset(listed);
    }

    fn listing(&mut self) {
        self.frr.listing();
    }
}

/// Speaker Pods (MetalLB's namespace, by label): which nodes have a live speaker, for the
/// L2 election.
impl Index<Pod> for Inputs {
    fn apply(&mut self, p: Pod) {
        self.l2.set_speaker(&p.name_any(), SpeakerPod::from_pod(&p));
    }

    fn delete(&mut self, p: Pod) {
        self.l2.set_speaker(&p.name_any(), None);
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        let names: HashSet<&str> = listed.iter().map(|(_, n)| n.as_str()).collect();
        self.l2.retain_speakers(|n| names.contains(n));
    }
}

/// A ServiceL2Status that changed marks its Service for the L2 status writer.
impl Index<ServiceL2Status> for Inputs {
    fn apply(&mut self, o: ServiceL2Status) {
        if let Some(k) = self.l2_status.apply(o) {
            self.l2_status_dirty.mark(&k);
        }
    }

    fn delete(&mut self, o: ServiceL2Status) {
        if let Some(k) = self.l2_status.delete(&o) {
            self.l2_status_dirty.mark(&k);
        }
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        for k in self.l2_status.reset(listed) {
            self.l2_status_dirty.mark(&k);
        }
    }
}

/// A status object that changed marks its Service for the status writer.
impl Index<ServiceBGPStatus> for Inputs {
    fn apply(&mut self, o: ServiceBGPStatus) {
        if let Some(k) = self.status.apply(o) {
            self.status_dirty.mark(&k);
        }
    }

    fn delete(&mut self, o: ServiceBGPStatus) {
        if let Some(k) = self.status.delete(&o) {
            self.status_dirty.mark(&k);
        }
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        for k in self.status.reset(listed) {
            self.status_dirty.mark(&k);
        }
    }
}

impl Index<ConfigurationState> for Inputs {
    fn apply(&mut self, o: ConfigurationState) {
        self.config_state.apply(o);
    }

    fn delete(&mut self, o: ConfigurationState) {
        self.config_state.delete(o);
    }

    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.config_state.reset(listed);
    }

    fn listing(&mut self) {
        self.config_state.listing();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use metallb_runtime::watch::Relist;
    use serde_json::json;

    /// Feed events of one kind through the watch runner's re-list bookkeeping.
    fn feed<K: Resource, I: Index<K>>(index: &mut I, evs: impl IntoIterator<Item = Event<K>>) {
        let mut relist = Relist::default();
        for ev in evs {
            relist.feed(index, ev);
        }
    }

    fn svc(name: &str, ip: Option<&str>, class: Option<&str>, local: bool) -> Service {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if local {"Local"} else {"Cluster"}},
        });
        if let Some(c) = class {
            v["spec"]["loadBalancerClass"] = json!(c);
        }
        if let Some(ip) = ip {
            v["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
        }
        serde_json::from_value(v).expect("service")
    }

    fn slice(name: &str, svc: &str, nodes: &[&str]) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": nodes.iter().map(|n| json!({"addresses": ["10.1.1.1"], "nodeName": n})).collect::<Vec<_>>(),
        }))
        .expect("slice")
    }

    #[test]
    fn keeps_only_handled_services_and_slice_summaries() {
        let mut inp = Inputs::new("n1", SpeakerOptions::default());
        inp.apply(svc("a", Some("10.0.0.1"), None, false));
        inp.apply(svc("b", None, Some("other"), false));
        assert_eq!(inp.services_len(), 1);
        inp.apply(slice("a-1", "a", &["n2"]));
        inp.apply(slice("b-1", "b", &["n1"]));
        assert_eq!(inp.slices_len(), 2);
        let k = ServiceKey::new("default", "a");
        let e = inp.endpoints_of(&k).expect("endpoints");
        assert!(e.any_serving && e.serving_nodes.is_empty());
    }

    #[test]
    fn a_pools_status_write_compiles_nothing_again_and_a_spec_edit_does() {
        let pool = |rv: &str, cidr: &str, assigned: i64| -> IPAddressPool {
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "metallb-system", "resourceVersion": rv,
                             "generation": 1, "labels": {"zone": "a"}},
                "spec": {"addresses": [cidr]},
                "status": {"assignedIPv4": assigned, "assignedIPv6": 0,
                           "availableIPv4": 256 - assigned, "availableIPv6": 0},
            }))
            .expect("pool")
        };
        let mut inp = Inputs::new("n1", SpeakerOptions::default());
        inp.apply(pool("1", "198.18.0.0/24", 0));
        assert!(inp.config_dirty);
        inp.config_dirty = false;
        // the controller's status writes: a new resourceVersion and counts, nothing else
        for (rv, n) in [("2", 1), ("3", 2), ("3", 2)] {
            inp.apply(pool(rv, "198.18.0.0/24", n));
            assert!(!inp.config_dirty, "status write {rv} recompiles");
        }
        let kept = inp.config.pools.values();
        assert_eq!(kept[0].metadata.resource_version.as_deref(), Some("3"));
        assert_eq!(
            kept[0].status, None,
            "the speaker keeps a status it never reads"
        );
        // an edit of the spec (or labels) is a change
        inp.apply(pool("4", "198.18.1.0/24", 2));
        assert!(inp.config_dirty, "a spec edit compiles again");
    }

    #[test]
    fn relist_forgets_missing_objects() {
        let mut inp = Inputs::new("n1", SpeakerOptions::default());
        inp.apply(svc("a", Some("10.0.0.1"), None, false));
        inp.apply(svc("b", Some("10.0.0.2"), None, false));
        inp.apply(slice("a-1", "a", &["n1"]));
        feed(
            &mut inp,
            [
                Event::Init,
                Event::InitApply(svc("a", Some("10.0.0.1"), None, false)),
                Event::InitDone,
            ],
        );
        assert_eq!(inp.services_len(), 1);
        feed(&mut inp, [Event::<EndpointSlice>::Init, Event::InitDone]);
        assert_eq!(inp.slices_len(), 0);
    }

    #[test]
    fn status_ops_create_patch_delete_dedup() {
        let key = ServiceKey::new("default", "a");
        let intent = StatusIntent {
            service: key.clone(),
            node: "n1".into(),
            items: vec!["p1".into()],
        };
        let mut idx = StatusIndex::<ServiceBGPStatus>::default();
        assert_eq!(
            idx.ops(&key, Some(&intent), "n1", false),
            vec![StatusOp::Create(intent.clone())]
        );
        assert!(idx.ops(&key, None, "n1", false).is_empty());
        let mut obj: ServiceBGPStatus = intent.to_object("metallb-system");
        obj.metadata.name = Some("bgp-1".into());
        obj.metadata.resource_version = Some("5".into());
        idx.apply(obj.clone());
        assert!(idx.ops(&key, Some(&intent), "n1", false).is_empty());
        let mut dup = obj.clone();
        dup.metadata.name = Some("bgp-0".into());
        dup.status = None;
        idx.apply(dup);
        assert_eq!(
            idx.ops(&key, Some(&intent), "n1", false),
            vec![StatusOp::Delete {
                name: "bgp-0".into(),
                key: key.clone()
            }]
        );
        let changed = StatusIntent {
            items: vec!["p2".into()],
            ..intent.clone()
        };
        assert!(matches!(
            idx.ops(&key, Some(&changed), "n1", false).first(),
            Some(StatusOp::Patch { .. })
        ));
        idx.record_deleted("bgp-0");
        idx.record_deleted("bgp-1");
        assert!(idx.is_empty());
        // a lagging event for a deleted object is ignored
        idx.apply(obj);
        assert!(idx.is_empty());
    }

    #[test]
    fn a_write_response_after_the_deletion_event_does_not_resurrect_the_object() {
        let key = ServiceKey::new("default", "a");
        let intent = StatusIntent {
            service: key.clone(),
            node: "n1".into(),
            items: vec![],
        };
        let mut idx = StatusIndex::<ServiceL2Status>::default();
        let mut obj: ServiceL2Status = intent.to_object("metallb-system");
        obj.metadata.name = Some("l2-x".into());
        obj.metadata.resource_version = Some("7".into());
        // another node deleted it; the watch said so before our patch's response arrived
        idx.apply(obj.clone());
        idx.delete(&obj);
        idx.record_written(&obj);
        assert!(idx.is_empty());
        assert_eq!(
            idx.ops(&key, Some(&intent), "n1", true),
            vec![StatusOp::Create(intent.clone())]
        );
    }

    #[test]
    fn the_elected_node_deletes_other_nodes_l2_status_objects() {
        let key = ServiceKey::new("default", "a");
        let by = |node: &str| StatusIntent {
            service: key.clone(),
            node: node.into(),
            items: vec![],
        };
        let mut idx = StatusIndex::<ServiceL2Status>::default();
        // node1 died abruptly: its object stays
        let mut stale: ServiceL2Status = by("node1").to_object("metallb-system");
        stale.metadata.name = Some("l2-old".into());
        stale.metadata.resource_version = Some("3".into());
        idx.apply(stale);
        let delete_stale = StatusOp::Delete {
            name: "l2-old".into(),
            key: key.clone(),
        };
        // node2 is elected: it creates its own and deletes node1's
        assert_eq!(
            idx.ops(&key, Some(&by("node2")), "node2", true),
            vec![delete_stale.clone(), StatusOp::Create(by("node2"))]
        );
        // node3 is not elected: it leaves others' objects alone
        assert!(idx.ops(&key, None, "node3", true).is_empty());
        // ServiceBGPStatus-style (one per node): never another node's
        assert_eq!(
            idx.ops(&key, Some(&by("node2")), "node2", false),
            vec![StatusOp::Create(by("node2"))]
        );
        // node1 itself, back and no longer elected, deletes its own
        assert_eq!(idx.ops(&key, None, "node1", true), vec![delete_stale]);
    }

    #[test]
    fn config_state_observed_ignores_echoes_and_lagging_events() {
        let mk = |rv: &str, uid: &str| -> ConfigurationState {
            serde_json::from_value(json!({
                "metadata": {"name": "speaker-n1", "namespace": "ns", "resourceVersion": rv,
                             "uid": uid, "managedFields": [{"manager": "x"}]}
            }))
            .expect("configuration state")
        };
        let mut o = ConfigStateObserved::default();
        assert!(o.dirty, "the first pass always compares");
        feed(&mut o, [Event::<ConfigurationState>::Init, Event::InitDone]);
        assert!(o.own.get().is_none());
        o.dirty = false;

        o.record_write(mk("1", "u1"));
        o.record_write(mk("2", "u1"));
        assert!(o.own.get().unwrap().metadata.managed_fields.is_none());
        o.apply(mk("1", "u1")); // superseded by our second write
        o.apply(mk("2", "u1")); // the echo of our last write
        assert!(!o.dirty, "our own writes do not wake the writer");
        assert_eq!(
            o.own.get().unwrap().metadata.resource_version.as_deref(),
            Some("2")
        );

        o.apply(mk("3", "u1")); // someone else's edit
        assert!(o.dirty);
        o.dirty = false;

        // Deleted, re-created by us; the watch then delivers the delete of the old object
        // late: it says nothing about the new one.
        o.delete(mk("3", "u1"));
        assert!(o.own.get().is_none() && o.dirty);
        o.dirty = false;
        o.record_write(mk("5", "u2"));
        o.delete(mk("3", "u1"));
        assert!(o.own.get().is_some() && !o.dirty);

        // A re-list without the object: gone.
        feed(&mut o, [Event::<ConfigurationState>::Init, Event::InitDone]);
        assert!(o.own.get().is_none() && o.dirty);
    }

    #[test]
    fn frr_observed_ignores_superseded_versions() {
        let mk = |rv: &str| -> FRRConfiguration {
            serde_json::from_value(json!({
                "metadata": {"name": "metallb-n1", "namespace": "ns", "resourceVersion": rv},
                "spec": {}
            }))
            .expect("frr")
        };
        let rv = |o: &FrrObserved| {
            o.obj
                .as_ref()
                .and_then(|x| x.metadata.resource_version.clone())
        };
        let mut o = FrrObserved::default();
        feed(&mut o, [Event::<FRRConfiguration>::Init, Event::InitDone]);
        assert!(o.obj.is_none());
        o.apply(mk("1"));
        o.record_write(mk("2").metadata, None, 7);
        o.record_write(mk("3").metadata, None, 8);
        o.apply(mk("2")); // lagging: our first write, already replaced
        assert_eq!(rv(&o), Some("3".into()));
        o.apply(mk("3")); // the echo of our last write
        assert!(matches!(
            o.obj.as_ref().map(|x| &x.spec),
            Some(ObservedSpec::Ours { generation: 8 })
        ));
        o.apply(mk("4")); // someone else's edit
        assert_eq!(rv(&o), Some("4".into()));
        assert!(matches!(
            o.obj.as_ref().map(|x| &x.spec),
            Some(ObservedSpec::Held(_))
        ));
    }

    #[test]
    fn frr_observed_is_known_by_generation_once_compared() {
        let with_prefixes = |rv: &str, prefixes: &[&str]| -> FRRConfiguration {
            serde_json::from_value(json!({
                "metadata": {"name": "metallb-n1", "namespace": "ns", "resourceVersion": rv,
                             "managedFields": [{"manager": "x"}]},
                "spec": {"bgp": {"routers": [{"asn": 64512, "prefixes": prefixes}]}}
            }))
            .expect("frr")
        };
        let desired = with_prefixes("", &["192.0.2.1/32"]).spec;
        let mut o = FrrObserved::default();
        assert!(o.differs_from(&desired, 5), "absent: must be created");
        o.record_write(with_prefixes("10", &["192.0.2.1/32"]).metadata, None, 5);
        assert!(o.obj.as_ref().unwrap().metadata.managed_fields.is_none());
        assert!(!o.differs_from(&desired, 5));
        assert!(
            o.differs_from(&desired, 6),
            "a newer desired generation is written"
        );
        // A re-list delivers our object as someone else's: compared by content once, then
        // known by the generation (the held copy is dropped).
        feed(
            &mut o,
            [
                Event::Init,
                Event::InitApply(with_prefixes("10", &["192.0.2.1/32"])),
                Event::InitDone,
            ],
        );
        assert!(matches!(
            o.obj.as_ref().map(|x| &x.spec),
            Some(ObservedSpec::Held(_))
        ));
        assert!(!o.differs_from(&desired, 6));
        assert!(matches!(
            o.obj.as_ref().map(|x| &x.spec),
            Some(ObservedSpec::Ours { generation: 6 })
        ));
        // An edit by someone else is compared by content.
        o.apply(with_prefixes("11", &["192.0.2.9/32"]));
        assert!(o.differs_from(&desired, 6));
        o.record_read(None);
        assert!(o.differs_from(&desired, 6));
    }
}
