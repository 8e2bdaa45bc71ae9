//! Kubernetes objects the scenarios create, as plain JSON (the same manifests a user
//! would `kubectl apply`).

use serde_json::{json, Value};

/// Where MetalLB's objects live.
pub const METALLB_NS: &str = "metallb-system";
/// Where frr-k8s reads FRRConfigurations.
pub const FRRK8S_NS: &str = "frr-k8s-system";
/// Where the scenarios' Services live.
pub const APP_NS: &str = "default";

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// A ServiceAccount (the stand-in pods' identity).
pub fn service_account(name: &str, namespace: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
        "automountServiceAccountToken": false})
}

/// A Pod bound to `node` that stands for a product process (the owner of what that
/// process writes). Nothing runs it: without a kubelet it stays Pending.
pub fn pod(name: &str, namespace: &str, node: &str, service_account: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "metallb-e2e"}},
        "spec": {
            "nodeName": node,
            "serviceAccountName": service_account,
            "automountServiceAccountToken": false,
            "containers": [{"name": "main", "image": "metallb-rs/e2e-stand-in"}],
        },
    })
}

/// A Node with the `kubernetes.io/hostname` label (status addresses are set separately,
/// see [`node_status`]).
pub fn node(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        }},
        "spec": {},
    })
}

/// The status of a ready Node with InternalIP addresses.
pub fn node_status(name: &str, addrs: &[String]) -> Value {
    let mut addresses: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"type": "InternalIP", "address": a}))
        .collect();
    addresses.push(json!({"type": "Hostname", "address": name}));
    json!({"status": {
        "addresses": addresses,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }})
}

pub fn ip_pool(name: &str, addresses: &[&str]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": METALLB_NS},
        "spec": {"addresses": addresses},
    })
}

/// A BGPPeer; `extra` is merged into `spec` (holdTime, bfdProfile, password, vrf, ...).
pub fn bgp_peer(name: &str, my_asn: u32, peer_asn: u32, address: &str, extra: Value) -> Value {
    let mut spec = json!({
        "myASN": my_asn, "peerASN": peer_asn, "peerAddress": address,
        "connectTime": "1s",
    });
    merge(&mut spec, extra);
    json!({
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": METALLB_NS},
        "spec": spec,
    })
}

/// A BGPAdvertisement; `spec` as given (`{}` advertises every pool to every peer).
pub fn bgp_advertisement(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": name, "namespace": METALLB_NS},
        "spec": spec,
    })
}

/// An L2Advertisement in MetalLB's namespace.
pub fn l2_advertisement(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": METALLB_NS},
        "spec": spec,
    })
}

pub fn bfd_profile(name: &str, interval_ms: u32, multiplier: u32) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
        "metadata": {"name": name, "namespace": METALLB_NS},
        "spec": {"receiveInterval": interval_ms, "transmitInterval": interval_ms,
                 "detectMultiplier": multiplier},
    })
}

/// A `kubernetes.io/basic-auth` Secret holding `password` (what a BGPPeer's
/// `passwordSecret` references).
pub fn basic_auth_secret(name: &str, namespace: &str, password: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/basic-auth",
        "stringData": {"password": password},
    })
}

/// A LoadBalancer Service selecting `app=<name>`, port 80.
pub fn lb_service(name: &str, local: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": APP_NS},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
        },
    })
}

/// A dual-stack LoadBalancer Service.
pub fn lb_service_dual(name: &str) -> Value {
    let mut s = lb_service(name, false);
    s["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
    s["spec"]["ipFamilies"] = json!(["IPv4", "IPv6"]);
    s
}

/// One endpoint of a Service: (node name, pod IP, serving).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub node: String,
    pub ip: String,
    pub serving: bool,
}

impl Endpoint {
    pub fn new(node: &str, ip: &str, serving: bool) -> Self {
        Endpoint {
            node: node.into(),
            ip: ip.into(),
            serving,
        }
    }
}

/// The EndpointSlice `<service>-e2e` of a Service.
pub fn endpoint_slice(service: &str, endpoints: &[Endpoint]) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            json!({
                "addresses": [e.ip],
                "conditions": {"ready": e.serving, "serving": e.serving, "terminating": false},
                "nodeName": e.node,
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-e2e"), "namespace": APP_NS,
            "labels": {"kubernetes.io/service-name": service,
                       "endpointslice.kubernetes.io/managed-by": "e2e"},
        },
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// A user's FRRConfiguration in the frr-k8s namespace; `spec` as given.
pub fn frr_configuration(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "FRRConfiguration",
        "metadata": {"name": name, "namespace": FRRK8S_NS},
        "spec": spec,
    })
}

/// Recursively merges `patch` into `base` (objects merged, everything else replaced).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, p) => *slot = p,
    }
}

/// `status.loadBalancer.ingress[*].ip` of a Service.
pub fn ingress_ips(svc: &Value) -> Vec<String> {
    svc.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("ip").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `198.18.0.1` → `198.18.0.1/32`, `2001:db8::1` → `2001:db8::1/128`.
pub fn host_prefix(ip: &str) -> String {
    if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_nested() {
        let mut a = json!({"a": 1, "b": {"c": 2}});
        merge(&mut a, json!({"b": {"d": 3}, "e": [1]}));
        assert_eq!(a, json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}));
    }

    #[test]
    fn ingress() {
        let s = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.1"}]}}});
        assert_eq!(ingress_ips(&s), vec!["198.18.0.1"]);
        assert_eq!(host_prefix("198.18.0.1"), "198.18.0.1/32");
    }
}
