//! The all-in-one node process: the speaker shell and the embedded frr-k8s node component
//! side by side, sharing one client, one readiness and one metrics registry.
//!
//! ```text
//!  SIGTERM ─▶ speaker shell: final write of metallb-<node> with nothing advertised
//!                 │                     (or nothing, when graceful restart is configured)
//!                 ▼
//!            wait (bounded) until the embedded component has applied it: FRR no longer
//!            originates the withdrawn prefixes (seen through ObservedFrr)
//!                 │
//!                 ▼
//!            stop the frr-k8s component, exit
//! ```
//!
//! The embedded component only ever stops after the speaker, so the withdrawal is always
//! applied by the component that owns FRR (never by a second writer).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frr_k8s::frr::control::{ControlError, FrrControl};
use frr_k8s::frr::originated::{self, Originated};
use frr_k8s::metrics::FrrMetrics;
use frr_k8s::node::{LocalConfig, NodeSettings, PodRef};
use ipnet::IpNet;
use kube::api::{Api, ListParams};
use kube::Client;

/// How long the embedded frr-k8s component waits for the speaker's first decision before
/// it applies the cluster's copy of `metallb-<node>` alone (see
/// [`LocalConfig::first_awaited`]): longer than the speaker's watches take to sync on a
/// loaded API server, short enough that a speaker that cannot sync does not hold users'
/// FRRConfigurations back for long.
const FIRST_DECISION_WAIT: Duration = Duration::from_secs(30);
use metallb_api::frrk8s::FRRConfiguration;
use metallb_runtime::Readiness;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::bgp::config_name;
use crate::metrics::SpeakerMetrics;
use crate::shell::{self, withdraw::originated_prefixes, ShutdownOutcome};

// ===== FRR observation =====

/// A [`FrrControl`] that remembers which prefixes FRR originates (`network` lines of its
/// `router bgp` contexts), from the running configuration whenever it is read and from
/// every batch applied since. The shutdown path waits on it.
#[derive(Clone, Debug)]
pub struct ObservedFrr<C> {
    inner: C,
    tracker: Arc<Tracker>,
}

#[derive(Debug)]
struct Tracker {
    /// `None` until FRR's state was read once.
    networks: Mutex<Option<BTreeSet<Originated>>>,
    changes: watch::Sender<u64>,
}

impl<C> ObservedFrr<C> {
    pub fn new(inner: C) -> Self {
        ObservedFrr {
            inner,
            tracker: Arc::new(Tracker {
                networks: Mutex::new(None),
                changes: watch::channel(0).0,
            }),
        }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Prefixes FRR originates, as far as seen (`None`: not known yet).
    pub fn originated(&self) -> Option<BTreeSet<IpNet>> {
        let g = self
            .tracker
            .networks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(|s| s.iter().map(|o| o.prefix).collect())
    }

    /// Changes whenever [`ObservedFrr::originated`] may have changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tracker.changes.subscribe()
    }

    fn track(&self, text: &str, reset: bool) {
        {
            let mut g = self
                .tracker
                .networks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if reset || g.is_none() {
                *g = Some(BTreeSet::new());
            }
            if let Some(set) = g.as_mut() {
                originated::scan(set, text);
            }
        }
        self.tracker.changes.send_modify(|n| *n += 1);
    }
}

impl<C: FrrControl> FrrControl for ObservedFrr<C> {
    fn apply(&self, batch: &str) -> Result<(), ControlError> {
        let r = self.inner.apply(batch);
        if r.is_ok() {
            self.track(batch, false);
        }
        r
    }

    fn apply_direct(&self, batch: &str) -> Option<Result<(), ControlError>> {
        let r = self.inner.apply_direct(batch);
        if matches!(r, Some(Ok(()))) {
            self.track(batch, false);
        }
        r
    }

    fn check(&self, batch: &str) -> Result<(), ControlError> {
        self.inner.check(batch)
    }

    fn running_config(&self) -> Result<String, ControlError> {
        let r = self.inner.running_config();
        if let Ok(text) = &r {
            self.track(text, true);
        }
        r
    }

    fn show_json(&self, command: &str) -> Result<serde_json::Value, ControlError> {
        self.inner.show_json(command)
    }

    fn instance_token(&self) -> Option<String> {
        self.inner.instance_token()
    }
}

// ===== the process =====

/// The embedded frr-k8s node component.
#[derive(Debug)]
pub struct FrrComponent<C> {
    pub settings: NodeSettings,
    pub control: C,
    pub metrics: Arc<FrrMetrics>,
}

/// Run the speaker shell and, unless `frr` is `None` (frr-k8s runs elsewhere), the
/// embedded frr-k8s component until `shutdown`; then withdraw and wait up to
/// `withdraw_wait` for FRR to apply the withdrawal.
pub async fn run<C>(
    client: Client,
    mut speaker: shell::Settings,
    frr: Option<FrrComponent<C>>,
    readiness: Readiness,
    metrics: Arc<SpeakerMetrics>,
    shutdown: CancellationToken,
    withdraw_wait: Duration,
) -> anyhow::Result<ShutdownOutcome>
where
    C: FrrControl + Clone + Send + Sync + 'static,
{
    let frr_stop = CancellationToken::new();
    let speaker_stop = shutdown.child_token();
    let frr_namespace = speaker.frr_namespace.clone();
    let own_name = config_name(&speaker.node_name);

    // The speaker's pod also owns the embedded component's BGPSessionState objects (when
    // they share its namespace, see `run_in_pod`).
    let pod = speaker.pod_name.clone().map(|name| PodRef {
        namespace: speaker.namespace.clone(),
        name,
    });
    let (observer, mut frr_task) = match frr {
        Some(c) => {
            let observed = ObservedFrr::new(c.control);
            // the speaker hands its configuration over in process (it still writes the
            // object, for visibility and for other readers)
            let local = LocalConfig::new().first_awaited(FIRST_DECISION_WAIT);
            speaker.frr_handoff = Some(local.clone());
            let task = tokio::spawn(
                frr_k8s::node::run_in_pod_with_local(
                    client.clone(),
                    c.settings,
                    pod,
                    observed.clone(),
                    readiness.clone(),
                    c.metrics,
                    frr_stop.clone(),
                    local,
                )
                .instrument(info_span!("frr-k8s")),
            );
            (Some(observed), Some(task))
        }
        None => (None, None),
    };
    let mut speaker_task = tokio::spawn(shell::run(
        client.clone(),
        speaker,
        readiness,
        metrics,
        speaker_stop.clone(),
    ));

    let mut frr_failed = None;
    let joined = match frr_task.as_mut() {
        Some(t) => tokio::select! {
            r = &mut speaker_task => r,
            r = t => {
                let why = match r {
                    Ok(Ok(())) => "stopped".to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => e.to_string(),
                };
                warn!(error = %why, "the frr-k8s component ended; stopping the speaker");
                frr_failed = Some(why);
                speaker_stop.cancel();
                (&mut speaker_task).await
            }
        },
        None => (&mut speaker_task).await,
    };
    let outcome = joined.map_err(|e| anyhow::anyhow!("speaker task: {e}"))??;
    if let Some(why) = frr_failed {
        anyhow::bail!("frr-k8s component ended: {why}");
    }

    if let (
        Some(obs),
        ShutdownOutcome::Withdrawn {
            prefixes,
            node_labels,
        },
    ) = (&observer, &outcome)
    {
        let others = other_prefixes(&client, &frr_namespace, &own_name, node_labels).await;
        let must_vanish: BTreeSet<IpNet> = prefixes.difference(&others).copied().collect();
        let started = Instant::now();
        if wait_withdrawn(obs, &must_vanish, started + withdraw_wait).await {
            info!(
                prefixes = must_vanish.len(),
                wait_ms = started.elapsed().as_millis() as u64,
                "FRR no longer originates the withdrawn prefixes"
            );
        } else {
            warn!(
                prefixes = must_vanish.len(),
                "FRR did not apply the withdrawal in time; exiting anyway"
            );
        }
    }
    frr_stop.cancel();
    if let Some(t) = frr_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    Ok(outcome)
}

/// Prefixes other FRRConfigurations selecting this node originate: those stay in FRR
/// after our withdrawal, so they are not waited for.
async fn other_prefixes(
    client: &Client,
    namespace: &str,
    own: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> BTreeSet<IpNet> {
    let api = Api::<FRRConfiguration>::namespaced(client.clone(), namespace);
    let list = match tokio::time::timeout(Duration::from_secs(1), api.list(&ListParams::default()))
        .await
    {
        Ok(Ok(l)) => l.items,
        _ => return BTreeSet::new(),
    };
    let selection = frr_k8s::select(list.iter(), namespace, labels);
    originated_prefixes(
        selection
            .selected
            .into_iter()
            .filter(|c| c.metadata.name.as_deref() != Some(own))
            .map(|c| &c.spec),
    )
}

/// Wait until FRR originates none of `prefixes` (true), or the deadline (false).
pub async fn wait_withdrawn<C>(
    obs: &ObservedFrr<C>,
    prefixes: &BTreeSet<IpNet>,
    deadline: Instant,
) -> bool {
    let mut rx = obs.subscribe();
    loop {
        rx.borrow_and_update();
        if let Some(now) = obs.originated() {
            if now.is_disjoint(prefixes) {
                return true;
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return false },
            _ = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frr_k8s::frr::apply::ApplyOptions;
    use frr_k8s::RenderOptions;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::PostParams;
    use metallb_api::frrk8s::BGPSessionState;
    use serde_json::{json, Value};

    /// FRR with one established session.
    #[derive(Clone, Default)]
    struct OneSession;

    impl FrrControl for OneSession {
        fn apply(&self, _batch: &str) -> Result<(), ControlError> {
            Ok(())
        }
        fn apply_direct(&self, _batch: &str) -> Option<Result<(), ControlError>> {
            None
        }

        fn check(&self, _batch: &str) -> Result<(), ControlError> {
            Ok(())
        }
        fn running_config(&self) -> Result<String, ControlError> {
            Ok(String::new())
        }
        fn show_json(&self, command: &str) -> Result<Value, ControlError> {
            Ok(if command == "show bgp vrf all neighbors json" {
                json!({"default": {"vrfName": "default",
                    "192.0.2.1": {"bgpState": "Established", "remoteAs": 64601}}})
            } else if command.contains("bgp") {
                json!({})
            } else {
                json!([])
            })
        }
        fn instance_token(&self) -> Option<String> {
            Some("fake".into())
        }
    }

    async fn create<K>(api: &Api<K>, v: Value) -> K
    where
        K: kube::Resource
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let obj: K = serde_json::from_value(v).expect("a test object");
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create")
    }

    /// Runs the all-in-one with the speaker pod `metallb-speaker-abcde` in
    /// `metallb-system` and FRRConfigurations in `frr_ns`; returns the owner uids of the
    /// BGPSessionState of node-1 once it exists, and the pod's uid.
    async fn session_owners(frr_ns: &str) -> (Vec<String>, String) {
        const NS: &str = "metallb-system";
        let api = metallb_testkit::start().await.expect("api");
        let client = api.client();
        for ns in BTreeSet::from([NS, frr_ns]) {
            let _: k8s_openapi::api::core::v1::Namespace =
                create(&Api::all(client.clone()), json!({"metadata": {"name": ns}})).await;
        }
        let _: k8s_openapi::api::core::v1::Node = create(
            &Api::all(client.clone()),
            json!({"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}}}),
        )
        .await;
        let pod: Pod = create(
            &Api::namespaced(client.clone(), NS),
            json!({"metadata": {"name": "metallb-speaker-abcde", "namespace": NS},
                   "spec": {"containers": [{"name": "speaker", "image": "speaker"}]}}),
        )
        .await;
        let mut speaker = shell::Settings::new("node-1", NS, frr_ns);
        speaker.pod_name = pod.metadata.name.clone();
        let stop = CancellationToken::new();
        let mut registry = prometheus_client::registry::Registry::default();
        let task = tokio::spawn(run(
            client.clone(),
            speaker,
            Some(FrrComponent {
                settings: NodeSettings {
                    node_name: "node-1".into(),
                    namespace: frr_ns.into(),
                    render: RenderOptions::default(),
                    poll_interval: Duration::from_millis(50),
                    write_status: true,
                    persist_versions: true,
                    apply: ApplyOptions {
                        verify: false,
                        dry_run: false,
                        ..ApplyOptions::default()
                    },
                },
                control: OneSession,
                metrics: FrrMetrics::register(&mut registry),
            }),
            Readiness::default(),
            SpeakerMetrics::register(&mut registry),
            stop.clone(),
            Duration::from_secs(1),
        ));
        let sessions: Api<BGPSessionState> = Api::namespaced(client.clone(), frr_ns);
        let deadline = Instant::now() + Duration::from_secs(30);
        let owners = loop {
            let l = sessions.list(&ListParams::default()).await.expect("list");
            // the pod is read before the first write: the object is created with its owner
            if let Some(s) = l.items.first() {
                break s
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .map(|o| o.uid.clone())
                    .collect();
            }
            assert!(Instant::now() < deadline, "no BGPSessionState");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        stop.cancel();
        let _ = task.await;
        (owners, pod.metadata.uid.expect("uid"))
    }

    #[tokio::test]
    async fn the_speaker_pod_owns_the_embedded_components_session_states() {
        let (owners, pod_uid) = session_owners("metallb-system").await;
        assert_eq!(owners, [pod_uid]);
        // FRRConfigurations (and BGPSessionStates) in another namespace: the pod cannot own
        // them there
        let (owners, _) = session_owners("frr-k8s-system").await;
        assert!(owners.is_empty(), "{owners:?}");
    }
}
