//! The speaker's L2 state between watch events: every Node as the election sees it, the
//! compiled configuration, and the last decision per Service, recomputed only for the
//! Services an event touched (all of them when a Node or the configuration changes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Pod};

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

/// A speaker Pod as liveness sees it: on which node, and whether it counts as running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerPod {
    pub node: String,
    pub alive: bool,
    /// The Pod's IP (`hostNetwork`: the node's), where its membership agent listens.
    pub ip: Option<IpAddr>,
}

impl SpeakerPod {
    /// A speaker Pod is alive until it is being deleted (a drain, a rollout, an uninstall:
    /// the node must hand its IPs over before the process exits), reports `Ready=False`,
    /// or has ended. A Pod not started yet (no Ready condition) counts as alive: it is
    /// scheduled there.
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let node = pod.spec.as_ref()?.node_name.clone()?;
        let status = pod.status.as_ref();
        let ready = (status.and_then(|s| s.conditions.as_ref()))
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        let ended = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        Some(SpeakerPod {
            node,
            alive: pod.metadata.deletion_timestamp.is_none() && ready != Some("False") && !ended,
            ip: status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
        })
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct L2View {
    config: L2Config,
    /// Every Node; `alive` is the Node's own readiness.
    nodes: BTreeMap<String, L2Node>,
    /// Speaker Pods by name (when the speaker watches them): a node is a candidate only
    /// with a live speaker. Without any known speaker Pod, Node readiness alone decides
    /// (upstream without memberlist).
    speakers: HashMap<String, SpeakerPod>,
    /// The election's candidates, derived from `nodes` and `speakers` when either changes
    /// (every such change sets `all_dirty`), not per Service event.
    candidates: Vec<L2Node>,
    /// Nodes whose speaker the membership declared down (crashed, or cut off): no
    /// candidates whatever the API says (see `crate::members`).
    down: BTreeSet<String>,
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

    /// A speaker Pod was seen (or deleted: `None`).
    pub fn set_speaker(&mut self, pod_name: &str, pod: Option<SpeakerPod>) {
        let before = self.speakers.get(pod_name).cloned();
        if before == pod {
            return;
        }
        match pod {
            Some(p) => self.speakers.insert(pod_name.to_string(), p),
            None => self.speakers.remove(pod_name),
        };
        self.all_dirty = true;
    }

    /// After a re-list of the speaker Pods: forget those not listed.
    pub fn retain_speakers(&mut self, listed: impl Fn(&str) -> bool) {
        let before = self.speakers.len();
        self.speakers.retain(|n, _| listed(n));
        if self.speakers.len() != before {
            self.all_dirty = true;
        }
    }

    /// The nodes the membership declared down.
    pub fn set_down(&mut self, down: &BTreeSet<String>) {
        if self.down != *down {
            self.down = down.clone();
            self.all_dirty = true;
        }
    }

    /// The live speakers other than `own`'s, by node, at their Pod IP: the membership's
    /// peers.
    pub fn peers(&self, own: &str) -> BTreeMap<String, IpAddr> {
        (self.speakers.values())
            .filter(|p| p.alive && p.node != own)
            .filter_map(|p| Some((p.node.clone(), p.ip?)))
            .collect()
    }

    /// The election's candidates' liveness: the Node's readiness, a live speaker on it
    /// when speaker Pods are known, and not declared down by the membership.
    fn build_candidates(&self) -> Vec<L2Node> {
        let with_speaker: BTreeSet<&str> = (self.speakers.values())
            .filter(|p| p.alive)
            .map(|p| p.node.as_str())
            .collect();
        let known = !self.speakers.is_empty();
        (self.nodes.values())
            .map(|n| L2Node {
                info: n.info.clone(),
                alive: n.alive
                    && (!known || with_speaker.contains(n.info.name.as_str()))
                    && !self.down.contains(&n.info.name),
            })
            .collect()
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
            self.candidates = self.build_candidates();
            self.dirty.clear();
            let mut every: BTreeSet<ServiceKey> = keys.cloned().collect();
            every.extend(self.decisions.keys().cloned());
            every.into_iter().collect()
        } else {
            std::mem::take(&mut self.dirty).into_iter().collect()
        };
        let nodes = &self.candidates;
        let mut changed = Vec::new();
        for key in todo {
            let decision = service(&key)
                .and_then(|(svc, eps)| decide(&self.config, svc, eps.as_ref(), nodes, options));
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
