//! The per-Service status objects a speaker writes, as intents: `ServiceBGPStatus` (one
//! per (Service, node) where the node is configured to advertise the Service to a peer,
//! with the sorted BGPPeer names) and `ServiceL2Status` (one per Service, by the node
//! elected to answer for it, with the interfaces when the advertisements restrict them).
//! Both are created with `generateName` in MetalLB's namespace, found again by their
//! labels, and carry node and Service in an immutable status; [`StatusKind`] is what
//! differs between the two, so one index and one writer serve both.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use metallb_api::metallb::status::{
    InterfaceInfo, MetalLBServiceBGPStatus, MetalLBServiceL2Status, ServiceBGPStatusSpec,
    ServiceL2StatusSpec, BGP_STATUS_GENERATE_NAME, L2_STATUS_GENERATE_NAME, LABEL_NODE,
    LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE,
};
use metallb_api::metallb::{ServiceBGPStatus, ServiceL2Status};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::bgp::ServiceKey;

/// Desired status object content for one Service on one node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatusIntent {
    pub service: ServiceKey,
    pub node: String,
    /// `ServiceBGPStatus`: the BGPPeer names (sorted, non-empty); `ServiceL2Status`: the
    /// interface names (empty when every interface is used).
    pub items: Vec<String>,
}

/// The ServiceBGPStatus intent (its items are peers).
pub type BgpStatusIntent = StatusIntent;

impl StatusIntent {
    /// Intents of a node from [`crate::bgp::NodeAnnouncements::bgp_status_intents`].
    pub fn for_node(node: &str, intents: BTreeMap<ServiceKey, Vec<String>>) -> Vec<Self> {
        intents
            .into_iter()
            .map(|(service, items)| StatusIntent {
                service,
                node: node.to_string(),
                items,
            })
            .collect()
    }

    /// Labels identifying the object (used to find it again).
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_NODE.to_string(), self.node.clone()),
            (LABEL_SERVICE_NAME.to_string(), self.service.name.clone()),
            (
                LABEL_SERVICE_NAMESPACE.to_string(),
                self.service.namespace.clone(),
            ),
        ])
    }

    /// A new object to create in `namespace` (MetalLB's), named by the apiserver.
    pub fn to_object<K: StatusKind>(&self, namespace: &str) -> K {
        let meta = ObjectMeta {
            generate_name: Some(K::GENERATE_NAME.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(self.labels()),
            ..Default::default()
        };
        K::build(meta, self)
    }
}

/// What differs between the two status kinds.
pub trait StatusKind:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// For logs.
    const KIND: &'static str;
    const GENERATE_NAME: &'static str;
    /// The object with `meta` and the status `intent` asks for.
    fn build(meta: ObjectMeta, intent: &StatusIntent) -> Self;
    /// The status as a merge patch body (`{"status": ...}`).
    fn status_patch(intent: &StatusIntent) -> Value;
    /// The Service the status names (for objects whose labels were removed).
    fn status_service(&self) -> Option<ServiceKey>;
    /// The status's items, when it names a node and the Service `key` (else `None`: the
    /// status must be rewritten).
    fn status_items(&self, key: &ServiceKey) -> Option<Vec<String>>;
}

fn names(
    node: &Option<String>,
    name: &Option<String>,
    ns: &Option<String>,
    key: &ServiceKey,
) -> bool {
    node.is_some()
        && name.as_deref() == Some(key.name.as_str())
        && ns.as_deref() == Some(key.namespace.as_str())
}

fn service(name: &Option<String>, ns: &Option<String>) -> Option<ServiceKey> {
    Some(ServiceKey::new(ns.clone()?, name.clone()?))
}

impl StatusKind for ServiceBGPStatus {
    const KIND: &'static str = "ServiceBGPStatus";
    const GENERATE_NAME: &'static str = BGP_STATUS_GENERATE_NAME;

    fn build(metadata: ObjectMeta, intent: &StatusIntent) -> Self {
        ServiceBGPStatus {
            metadata,
            spec: ServiceBGPStatusSpec {},
            status: Some(bgp_status(intent)),
        }
    }

    fn status_patch(intent: &StatusIntent) -> Value {
        serde_json::json!({ "status": bgp_status(intent) })
    }

    fn status_service(&self) -> Option<ServiceKey> {
        let s = self.status.as_ref()?;
        service(&s.service_name, &s.service_namespace)
    }

    fn status_items(&self, key: &ServiceKey) -> Option<Vec<String>> {
        let s = self.status.as_ref()?;
        names(&s.node, &s.service_name, &s.service_namespace, key).then(|| s.peers.clone())
    }
}

fn bgp_status(intent: &StatusIntent) -> MetalLBServiceBGPStatus {
    MetalLBServiceBGPStatus {
        node: Some(intent.node.clone()),
        service_name: Some(intent.service.name.clone()),
        service_namespace: Some(intent.service.namespace.clone()),
        peers: intent.items.clone(),
    }
}

impl StatusKind for ServiceL2Status {
    const KIND: &'static str = "ServiceL2Status";
    const GENERATE_NAME: &'static str = L2_STATUS_GENERATE_NAME;

    fn build(metadata: ObjectMeta, intent: &StatusIntent) -> Self {
        ServiceL2Status {
            metadata,
            spec: ServiceL2StatusSpec {},
            status: Some(l2_status(intent)),
        }
    }

    fn status_patch(intent: &StatusIntent) -> Value {
        let mut status = serde_json::to_value(l2_status(intent)).unwrap_or_default();
        // an empty list is left out when serialised; null removes one the object has
        if intent.items.is_empty() {
            status["interfaces"] = Value::Null;
        }
        serde_json::json!({ "status": status })
    }

    fn status_service(&self) -> Option<ServiceKey> {
        let s = self.status.as_ref()?;
        service(&s.service_name, &s.service_namespace)
    }

    fn status_items(&self, key: &ServiceKey) -> Option<Vec<String>> {
        let s = self.status.as_ref()?;
        names(&s.node, &s.service_name, &s.service_namespace, key)
            .then(|| s.interfaces.iter().filter_map(|i| i.name.clone()).collect())
    }
}

fn l2_status(intent: &StatusIntent) -> MetalLBServiceL2Status {
    MetalLBServiceL2Status {
        node: Some(intent.node.clone()),
        service_name: Some(intent.service.name.clone()),
        service_namespace: Some(intent.service.namespace.clone()),
        interfaces: (intent.items.iter())
            .map(|name| InterfaceInfo {
                name: Some(name.clone()),
            })
            .collect(),
    }
}
