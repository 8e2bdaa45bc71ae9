//! `FRRNodeState` (cluster-scoped, one per node, named after the node): what the frr-k8s
//! daemon last rendered, converted and reloaded on that node.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// FRRNodeStateSpec defines the desired state of FRRNodeState (empty).
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "frrk8s.metallb.io",
    version = "v1beta1",
    kind = "FRRNodeState",
    plural = "frrnodestates",
    singular = "frrnodestate",
    status = "FRRNodeStateStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "FRRNodeState is the Schema for the FRRNodeStates API."
)]
pub struct FRRNodeStateSpec {}

/// FRRNodeStateStatus defines the observed state of FRRNodeState.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FRRNodeStateStatus {
    /// DesiredConfig is the FRR configuration the daemon rendered last (older upstream
    /// releases only; kept so their objects round-trip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_config: Option<String>,

    /// RunningConfig is the running configuration read from FRR, passwords redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_config: Option<String>,

    /// LastConversionResult is "success" or "failed: <reason>" for the last conversion of
    /// the FRRConfigurations selecting this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_conversion_result: Option<String>,

    /// LastReloadResult is "success" or the error output of the last FRR reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload_result: Option<String>,
}
