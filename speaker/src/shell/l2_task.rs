//! The L2 decisions: after watch events, the election is recomputed for the Services they
//! touched (every Service when a Node or the configuration changed); this node's IPs go to
//! the responder through a `watch` channel (it sees only the latest set), the Services
//! whose decision changed to the ServiceL2Status writer, and
//! `metallb_speaker_announced{protocol="layer2"}` follows what this node answers for.
//!
//! With membership on, the task also hands the membership agent its peers (the live
//! speaker Pods' IPs) and applies what the agent declares down.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Api, PostParams};
use kube::Client;
use metallb_runtime::events::{core_event, EventType, Reporter};
use metallb_runtime::watch::lock;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{compile, Shared};
use crate::bgp::ServiceKey;
use crate::l2::links::none_usable;
use crate::l2::responder::{Links, Wanted};
use crate::members::agent::Peers;
use crate::members::Membership;
use crate::metrics::{AnnouncedLabels, SpeakerMetrics};

const PROTOCOL: &str = "layer2";

/// Upstream's event on a Service when a node takes it over.
const REASON_NODE_ASSIGNED: &str = "nodeAssigned";
/// Upstream's warning when the elected node has none of the allowed interfaces.
const REASON_ANNOUNCE_FAILED: &str = "announceFailed";

/// The L2 task's side of the membership agent.
pub(super) struct MembershipLink {
    pub peers: watch::Sender<Peers>,
    pub view: watch::Receiver<Membership>,
    /// Every speaker's membership port (one DaemonSet, one setting).
    pub port: u16,
}

/// Resolves when the membership changed; never without membership (or once the agent is
/// gone: the supervisor sees that task end).
async fn membership_changed(link: &mut Option<MembershipLink>) {
    if let Some(l) = link {
        if l.view.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn l2_decisions(
    client: Client,
    shared: Shared,
    trigger: Arc<Notify>,
    status_trigger: Arc<Notify>,
    wanted: watch::Sender<Wanted>,
    mut links: watch::Receiver<Links>,
    mut membership: Option<MembershipLink>,
    metrics: Arc<SpeakerMetrics>,
    stop: CancellationToken,
) {
    // What this node announces per Service, for the metric and the log.
    let mut mine: BTreeMap<ServiceKey, Vec<IpAddr>> = BTreeMap::new();
    let mut node: Option<Arc<str>> = None;
    // Speakers seen alive so far; one (re)appearing makes this node re-announce its IPs
    // (see `Wanted::reannounce`).
    let mut alive = std::collections::BTreeSet::new();
    let mut reannounce = false;
    // Services this node took over whose interfaces were not checked yet against the ones
    // the responder answers on (known after its first scan).
    let mut unchecked: BTreeMap<ServiceKey, Option<String>> = BTreeMap::new();
    // false once the responder is gone (or never ran: --disable-l2)
    let mut checking = true;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = trigger.notified() => {}
            _ = membership_changed(&mut membership) => {}
            changed = links.changed(), if checking && !unchecked.is_empty() => {
                if changed.is_err() {
                    // no responder (or it ended: the supervisor sees that): nothing to check
                    checking = false;
                    unchecked.clear();
                }
            }
        }
        let failed = announce_failures(&shared, &mut unchecked, &links.borrow_and_update());
        if let Some(node) = &node {
            for (key, uid, allowed) in failed {
                announce_failed(&client, &key, uid, node, &allowed, &metrics).await;
            }
        }
        let mut assigned = Vec::new();
        let ips = {
            let mut st = lock(&shared);
            if let Some(link) = &membership {
                let view = link.view.borrow();
                st.l2.set_down(&view.down);
                if view.alive.iter().any(|n| !alive.contains(n)) {
                    reannounce = true;
                }
                alive.clone_from(&view.alive);
                drop(view);
                let peers: Peers = (st.l2.peers(st.node_name()).into_iter())
                    .map(|(node, ip)| (node, std::net::SocketAddr::new(ip, link.port)))
                    .collect();
                link.peers.send_if_modified(|p| {
                    let changed = *p != peers;
                    *p = peers;
                    changed
                });
            }
            // Nothing is decided before every watch listed: a partial view would elect
            // from a partial node list.
            if !st.ready() {
                continue;
            }
            compile(&mut st, &metrics);
            let changed = st.refresh_l2();
            // Nothing changed: the responder's set is the one it has (it is computed over
            // every decision, so not on every event).
            if changed.is_empty() && !reannounce {
                continue;
            }
            for key in &changed {
                st.l2_status_dirty.mark(key);
            }
            status_trigger.notify_one();
            let name = st.node_name().to_string();
            let node = node.get_or_insert_with(|| Arc::from(name.as_str()));
            for key in changed {
                let now: Vec<IpAddr> = match st.l2.decision(&key).map(|d| d.for_node(&name)) {
                    Some(Ok(w)) => w.ips.clone(),
                    _ => Vec::new(),
                };
                let before = mine.remove(&key).unwrap_or_default();
                for ip in before.iter().filter(|ip| !now.contains(ip)) {
                    metrics.announced.remove(&labels(ip, node, &key));
                }
                for ip in now.iter().filter(|ip| !before.contains(ip)) {
                    metrics
                        .announced
                        .get_or_create(&labels(ip, node, &key))
                        .set(1);
                }
                match (before.is_empty(), now.is_empty()) {
                    (true, false) => {
                        info!(service = %key, ips = ?now, "announcing over L2 from this node");
                        let uid = st.announcer.service(&key).and_then(|s| s.uid.clone());
                        assigned.push((key.clone(), uid.clone()));
                        if checking {
                            unchecked.insert(key.clone(), uid);
                        }
                    }
                    (false, true) => info!(service = %key, "no longer announcing over L2"),
                    _ => {}
                }
                if !now.is_empty() {
                    mine.insert(key, now);
                }
            }
            st.l2.node_ips(&name)
        };
        let bump = std::mem::take(&mut reannounce);
        wanted.send_if_modified(|current| {
            if *current.ips == ips && !bump {
                return false;
            }
            current.ips = Arc::new(ips);
            current.reannounce += u64::from(bump);
            true
        });
        if let Some(node) = &node {
            for (key, uid) in assigned {
                node_assigned(&client, &key, uid, node, &metrics).await;
            }
        }
        if !unchecked.is_empty() && links.borrow().is_some() {
            // checked at the top of the next pass (which drains them); while the
            // responder's interfaces are unknown, its first report wakes us instead
            trigger.notify_one();
        }
    }
}

/// The Services of `unchecked` this node still announces whose advertisements allow only
/// interfaces it does not answer on, once the responder's interfaces are known; the
/// checked ones leave `unchecked`.
fn announce_failures(
    shared: &Shared,
    unchecked: &mut BTreeMap<ServiceKey, Option<String>>,
    links: &Links,
) -> Vec<(ServiceKey, Option<String>, Vec<String>)> {
    // called on every wake-up: no lock when there is nothing to check
    let Some(usable) = links.as_ref().filter(|_| !unchecked.is_empty()) else {
        return Vec::new();
    };
    let st = lock(shared);
    let name = st.node_name().to_string();
    std::mem::take(unchecked)
        .into_iter()
        .filter_map(|(key, uid)| {
            let w = st.l2.decision(&key)?.for_node(&name).ok()?;
            let allowed = none_usable(&w.interfaces, usable)?;
            Some((key, uid, allowed))
        })
        .collect()
}

/// Upstream's `announceFailed` warning on the Service: the node was elected but none of
/// the interfaces its advertisements allow exists here (the election does not know the
/// nodes' interfaces, as upstream's does not).
async fn announce_failed(
    client: &Client,
    key: &ServiceKey,
    uid: Option<String>,
    node: &str,
    allowed: &[String],
    metrics: &SpeakerMetrics,
) {
    warn!(service = %key, interfaces = ?allowed, "elected for L2, but none of the allowed interfaces exists on this node");
    let message = format!(
        "node {node:?} was elected to announce over layer2 but has none of the interfaces the L2Advertisements allow ({})",
        allowed.join(", ")
    );
    service_event(
        client,
        key,
        uid,
        node,
        EventType::Warning,
        REASON_ANNOUNCE_FAILED,
        &message,
        metrics,
    )
    .await;
}

/// `nodeAssigned` on the Service, as upstream's speaker emits it.
async fn node_assigned(
    client: &Client,
    key: &ServiceKey,
    uid: Option<String>,
    node: &str,
    metrics: &SpeakerMetrics,
) {
    let message = format!("announcing from node {node:?} with protocol {PROTOCOL:?}");
    service_event(
        client,
        key,
        uid,
        node,
        EventType::Normal,
        REASON_NODE_ASSIGNED,
        &message,
        metrics,
    )
    .await;
}

/// An event on the Service (best effort: a failure is logged and counted, never retried).
#[allow(clippy::too_many_arguments)]
async fn service_event(
    client: &Client,
    key: &ServiceKey,
    uid: Option<String>,
    node: &str,
    kind: EventType,
    reason: &str,
    message: &str,
    metrics: &SpeakerMetrics,
) {
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        uid,
        ..Default::default()
    };
    let reporter = Reporter {
        component: super::FIELD_MANAGER.into(),
        instance: node.to_string(),
    };
    let ev = core_event(
        &regarding,
        kind,
        reason,
        message,
        &reporter,
        k8s_openapi::jiff::Timestamp::now(),
    );
    let api: Api<Event> = Api::namespaced(client.clone(), &key.namespace);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        metrics.k8s_client_update_errors_total.inc();
        warn!(service = %key, reason, error = %e, "emitting an event failed");
    }
}

fn labels(ip: &IpAddr, node: &Arc<str>, key: &ServiceKey) -> AnnouncedLabels {
    AnnouncedLabels {
        ip: ip.to_string(),
        node: node.clone(),
        protocol: PROTOCOL,
        service: key.clone(),
    }
}
