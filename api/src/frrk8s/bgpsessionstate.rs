//! `BGPSessionState` (namespaced, one per node × peer × VRF): the observed state of a BGP
//! session and its BFD session, exported from FRR.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label carrying the node name on BGPSessionState objects.
pub const NODE_LABEL: &str = "frrk8s.metallb.io/node";
/// Label carrying the peer (IPv6 `:` replaced by `-`) on BGPSessionState objects.
pub const PEER_LABEL: &str = "frrk8s.metallb.io/peer";
/// Label carrying the VRF (empty for the default VRF) on BGPSessionState objects.
pub const VRF_LABEL: &str = "frrk8s.metallb.io/vrf";

/// BGPSessionStateSpec defines the desired state of BGPSessionState (empty).
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "frrk8s.metallb.io",
    version = "v1beta1",
    kind = "BGPSessionState",
    plural = "bgpsessionstates",
    singular = "bgpsessionstate",
    namespaced,
    status = "BGPSessionStateStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Peer","type":"string","jsonPath":".status.peer"}"#,
    printcolumn = r#"{"name":"VRF","type":"string","jsonPath":".status.vrf"}"#,
    printcolumn = r#"{"name":"BGP","type":"string","jsonPath":".status.bgpStatus"}"#,
    printcolumn = r#"{"name":"BFD","type":"string","jsonPath":".status.bfdStatus"}"#,
    doc = "BGPSessionState exposes the status of a BGP Session from the FRR instance running on the node."
)]
pub struct BGPSessionStateSpec {}

/// BGPSessionStateStatus defines the observed state of BGPSessionState.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionStateStatus {
    /// Node is the node the session runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,

    /// Peer is the neighbor address or interface (IPv6 `:` replaced by `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,

    /// VRF is the session's VRF, empty for the default VRF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,

    /// BGPStatus is the BGP FSM state (Idle, Connect, Active, OpenSent, OpenConfirm, Established).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_status: Option<String>,

    /// BFDStatus is the BFD session state (Up, Down, ...) or "N/A" without BFD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_status: Option<String>,
}

/// Peer text as stored in `status.peer` and the peer label: IPv6 `:` become `-`.
pub fn peer_label_value(peer: &str) -> String {
    peer.replace(':', "-")
}
