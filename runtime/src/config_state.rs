//! The ConfigurationState writer shared by the controller (`controller`) and every speaker
//! (`speaker-<node>`): each reports whether the configuration it reads is valid, in its own
//! object, which only it writes.
//!
//! Pure planning: from the object as observed, what it must be ([`Target`]) and the status
//! the component wants, [`next_step`] decides the one write (if any) that brings the object
//! closer; [`execute`] does that write. A writer runs the two until `next_step` says
//! nothing is left, feeding each write's response back as the observed object, so nothing
//! is written when the object already says what it must.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch};
use metallb_api::metallb::status::ConfigurationStateSpec;
use metallb_api::metallb::{ConfigurationState, ConfigurationStateStatus};
use serde_json::{json, Value};

use crate::owner::is_owned_by;
use crate::write::WriteParams;

/// What the object must be, apart from its status.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    /// MetalLB's namespace.
    pub namespace: String,
    /// Labels it must carry (others are left alone).
    pub labels: BTreeMap<String, String>,
    /// The component's Pod, so that the object is garbage-collected with it (as upstream);
    /// `None` when the pod is unknown: the object then has no owner.
    pub owner: Option<OwnerReference>,
}

impl Target {
    /// A new object: metadata only, the status goes through the status subresource.
    pub fn new_object(&self) -> ConfigurationState {
        let mut obj = ConfigurationState::new(&self.name, ConfigurationStateSpec {});
        obj.metadata.namespace = Some(self.namespace.clone());
        obj.metadata.labels = Some(self.labels.clone());
        obj.metadata.owner_references = self.owner.clone().map(|o| vec![o]);
        obj
    }

    /// A merge patch restoring our labels and owner on an existing object, if they are
    /// missing or wrong. Other labels are left alone. The owner list is replaced: after a
    /// restart the object still names the previous pod, whose deletion would otherwise
    /// garbage-collect it.
    pub fn metadata_patch(&self, observed: &ObjectMeta) -> Option<Value> {
        let mut meta = serde_json::Map::new();
        let have = observed.labels.as_ref();
        if (self.labels.iter()).any(|(k, v)| have.and_then(|l| l.get(k)) != Some(v)) {
            meta.insert("labels".into(), json!(self.labels));
        }
        if let Some(owner) = &self.owner {
            if !is_owned_by(observed.owner_references.as_deref(), owner) {
                meta.insert("ownerReferences".into(), json!([owner]));
            }
        }
        (!meta.is_empty()).then(|| json!({ "metadata": meta }))
    }
}

/// One write to the object.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The object is missing (never created, or deleted by someone): create it.
    Create(Box<ConfigurationState>),
    /// Merge patch of the object's metadata (see [`Target::metadata_patch`]).
    Metadata(Value),
    /// The status differs (timestamps aside): replace it through the status subresource.
    Status(ConfigurationStateStatus),
}

/// The next write bringing `observed` to `target` with the status `want` makes from the
/// status the object has (so that a condition keeps its lastTransitionTime while it holds),
/// or `None` when the object already says it.
pub fn next_step(
    observed: Option<&ConfigurationState>,
    target: &Target,
    want: impl FnOnce(Option<&ConfigurationStateStatus>) -> ConfigurationStateStatus,
) -> Option<Step> {
    let Some(obj) = observed else {
        return Some(Step::Create(Box::new(target.new_object())));
    };
    if let Some(patch) = target.metadata_patch(&obj.metadata) {
        return Some(Step::Metadata(patch));
    }
    let previous = obj.status.as_ref();
    let want = want(previous);
    match previous {
        Some(p) if p.same_as(&want) => None,
        _ => Some(Step::Status(want)),
    }
}

/// Do `step`; the object as the server returned it. The object is created by server-side
/// apply: a request that names the object, so RBAC can restrict it to that name (the
/// controller's role does), and one that succeeds when a lagging watch missed the object.
/// A `merge_patch` status write nulls absent fields, so a summary cleared by a fix goes.
pub async fn execute(
    api: &Api<ConfigurationState>,
    target: &Target,
    step: &Step,
    params: &WriteParams,
) -> kube::Result<ConfigurationState> {
    match step {
        Step::Create(obj) => {
            api.patch(&target.name, &params.apply(), &Patch::Apply(obj))
                .await
        }
        Step::Metadata(patch) => {
            api.patch(&target.name, &params.patch, &Patch::Merge(patch))
                .await
        }
        Step::Status(status) => {
            api.patch_status(
                &target.name,
                &params.patch,
                &Patch::Merge(status.merge_patch()),
            )
            .await
        }
    }
}
