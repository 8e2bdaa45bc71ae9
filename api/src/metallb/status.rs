//! Status-only kinds written by MetalLB components: `ServiceL2Status`, `ServiceBGPStatus`
//! (one per announced service, from the speakers) and `ConfigurationState` (one per component,
//! reporting whether its configuration parsed).

// kube's repeated `printcolumn(type_ = ...)` trips this lint (false positive).
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
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
        } else if conditions.iter().any(is_configuration_error) {
            ConfigurationResult::Invalid
        } else {
            ConfigurationResult::Valid
        }
    }

    /// A status from its conditions, with `result` and `errorSummary` derived as upstream's
    /// ConfigurationStateReconciler does: the summary joins, one per line, the messages of
    /// the conditions that make the result Invalid. Conditions are sorted by type (they
    /// are a list-map keyed by type) so equal inputs give equal objects.
    pub fn from_conditions(mut conditions: Vec<Condition>) -> Self {
        conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
        let summary = conditions
            .iter()
            .filter(|c| is_configuration_error(c))
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        ConfigurationStateStatus {
            result: Some(Self::derived_result(&conditions)),
            error_summary: (!summary.is_empty()).then_some(summary),
            conditions,
        }
    }

    /// The status of a component with one reconciler (what both our controller and our
    /// speaker report): see [`reconciler_condition`].
    pub fn single_condition(
        condition_type: &str,
        error: Option<String>,
        previous: Option<&Self>,
        now: Timestamp,
    ) -> Self {
        Self::from_conditions(vec![reconciler_condition(
            condition_type,
            error,
            previous,
            now,
        )])
    }

    /// Whether two statuses say the same thing, timestamps ignored: a status is rewritten
    /// only when this is false, so an unchanged configuration writes nothing.
    pub fn same_as(&self, other: &Self) -> bool {
        let strip = |s: &Self| {
            (
                s.result,
                s.error_summary.clone(),
                s.conditions
                    .iter()
                    .map(|c| {
                        (
                            c.type_.clone(),
                            c.status.clone(),
                            c.reason.clone(),
                            c.message.clone(),
                            c.observed_generation,
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        };
        strip(self) == strip(other)
    }

    /// A JSON merge patch of the status subresource that makes it exactly `self`. An absent
    /// `errorSummary` is sent as `null`: omitted, a merge patch would keep the previous
    /// (Invalid) summary next to a Valid result.
    pub fn merge_patch(&self) -> serde_json::Value {
        let mut status = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = status.as_object_mut() {
            for key in ["result", "errorSummary", "conditions"] {
                map.entry(key).or_insert(serde_json::Value::Null);
            }
        }
        serde_json::json!({ "status": status })
    }
}

fn is_configuration_error(c: &Condition) -> bool {
    c.status == "False" && c.reason == REASON_CONFIGURATION_ERROR
}

/// One reconciler's condition: True with reason `Reconciled` when `error` is `None`, else
/// False with reason `ConfigurationError` and `error` as its message. `lastTransitionTime`
/// is kept from `previous` when the condition's status did not change (as
/// `meta.SetStatusCondition` does), else it is `now`.
pub fn reconciler_condition(
    condition_type: &str,
    error: Option<String>,
    previous: Option<&ConfigurationStateStatus>,
    now: Timestamp,
) -> Condition {
    let (status, reason) = if error.is_some() {
        ("False", REASON_CONFIGURATION_ERROR)
    } else {
        ("True", REASON_RECONCILED)
    };
    let last_transition_time = previous
        .and_then(|p| {
            p.conditions
                .iter()
                .find(|c| c.type_ == condition_type && c.status == status)
        })
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: condition_type.into(),
        status: status.into(),
        reason: reason.into(),
        message: error.unwrap_or_default(),
        last_transition_time,
        observed_generation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("timestamp")
    }

    #[test]
    fn valid_then_invalid_then_valid_again() {
        let ok = ConfigurationStateStatus::single_condition(
            CONDITION_CONFIG_RECONCILER_VALID,
            None,
            None,
            ts(10),
        );
        assert_eq!(ok.result, Some(ConfigurationResult::Valid));
        assert_eq!(ok.error_summary, None);
        assert_eq!(ok.conditions[0].status, "True");
        assert_eq!(ok.conditions[0].reason, REASON_RECONCILED);
        assert_eq!(ok.conditions[0].last_transition_time, Time(ts(10)));

        let bad = ConfigurationStateStatus::single_condition(
            CONDITION_CONFIG_RECONCILER_VALID,
            Some("a\nb".into()),
            Some(&ok),
            ts(20),
        );
        assert_eq!(bad.result, Some(ConfigurationResult::Invalid));
        assert_eq!(bad.error_summary.as_deref(), Some("a\nb"));
        assert_eq!(bad.conditions[0].reason, REASON_CONFIGURATION_ERROR);
        assert_eq!(
            bad.conditions[0].last_transition_time,
            Time(ts(20)),
            "the status changed: new transition time"
        );
        assert!(!bad.same_as(&ok));

        // Another message, still False: the transition time stays, the message is rewritten.
        let other = ConfigurationStateStatus::single_condition(
            CONDITION_CONFIG_RECONCILER_VALID,
            Some("c".into()),
            Some(&bad),
            ts(30),
        );
        assert_eq!(other.conditions[0].last_transition_time, Time(ts(20)));
        assert!(!other.same_as(&bad));

        // Recomputed later from itself: only the clock moved, nothing to write.
        let again = ConfigurationStateStatus::single_condition(
            CONDITION_CONFIG_RECONCILER_VALID,
            Some("c".into()),
            Some(&other),
            ts(40),
        );
        assert!(again.same_as(&other));
        assert_eq!(again, other);
    }

    #[test]
    fn derived_from_several_conditions() {
        let cond = |t: &str, err: Option<&str>| {
            reconciler_condition(t, err.map(str::to_string), None, ts(0))
        };
        assert_eq!(
            ConfigurationStateStatus::from_conditions(vec![]).result,
            Some(ConfigurationResult::Unknown)
        );
        let s = ConfigurationStateStatus::from_conditions(vec![
            cond(CONDITION_POOL_RECONCILER_VALID, Some("pool")),
            cond(CONDITION_CONFIG_RECONCILER_VALID, Some("peer")),
        ]);
        assert_eq!(s.result, Some(ConfigurationResult::Invalid));
        // sorted by type: configReconcilerValid first
        assert_eq!(s.error_summary.as_deref(), Some("peer\npool"));
        let mut unknown = cond(CONDITION_POOL_RECONCILER_VALID, Some("rbac"));
        unknown.reason = REASON_INFRA_ERROR.into();
        let s = ConfigurationStateStatus::from_conditions(vec![
            unknown,
            cond(CONDITION_CONFIG_RECONCILER_VALID, None),
        ]);
        assert_eq!(s.result, Some(ConfigurationResult::Valid));
        assert_eq!(s.error_summary, None);
    }

    #[test]
    fn merge_patch_clears_a_stale_summary() {
        let ok = ConfigurationStateStatus::single_condition(
            CONDITION_CONFIG_RECONCILER_VALID,
            None,
            None,
            ts(0),
        );
        let patch = ok.merge_patch();
        assert_eq!(patch["status"]["result"], "Valid");
        assert!(patch["status"]["errorSummary"].is_null());
        assert!(patch["status"]
            .as_object()
            .expect("object")
            .contains_key("errorSummary"));
        assert_eq!(
            patch["status"]["conditions"][0]["type"],
            CONDITION_CONFIG_RECONCILER_VALID
        );
    }
}
