//! What the node component's watches keep: this node (its labels and uid) and the
//! FRRConfigurations of the namespace, those that do not select the node as stubs
//! ([`crate::stub`]). Fed by the runtime's watch kit ([`metallb_runtime::watch`]).
//!
//! Both live under one lock so that the stub rule is applied with the labels of the
//! moment: an FRRConfiguration is stubbed (or kept whole) as it enters the index. When the
//! node's labels change so that they select a stub, the full objects are needed: the index
//! asks for a fresh list of the FRRConfigurations ([`NodeIndex::relist`], a
//! [`restartable`](metallb_runtime::watch::restartable) watch), whose objects are stubbed
//! again with the new labels. We re-list rather than GET the affected objects because it
//! is one request whatever the number of objects (a label change can select thousands,
//! e.g. a new `rack` label), because a GET's answer would race with the watch events of
//! the same object (ordering resourceVersions is not allowed), and because the list also
//! re-stubs objects the node stopped matching. Label changes on a node are rare. Meanwhile
//! the compute loop does not compute while a selected stub is in the index.
//!
//! The FRRConfiguration watch starts once the Node has been listed, so that the initial
//! list (thousands of objects on a big cluster) is stubbed as it arrives rather than kept
//! whole.
//!
//! One object can also arrive in process ([`NodeIndex::set_local`]): the all-in-one
//! speaker's own `metallb-<node>`, handed over the moment it is decided. It stands for the
//! watched object of the same name, which only lags it (the speaker still writes it, for
//! visibility, at its own pace): from the first hand-over on, the watched copy is neither
//! kept nor read.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use metallb_api::frrk8s::FRRConfiguration;
use metallb_api::validation::object_ref;
use metallb_runtime::watch::{obj_key, Index, ObjKey, WatchedState};
use tokio::sync::Notify;
use tracing::info;

use crate::stub;

/// The watch names (and readiness gates) of the node component.
pub const NODE: &str = "node";
pub const CONFIGS: &str = "frrconfigurations";

/// This node and the FRRConfigurations, as the compute loop reads them.
#[derive(Debug)]
pub struct NodeIndex {
    node: Option<Node>,
    configs: BTreeMap<ObjKey, Arc<FRRConfiguration>>,
    /// The object handed over in process, which replaces the watched one of its name.
    local: Option<(ObjKey, Arc<FRRConfiguration>)>,
    /// Starts (first notification) and restarts the FRRConfiguration watch.
    relist: Arc<Notify>,
    added: HashSet<&'static str>,
    listed: HashSet<&'static str>,
}

impl NodeIndex {
    /// An index whose FRRConfiguration watch is started and restarted through `relist`.
    pub fn new(relist: Arc<Notify>) -> Self {
        NodeIndex {
            node: None,
            configs: BTreeMap::new(),
            local: None,
            relist,
            added: HashSet::new(),
            listed: HashSet::new(),
        }
    }

    /// The notification that starts and restarts the FRRConfiguration watch.
    pub fn relist(&self) -> Arc<Notify> {
        self.relist.clone()
    }

    /// Every watch announced has listed once.
    pub fn synced(&self) -> bool {
        self.added.len() == self.listed.len()
    }

    /// This node, once seen.
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    /// The node's labels; `None` while the node is not known (nothing is stubbed then).
    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.as_ref().map(|n| match &n.metadata.labels {
            Some(l) => l,
            None => empty(),
        })
    }

    /// Every FRRConfiguration, stubs included, in name order (the one handed over in
    /// process in place of its watched copy).
    pub fn configs(&self) -> Vec<Arc<FRRConfiguration>> {
        let mut all: Vec<Arc<FRRConfiguration>> = Vec::with_capacity(self.configs.len() + 1);
        let mut local = self.local.as_ref();
        for (k, c) in &self.configs {
            // (the watched copy of the local object is not kept: keys never tie)
            if let Some((_, l)) = local.filter(|(lk, _)| lk < k) {
                all.push(l.clone());
                local = None;
            }
            all.push(c.clone());
        }
        all.extend(local.map(|(_, l)| l.clone()));
        all
    }

    /// The FRRConfiguration `namespace/name`.
    pub fn config(&self, namespace: &str, name: &str) -> Option<Arc<FRRConfiguration>> {
        let key = (namespace.to_string(), name.to_string());
        match &self.local {
            Some((k, l)) if *k == key => Some(l.clone()),
            _ => self.configs.get(&key).cloned(),
        }
    }

    /// Take `cfg` in place of the watched object of its name, now and from then on (the
    /// all-in-one speaker's own object, handed over in process). Its `uid` and
    /// `generation` must identify its versions as the watched object's would: the version
    /// engine ([`crate::versions`]) keeps the version in effect by them.
    pub fn set_local(&mut self, cfg: FRRConfiguration) {
        let key = obj_key(&cfg);
        self.configs.remove(&key);
        self.local = Some((key, Arc::new(cfg)));
    }

    fn is_local(&self, key: &ObjKey) -> bool {
        self.local.as_ref().is_some_and(|(k, _)| k == key)
    }

    /// `namespace/name` of a stub the node's labels select: its full object is being
    /// listed again.
    pub fn selected_stub(&self) -> Option<String> {
        let labels = self.labels()?;
        stub::selected_stub(self.configs.values().map(|c| c.as_ref()), labels)
            .map(|c| object_ref(&c.metadata))
    }

    /// List the FRRConfigurations again when the labels select a stub.
    fn relist_if_stub_selected(&self, why: &str) {
        if let Some(obj) = self.selected_stub() {
            info!(object = %obj, "{why}; listing the FRRConfigurations again");
            self.relist.notify_one();
        }
    }
}

fn empty() -> &'static BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    &EMPTY
}

impl WatchedState for NodeIndex {
    fn watch_added(&mut self, what: &'static str) {
        self.added.insert(what);
    }
    fn watch_listed(&mut self, what: &'static str) {
        self.listed.insert(what);
        if what == NODE {
            // the labels are known: the FRRConfiguration watch can start
            self.relist.notify_one();
        }
    }
}

impl Index<Node> for NodeIndex {
    fn apply(&mut self, mut node: Node) {
        super::slim(&mut node);
        let changed = self.node.as_ref().map(|n| &n.metadata.labels) != Some(&node.metadata.labels);
        self.node = Some(node);
        if changed {
            self.relist_if_stub_selected("node labels now select a stubbed FRRConfiguration");
        }
    }
    fn delete(&mut self, _: Node) {
        self.node = None;
    }
    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        if (self.node.as_ref()).is_some_and(|n| !listed.contains(&obj_key(n))) {
            self.node = None;
        }
    }
}

impl Index<FRRConfiguration> for NodeIndex {
    fn apply(&mut self, mut cfg: FRRConfiguration) {
        let key = obj_key(&cfg);
        if self.is_local(&key) {
            // the echo of what was handed over (or older): the local object stands
            return;
        }
        if !stub::stub_unless_selected(&mut cfg, self.labels()) {
            super::slim(&mut cfg);
        }
        self.configs.insert(key, Arc::new(cfg));
    }
    fn delete(&mut self, cfg: FRRConfiguration) {
        self.configs.remove(&obj_key(&cfg));
    }
    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.configs.retain(|k, _| listed.contains(k));
        // a list that ran while the labels changed may hold stubs they select
        self.relist_if_stub_selected("node labels changed during the FRRConfiguration list");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use metallb_runtime::watch::Relist;
    use serde_json::json;

    fn node(labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "node-1", "labels": labels}})).unwrap()
    }

    fn config(name: &str, selector: serde_json::Value) -> FRRConfiguration {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"nodeSelector": selector, "bgp": {"routers": [{"asn": 64512}]}}
        }))
        .unwrap()
    }

    fn relist_requested(n: &Notify) -> bool {
        use futures::FutureExt;
        n.notified().now_or_never().is_some()
    }

    #[test]
    fn configs_are_stubbed_with_the_labels_of_the_moment_and_a_selected_stub_asks_for_a_list() {
        let relist = Arc::new(Notify::new());
        let mut idx = NodeIndex::new(relist.clone());
        let mut nodes = Relist::default();
        let mut configs = Relist::default();
        for ev in [
            Event::Init,
            Event::InitApply(node(json!({"rack": "b"}))),
            Event::InitDone,
        ] {
            nodes.feed(&mut idx, ev);
        }
        idx.watch_listed(NODE);
        assert!(
            relist_requested(&relist),
            "the node listed: the config watch starts"
        );
        for ev in [
            Event::Init,
            Event::InitApply(config("rack-a", json!({"matchLabels": {"rack": "a"}}))),
            Event::InitApply(config("rack-b", json!({"matchLabels": {"rack": "b"}}))),
            Event::InitDone,
        ] {
            configs.feed(&mut idx, ev);
        }
        assert!(stub::is_stub(&idx.config("ns", "rack-a").unwrap()));
        assert!(!stub::is_stub(&idx.config("ns", "rack-b").unwrap()));
        assert!(!relist_requested(&relist));
        // a label change that selects nothing new asks for nothing
        nodes.feed(
            &mut idx,
            Event::Apply(node(json!({"rack": "b", "zone": "1"}))),
        );
        assert!(!relist_requested(&relist));
        // the node moves to rack a: the stub is selected, a list is asked for
        nodes.feed(&mut idx, Event::Apply(node(json!({"rack": "a"}))));
        assert_eq!(idx.selected_stub().as_deref(), Some("ns/rack-a"));
        assert!(relist_requested(&relist));
        // the fresh list stubs with the new labels; rack-b, full already, stays as it is
        // until the list brings it back
        configs.feed(&mut idx, Event::<FRRConfiguration>::Init);
        configs.feed(
            &mut idx,
            Event::InitApply(config("rack-a", json!({"matchLabels": {"rack": "a"}}))),
        );
        configs.feed(
            &mut idx,
            Event::InitApply(config("rack-b", json!({"matchLabels": {"rack": "b"}}))),
        );
        configs.feed(&mut idx, Event::<FRRConfiguration>::InitDone);
        assert!(idx.selected_stub().is_none());
        assert!(!stub::is_stub(&idx.config("ns", "rack-a").unwrap()));
        assert!(stub::is_stub(&idx.config("ns", "rack-b").unwrap()));
        assert!(!relist_requested(&relist));
    }

    #[test]
    fn an_object_handed_over_in_process_stands_for_its_watched_copy() {
        let mut idx = NodeIndex::new(Arc::new(Notify::new()));
        idx.apply(config("a", json!({})));
        idx.apply(config("metallb-node-1", json!({})));
        idx.apply(config("z", json!({})));
        let names = |idx: &NodeIndex| -> Vec<(String, u32)> {
            (idx.configs().iter())
                .map(|c| {
                    let asn = c.spec.bgp.as_ref().unwrap().routers[0].asn;
                    (c.metadata.name.clone().unwrap(), asn)
                })
                .collect()
        };
        let mut local = config("metallb-node-1", json!({}));
        local.spec.bgp.as_mut().unwrap().routers[0].asn = 65001;
        idx.set_local(local);
        let want = vec![
            ("a".to_string(), 64512),
            ("metallb-node-1".to_string(), 65001),
            ("z".to_string(), 64512),
        ];
        assert_eq!(
            names(&idx),
            want,
            "in name order, the local object in its place"
        );
        // the watch's late echo (or any write of the object) does not replace it
        idx.apply(config("metallb-node-1", json!({})));
        assert_eq!(names(&idx), want);
        assert_eq!(
            idx.config("ns", "metallb-node-1")
                .unwrap()
                .spec
                .bgp
                .as_ref()
                .unwrap()
                .routers[0]
                .asn,
            65001
        );
        // nor does its deletion, or a list without it
        idx.delete(config("metallb-node-1", json!({})));
        Index::<FRRConfiguration>::reset(
            &mut idx,
            &HashSet::from([obj_key(&config("a", json!({})))]),
        );
        assert_eq!(
            names(&idx),
            vec![
                ("a".to_string(), 64512),
                ("metallb-node-1".to_string(), 65001)
            ]
        );
    }

    #[test]
    fn unknown_labels_stub_nothing() {
        let mut idx = NodeIndex::new(Arc::new(Notify::new()));
        idx.apply(config("rack-a", json!({"matchLabels": {"rack": "a"}})));
        assert!(!stub::is_stub(&idx.config("ns", "rack-a").unwrap()));
        assert_eq!(idx.labels(), None);
    }
}
