//! Status writers: one per kind, each the only writer of its objects, each writing only when
//! what it would write differs from what it last wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use metallb_api::frrk8s::bgpsessionstate::{peer_label_value, NODE_LABEL, PEER_LABEL, VRF_LABEL};
use metallb_api::frrk8s::{
    BGPSessionState, BGPSessionStateStatus, FRRNodeState, FRRNodeStateStatus,
};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::frr::status::BgpNeighborStatus;
use crate::metrics::FrrMetrics;

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
    loop {
        let desired = rx.borrow_and_update().to_api();
        if written.as_ref() != Some(&desired) {
            match write_once(&api, &node, &desired).await {
                Ok(()) => {
                    metrics.k8s_client_updates_total.inc();
                    written = Some(desired);
                }
                Err(e) => {
                    metrics.k8s_client_update_errors_total.inc();
                    warn!(node = %node, error = %e, "writing FRRNodeState failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
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
    if api.get_opt(node).await?.is_none() {
        let obj = FRRNodeState::new(node, Default::default());
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    api.patch_status(
        node,
        &PatchParams::default(),
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

/// Writes this node's BGPSessionState objects (one per peer and VRF).
#[derive(Clone, Debug)]
pub struct SessionStatusWriter {
    api: Api<BGPSessionState>,
    node: String,
}

impl SessionStatusWriter {
    pub fn new(client: Client, namespace: &str, node: &str) -> Self {
        SessionStatusWriter {
            api: Api::namespaced(client, namespace),
            node: node.to_string(),
        }
    }

    /// Follow `rx` until shutdown; the poller only sends when sessions changed.
    pub async fn run(
        self,
        mut rx: watch::Receiver<Option<Vec<BgpNeighborStatus>>>,
        metrics: Arc<FrrMetrics>,
        shutdown: CancellationToken,
    ) {
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(sessions) = current {
                match self.sync(&sessions).await {
                    Ok(writes) => {
                        metrics.k8s_client_updates_total.inc_by(writes);
                    }
                    Err(e) => {
                        metrics.k8s_client_update_errors_total.inc();
                        warn!(node = %self.node, error = %e, "writing BGPSessionState failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
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

    /// Make the objects match `sessions`; returns how many writes it took.
    pub async fn sync(&self, sessions: &[BgpNeighborStatus]) -> kube::Result<u64> {
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
                    if obj.status.as_ref() != Some(status) {
                        self.api
                            .patch_status(
                                &name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({ "status": status })),
                            )
                            .await?;
                        writes += 1;
                    }
                }
                // A vanished peer, or a duplicate.
                _ => {
                    debug!(node = %self.node, object = %name, "deleting stale BGPSessionState");
                    match self.api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => writes += 1,
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
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
            let created = self.api.create(&PostParams::default(), &obj).await?;
            let name = created.metadata.name.unwrap_or_default();
            self.api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await?;
            writes += 2;
        }
        Ok(writes)
    }
}
