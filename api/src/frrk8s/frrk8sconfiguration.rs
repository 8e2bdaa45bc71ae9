//! `FRRK8sConfiguration` (namespaced, must be named `config` in the daemon's namespace):
//! runtime settings of the frr-k8s components.

use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only FRRK8sConfiguration name the daemon reads.
pub const FRRK8S_CONFIGURATION_NAME: &str = "config";

/// FRRK8sConfigurationSpec defines the desired state of FRRK8sConfiguration.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "frrk8s.metallb.io",
    version = "v1beta1",
    kind = "FRRK8sConfiguration",
    plural = "frrk8sconfigurations",
    singular = "frrk8sconfiguration",
    namespaced,
    status = "FRRK8sConfigurationStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "FRRK8sConfiguration holds the FRR Operator configuration with global settings for the K8s and FRR."
)]
#[serde(rename_all = "camelCase")]
pub struct FRRK8sConfigurationSpec {
    /// LogLevel sets the logging verbosity for the FRR-K8s components at runtime.
    /// When configured, this value overrides the defaults established by the --log-level CLI flag.
    /// Valid values are: all, debug, info, warn, error, none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
}

/// FRRK8sConfigurationStatus defines the observed state of FRRK8sConfiguration (empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FRRK8sConfigurationStatus {}

/// Log level of the frr-k8s components and of FRR's `log stdout` line.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    All,
    Debug,
    Info,
    Warn,
    Error,
    None,
}

impl LogLevel {
    /// The FRR `log stdout <level>` argument (upstream `internal/frr/level.go`).
    pub fn frr_level(&self) -> &'static str {
        match self {
            LogLevel::All | LogLevel::Debug => "debugging",
            LogLevel::Info => "informational",
            LogLevel::Warn => "warnings",
            LogLevel::Error => "errors",
            LogLevel::None => "emergencies",
        }
    }

    /// Whether FRR debug lines (`debug bgp ...`) are enabled at this level.
    pub fn frr_debugging(&self) -> bool {
        matches!(self, LogLevel::All | LogLevel::Debug)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            LogLevel::All => "all",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::None => "none",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
