//! The full set of CustomResourceDefinitions this project ships.
//!
//! The chart's CRD files and the test API server are both generated from this list, so the
//! schema a test exercises is the schema a cluster gets.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD of both API groups, sorted by name (deterministic output).
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut v = crate::metallb::crds();
    v.extend(crate::frrk8s::crds());
    v.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    v
}
