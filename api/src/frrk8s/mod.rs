//! `frrk8s.metallb.io` kinds.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every `frrk8s.metallb.io` CRD, sorted by name.
pub fn crds() -> Vec<CustomResourceDefinition> {
    Vec::new()
}
