//! Status-only kinds written by MetalLB components: `ServiceL2Status`, `ServiceBGPStatus`
//! (one per announced service, from the speakers) and `ConfigurationState` (one per component,
//! reporting whether its configuration parsed).

// kube's repeated `printcolumn(type_ = ...)` trips this lint (false positive).
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label on Service*Status objects: the announcing node.
pub const LABEL_NODE: &str = "metallb.io/node";
/// Label on Service*Status objects: the service name.
pub const LABEL_SERVICE_NAME: &str = "metallb.io/service-name";
/// Label on Service*Status objects: the service namespace.
pub const LABEL_SERVICE_NAMESPACE: &str = "metallb.io/service-namespace";
/// Label on ConfigurationState objects: `controller` or `speaker`.
pub const LABEL_COMPONENT_TYPE: &str = "metallb.io/component-type";
/// Label on a speaker's ConfigurationState object: its node.
pub const LABEL_NODE_NAME: &str = "metallb.io/node-name";
/// `generateName` prefix of ServiceL2Status objects.
pub const L2_STATUS_GENERATE_NAME: &str = "l2-";
/// `generateName` prefix of ServiceBGPStatus objects.
pub const BGP_STATUS_GENERATE_NAME: &str = "bgp-";
/// Name of the controller's ConfigurationState object.
pub const CONTROLLER_CONFIGURATION_STATE: &str = "controller";

/// Name of a speaker's ConfigurationState object: `speaker-<node>`.
pub fn speaker_configuration_state_name(node: &str) -> String {
    format!("speaker-{node}")
}

/// ServiceL2StatusSpec defines the desired state of ServiceL2Status (empty).
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    singular = "servicel2status",
    namespaced,
    status = "MetalLBServiceL2Status",
    derive = "PartialEq",
    derive = "Default",
    doc = "ServiceL2Status reveals the actual traffic status of loadbalancer services in layer2 mode.",
    printcolumn(name = "Allocated Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceL2StatusSpec {}

/// MetalLBServiceL2Status defines the observed state of ServiceL2Status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetalLBServiceL2Status {
    /// Node indicates the node that receives the directed traffic
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "Value is immutable", "rule": "self == oldSelf"}]))]
    pub node: Option<String>,
    /// ServiceName indicates the service this status represents
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "Value is immutable", "rule": "self == oldSelf"}]))]
    pub service_name: Option<String>,
    /// ServiceNamespace indicates the namespace of the service
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "Value is immutable", "rule": "self == oldSelf"}]))]
    pub service_namespace: Option<String>,
    /// Interfaces indicates the interfaces that receive the directed traffic
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
}

/// InterfaceInfo defines interface info of layer2 announcement.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub struct InterfaceInfo {
    /// Name the name of network interface card
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// ServiceBGPStatusSpec defines the desired state of ServiceBGPStatus (empty).
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    plural = "servicebgpstatuses",
    singular = "servicebgpstatus",
    namespaced,
    status = "MetalLBServiceBGPStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ServiceBGPStatus exposes the BGP peers a service is configured to be advertised to, per relevant node.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceBGPStatusSpec {}

/// MetalLBServiceBGPStatus defines the observed state of ServiceBGPStatus.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetalLBServiceBGPStatus {
    /// Node indicates the node announcing the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "Value is immutable", "rule": "self == oldSelf"}]))]
    pub node: Option<String>,
    /// ServiceName indicates the service this status represents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "Value is immutable", "rule": "self == oldSelf"}]))]
    pub service_name: Option<String>,
    /// ServiceNamespace indicates the namespace of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"message": "Value is immutable", "rule": "self == oldSelf"}]))]
    pub service_namespace: Option<String>,
    /// Peers indicate the BGP peers for which the service is configured to be advertised to.
    /// The service being actually advertised to a given peer depends on the session state and is not indicated here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// ConfigurationState has no spec: this empty struct is flattened onto the root object.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ConfigurationState",
    plural = "configurationstates",
    singular = "configurationstate",
    namespaced,
    no_spec,
    status = "ConfigurationStateStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ConfigurationState is a status-only CRD that reports configuration validation results from MetalLB components. Labels: metallb.io/component-type (\"controller\" or \"speaker\"), metallb.io/node-name (speakers only).",
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(
        name = "ErrorSummary",
        type_ = "string",
        json_path = ".status.errorSummary"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ConfigurationStateSpec {}

/// ConfigurationResult represents the validation result of a MetalLB configuration.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum ConfigurationResult {
    /// Configuration is successfully validated.
    Valid,
    /// Configuration has errors.
    Invalid,
    /// Component has not reported state.
    Unknown,
}

/// ConfigurationStateStatus defines the observed state of ConfigurationState.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateStatus {
    /// Result indicates the configuration validation result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ConfigurationResult>,

    /// ErrorSummary contains the aggregated error messages from reconciliation failures.
    /// This field is empty when Result is "Valid".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_summary: Option<String>,

    /// Conditions contains the status conditions from the reconcilers running in this component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Condition types written by the reconcilers.
pub const CONDITION_CONFIG_RECONCILER_VALID: &str = "configReconcilerValid";
pub const CONDITION_POOL_RECONCILER_VALID: &str = "poolReconcilerValid";
/// Condition reasons.
pub const REASON_RECONCILED: &str = "Reconciled";
pub const REASON_CONFIGURATION_ERROR: &str = "ConfigurationError";
pub const REASON_INFRA_ERROR: &str = "InfraError";
pub const REASON_UNKNOWN_ERROR: &str = "UnknownError";

impl ConfigurationStateStatus {
    /// Upstream's summary rule: Unknown without conditions, Invalid if any condition is False
    /// with reason ConfigurationError, else Valid.
    pub fn derived_result(conditions: &[Condition]) -> ConfigurationResult {
        if conditions.is_empty() {
            ConfigurationResult::Unknown
        } else if conditions
            .iter()
            .any(|c| c.status == "False" && c.reason == REASON_CONFIGURATION_ERROR)
        {
            ConfigurationResult::Invalid
        } else {
            ConfigurationResult::Valid
        }
    }
}
