//! `metallb.io` kinds.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every `metallb.io` CRD, multi-version kinds merged, sorted by name.
pub fn crds() -> Vec<CustomResourceDefinition> {
    Vec::new()
}
