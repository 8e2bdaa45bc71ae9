//! `metallb.io` kinds.
//!
//! Wire-compatible with upstream MetalLB (`api/v1beta1`, `api/v1beta2`): same group, versions,
//! kinds, JSON field names, optionality and schema defaults. Every kind has one
//! `validate(&self) -> Result<(), FieldErrors>` entry point for the rules that concern the object
//! alone; rules that span objects (pool overlap, alias resolution, peer compatibility, ...) are
//! pure functions in [`config`].
//!
//! Deliberate deviations from upstream (see the README's compatibility section):
//! * `BGPPeer.spec.peerPort` accepts 1..65535 (upstream caps it at 16384).
//! * `BGPPeer.spec.passwordSecret.namespace` is honoured (upstream ignores it).
//! * v1beta1 → v1beta2 conversion does not invent `0s` hold/keepalive timers.
//! * `BGPPeer.spec.routerID` must be an IPv4 address (FRR cannot use anything else).
//! * hold/keepalive times must be whole seconds (upstream silently truncates).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod annotations;
pub mod bfdprofile;
pub mod bgpadvertisement;
pub mod bgppeer;
pub mod bgppeer_v1beta1;
pub mod community;
pub mod config;
pub mod effective;
pub mod ipaddresspool;
pub mod l2advertisement;
pub mod status;

pub use bfdprofile::{BFDProfile, BFDProfileSpec};
pub use bgpadvertisement::{BGPAdvertisement, BGPAdvertisementSpec};
pub use bgppeer::{BGPPeer, BGPPeerSpec, DynamicASNMode};
pub use community::{Community, CommunityAlias, CommunitySpec};
pub use ipaddresspool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use l2advertisement::{L2Advertisement, L2AdvertisementSpec, PreferredNodeSelector};
pub use status::{
    ConfigurationResult, ConfigurationState, ConfigurationStateStatus, ServiceBGPStatus,
    ServiceL2Status,
};

/// The API group of every kind in this module.
pub const GROUP: &str = "metallb.io";

/// Every `metallb.io` CRD, multi-version kinds merged, sorted by name.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let bgppeers = kube::core::crd::merge_crds(
        vec![bgppeer::BGPPeer::crd(), bgppeer_v1beta1::BGPPeer::crd()],
        "v1beta2",
    )
    // Both inputs are generated from our own types with the same group/kind/scope; a
    // mismatch is a programming error caught by every test run.
    .expect("BGPPeer v1beta1 and v1beta2 CRDs are mergeable");
    let mut v = vec![
        IPAddressPool::crd(),
        bgppeers,
        BGPAdvertisement::crd(),
        L2Advertisement::crd(),
        BFDProfile::crd(),
        Community::crd(),
        ServiceL2Status::crd(),
        ServiceBGPStatus::crd(),
        ConfigurationState::crd(),
    ];
    v.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    v
}

/// Shared checks used by several kinds.
pub(crate) mod common {
    use crate::validation::{FieldErrors, FieldPath};

    /// Reject repeated entries in a string list: `spec.peers[2]: "p" is a duplicate of spec.peers[0]`.
    pub fn check_duplicates(items: &[String], path: &FieldPath, errs: &mut FieldErrors) {
        for (i, s) in items.iter().enumerate() {
            if let Some(j) = items[..i].iter().position(|o| o == s) {
                errs.invalid(
                    &path.index(i),
                    s,
                    format!("is a duplicate of {}", path.index(j)),
                );
            }
        }
    }

    /// Reject empty strings in a list of names.
    pub fn check_non_empty(items: &[String], path: &FieldPath, errs: &mut FieldErrors) {
        for (i, s) in items.iter().enumerate() {
            if s.trim().is_empty() {
                errs.invalid(&path.index(i), s, "must not be empty");
            }
        }
    }

    /// RFC 1123 label (namespace names): lowercase alphanumerics and `-`, at most 63 characters.
    pub fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    /// `Option<String>` that treats `""` as unset (Go's zero value).
    pub fn non_empty(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|s| !s.is_empty())
    }
}
