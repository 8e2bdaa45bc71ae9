//! `BGPPeer` `metallb.io/v1beta1`: served but deprecated, converted to and from v1beta2.
//!
//! The conversion is field by field and pure. Fields that only exist in v1beta2 (dynamicASN,
//! interface, localASN, connectTime, passwordSecret, enableGracefulRestart, vrf, disableMP,
//! dualStackAddressFamily) are dropped on down-conversion, as upstream does.
//!
//! Deliberate fix of an upstream quirk: upstream's up-conversion always sets the v1beta2
//! `holdTime`/`keepaliveTime` pointers, so a v1beta1 object without timers becomes
//! `holdTime: 0s, keepaliveTime: 0s` (which disables keepalives in FRR). We copy them only
//! when present.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bgppeer as v1beta2;
use crate::duration::Duration;

/// The deprecation warning returned by the API server for v1beta1 requests.
pub const DEPRECATION_WARNING: &str = "v1beta1 is deprecated, please use v1beta2";

/// BGPPeerSpec defines the desired state of Peer.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    namespaced,
    status = "BGPPeerStatus",
    derive = "PartialEq",
    storage = false,
    served = true,
    deprecated = "v1beta1 is deprecated, please use v1beta2",
    doc = "BGPPeer is the Schema for the peers API."
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// AS number to use for the local end of the session.
    #[serde(rename = "myASN")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub my_asn: u32,

    /// AS number to expect from the remote end of the session.
    #[serde(rename = "peerASN")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub peer_asn: u32,

    /// Address to dial when establishing the session.
    pub peer_address: String,

    /// Source address to use when establishing the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,

    /// Port to dial when establishing the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub peer_port: Option<u16>,

    /// Requested BGP hold time, per RFC4271.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<Duration>,

    /// Requested BGP keepalive time, per RFC4271.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Duration>,

    /// BGP router ID to advertise to the peer
    #[serde(rename = "routerID", default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,

    /// Only connect to this peer on nodes that match one of these
    /// selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<NodeSelector>,

    /// Authentication password for routers enforcing TCP MD5 authenticated sessions
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,

    /// The name of the BFD Profile to be used for the BFD session associated to the BGP session.
    #[serde(
        rename = "bfdProfile",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bfd_profile: Option<String>,

    /// EBGP peer is multi-hops away
    #[serde(
        rename = "ebgpMultiHop",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ebgp_multi_hop: Option<bool>,
}

/// Legacy node selector: `matchLabels` plus `matchExpressions`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    /// Labels the node must carry, all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Expressions the node labels must satisfy, all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<MatchExpression>,
}

/// One legacy selector requirement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct MatchExpression {
    /// The label key.
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: String,
    /// The values the operator applies to.
    #[schemars(length(min = 1))]
    pub values: Vec<String>,
}

/// BGPPeerStatus defines the observed state of Peer (empty).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BGPPeerStatus {}

impl From<&NodeSelector> for LabelSelector {
    fn from(n: &NodeSelector) -> Self {
        LabelSelector {
            match_labels: (!n.match_labels.is_empty()).then(|| n.match_labels.clone()),
            match_expressions: (!n.match_expressions.is_empty()).then(|| {
                n.match_expressions
                    .iter()
                    .map(|e| LabelSelectorRequirement {
                        key: e.key.clone(),
                        operator: e.operator.clone(),
                        values: Some(e.values.clone()),
                    })
                    .collect()
            }),
        }
    }
}

impl From<&LabelSelector> for NodeSelector {
    fn from(s: &LabelSelector) -> Self {
        NodeSelector {
            match_labels: s.match_labels.clone().unwrap_or_default(),
            match_expressions: s
                .match_expressions
                .iter()
                .flatten()
                .map(|e| MatchExpression {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: e.values.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// v1beta1 → v1beta2 spec, field by field (timers only when present; see the module docs).
pub fn spec_to_v1beta2(s: &BGPPeerSpec) -> v1beta2::BGPPeerSpec {
    v1beta2::BGPPeerSpec {
        my_asn: s.my_asn,
        peer_asn: Some(s.peer_asn),
        peer_address: Some(s.peer_address.clone()),
        source_address: s.source_address.clone(),
        peer_port: s.peer_port,
        hold_time: s.hold_time.clone(),
        keepalive_time: s.keepalive_time.clone(),
        router_id: s.router_id.clone(),
        node_selectors: s.node_selectors.iter().map(LabelSelector::from).collect(),
        password: s.password.clone(),
        bfd_profile: s.bfd_profile.clone(),
        ebgp_multi_hop: s.ebgp_multi_hop,
        ..Default::default()
    }
}

/// v1beta2 → v1beta1 spec. Fields v1beta1 cannot express are dropped.
pub fn spec_from_v1beta2(s: &v1beta2::BGPPeerSpec) -> BGPPeerSpec {
    BGPPeerSpec {
        my_asn: s.my_asn,
        peer_asn: s.peer_asn.unwrap_or(0),
        peer_address: s.peer_address.clone().unwrap_or_default(),
        source_address: s.source_address.clone(),
        peer_port: s.peer_port,
        hold_time: s.hold_time.clone(),
        keepalive_time: s.keepalive_time.clone(),
        router_id: s.router_id.clone(),
        node_selectors: s.node_selectors.iter().map(NodeSelector::from).collect(),
        password: s.password.clone(),
        bfd_profile: s.bfd_profile.clone(),
        ebgp_multi_hop: s.ebgp_multi_hop,
    }
}

/// Whole-object up-conversion (metadata copied, status kept empty-or-absent).
pub fn to_v1beta2(p: &BGPPeer) -> v1beta2::BGPPeer {
    v1beta2::BGPPeer {
        metadata: p.metadata.clone(),
        spec: spec_to_v1beta2(&p.spec),
        status: p.status.as_ref().map(|_| v1beta2::BGPPeerStatus {}),
    }
}

/// Whole-object down-conversion.
pub fn from_v1beta2(p: &v1beta2::BGPPeer) -> BGPPeer {
    BGPPeer {
        metadata: p.metadata.clone(),
        spec: spec_from_v1beta2(&p.spec),
        status: p.status.as_ref().map(|_| BGPPeerStatus {}),
    }
}

/// Why an object could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    #[error("unsupported conversion from {from:?} to {to:?} for BGPPeer")]
    Unsupported { from: String, to: String },
    #[error("BGPPeer {name}: cannot decode as {api_version}: {message}")]
    Decode {
        name: String,
        api_version: String,
        message: String,
    },
}

/// Convert one BGPPeer JSON object (as found in a `ConversionReview`) to `desired_api_version`
/// (`metallb.io/v1beta1` or `metallb.io/v1beta2`). Same version in and out returns the object
/// unchanged.
pub fn convert_object(
    obj: &serde_json::Value,
    desired_api_version: &str,
) -> Result<serde_json::Value, ConversionError> {
    const V1: &str = "metallb.io/v1beta1";
    const V2: &str = "metallb.io/v1beta2";
    let from = obj
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or("<unnamed>")
        .to_string();
    let decode_err = |api_version: &str, e: serde_json::Error| ConversionError::Decode {
        name: name.clone(),
        api_version: api_version.to_string(),
        message: e.to_string(),
    };
    let encode = |v: Result<serde_json::Value, serde_json::Error>, api: &str| {
        v.map_err(|e| decode_err(api, e))
    };
    match (from.as_str(), desired_api_version) {
        (a, b) if a == b && (a == V1 || a == V2) => Ok(obj.clone()),
        (V1, V2) => {
            let p: BGPPeer = serde_json::from_value(obj.clone()).map_err(|e| decode_err(V1, e))?;
            encode(serde_json::to_value(to_v1beta2(&p)), V2)
        }
        (V2, V1) => {
            let p: v1beta2::BGPPeer =
                serde_json::from_value(obj.clone()).map_err(|e| decode_err(V2, e))?;
            encode(serde_json::to_value(from_v1beta2(&p)), V1)
        }
        _ => Err(ConversionError::Unsupported {
            from,
            to: desired_api_version.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_YAML: &str = r#"
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata:
  name: peer-sample1
  namespace: metallb-system
spec:
  peerAddress: 10.0.0.1
  peerASN: 64501
  myASN: 64500
  peerPort: 179
  holdTime: "180s"
  keepaliveTime: "60s"
  password: "test"
  routerID: 10.10.10.10
  bfdProfile: fast
  ebgpMultiHop: true
  nodeSelectors:
  - matchLabels:
      kubernetes.io/hostname: node-1
    matchExpressions:
    - key: zone
      operator: In
      values: [a, b]
  - matchExpressions:
    - {key: rack, operator: Exists, values: [x]}
"#;

    #[test]
    fn v1beta1_round_trips_through_v1beta2() {
        let v1: BGPPeer = serde_yaml::from_str(V1_YAML).unwrap();
        let v2 = to_v1beta2(&v1);
        assert_eq!(v2.spec.peer_asn, Some(64501));
        assert_eq!(v2.spec.node_selectors.len(), 2);
        assert_eq!(
            v2.spec.node_selectors[0]
                .match_labels
                .as_ref()
                .unwrap()
                .get("kubernetes.io/hostname")
                .map(String::as_str),
            Some("node-1")
        );
        assert_eq!(v2.spec.node_selectors[1].match_labels, None);
        assert_eq!(from_v1beta2(&v2), v1);
    }

    #[test]
    fn up_conversion_does_not_invent_timers() {
        let mut v1: BGPPeer = serde_yaml::from_str(V1_YAML).unwrap();
        v1.spec.hold_time = None;
        v1.spec.keepalive_time = None;
        let v2 = to_v1beta2(&v1);
        assert_eq!(v2.spec.hold_time, None);
        assert_eq!(v2.spec.keepalive_time, None);
        assert_eq!(v2.spec.timers(), None);
        let json = serde_json::to_value(&v2).unwrap();
        assert!(json["spec"].get("holdTime").is_none());
        assert!(json["spec"].get("keepaliveTime").is_none());
    }

    #[test]
    fn v1beta2_round_trips_through_v1beta1() {
        let v2: v1beta2::BGPPeer = serde_yaml::from_str(
            r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: p, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 172.18.0.5
  sourceAddress: 172.18.0.2
  holdTime: 90s
  nodeSelectors:
  - matchExpressions:
    - {key: zone, operator: NotIn, values: [c]}
"#,
        )
        .unwrap();
        let v1 = from_v1beta2(&v2);
        assert_eq!(
            v1.spec.node_selectors[0].match_expressions[0].values,
            vec!["c"]
        );
        assert_eq!(to_v1beta2(&v1), v2);
    }

    #[test]
    fn down_conversion_drops_v1beta2_only_fields() {
        let v2: v1beta2::BGPPeer = serde_yaml::from_str(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, dynamicASN: external, interface: eth0, vrf: red}\n",
        )
        .unwrap();
        let v1 = from_v1beta2(&v2);
        assert_eq!(v1.spec.peer_asn, 0);
        assert_eq!(v1.spec.peer_address, "");
    }

    #[test]
    fn convert_json_objects() {
        let v1: serde_json::Value = serde_yaml::from_str(V1_YAML).unwrap();
        let v2 = convert_object(&v1, "metallb.io/v1beta2").unwrap();
        assert_eq!(v2["apiVersion"], "metallb.io/v1beta2");
        assert_eq!(v2["spec"]["peerASN"], 64501);
        assert_eq!(v2["metadata"]["name"], "peer-sample1");
        let back = convert_object(&v2, "metallb.io/v1beta1").unwrap();
        assert_eq!(back, v1);
        assert_eq!(convert_object(&v1, "metallb.io/v1beta1").unwrap(), v1);
        assert!(matches!(
            convert_object(&v1, "metallb.io/v2"),
            Err(ConversionError::Unsupported { .. })
        ));
    }
}
