//! The speaker's L2 state between watch events: every Node as the election sees it, the
//! compiled configuration, and the last decision per Service, recomputed only for the
//! Services an event touched (all of them when a Node or the configuration changes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;

use super::decide::{decide, node_ips, Interfaces, L2Config, L2Decision, L2Node};
use crate::bgp::{Endpoints, NodeInfo, ServiceInfo, ServiceKey, SpeakerOptions};

impl L2Node {
    /// Without membership, liveness is the Node's `Ready` condition: a Node known to be
    /// down (`False` or `Unknown`) is no candidate; one without the condition (not
    /// reported yet) is.
    pub fn from_node(node: &Node) -> Self {
        let ready = (node.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        L2Node {
            info: NodeInfo::from_node(node),
            alive: !matches!(ready, Some("False" | "Unknown")),
        }
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct L2View {
    config: L2Config,
    nodes: BTreeMap<String, L2Node>,
    /// Only Services that are L2 Services (`decide` returned a decision).
    decisions: HashMap<ServiceKey, L2Decision>,
    dirty: BTreeSet<ServiceKey>,
    all_dirty: bool,
}

impl L2View {
    pub fn set_config(&mut self, config: L2Config) {
        self.config = config;
        self.all_dirty = true;
    }

    pub fn config(&self) -> &L2Config {
        &self.config
    }

    /// A Node was seen; true when the election's view of it changed.
    pub fn apply_node(&mut self, node: L2Node) -> bool {
        if self.nodes.get(&node.info.name) == Some(&node) {
            return false;
        }
        self.nodes.insert(node.info.name.clone(), node);
        self.all_dirty = true;
        true
    }

    pub fn delete_node(&mut self, name: &str) {
        if self.nodes.remove(name).is_some() {
            self.all_dirty = true;
        }
    }

    /// After a re-list: forget the Nodes not listed.
    pub fn retain_nodes(&mut self, listed: impl Fn(&str) -> bool) {
        let before = self.nodes.len();
        self.nodes.retain(|n, _| listed(n));
        if self.nodes.len() != before {
            self.all_dirty = true;
        }
    }

    pub fn mark(&mut self, key: &ServiceKey) {
        if !self.all_dirty {
            self.dirty.insert(key.clone());
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.all_dirty || !self.dirty.is_empty()
    }

    /// Recompute the dirty decisions. `service` gives a Service and its endpoints (with
    /// every serving node); `keys` every handled Service (for a full recompute). Returns
    /// the Services whose decision changed.
    pub fn refresh<'a>(
        &mut self,
        keys: impl Iterator<Item = &'a ServiceKey>,
        service: impl Fn(&ServiceKey) -> Option<(&'a ServiceInfo, Option<Endpoints>)>,
        options: &SpeakerOptions,
    ) -> Vec<ServiceKey> {
        let todo: Vec<ServiceKey> = if std::mem::take(&mut self.all_dirty) {
            self.dirty.clear();
            let mut every: BTreeSet<ServiceKey> = keys.cloned().collect();
            every.extend(self.decisions.keys().cloned());
            every.into_iter().collect()
        } else {
            std::mem::take(&mut self.dirty).into_iter().collect()
        };
        let nodes: Vec<L2Node> = self.nodes.values().cloned().collect();
        let mut changed = Vec::new();
        for key in todo {
            let decision = service(&key)
                .and_then(|(svc, eps)| decide(&self.config, svc, eps.as_ref(), &nodes, options));
            if self.decisions.get(&key) != decision.as_ref() {
                changed.push(key.clone());
            }
            match decision {
                Some(d) => self.decisions.insert(key, d),
                None => self.decisions.remove(&key),
            };
        }
        changed
    }

    pub fn decision(&self, key: &ServiceKey) -> Option<&L2Decision> {
        self.decisions.get(key)
    }

    pub fn decisions(&self) -> impl Iterator<Item = &L2Decision> + '_ {
        self.decisions.values()
    }

    /// The IPs `node` answers for.
    pub fn node_ips(&self, node: &str) -> BTreeMap<IpAddr, Interfaces> {
        node_ips(self.decisions.values(), node)
    }

    pub fn nodes_len(&self) -> usize {
        self.nodes.len()
    }
}
