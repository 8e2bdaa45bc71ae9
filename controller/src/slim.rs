//! The parts of a `core/v1` Service the controller reads, as the type its watch decodes.
//!
//! Why not `k8s_openapi`'s `Service`: the controller holds every Service of the cluster in
//! memory, and the full type costs ~5 KiB per Service once decoded (large inline structs,
//! `managedFields` with their `fieldsV1` trees, ports with names and target ports,
//! annotations of other tools such as `last-applied-configuration`). Decoding straight into
//! this type skips all of that without allocating it (serde ignores unknown fields).
//!
//! Field names mirror `k8s_openapi` (`spec.type_`, `spec.cluster_ips`, ...) so the pure
//! code reads the same either way; `From<k8s_openapi::api::core::v1::Service>` converts a
//! full object (tests, callers holding one).
//!
//! Nothing here is ever written back whole: the controller writes merge patches
//! (`status.rs`), so a field missing here can never be erased by a write.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::LoadBalancerStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use metallb_api::metallb::annotations::{LEGACY_PREFIX, PREFIX};
use serde::{Deserialize, Deserializer, Serialize};

/// A `core/v1` Service, reduced to what allocation needs.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Service {
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
}

/// `spec` fields read by `service::intake`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    #[serde(
        rename = "loadBalancerIP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    /// `key=value` pairs sorted by key (a map in the API). A vector because a `BTreeMap`
    /// with one entry allocates a whole node (~0.5 KiB) per Service.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sorted_pairs",
        serialize_with = "pairs_as_map"
    )]
    pub selector: Option<Vec<(String, String)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ServicePort>>,
    #[serde(rename = "clusterIP", default, skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    #[serde(
        rename = "clusterIPs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<String>,
}

/// A port: only what IP sharing compares.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: i32,
}

/// `status`: only the load balancer part.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
}

/// The metadata fields the controller reads (identity, resourceVersion, labels for
/// `serviceSelectors`, MetalLB's annotations for requests and the pool annotation).
/// Everything else, `managedFields` above all, is skipped while decoding.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

fn sorted_pairs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<(String, String)>>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.map(|m| m.into_iter().collect()))
}

fn pairs_as_map<S: serde::Serializer>(
    pairs: &Option<Vec<(String, String)>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match pairs {
        Some(p) => s.collect_map(p.iter().map(|(k, v)| (k, v))),
        None => s.serialize_none(),
    }
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<SlimMeta>::deserialize(d)?.unwrap_or_default();
    // Only MetalLB's own annotations are ever read; others (last-applied-configuration
    // can be kilobytes) are dropped, and an empty map is not kept.
    let annotations = m
        .annotations
        .map(|mut a| {
            a.retain(|k, _| k.starts_with(PREFIX) || k.starts_with(LEGACY_PREFIX));
            a
        })
        .filter(|a| !a.is_empty());
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        labels: m.labels,
        annotations,
        ..Default::default()
    })
}

impl k8s_openapi::Resource for Service {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Service";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "services";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for Service {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<k8s_openapi::api::core::v1::Service> for Service {
    /// Through JSON, the path the watch takes, so conversions and decoding agree.
    fn from(full: k8s_openapi::api::core::v1::Service) -> Self {
        serde_json::to_value(full)
            .and_then(serde_json::from_value)
            .expect("a core/v1 Service always decodes into its slim form")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_what_allocation_reads_and_drops_the_rest() {
        let full = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": "web", "namespace": "apps", "uid": "u-1", "resourceVersion": "42",
                "generation": 3,
                "labels": {"app": "web"},
                "annotations": {
                    "metallb.io/loadBalancerIPs": "192.0.2.1",
                    "metallb.universe.tf/address-pool": "p",
                    "prometheus.io/scrape": "true",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"huge\": true}"
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                   "fieldsV1": {"f:spec": {"f:ports": {}}}}],
                "finalizers": ["x"]
            },
            "spec": {
                "type": "LoadBalancer", "loadBalancerClass": "c", "loadBalancerIP": "192.0.2.1",
                "externalTrafficPolicy": "Local", "selector": {"app": "web"},
                "ports": [{"name": "http", "protocol": "UDP", "port": 53, "targetPort": "dns",
                           "nodePort": 30053}],
                "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1"],
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack",
                "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]},
                       "conditions": [{"type": "x", "status": "True", "reason": "R", "message": "m",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        });
        let s: Service = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("web"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(s.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(s.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(s.metadata.labels.as_ref().unwrap()["app"], "web");
        let a = s.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            [
                "metallb.io/loadBalancerIPs",
                "metallb.universe.tf/address-pool"
            ]
        );
        assert!(s.metadata.managed_fields.is_none());
        assert!(s.metadata.finalizers.is_none());
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.load_balancer_class.as_deref(), Some("c"));
        assert_eq!(spec.load_balancer_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(
            spec.selector.as_deref(),
            Some(&[("app".to_string(), "web".to_string())][..])
        );
        assert_eq!(
            spec.ports.as_deref(),
            Some(
                &[ServicePort {
                    protocol: Some("UDP".into()),
                    port: 53
                }][..]
            )
        );
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
        assert_eq!(spec.cluster_ips.as_ref().unwrap().len(), 2);
        assert_eq!(spec.ip_family_policy.as_deref(), Some("PreferDualStack"));
        let ingress = s.status.as_ref().unwrap().load_balancer.as_ref().unwrap();
        assert_eq!(
            ingress.ingress.as_ref().unwrap()[0].ip.as_deref(),
            Some("192.0.2.1")
        );
        // The full type converts to the same thing.
        let typed: k8s_openapi::api::core::v1::Service = serde_json::from_value(full).unwrap();
        assert_eq!(Service::from(typed), s);
        // And back to JSON, with the selector as a map again.
        let again = serde_json::to_value(&s).unwrap();
        assert_eq!(again["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(serde_json::from_value::<Service>(again).unwrap(), s);
    }

    #[test]
    fn sparse_objects_decode() {
        let s: Service = serde_json::from_value(json!({"metadata": null})).unwrap();
        assert_eq!(s, Service::default());
        let s: Service = serde_json::from_value(json!({
            "metadata": {"name": "a", "annotations": {"other.io/x": "y"}}, "spec": {}
        }))
        .unwrap();
        assert_eq!(s.spec, Some(ServiceSpec::default()));
        assert_eq!(s.metadata.annotations, None);
    }
}
