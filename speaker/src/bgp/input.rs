//! Plain inputs of the BGP announcement logic, decoded once at the edge from Kubernetes
//! objects: the node, the Services (with the IPs the controller assigned in their status),
//! a per-Service summary of its EndpointSlices, and the MetalLB configuration objects.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::ResourceExt;
use metallb_api::metallb::annotations::{ALLOW_SHARED_IP, LEGACY_ALLOW_SHARED_IP};
use metallb_api::metallb::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};

/// Label whose presence keeps a node from announcing load-balancer IPs.
pub const LABEL_EXCLUDE_LB: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// Label of an EndpointSlice naming its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Node label the generated FRRConfiguration selects on.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// `namespace/name` of a Service.
///
/// Shared, not copied: one Service's key sits in a dozen indexes (Services, endpoints,
/// announcements, statuses, dirty sets), and two `String`s per copy were a good part of the
/// speaker's memory at 10,000 Services. Clones share one allocation; equality, order and
/// hashing are by value (`namespace`, then `name`), as before. Fields are reached through
/// `Deref` (`key.namespace`, `key.name`).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey(Arc<KeyParts>);

/// The two halves of a [`ServiceKey`].
#[derive(Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyParts {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey(Arc::new(KeyParts {
            namespace: namespace.into(),
            name: name.into(),
        }))
    }
}

impl std::ops::Deref for ServiceKey {
    type Target = KeyParts;

    fn deref(&self) -> &KeyParts {
        &self.0
    }
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the speaker needs to know about its own node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Condition `NetworkUnavailable` is `True`.
    pub network_unavailable: bool,
}

impl NodeInfo {
    pub fn new(name: impl Into<String>) -> Self {
        NodeInfo {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn from_node(node: &Node) -> Self {
        let network_unavailable = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
            });
        NodeInfo {
            name: node.name_any(),
            labels: node.labels().clone(),
            network_unavailable,
        }
    }

    /// Carries the `exclude-from-external-load-balancers` label (any value).
    pub fn excluded_from_load_balancers(&self) -> bool {
        self.labels.contains_key(LABEL_EXCLUDE_LB)
    }
}

/// `spec.externalTrafficPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// A Service as the announcement logic sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    pub key: ServiceKey,
    /// The Service's labels, sorted by key (a vector: a one-entry `BTreeMap` allocates a
    /// ~0.5 KiB node, per Service).
    pub labels: Labels,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    /// `spec.loadBalancerClass` (empty string treated as unset).
    pub load_balancer_class: Option<String>,
    pub traffic_policy: TrafficPolicy,
    /// `status.loadBalancer.ingress[].ip`, parsed, deduplicated, in order.
    pub ingress_ips: Vec<IpAddr>,
    /// Ingress `ip` values that do not parse (reported, otherwise ignored).
    pub invalid_ingress: Vec<String>,
    /// Carries `metallb.io/allow-shared-ip` (or the legacy `metallb.universe.tf/` key):
    /// L2 mode refuses to announce it through an advertisement with serviceSelectors.
    pub shares_ip: bool,
    /// `metadata.uid`: events about the Service name it (`kubectl describe` matches on it).
    pub uid: Option<String>,
}

impl ServiceInfo {
    pub fn from_service(svc: &Service) -> Self {
        let spec = svc.spec.as_ref();
        let mut ingress_ips = Vec::new();
        let mut invalid_ingress = Vec::new();
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for ing in ingress.into_iter().flatten() {
            let Some(ip) = ing.ip.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            match ip.parse::<IpAddr>() {
                Ok(ip) => {
                    if !ingress_ips.contains(&ip) {
                        ingress_ips.push(ip);
                    }
                }
                Err(_) => invalid_ingress.push(ip.to_string()),
            }
        }
        ServiceInfo {
            key: ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any()),
            labels: Labels::from_map(svc.labels()),
            is_load_balancer: spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
            load_balancer_class: spec
                .and_then(|s| s.load_balancer_class.clone())
                .filter(|c| !c.is_empty()),
            traffic_policy: match spec.and_then(|s| s.external_traffic_policy.as_deref()) {
                Some("Local") => TrafficPolicy::Local,
                _ => TrafficPolicy::Cluster,
            },
            ingress_ips,
            invalid_ingress,
            shares_ip: [ALLOW_SHARED_IP, LEGACY_ALLOW_SHARED_IP]
                .iter()
                .any(|k| svc.annotations().get(*k).is_some_and(|v| !v.is_empty())),
            uid: svc.uid(),
        }
    }
}

/// A small label set sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(Box<[(String, String)]>);

impl Labels {
    pub fn from_map(m: &BTreeMap<String, String>) -> Self {
        Labels(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Set `key` to `value` (tests and builders; keeps the order).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        let mut v = std::mem::take(&mut self.0).into_vec();
        match v.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(i) => v[i].1 = value,
            Err(i) => v.insert(i, (key, value)),
        }
        self.0 = v.into_boxed_slice();
    }
}

/// Which nodes host an endpoint able to serve traffic, summarised from a Service's
/// EndpointSlices.
///
/// "Serving" follows upstream (`internal/k8s/epslices`): the endpoint has addresses and
/// (`ready` is unset or true, or `serving` is true) — so a terminating endpoint that still
/// serves keeps the route, a merely not-ready one does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub serving_nodes: BTreeSet<String>,
    /// A serving endpoint exists (possibly without a node name).
    pub any_serving: bool,
}

impl Endpoints {
    pub fn from_slices<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Self {
        let mut out = Endpoints::default();
        for ep in slices.into_iter().flat_map(|s| s.endpoints.iter()) {
            if is_serving(ep) {
                out.any_serving = true;
                if let Some(n) = ep.node_name.as_deref().filter(|n| !n.is_empty()) {
                    out.serving_nodes.insert(n.to_string());
                }
            }
        }
        out
    }

    /// A serving endpoint runs on `node`.
    pub fn serving_on(&self, node: &str) -> bool {
        self.serving_nodes.contains(node)
    }
}

/// Upstream's `IsConditionServing` plus the "has addresses" check.
pub fn is_serving(ep: &Endpoint) -> bool {
    if ep.addresses.is_empty() {
        return false;
    }
    let Some(c) = &ep.conditions else {
        return true; // ready unset means ready
    };
    c.ready.unwrap_or(true) || c.serving.unwrap_or(false)
}

/// The Service an EndpointSlice belongs to (its `kubernetes.io/service-name` label).
pub fn slice_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let name = slice.labels().get(LABEL_SERVICE_NAME)?;
    Some(ServiceKey::new(
        slice.namespace().unwrap_or_default(),
        name.clone(),
    ))
}

/// The MetalLB configuration objects the speaker reads.
#[derive(Clone, Debug, Default)]
pub struct MetalLbConfig {
    pub pools: Vec<IPAddressPool>,
    pub peers: Vec<BGPPeer>,
    pub advertisements: Vec<BGPAdvertisement>,
    pub communities: Vec<Community>,
    pub bfd_profiles: Vec<BFDProfile>,
    pub l2_advertisements: Vec<L2Advertisement>,
}

/// Speaker flags that change announcement decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpeakerOptions {
    /// `--lb-class`: with `None` only Services without a class are handled; with a value,
    /// only Services of that class.
    pub load_balancer_class: Option<String>,
    /// `--ignore-exclude-lb`: announce even from nodes labelled
    /// `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub ignore_exclude_lb: bool,
}

impl SpeakerOptions {
    /// Whether the speaker handles this Service at all.
    pub fn handles(&self, svc: &ServiceInfo) -> bool {
        self.load_balancer_class
            .as_deref()
            .filter(|c| !c.is_empty())
            == svc.load_balancer_class.as_deref()
    }
}

/// Everything about one cluster at one moment, as plain object lists: the input of the
/// golden tests and a convenient way to compute from scratch.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub config: MetalLbConfig,
}

/// A document of a multi-document YAML that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("document {index}: {source}")]
    Yaml {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("document {index}: unsupported kind {kind:?} (apiVersion {api_version:?})")]
    UnsupportedKind {
        index: usize,
        kind: String,
        api_version: String,
    },
}

impl ClusterState {
    /// Add one object given as JSON (a document of a cluster dump). Unknown kinds are an
    /// error; `FRRConfiguration`s and other kinds the speaker does not read are skipped when
    /// `skip_unknown` is set.
    pub fn push_json(
        &mut self,
        index: usize,
        doc: serde_json::Value,
        skip_unknown: bool,
    ) -> Result<(), InputError> {
        let kind = doc
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let api_version = doc
            .get("apiVersion")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let yaml = |source| InputError::Yaml { index, source };
        match kind.as_str() {
            "Node" => self.nodes.push(serde_json::from_value(doc).map_err(yaml)?),
            "Service" => self
                .services
                .push(serde_json::from_value(doc).map_err(yaml)?),
            "EndpointSlice" => self
                .endpoint_slices
                .push(serde_json::from_value(doc).map_err(yaml)?),
            "IPAddressPool" => self
                .config
                .pools
                .push(serde_json::from_value(doc).map_err(yaml)?),
            "BGPPeer" if api_version.ends_with("v1beta2") => self
                .config
                .peers
                .push(serde_json::from_value(doc).map_err(yaml)?),
            "BGPAdvertisement" => self
                .config
                .advertisements
                .push(serde_json::from_value(doc).map_err(yaml)?),
            "Community" => self
                .config
                .communities
                .push(serde_json::from_value(doc).map_err(yaml)?),
            "BFDProfile" => self
                .config
                .bfd_profiles
                .push(serde_json::from_value(doc).map_err(yaml)?),
            "L2Advertisement" => self
                .config
                .l2_advertisements
                .push(serde_json::from_value(doc).map_err(yaml)?),
            _ if skip_unknown => {}
            _ => {
                return Err(InputError::UnsupportedKind {
                    index,
                    kind,
                    api_version,
                })
            }
        }
        Ok(())
    }

    /// Endpoint summaries per Service key.
    pub fn endpoints(&self) -> BTreeMap<ServiceKey, Endpoints> {
        let mut by_service: BTreeMap<ServiceKey, Vec<&EndpointSlice>> = BTreeMap::new();
        for s in &self.endpoint_slices {
            if let Some(k) = slice_service(s) {
                by_service.entry(k).or_default().push(s);
            }
        }
        by_service
            .into_iter()
            .map(|(k, v)| (k, Endpoints::from_slices(v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointConditions;

    fn ep(ready: Option<bool>, serving: Option<bool>, addresses: bool) -> Endpoint {
        Endpoint {
            addresses: if addresses {
                vec!["10.1.0.1".into()]
            } else {
                vec![]
            },
            conditions: Some(EndpointConditions {
                ready,
                serving,
                terminating: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn serving_rules() {
        assert!(is_serving(&ep(None, None, true)), "ready unset means ready");
        assert!(is_serving(&ep(Some(true), None, true)));
        assert!(
            is_serving(&ep(Some(false), Some(true), true)),
            "terminating but serving"
        );
        assert!(!is_serving(&ep(Some(false), None, true)), "not ready");
        assert!(!is_serving(&ep(Some(false), Some(false), true)));
        assert!(!is_serving(&ep(Some(true), None, false)), "no addresses");
        let bare = Endpoint {
            addresses: vec!["10.0.0.1".into()],
            ..Default::default()
        };
        assert!(is_serving(&bare), "no conditions at all");
    }

    #[test]
    fn class_handling() {
        let mut svc = ServiceInfo::default();
        let default = SpeakerOptions::default();
        let ours = SpeakerOptions {
            load_balancer_class: Some("metallb".into()),
            ..Default::default()
        };
        assert!(default.handles(&svc));
        assert!(!ours.handles(&svc));
        svc.load_balancer_class = Some("metallb".into());
        assert!(!default.handles(&svc));
        assert!(ours.handles(&svc));
        svc.load_balancer_class = Some("other".into());
        assert!(!ours.handles(&svc));
    }
}
