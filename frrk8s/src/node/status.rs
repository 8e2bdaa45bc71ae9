//! Status writers: one per kind, each the only writer of its objects. Each watches the
//! objects it writes into an index, plans its writes from it (`plan_node_state`,
//! `plan_sessions`: pure), executes them and puts every response into the index
//! (own-write tracking: [`metallb_runtime::own`]). So an object is written only when what
//! it shows differs from what it should, and restored when someone else changes it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::Patch;
use kube::runtime::watcher;
use kube::{Api, Client};
use metallb_api::frrk8s::bgpsessionstate::{peer_label_value, NODE_LABEL, PEER_LABEL, VRF_LABEL};
use metallb_api::frrk8s::{
    BGPSessionState, BGPSessionStateStatus, FRRNodeState, FRRNodeStateStatus,
};
use metallb_runtime::own::{OwnObject, OwnObjectWatch};
use metallb_runtime::watch::{lock, watch_into, Index, ObjKey, WatchedState};
use metallb_runtime::write::{ApiErrorExt as _, Backoff, WriteParams};
use metallb_runtime::{Readiness, Tasks};
use serde_json::json;
use tokio::sync::{watch, Notify};
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

// ===== FRRNodeState =====

/// `FRRNodeState/<node>` as its watch shows it, our own writes applied at once.
pub type NodeStateIndex = OwnObject<FRRNodeState>;

/// One write of the FRRNodeState writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeStateOp {
    Create,
    /// A merge patch of the status: fields left `None` are not touched.
    Status(FRRNodeStateStatus),
}

/// Pure: the writes that make `observed` show `desired`. A merge patch leaves the fields
/// `desired` does not set as they are, so only the fields it sets are compared (a field
/// another writer set is never a reason to write).
pub fn plan_node_state(
    observed: Option<&FRRNodeState>,
    desired: &FRRNodeStateStatus,
) -> Vec<NodeStateOp> {
    let shown = observed.map(|o| o.status.clone().unwrap_or_default());
    let differs = |want: &Option<String>, have: Option<&Option<String>>| {
        want.is_some() && have.is_none_or(|h| h != want)
    };
    let stale = shown.as_ref();
    let needs_status = differs(&desired.running_config, stale.map(|s| &s.running_config))
        || differs(
            &desired.last_conversion_result,
            stale.map(|s| &s.last_conversion_result),
        )
        || differs(
            &desired.last_reload_result,
            stale.map(|s| &s.last_reload_result),
        );
    let mut ops = Vec::new();
    if observed.is_none() {
        ops.push(NodeStateOp::Create);
    }
    if needs_status {
        ops.push(NodeStateOp::Status(desired.clone()));
    }
    ops
}

/// Keep `FRRNodeState/<node>` showing `rx`: a watch of the object (started here, owned
/// by `tasks`) feeds an index; the writer plans from it ([`plan_node_state`]), writes, and
/// puts each response into the index. So the object is restored when someone else
/// changes or deletes it, and nothing is read back per change.
pub fn spawn_node_state_writer(
    tasks: &mut Tasks,
    readiness: &Readiness,
    client: Client,
    node: String,
    rx: watch::Receiver<NodeStatus>,
    metrics: Arc<FrrMetrics>,
    shutdown: CancellationToken,
) {
    let api: Api<FRRNodeState> = Api::all(client);
    let (index, wake) = watch_into(
        tasks,
        readiness,
        &shutdown,
        NodeStateIndex::default(),
        "frrnodestate",
        api.clone(),
        watcher::Config::default().fields(&format!("metadata.name={node}")),
    );
    let writer = node_state_writer(api, node, index, wake, rx, metrics, shutdown);
    tasks.spawn("FRRNodeState writer", writer.map(Ok));
}

async fn node_state_writer(
    api: Api<FRRNodeState>,
    node: String,
    index: Arc<Mutex<NodeStateIndex>>,
    wake: Arc<Notify>,
    mut rx: watch::Receiver<NodeStatus>,
    metrics: Arc<FrrMetrics>,
    shutdown: CancellationToken,
) {
    let params = WriteParams::new(FIELD_MANAGER);
    let mut backoff = backoff();
    let mut last_write: Option<tokio::time::Instant> = None;
    loop {
        // While FRR keeps changing, its running configuration is shown at most once per
        // NODE_STATE_INTERVAL: at 1,000 prefixes the status is ~100 KB, and a burst of
        // Services rewrote it once per FRR apply (1,164 writes for 1,000 Services).
        if let Some(t) = last_write.map(|t| t + NODE_STATE_INTERVAL) {
            tokio::select! {
                _ = tokio::time::sleep_until(t) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        let desired = rx.borrow_and_update().to_api();
        let ops = {
            let st = lock(&index);
            match st.listed() {
                true => plan_node_state(st.get(), &desired),
                false => Vec::new(),
            }
        };
        let (mut failed, mut wrote) = (None, false);
        for op in ops {
            let written = match op {
                NodeStateOp::Create => {
                    let obj = FRRNodeState::new(&node, Default::default());
                    match api.create(&params.post, &obj).await {
                        Ok(o) => Ok(Some(o)),
                        // made meanwhile (the watch will tell us); the status patch follows
                        Err(e) if e.is_already_exists() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                NodeStateOp::Status(status) => api
                    .patch_status(
                        &node,
                        &params.patch,
                        &Patch::Merge(json!({ "status": status })),
                    )
                    .await
                    .map(Some),
            };
            match written {
                Ok(o) => {
                    wrote = true;
                    metrics.k8s_client_updates_total.inc();
                    if let Some(o) = o {
                        lock(&index).wrote(o);
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => {
                backoff.reset();
                if wrote {
                    last_write = Some(tokio::time::Instant::now());
                }
            }
            Some(e) => {
                // the backoff spaces the attempts (not this interval too)
                last_write = None;
                metrics.k8s_client_update_errors_total.inc();
                let wait = backoff.failed();
                warn!(node = %node, error = %e, retry_in_ms = wait.as_millis() as u64, "writing FRRNodeState failed");
                // the whole backoff, whatever arrives meanwhile
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = wake.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Shortest time between two writes of the FRRNodeState (a change after a calm is written
/// at once: the wait is over by then).
pub const NODE_STATE_INTERVAL: Duration = Duration::from_secs(1);

// ===== BGPSessionState =====

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

    /// Keep this node's BGPSessionState objects showing `rx` (the poller only sends when
    /// sessions changed): a watch of the objects labelled with this node (started here,
    /// owned by `tasks`) feeds an index; the writer plans from it ([`plan_sessions`]),
    /// writes, and puts each response into the index. So an object someone else changes
    /// or deletes is restored, and nothing is listed per change.
    pub fn spawn(
        self,
        tasks: &mut Tasks,
        readiness: &Readiness,
        rx: watch::Receiver<Option<Vec<BgpNeighborStatus>>>,
        metrics: Arc<FrrMetrics>,
        shutdown: CancellationToken,
    ) {
        let (index, wake) = watch_into(
            tasks,
            readiness,
            &shutdown,
            SessionIndex::default(),
            "bgpsessionstates",
            self.api.clone(),
            watcher::Config::default().labels(&format!("{NODE_LABEL}={}", self.node)),
        );
        let writer = self.run(index, wake, rx, metrics, shutdown);
        tasks.spawn("BGPSessionState writer", writer.map(Ok));
    }

    async fn run(
        mut self,
        index: Arc<Mutex<SessionIndex>>,
        wake: Arc<Notify>,
        mut rx: watch::Receiver<Option<Vec<BgpNeighborStatus>>>,
        metrics: Arc<FrrMetrics>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = backoff();
        loop {
            let current = rx.borrow_and_update().clone();
            let listed = lock(&index).listed;
            if let (Some(sessions), true) = (current, listed) {
                let owner = self.owner().await;
                let ops = plan_sessions(
                    &self.node,
                    &sessions,
                    lock(&index).objs.values(),
                    owner.as_ref(),
                );
                match self.execute(ops, owner, &index).await {
                    Ok(writes) => {
                        metrics.k8s_client_updates_total.inc_by(writes);
                        backoff.reset();
                    }
                    Err(e) => {
                        metrics.k8s_client_update_errors_total.inc();
                        let wait = backoff.failed();
                        warn!(node = %self.node, error = %e, retry_in_ms = wait.as_millis() as u64, "writing BGPSessionState failed");
                        // the whole backoff, whatever arrives meanwhile
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
                _ = wake.notified() => {}
                _ = tokio::time::sleep(OWNER_RETRY), if owner_pending => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Run `ops` in order, each response into `index`; returns how many writes it took.
    /// Stops at the first failure (the next round plans again from the index).
    async fn execute(
        &self,
        ops: Vec<SessionOp>,
        owner: Option<OwnerReference>,
        index: &Mutex<SessionIndex>,
    ) -> kube::Result<u64> {
        let params = WriteParams::new(FIELD_MANAGER);
        let mut writes = 0;
        for op in ops {
            match op {
                SessionOp::Own { name, patch } => {
                    let o = (self.api)
                        .patch(&name, &params.patch, &Patch::Merge(patch))
                        .await?;
                    lock(index).wrote(o);
                    writes += 1;
                }
                SessionOp::Status { name, status } => {
                    let o = self.patch_status(&name, &status, &params).await?;
                    lock(index).wrote(o);
                    writes += 1;
                }
                SessionOp::Delete { name } => {
                    debug!(node = %self.node, object = %name, "deleting stale BGPSessionState");
                    match self.api.delete(&name, &params.delete).await {
                        Ok(_) => writes += 1,
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e),
                    }
                    lock(index).objs.remove(&name);
                }
                SessionOp::Create { peer, vrf, status } => {
                    let mut obj = BGPSessionState::new("", Default::default());
                    obj.metadata.name = None;
                    obj.metadata.generate_name = Some(format!("{}-", self.node));
                    obj.metadata.labels = Some(
                        [
                            (NODE_LABEL.to_string(), self.node.clone()),
                            (PEER_LABEL.to_string(), peer),
                            (VRF_LABEL.to_string(), vrf),
                        ]
                        .into(),
                    );
                    obj.metadata.owner_references = owner.clone().map(|o| vec![o]);
                    let created = self.api.create(&params.post, &obj).await?;
                    let name = created.metadata.name.clone().unwrap_or_default();
                    lock(index).wrote(created);
                    let o = self.patch_status(&name, &status, &params).await?;
                    lock(index).wrote(o);
                    writes += 2;
                }
            }
        }
        Ok(writes)
    }

    async fn patch_status(
        &self,
        name: &str,
        status: &BGPSessionStateStatus,
        params: &WriteParams,
    ) -> kube::Result<BGPSessionState> {
        self.api
            .patch_status(
                name,
                &params.patch,
                &Patch::Merge(json!({ "status": status })),
            )
            .await
    }
}

/// This node's BGPSessionState objects by name, as their watch shows them, our own writes
/// applied at once.
#[derive(Debug, Default)]
pub struct SessionIndex {
    objs: BTreeMap<String, BGPSessionState>,
    own: OwnObjectWatch,
    listed: bool,
}

impl SessionIndex {
    /// Our write's response (see [`OwnObject::wrote`]).
    fn wrote(&mut self, o: BGPSessionState) {
        let name = o.metadata.name.clone().unwrap_or_default();
        let replaced = (self.objs.get(&name)).and_then(|h| h.metadata.resource_version.clone());
        self.own
            .wrote(replaced.as_deref(), o.metadata.resource_version.as_deref());
        self.objs.insert(name, o);
    }
}

impl Index<BGPSessionState> for SessionIndex {
    fn apply(&mut self, o: BGPSessionState) {
        if let Some(o) = self.own.apply(o) {
            self.objs
                .insert(o.metadata.name.clone().unwrap_or_default(), o);
        }
    }
    fn delete(&mut self, o: BGPSessionState) {
        self.objs
            .remove(o.metadata.name.as_deref().unwrap_or_default());
    }
    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.objs
            .retain(|_, o| !OwnObjectWatch::gone(Some(&o.metadata), listed));
    }
    fn listing(&mut self) {
        self.own.listing();
    }
}

impl WatchedState for SessionIndex {
    fn watch_listed(&mut self, _: &'static str) {
        self.listed = true;
    }
}

/// One write of the BGPSessionState writer.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionOp {
    /// Give an existing object the owner it lacks ([`owner_patch`]).
    Own {
        name: String,
        patch: serde_json::Value,
    },
    Status {
        name: String,
        status: BGPSessionStateStatus,
    },
    /// A vanished peer's object, or a duplicate.
    Delete { name: String },
    Create {
        peer: String,
        vrf: String,
        status: BGPSessionStateStatus,
    },
}

/// Pure: the writes that make this node's objects (`existing`) mirror `sessions`: one
/// object per (peer, VRF), owned by `owner` when there is one.
pub fn plan_sessions<'a>(
    node: &str,
    sessions: &[BgpNeighborStatus],
    existing: impl IntoIterator<Item = &'a BGPSessionState>,
    owner: Option<&OwnerReference>,
) -> Vec<SessionOp> {
    let desired = desired_sessions(node, sessions);
    let mut ops = Vec::new();
    let mut kept: BTreeSet<(String, String)> = BTreeSet::new();
    for obj in existing {
        let labels = obj.metadata.labels.clone().unwrap_or_default();
        let key = (
            labels.get(PEER_LABEL).cloned().unwrap_or_default(),
            labels.get(VRF_LABEL).cloned().unwrap_or_default(),
        );
        let name = obj.metadata.name.clone().unwrap_or_default();
        match desired.get(&key) {
            Some(status) if !kept.contains(&key) => {
                kept.insert(key);
                if let Some(patch) = owner.and_then(|o| owner_patch(&obj.metadata, o)) {
                    ops.push(SessionOp::Own {
                        name: name.clone(),
                        patch,
                    });
                }
                if obj.status.as_ref() != Some(status) {
                    ops.push(SessionOp::Status {
                        name,
                        status: status.clone(),
                    });
                }
            }
            _ => ops.push(SessionOp::Delete { name }),
        }
    }
    for ((peer, vrf), status) in desired.into_iter() {
        if !kept.contains(&(peer.clone(), vrf.clone())) {
            ops.push(SessionOp::Create { peer, vrf, status });
        }
    }
    ops
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

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn state(rv: &str, status: FRRNodeStateStatus) -> FRRNodeState {
        let mut o = FRRNodeState::new("node-1", Default::default());
        o.metadata.resource_version = Some(rv.into());
        o.status = Some(status);
        o
    }

    fn status(conversion: &str, reload: Option<&str>) -> FRRNodeStateStatus {
        FRRNodeStateStatus {
            last_conversion_result: Some(conversion.into()),
            last_reload_result: reload.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn the_node_state_is_created_then_written_only_where_it_differs() {
        let want = status("success", Some("success"));
        assert_eq!(
            plan_node_state(None, &want),
            [NodeStateOp::Create, NodeStateOp::Status(want.clone())]
        );
        // nothing to say yet: only the object
        assert_eq!(
            plan_node_state(None, &FRRNodeStateStatus::default()),
            [NodeStateOp::Create]
        );
        assert!(plan_node_state(Some(&state("1", want.clone())), &want).is_empty());
        let other = status("failed: x", Some("success"));
        assert_eq!(
            plan_node_state(Some(&state("1", other)), &want),
            [NodeStateOp::Status(want.clone())]
        );
        // a field we do not set (merge patch: left alone) is no reason to write
        let mut more = want.clone();
        more.desired_config = Some("someone else's".into());
        assert!(plan_node_state(Some(&state("1", more)), &want).is_empty());
        let partial = status("success", None);
        assert!(plan_node_state(Some(&state("1", want.clone())), &partial).is_empty());
    }

    #[test]
    fn our_writes_echoes_and_the_versions_they_replaced_are_ignored() {
        let mut idx = NodeStateIndex::default();
        // created, then its status patched
        idx.wrote(state("1", status("old", None)));
        idx.wrote(state("2", status("new", None)));
        // the watch lags: first the version we replaced, then our own write
        idx.apply(state("1", status("old", None)));
        assert_eq!(
            idx.get().unwrap().metadata.resource_version.as_deref(),
            Some("2")
        );
        idx.apply(state("2", status("new", None)));
        // someone else's change is taken
        idx.apply(state("3", status("edited", None)));
        assert_eq!(
            idx.get()
                .unwrap()
                .status
                .as_ref()
                .unwrap()
                .last_conversion_result
                .as_deref(),
            Some("edited")
        );
        idx.delete(state("3", Default::default()));
        assert!(idx.get().is_none());
    }

    fn neighbor(peer: &str, state: &str) -> BgpNeighborStatus {
        BgpNeighborStatus {
            peer: peer.into(),
            state: state.into(),
            ..Default::default()
        }
    }

    fn session(
        name: &str,
        peer: &str,
        status: Option<BGPSessionStateStatus>,
        owner: Option<OwnerReference>,
    ) -> BGPSessionState {
        let mut o = BGPSessionState::new(name, Default::default());
        o.metadata.labels = Some(
            [
                (NODE_LABEL.to_string(), "node-1".to_string()),
                (PEER_LABEL.to_string(), peer_label_value(peer)),
                (VRF_LABEL.to_string(), String::new()),
            ]
            .into(),
        );
        o.metadata.owner_references = owner.map(|o| vec![o]);
        o.status = status;
        o
    }

    #[test]
    fn sessions_are_mirrored_one_object_per_peer_and_vrf() {
        let pod = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "frr-k8s-x".into(),
            uid: "u-1".into(),
            ..Default::default()
        };
        let up = [
            neighbor("192.0.2.1", "Established"),
            neighbor("192.0.2.2", "Active"),
        ];
        let want = desired_sessions("node-1", &up);
        let status_of = |peer: &str| want[&(peer_label_value(peer), String::new())].clone();
        let existing = [
            // right, owned: nothing to do
            session(
                "a",
                "192.0.2.1",
                Some(status_of("192.0.2.1")),
                Some(pod.clone()),
            ),
            // a duplicate of the same peer
            session(
                "b",
                "192.0.2.1",
                Some(status_of("192.0.2.1")),
                Some(pod.clone()),
            ),
            // a peer that is gone
            session("c", "192.0.2.9", None, Some(pod.clone())),
        ];
        let ops = plan_sessions("node-1", &up, &existing, Some(&pod));
        assert_eq!(
            ops,
            [
                SessionOp::Delete { name: "b".into() },
                SessionOp::Delete { name: "c".into() },
                SessionOp::Create {
                    peer: peer_label_value("192.0.2.2"),
                    vrf: String::new(),
                    status: status_of("192.0.2.2"),
                },
            ]
        );
        // an object without the owner and with an old status gets both
        let stale = [session("a", "192.0.2.1", None, None)];
        let ops = plan_sessions("node-1", &up[..1], &stale, Some(&pod));
        assert!(
            matches!(&ops[0], SessionOp::Own { name, .. } if name == "a"),
            "{ops:?}"
        );
        assert_eq!(
            ops[1],
            SessionOp::Status {
                name: "a".into(),
                status: status_of("192.0.2.1")
            }
        );
        assert_eq!(ops.len(), 2);
        // no sessions: every object goes
        assert_eq!(
            plan_sessions("node-1", &[], &stale, None),
            [SessionOp::Delete { name: "a".into() }]
        );
    }
}
