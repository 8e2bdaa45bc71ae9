//! `frrk8s.metallb.io/v1beta1` kinds: `FRRConfiguration`, `FRRNodeState`,
//! `BGPSessionState`, `FRRK8sConfiguration`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod bgpsessionstate;
pub mod frrconfiguration;
pub mod frrk8sconfiguration;
pub mod frrnodestate;
pub mod schema;
pub mod validate;

pub use bgpsessionstate::{BGPSessionState, BGPSessionStateSpec, BGPSessionStateStatus};
pub use frrconfiguration::*;
pub use frrk8sconfiguration::{
    FRRK8sConfiguration, FRRK8sConfigurationSpec, FRRK8sConfigurationStatus, LogLevel,
};
pub use frrnodestate::{FRRNodeState, FRRNodeStateSpec, FRRNodeStateStatus};

/// The API group of every kind in this module.
pub const GROUP: &str = "frrk8s.metallb.io";
/// The API version of every kind in this module.
pub const VERSION: &str = "v1beta1";

/// Every `frrk8s.metallb.io` CRD, sorted by name.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut v = vec![
        FRRConfiguration::crd(),
        FRRNodeState::crd(),
        BGPSessionState::crd(),
        FRRK8sConfiguration::crd(),
    ];
    v.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    v
}
