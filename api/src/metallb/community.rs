//! `Community` (`metallb.io/v1beta1`): named aliases for BGP community values.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::community::BgpCommunity;
use crate::validation::{FieldErrors, FieldPath};

/// CommunitySpec defines the desired state of Community.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    singular = "community",
    namespaced,
    status = "CommunityStatus",
    derive = "PartialEq",
    doc = "Community is a collection of aliases for communities. Users can define named aliases to be used in the BGPAdvertisement CRD."
)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    /// The aliases: each maps a name to a community value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunityAlias>,
}

/// One named community value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CommunityAlias {
    /// The name of the alias for the community.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The BGP community value corresponding to the given name. Can be either a standard community
    /// of the form 1234:1234 or a large community of the form large:1234:1234:1234.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// CommunityStatus defines the observed state of Community (empty).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CommunityStatus {}

impl CommunityAlias {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    pub fn value(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

impl CommunitySpec {
    /// Every problem with this object: names present, unique and usable as aliases (no `:`),
    /// values valid communities. Paths start at `spec.`.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let cp = FieldPath::new("spec").child("communities");
        let mut errs = FieldErrors::new();
        for (i, a) in self.communities.iter().enumerate() {
            let p = cp.index(i);
            let name = a.name();
            if name.trim().is_empty() {
                errs.problem(&p.child("name"), "is required");
            } else if !BgpCommunity::could_be_alias(name) {
                errs.invalid(
                    &p.child("name"),
                    name,
                    "is not a valid alias name: it must not contain ':'",
                );
            } else if let Some(j) = self.communities[..i].iter().position(|o| o.name() == name) {
                errs.invalid(
                    &p.child("name"),
                    name,
                    format!(
                        "duplicate definition of community: already defined in {}",
                        cp.index(j)
                    ),
                );
            }
            if let Err(e) = BgpCommunity::parse(a.value()) {
                errs.invalid(
                    &p.child("value"),
                    a.value(),
                    super::bgpadvertisement::community_message(&e),
                );
            }
        }
        errs.into_result()
    }

    /// The valid aliases of this object, by name (invalid entries skipped; first wins).
    pub fn aliases(&self) -> BTreeMap<String, BgpCommunity> {
        let mut out = BTreeMap::new();
        for a in &self.communities {
            if a.name().is_empty() || !BgpCommunity::could_be_alias(a.name()) {
                continue;
            }
            if let Ok(v) = BgpCommunity::parse(a.value()) {
                out.entry(a.name().to_string()).or_insert(v);
            }
        }
        out
    }
}

impl Community {
    /// See [`CommunitySpec::validate`].
    pub fn validate(&self) -> Result<(), FieldErrors> {
        self.spec.validate()
    }
}
