//! A small piece of a component's memory that must survive its restarts, kept as JSON in a
//! ConfigMap of its own, or a Secret when it may hold credentials (a kept BGPPeer version
//! carries its `password`).
//!
//! Why a ConfigMap and not the component's ConfigurationState: the ConfigurationState is
//! owned by the component's Pod, so the garbage collector removes it when the Pod is
//! replaced (a DaemonSet rolling update deletes the old speaker Pod before it starts the new
//! one). A memo must outlive Pods: it has no owner (the controller's, removed with the
//! namespace) or the Node it is about (a speaker's, removed with the Node).
//!
//! The component is the only writer of its memo; it decides when to save (on change).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

/// The data key holding the JSON value.
const KEY: &str = "memo.json";

/// `<prefix><node>`, shortened with a hash of `node` when longer than an object name may
/// be (253 characters), so that names stay unique per node.
pub fn per_node_name(prefix: &str, node: &str) -> String {
    let name = format!("{prefix}{node}");
    if name.len() <= 253 {
        return name;
    }
    // FNV-1a: stable across builds and platforms.
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let keep: String = node.chars().take(200).collect();
    format!("{prefix}{}-{hash:016x}", keep.trim_end_matches(['-', '.']))
}

/// An owner reference to the Node `name` (a per-node memo goes with its Node).
pub fn node_owner(name: &str, uid: Option<&str>) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.to_string(),
        uid: uid.filter(|u| !u.is_empty())?.to_string(),
        ..Default::default()
    })
}

/// Where the value is kept.
#[derive(Clone)]
enum Backing {
    ConfigMap(Api<ConfigMap>),
    Secret(Api<Secret>),
}

/// One ConfigMap (or Secret) holding one JSON value.
#[derive(Clone)]
pub struct Memo {
    backing: Backing,
    name: String,
    owner: Option<OwnerReference>,
    labels: BTreeMap<String, String>,
    field_manager: String,
}

/// Reading a memo failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoError {
    #[error("reading {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{name}: key {KEY} is not the expected JSON (delete the object to start afresh): {source}"
    )]
    Decode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Memo {
    /// The ConfigMap `name` in `api`'s namespace, written by `field_manager`, owned by
    /// `owner` when given, carrying `labels` (so that an operator can list every memo).
    pub fn new(
        api: Api<ConfigMap>,
        name: impl Into<String>,
        owner: Option<OwnerReference>,
        labels: BTreeMap<String, String>,
        field_manager: impl Into<String>,
    ) -> Self {
        Self::with(Backing::ConfigMap(api), name, owner, labels, field_manager)
    }

    /// As [`Memo::new`], kept in a Secret.
    pub fn secret(
        api: Api<Secret>,
        name: impl Into<String>,
        owner: Option<OwnerReference>,
        labels: BTreeMap<String, String>,
        field_manager: impl Into<String>,
    ) -> Self {
        Self::with(Backing::Secret(api), name, owner, labels, field_manager)
    }

    fn with(
        backing: Backing,
        name: impl Into<String>,
        owner: Option<OwnerReference>,
        labels: BTreeMap<String, String>,
        field_manager: impl Into<String>,
    ) -> Self {
        Memo {
            backing,
            name: name.into(),
            owner,
            labels,
            field_manager: field_manager.into(),
        }
    }

    /// `ConfigMap <name>` or `Secret <name>`, for messages.
    pub fn name(&self) -> String {
        let kind = match self.backing {
            Backing::ConfigMap(_) => "ConfigMap",
            Backing::Secret(_) => "Secret",
        };
        format!("{kind} {}", self.name)
    }

    /// The stored value; `None` when there is no memo yet.
    pub async fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, MemoError> {
        let read = |source| MemoError::Read {
            name: self.name(),
            source,
        };
        let text = match &self.backing {
            Backing::ConfigMap(api) => (api.get_opt(&self.name).await.map_err(read)?)
                .and_then(|c| c.data)
                .and_then(|mut d| d.remove(KEY)),
            Backing::Secret(api) => (api.get_opt(&self.name).await.map_err(read)?)
                .and_then(|c| c.data)
                .and_then(|mut d| d.remove(KEY))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned()),
        };
        let Some(text) = text else {
            return Ok(None);
        };
        let value = serde_json::from_str(&text).map_err(|source| MemoError::Decode {
            name: self.name(),
            source,
        })?;
        Ok(Some(value))
    }

    /// [`Memo::load`], retried a few times (about 10 s in all); when it still fails the
    /// component starts from `T::default()` with a loud error rather than not at all
    /// (missing RBAC after an upgrade should not take the component down; it then only
    /// loses the memory of a restart, and says so).
    pub async fn load_or_default<T: DeserializeOwned + Default>(&self) -> T {
        let mut wait = std::time::Duration::from_millis(250);
        for attempt in 1..=6 {
            match self.load().await {
                Ok(v) => return v.unwrap_or_default(),
                Err(e) if attempt < 6 => {
                    tracing::warn!(error = %e, attempt, "reading the memo failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(4));
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "reading the memo failed: starting without it, so objects kept at \
                         their last valid version before this restart are taken as they are \
                         now (check the RBAC rules for {})",
                        self.name()
                    );
                }
            }
        }
        T::default()
    }

    /// Store `value` (server-side apply: creates the ConfigMap when missing).
    pub async fn save<T: Serialize>(&self, value: &T) -> Result<(), MemoError> {
        let text = serde_json::to_string(value).map_err(|source| MemoError::Decode {
            name: self.name(),
            source,
        })?;
        let mut metadata = json!({ "name": self.name, "labels": self.labels });
        if let Some(owner) = &self.owner {
            metadata["ownerReferences"] = json!([owner]);
        }
        let params = PatchParams::apply(&self.field_manager).force();
        let write = |source| MemoError::Write {
            name: self.name(),
            source,
        };
        match &self.backing {
            Backing::ConfigMap(api) => {
                let obj = json!({
                    "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                    "data": { KEY: text },
                });
                api.patch(&self.name, &params, &Patch::Apply(&obj))
                    .await
                    .map_err(write)?;
            }
            Backing::Secret(api) => {
                let data = BTreeMap::from([(KEY.to_string(), ByteString(text.into_bytes()))]);
                let obj = json!({
                    "apiVersion": "v1", "kind": "Secret", "metadata": metadata,
                    "type": "Opaque", "data": data,
                });
                api.patch(&self.name, &params, &Patch::Apply(&obj))
                    .await
                    .map_err(write)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_node_names_fit_and_stay_unique() {
        assert_eq!(per_node_name("kept-", "node1"), "kept-node1");
        let long_a = format!("{}a", "n".repeat(252));
        let long_b = format!("{}b", "n".repeat(252));
        let (a, b) = (
            per_node_name("kept-", &long_a),
            per_node_name("kept-", &long_b),
        );
        assert!(a.len() <= 253 && b.len() <= 253, "{} {}", a.len(), b.len());
        assert_ne!(a, b);
    }
}
