//! `ServiceBGPStatus` intent: one object per (Service, node) where the node is configured
//! to advertise the Service to at least one peer, with the sorted BGPPeer names. The writer
//! creates (with `generateName: bgp-`), updates or deletes objects to match.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use metallb_api::metallb::status::{
    MetalLBServiceBGPStatus, ServiceBGPStatusSpec, BGP_STATUS_GENERATE_NAME, LABEL_NODE,
    LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE,
};
use metallb_api::metallb::ServiceBGPStatus;

use super::input::ServiceKey;

/// Desired `ServiceBGPStatus` content for one Service on one node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BgpStatusIntent {
    pub service: ServiceKey,
    pub node: String,
    /// Sorted, non-empty.
    pub peers: Vec<String>,
}

impl BgpStatusIntent {
    /// Intents of a node from [`super::NodeAnnouncements::bgp_status_intents`].
    pub fn for_node(node: &str, intents: BTreeMap<ServiceKey, Vec<String>>) -> Vec<Self> {
        intents
            .into_iter()
            .map(|(service, peers)| BgpStatusIntent {
                service,
                node: node.to_string(),
                peers,
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

    /// The status the object must have.
    pub fn status(&self) -> MetalLBServiceBGPStatus {
        MetalLBServiceBGPStatus {
            node: Some(self.node.clone()),
            service_name: Some(self.service.name.clone()),
            service_namespace: Some(self.service.namespace.clone()),
            peers: self.peers.clone(),
        }
    }

    /// A new object to create in `namespace` (MetalLB's), named by the apiserver.
    pub fn to_object(&self, namespace: &str) -> ServiceBGPStatus {
        ServiceBGPStatus {
            metadata: ObjectMeta {
                generate_name: Some(BGP_STATUS_GENERATE_NAME.to_string()),
                namespace: Some(namespace.to_string()),
                labels: Some(self.labels()),
                ..Default::default()
            },
            spec: ServiceBGPStatusSpec {},
            status: Some(self.status()),
        }
    }
}
