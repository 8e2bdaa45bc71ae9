//! A small piece of a component's memory that must survive its restarts, kept as JSON in a
//! ConfigMap of its own.
//!
//! Why a ConfigMap and not the component's ConfigurationState: the ConfigurationState is
//! owned by the component's Pod, so the garbage collector removes it when the Pod is
//! replaced (a DaemonSet rolling update deletes the old speaker Pod before it starts the new
//! one). A memo must outlive Pods: it has no owner (the controller's, removed with the
//! namespace) or the Node it is about (a speaker's, removed with the Node).
//!
//! The component is the only writer of its memo; it decides when to save (on change).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

/// The data key holding the JSON value.
const KEY: &str = "memo.json";

/// One ConfigMap holding one JSON value.
#[derive(Clone)]
pub struct Memo {
    api: Api<ConfigMap>,
    name: String,
    owner: Option<OwnerReference>,
    labels: BTreeMap<String, String>,
    field_manager: String,
}

/// Reading a memo failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoError {
    #[error("reading ConfigMap {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing ConfigMap {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("ConfigMap {name}: key {KEY} is not the expected JSON (delete the ConfigMap to start afresh): {source}")]
    Decode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Memo {
    /// The memo `name` in `api`'s namespace, written by `field_manager`, owned by `owner`
    /// when given, carrying `labels` (so that an operator can list every memo).
    pub fn new(
        api: Api<ConfigMap>,
        name: impl Into<String>,
        owner: Option<OwnerReference>,
        labels: BTreeMap<String, String>,
        field_manager: impl Into<String>,
    ) -> Self {
        Memo {
            api,
            name: name.into(),
            owner,
            labels,
            field_manager: field_manager.into(),
        }
    }

    /// The ConfigMap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored value; `None` when there is no memo yet.
    pub async fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, MemoError> {
        let cm = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| MemoError::Read {
                name: self.name.clone(),
                source,
            })?;
        let Some(text) = cm.and_then(|c| c.data).and_then(|mut d| d.remove(KEY)) else {
            return Ok(None);
        };
        let value = serde_json::from_str(&text).map_err(|source| MemoError::Decode {
            name: self.name.clone(),
            source,
        })?;
        Ok(Some(value))
    }

    /// Store `value` (server-side apply: creates the ConfigMap when missing).
    pub async fn save<T: Serialize>(&self, value: &T) -> Result<(), MemoError> {
        let text = serde_json::to_string(value).map_err(|source| MemoError::Decode {
            name: self.name.clone(),
            source,
        })?;
        let mut metadata = json!({ "name": self.name, "labels": self.labels });
        if let Some(owner) = &self.owner {
            metadata["ownerReferences"] = json!([owner]);
        }
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": { KEY: text },
        });
        self.api
            .patch(
                &self.name,
                &PatchParams::apply(&self.field_manager).force(),
                &Patch::Apply(&cm),
            )
            .await
            .map_err(|source| MemoError::Write {
                name: self.name.clone(),
                source,
            })?;
        Ok(())
    }
}
