//! Status writers: one per kind, each the only writer of its objects, each writing only when
//! what it would write differs from what it last wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, Patch};
use kube::{Api, Client};
use metallb_api::frrk8s::bgpsessionstate::{peer_label_value, NODE_LABEL, PEER_LABEL, VRF_LABEL};
use metallb_api::frrk8s::{
    BGPSessionState, BGPSessionStateStatus, FRRNodeState, FRRNodeStateStatus,
};
use metallb_runtime::write::{ApiErrorExt as _, Backoff, WriteParams};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::frr::status::BgpNeighborStatus;
use crate::metrics::FrrMetrics;

/// Field manager of the status writers' writes.
pub const FIELD_MANAGER: &str = "frr-k8s";

/// The status writers retry from 500 ms, doubling to 10 s: status is for people and
/// tools, never in the path of an announcement.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(500), Duration::from_secs(10))
}

/// What FRRNodeState.status should say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// `show running-config`, passwords redacted.
    pub running_config: Option<String>,
    pub last_conversion_result: Option<String>,
    pub last_reload_result: Option<String>,
}

impl NodeStatus {
    /// Returns whether anything changed.
    pub fn set_conversion(&mut self, result: &str) -> bool {
        if self.last_conversion_result.as_deref() == Some(result) {
            return false;
        }
        self.last_conversion_result = Some(result.to_string());
        true
    }

    /// Returns whether anything changed. `running` is kept when it could not be read.
    pub fn set_reload(&mut self, result: &str, running: Option<String>) -> bool {
        let mut changed = false;
        if self.last_reload_result.as_deref() != Some(result) {
            self.last_reload_result = Some(result.to_string());
            changed = true;
        }
        if running.is_some() && running != self.running_config {
            self.running_config = running;
            changed = true;
        }
        changed
    }

    fn to_api(&self) -> FRRNodeStateStatus {
        FRRNodeStateStatus {
            running_config: self.running_config.clone(),
            last_conversion_result: self.last_conversion_result.clone(),
            last_reload_result: self.last_reload_result.clone(),
            ..Default::default()
        }
    }
}

/// Keep `FRRNodeState/<node>` in line with `rx`: created if missing, status patched when it
/// differs from what was last written. Failed writes are retried with a short backoff.
pub async fn write_node_state(
    client: Client,
    node: String,
    mut rx: watch::Receiver<NodeStatus>,
    metrics: Arc<FrrMetrics>,
    shutdown: CancellationToken,
) {
    let api: Api<FRRNodeState> = Api::all(client);
    let mut written: Option<FRRNodeStateStatus> = None;
    let mut backoff = backoff();
    loop {
        let desired = rx.borrow_and_update().to_api();
        if written.as_ref() != Some(&desired) {
            match write_once(&api, &node, &desired).await {
                Ok(()) => {
                    metrics.k8s_client_updates_total.inc();
                    written = Some(desired);
                    backoff.reset();
                }
                Err(e) => {
                    metrics.k8s_client_update_errors_total.inc();
                    let wait = backoff.failed();
                    warn!(node = %node, error = %e, retry_in_ms = wait.as_millis() as u64, "writing FRRNodeState failed");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn write_once(
    api: &Api<FRRNodeState>,
    node: &str,
    status: &FRRNodeStateStatus,
) -> kube::Result<()> {
    let params = WriteParams::new(FIELD_MANAGER);
    if api.get_opt(node).await?.is_none() {
        let obj = FRRNodeState::new(node, Default::default());
        match api.create(&params.post, &obj).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    api.patch_status(
        node,
        &params.patch,
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// Desired BGPSessionState statuses keyed by (peer label, vrf).
pub fn desired_sessions(
    node: &str,
    sessions: &[BgpNeighborStatus],
) -> BTreeMap<(String, String), BGPSessionStateStatus> {
    sessions
        .iter()
        .map(|s| {
            let peer = peer_label_value(&s.peer);
            (
                (peer.clone(), s.vrf.clone()),
                BGPSessionStateStatus {
                    node: Some(node.to_string()),
                    peer: Some(peer),
                    vrf: Some(s.vrf.clone()),
                    bgp_status: Some(s.state.clone()),
                    bfd_status: Some(s.bfd_status_label().to_string()),
                },
            )
        })
        .collect()
}

/// How soon a failed read of the owner pod is retried when nothing else happens.
const OWNER_RETRY: Duration = Duration::from_secs(5);

/// The Pod the component runs in (`POD_NAME` from the downward API): the owner of its
/// BGPSessionState objects, so that they are garbage-collected with it (as upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

pub use metallb_runtime::owner::pod_owner_reference;

/// The merge patch giving an existing object `owner` (its other owners kept, as
/// upstream), or `None` when it already has it. Carries the resourceVersion, so a
/// concurrent change of the owners fails the write instead of being overwritten.
pub fn owner_patch(meta: &ObjectMeta, owner: &OwnerReference) -> Option<serde_json::Value> {
    let current = meta.owner_references.as_deref().unwrap_or(&[]);
    if current.iter().any(|o| o.uid == owner.uid) {
        return None;
    }
    let mut owners = current.to_vec();
    owners.push(owner.clone());
    let mut patch = json!({"metadata": {"ownerReferences": owners}});
    if let Some(rv) = &meta.resource_version {
        patch["metadata"]["resourceVersion"] = json!(rv);
    }
    Some(patch)
}

/// Who owns the objects the writer creates.
#[derive(Clone, Debug)]
enum Owner {
    /// No pod known: no owner (as before the pod is known).
    None,
    /// The pod's uid is still to be read.
    Pending(String),
    Known(OwnerReference),
}

/// Writes this node's BGPSessionState objects (one per peer and VRF).
#[derive(Clone, Debug)]
pub struct SessionStatusWriter {
    api: Api<BGPSessionState>,
    pods: Api<Pod>,
    namespace: String,
    node: String,
    owner: Owner,
}

impl SessionStatusWriter {
    pub fn new(client: Client, namespace: &str, node: &str) -> Self {
        SessionStatusWriter {
            api: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            node: node.to_string(),
            owner: Owner::None,
        }
    }

    /// Make `pod` the owner of the objects (created ones, and existing ones that lack it).
    /// An owner must live in its dependents' namespace: a pod elsewhere is ignored (an
    /// owner reference cannot name it, and one naming a missing pod would have the
    /// garbage collector delete the objects at once).
    pub fn owned_by(mut self, pod: Option<PodRef>) -> Self {
        self.owner = match pod {
            Some(p) if p.namespace == self.namespace => Owner::Pending(p.name),
            Some(p) => {
                warn!(pod = %p.name, pod_namespace = %p.namespace, namespace = %self.namespace,
                      "the pod is not in the BGPSessionState namespace: the objects get no owner");
                Owner::None
            }
            None => Owner::None,
        };
        self
    }

    /// The owner reference, reading the pod's uid the first time (a failed read is retried
    /// at the next write; meanwhile objects are written without owner, and given it later).
    async fn owner(&mut self) -> Option<OwnerReference> {
        if let Owner::Pending(name) = self.owner.clone() {
            let name = name.as_str();
            match self.pods.get_opt(name).await {
                Ok(Some(pod)) => match pod_owner_reference(&pod) {
                    Some(o) => {
                        info!(pod = %name, uid = %o.uid, "BGPSessionState objects are owned by this pod");
                        self.owner = Owner::Known(o);
                    }
                    None => {
                        warn!(pod = %name, "the pod has no uid: BGPSessionState objects get no owner");
                        self.owner = Owner::None;
                    }
                },
                Ok(None) => {
                    warn!(pod = %name, namespace = %self.namespace,
                          "the pod does not exist: BGPSessionState objects get no owner");
                    self.owner = Owner::None;
                }
                Err(e) => {
                    warn!(pod = %name, error = %e, "cannot read the pod (retrying at the next write): BGPSessionState objects have no owner meanwhile");
                }
            }
        }
        match &self.owner {
            Owner::Known(o) => Some(o.clone()),
            _ => None,
        }
    }

    /// Follow `rx` until shutdown; the poller only sends when sessions changed.
    pub async fn run(
        mut self,
        mut rx: watch::Receiver<Option<Vec<BgpNeighborStatus>>>,
        metrics: Arc<FrrMetrics>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = backoff();
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(sessions) = current {
                match self.sync(&sessions).await {
                    Ok(writes) => {
                        metrics.k8s_client_updates_total.inc_by(writes);
                        backoff.reset();
                    }
                    Err(e) => {
                        metrics.k8s_client_update_errors_total.inc();
                        let wait = backoff.failed();
                        warn!(node = %self.node, error = %e, retry_in_ms = wait.as_millis() as u64, "writing BGPSessionState failed");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => continue,
                            _ = shutdown.cancelled() => return,
                        }
                    }
                }
            }
            // The pod could not be read yet: try again even if the sessions stay as they are.
            let owner_pending = matches!(self.owner, Owner::Pending(_));
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(OWNER_RETRY), if owner_pending => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Make the objects match `sessions`; returns how many writes it took.
    pub async fn sync(&mut self, sessions: &[BgpNeighborStatus]) -> kube::Result<u64> {
        let owner = self.owner().await;
        let params = WriteParams::new(FIELD_MANAGER);
        let desired = desired_sessions(&self.node, sessions);
        let existing = self
            .api
            .list(&ListParams::default().labels(&format!("{NODE_LABEL}={}", self.node)))
            .await?;
        let mut writes = 0;
        let mut kept: BTreeSet<(String, String)> = BTreeSet::new();
        for obj in existing.items {
            let labels = obj.metadata.labels.clone().unwrap_or_default();
            let key = (
                labels.get(PEER_LABEL).cloned().unwrap_or_default(),
                labels.get(VRF_LABEL).cloned().unwrap_or_default(),
            );
            let name = obj.metadata.name.clone().unwrap_or_default();
            match desired.get(&key) {
                Some(status) if !kept.contains(&key) => {
                    kept.insert(key);
                    if let Some(patch) = owner.as_ref().and_then(|o| owner_patch(&obj.metadata, o))
                    {
                        self.api
                            .patch(&name, &params.patch, &Patch::Merge(patch))
                            .await?;
                        writes += 1;
                    }
                    if obj.status.as_ref() != Some(status) {
                        self.api
                            .patch_status(
                                &name,
                                &params.patch,
                                &Patch::Merge(json!({ "status": status })),
                            )
                            .await?;
                        writes += 1;
                    }
                }
                // A vanished peer, or a duplicate.
                _ => {
                    debug!(node = %self.node, object = %name, "deleting stale BGPSessionState");
                    match self.api.delete(&name, &params.delete).await {
                        Ok(_) => writes += 1,
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        for (key, status) in desired.iter().filter(|(k, _)| !kept.contains(*k)) {
            let mut obj = BGPSessionState::new("", Default::default());
            obj.metadata.name = None;
            obj.metadata.generate_name = Some(format!("{}-", self.node));
            obj.metadata.labels = Some(
                [
                    (NODE_LABEL.to_string(), self.node.clone()),
                    (PEER_LABEL.to_string(), key.0.clone()),
                    (VRF_LABEL.to_string(), key.1.clone()),
                ]
                .into(),
            );
            obj.metadata.owner_references = owner.clone().map(|o| vec![o]);
            let created = self.api.create(&params.post, &obj).await?;
            let name = created.metadata.name.unwrap_or_default();
            self.api
                .patch_status(
                    &name,
                    &params.patch,
                    &Patch::Merge(json!({ "status": status })),
                )
                .await?;
            writes += 2;
        }
        Ok(writes)
    }
}

#[cfg(test)]
mod owner_tests {
    use super::*;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: format!("pod-{uid}"),
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_pod_reference_is_upstreams() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "frr-k8s-abcde", "namespace": "frr-k8s-system", "uid": "u-1"}
        }))
        .unwrap();
        let o = pod_owner_reference(&pod).unwrap();
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            json!({"apiVersion": "v1", "kind": "Pod", "name": "frr-k8s-abcde", "uid": "u-1"})
        );
        let no_uid: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert!(pod_owner_reference(&no_uid).is_none());
    }

    #[test]
    fn a_missing_owner_is_added_and_others_are_kept() {
        let meta = ObjectMeta {
            resource_version: Some("7".into()),
            ..Default::default()
        };
        let p = owner_patch(&meta, &owner("a")).unwrap();
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "a");
        assert_eq!(p["metadata"]["resourceVersion"], "7");

        let meta = ObjectMeta {
            owner_references: Some(vec![owner("old")]),
            ..Default::default()
        };
        let p = owner_patch(&meta, &owner("new")).unwrap();
        let uids: Vec<&str> = p["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["uid"].as_str().unwrap())
            .collect();
        assert_eq!(uids, ["old", "new"]);
        assert!(p["metadata"].get("resourceVersion").is_none());

        let owned = ObjectMeta {
            owner_references: Some(vec![owner("a")]),
            ..Default::default()
        };
        assert_eq!(owner_patch(&owned, &owner("a")), None);
    }
}
