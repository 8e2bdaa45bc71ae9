//! The speaker's shell: watches feed the index, three writers publish its decisions.
//!
//! ```text
//!  Node (this one) ────────┐                          ┌─▶ FRR writer ──▶ FRRConfiguration
//!  Services (all) ─────────┤   Inputs (one lock)      │    metallb-<node>: create once,
//!  EndpointSlices (all) ───┼─▶ ServiceInfo/Endpoints ─┤    update in place when the spec
//!  pools, peers, ads,      │   NodeAnnouncer          │    differs (never delete)
//!  communities, BFD ───────┤   observed objects       │
//!  metallb-<node> ─────────┤                          ├─▶ status writer ──▶ ServiceBGPStatus
//!  ServiceBGPStatus (node) ┤                          │    per (Service, node)
//!  speaker-<node> ─────────┘                          └─▶ config-state writer ──▶
//!                                                          ConfigurationState speaker-<node>
//! ```
//!
//! Each watch event is applied to the index under a short synchronous lock and wakes every
//! writer through a [`Notify`]. A writer that is busy when events arrive finds one
//! pending wake-up when it is done, takes the latest state and writes once: bursts
//! coalesce with no timer, and a single change is written within milliseconds.
//!
//! The watches are `metallb_runtime::watch`'s runner (re-lists, metadata stripping,
//! counters, readiness gates) feeding [`Inputs`] through its `Index` impls; watches and
//! writers are supervised tasks: if one ends, the shell stops with an error naming it and
//! the process exits non-zero, leaving FRR as it is for the restarted process.
//!
//! Nothing is written before every watch has listed once and this node's Node was seen,
//! so a restart compares the complete desired object with the one already in the cluster
//! and, when nothing changed meanwhile, writes nothing.

pub mod index;
pub mod withdraw;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use metallb_api::frrk8s::{FRRConfiguration, FRRConfigurationSpec, FRRConfigurationStatus};
use metallb_api::metallb::status::{speaker_configuration_state_name, LABEL_NODE};
use metallb_api::metallb::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, ConfigurationState, IPAddressPool,
    ServiceBGPStatus,
};
use metallb_api::versions::KeptVersion;
use metallb_runtime::memo::{node_owner, Memo, MemoError};
use metallb_runtime::watch::{lock, strip, WatchSet};
use metallb_runtime::write::{Backoff, WriteParams};
use metallb_runtime::{Readiness, Tasks};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::bgp::{config_name, FrrTarget, ServiceKey, SpeakerOptions};
use crate::config_state::{self, Step};
use crate::metrics::{AnnouncedLabels, SpeakerMetrics};
use index::{Inputs, ObservedSpec, StatusOp};

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "metallb-speaker";

/// Status objects handled per pass (the FRR writer never waits for these).
const STATUS_BATCH: usize = 256;
/// Status writes in flight at once.
const STATUS_CONCURRENCY: usize = 8;

/// What the shell needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name.
    pub node_name: String,
    /// MetalLB's namespace: configuration objects and ServiceBGPStatus.
    pub namespace: String,
    /// Where `metallb-<node>` goes (the namespace frr-k8s reads).
    pub frr_namespace: String,
    pub options: SpeakerOptions,
    /// The speaker's Pod: owner of its ServiceBGPStatus objects and of its
    /// ConfigurationState (garbage-collected with it, as upstream). Without it the objects
    /// have no owner.
    pub pod_name: Option<String>,
    /// On shutdown, withdraw the announcements (unless graceful restart is configured).
    /// Off by default: a restart keeps announcing (`--withdraw-on-shutdown`).
    pub withdraw_on_shutdown: bool,
    /// Bound on the final withdrawal write.
    pub shutdown_write_timeout: Duration,
    /// Persist the kept versions in the node's Secret ([`kept_versions_name`]), so that a
    /// restart makes the same choices; off: a restart takes every object without a record
    /// as in effect as it is.
    pub kept_versions: bool,
}

impl Settings {
    pub fn new(node_name: &str, namespace: &str, frr_namespace: &str) -> Self {
        Settings {
            node_name: node_name.to_string(),
            namespace: namespace.to_string(),
            frr_namespace: frr_namespace.to_string(),
            options: SpeakerOptions::default(),
            pod_name: None,
            withdraw_on_shutdown: false,
            shutdown_write_timeout: Duration::from_secs(3),
            kept_versions: true,
        }
    }

    fn target(&self) -> FrrTarget {
        FrrTarget {
            frr_namespace: self.frr_namespace.clone(),
            secrets_namespace: self.namespace.clone(),
        }
    }
}

/// What the shell did on shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// The watches never synced: nothing was decided, nothing written.
    NotSynced,
    /// `withdraw_on_shutdown` is off.
    Disabled,
    /// Graceful restart is configured on these peers: announcements left in place.
    KeptForGracefulRestart { peers: Vec<String> },
    /// `metallb-<node>` now advertises nothing; `prefixes` were advertised before.
    Withdrawn {
        prefixes: BTreeSet<IpNet>,
        node_labels: BTreeMap<String, String>,
    },
    /// The withdrawal could not be written.
    Failed(String),
}

type Shared = Arc<Mutex<Inputs>>;

/// Run the speaker shell until `shutdown`, then withdraw (see [`withdraw`]).
pub async fn run(
    client: Client,
    settings: Settings,
    readiness: Readiness,
    metrics: Arc<SpeakerMetrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<ShutdownOutcome> {
    let shared: Shared = Arc::new(Mutex::new(Inputs::new(
        &settings.node_name,
        settings.options.clone(),
    )));
    // The kept versions are read before the first decision: without them a restart could
    // take an invalid edit for the version in effect.
    let memo = match settings.kept_versions {
        true => Some(kept_versions_memo(&client, &settings).await),
        false => None,
    };
    let mut kept_saved = Vec::new();
    if let Some(m) = &memo {
        let record: Vec<KeptVersion> = m.load_or_default().await;
        if !record.is_empty() {
            info!(memo = %m.name(), objects = record.len(), "resuming with objects kept at their last valid version");
        }
        lock(&shared).seed_kept_versions(&record);
        kept_saved = record;
    }
    let frr_trigger = Arc::new(Notify::new());
    let status_trigger = Arc::new(Notify::new());
    let config_state_trigger = Arc::new(Notify::new());
    let watches_stop = shutdown.child_token();
    let mut tasks = Tasks::new().with_gate(readiness.gate("speaker-tasks"));
    let watches = WatchSet::new(
        shared.clone(),
        readiness.clone(),
        metrics.clone(),
        watches_stop.clone(),
    )
    .wake(frr_trigger.clone())
    .wake(status_trigger.clone())
    .wake(config_state_trigger.clone());
    let ns = settings.namespace.as_str();
    let all = watcher::Config::default;
    let by_name = |n: &str| all().fields(&format!("metadata.name={n}"));
    let t = &mut tasks;
    let node = Api::<Node>::all(client.clone());
    watches.watch(t, "speaker-node", node, by_name(&settings.node_name));
    watches.watch(t, "services", Api::<Service>::all(client.clone()), all());
    let slices = Api::<EndpointSlice>::all(client.clone());
    watches.watch(t, "endpointslices", slices, all());
    let pools = Api::<IPAddressPool>::namespaced(client.clone(), ns);
    watches.watch(t, "ipaddresspools", pools, all());
    let peers = Api::<BGPPeer>::namespaced(client.clone(), ns);
    watches.watch(t, "bgppeers", peers, all());
    let ads = Api::<BGPAdvertisement>::namespaced(client.clone(), ns);
    watches.watch(t, "bgpadvertisements", ads, all());
    let communities = Api::<Community>::namespaced(client.clone(), ns);
    watches.watch(t, "communities", communities, all());
    let bfd = Api::<BFDProfile>::namespaced(client.clone(), ns);
    watches.watch(t, "bfdprofiles", bfd, all());
    // Our own objects: a deletion or someone else's edit is repaired.
    let own_config = config_name(&settings.node_name);
    let frr_api = Api::<FRRConfiguration>::namespaced(client.clone(), &settings.frr_namespace);
    watches.watch(t, "speaker-frrconfiguration", frr_api, by_name(&own_config));
    let statuses = Api::<ServiceBGPStatus>::namespaced(client.clone(), ns);
    let this_node = all().labels(&format!("{LABEL_NODE}={}", settings.node_name));
    watches.watch(t, "servicebgpstatuses", statuses, this_node);
    let config_state_name = speaker_configuration_state_name(&settings.node_name);
    let config_state = Api::<ConfigurationState>::namespaced(client.clone(), ns);
    let by_own_name = by_name(&config_state_name);
    watches.watch(t, "speaker-configurationstate", config_state, by_own_name);

    let owner = match &settings.pod_name {
        Some(pod) => pod_owner(&client, ns, pod).await,
        None => None,
    };
    tasks.spawn(
        "configuration-state writer",
        config_state_writer(
            Api::namespaced(client.clone(), ns),
            config_state::Target {
                node: settings.node_name.clone(),
                namespace: settings.namespace.clone(),
                owner: owner.clone(),
            },
            shared.clone(),
            config_state_trigger,
            metrics.clone(),
            shutdown.clone(),
        )
        .instrument(info_span!("configuration-state", name = %config_state_name))
        .map(Ok),
    );
    tasks.spawn(
        "ServiceBGPStatus writer",
        status_writer(
            Api::namespaced(client.clone(), ns),
            owner,
            shared.clone(),
            status_trigger,
            metrics.clone(),
            shutdown.clone(),
        )
        .instrument(info_span!("bgp-status"))
        .map(Ok),
    );

    let mut writer = FrrWriter {
        api: Api::namespaced(client.clone(), &settings.frr_namespace),
        client: client.clone(),
        name: config_name(&settings.node_name),
        target: settings.target(),
        shared: shared.clone(),
        metrics: metrics.clone(),
        exported: HashMap::new(),
        node: settings.node_name.as_str().into(),
        memo,
        kept_saved,
    };
    let span = info_span!("frr-writer", node = %settings.node_name);
    let failed = async {
        let mut backoff = backoff();
        loop {
            tokio::select! {
                // a writer that stops because of the shutdown is no failure
                biased;
                _ = shutdown.cancelled() => break None,
                _ = frr_trigger.notified() => {}
                // A watch or a writer ended: the index or the status is frozen. Stop
                // without touching FRR (the restarted process takes over from what is
                // announced) and exit non-zero.
                err = tasks.failure() => break Some(err),
            }
            match writer.sync(false).await {
                Ok(()) => backoff.reset(),
                Err(WriteError::Retry) => frr_trigger.notify_one(),
                Err(e) => {
                    let wait = backoff.failed();
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "writing FRRConfiguration or the kept versions failed");
                    wake_after(&frr_trigger, wait, &shutdown);
                }
            }
        }
    }
    .instrument(span.clone())
    .await;
    if let Some(err) = failed {
        watches_stop.cancel();
        let _ = tasks.shutdown(Duration::from_secs(2)).await;
        return Err(err);
    }

    let outcome = writer.shutdown(&settings).instrument(span).await;
    watches_stop.cancel();
    tasks.shutdown(Duration::from_secs(10)).await?;
    info!(?outcome, "speaker stopped");
    Ok(outcome)
}

/// Name of the Secret holding a node's kept versions (a Secret: a kept BGPPeer version
/// carries its password).
pub fn kept_versions_name(node: &str) -> String {
    metallb_runtime::memo::per_node_name("metallb-speaker-kept-", node)
}

/// The node's kept-versions Secret, owned by the Node (it outlives the speaker's Pods and
/// goes with the Node).
async fn kept_versions_memo(client: &Client, settings: &Settings) -> Memo {
    let owner = match Api::<Node>::all(client.clone())
        .get_opt(&settings.node_name)
        .await
    {
        Ok(Some(n)) => node_owner(&settings.node_name, n.metadata.uid.as_deref()),
        Ok(None) => None,
        Err(e) => {
            warn!(error = %e, "reading the Node for the kept-versions owner failed; no owner");
            None
        }
    };
    Memo::secret(
        Api::namespaced(client.clone(), &settings.namespace),
        kept_versions_name(&settings.node_name),
        owner,
        [
            (LABEL_NODE.to_string(), settings.node_name.clone()),
            (
                metallb_api::metallb::status::LABEL_COMPONENT_TYPE.to_string(),
                "speaker".to_string(),
            ),
        ]
        .into(),
        FIELD_MANAGER,
    )
}

async fn pod_owner(client: &Client, ns: &str, pod: &str) -> Option<OwnerReference> {
    match metallb_runtime::owner::pod_owner(client, ns, pod).await {
        Ok(Some(owner)) => Some(owner),
        Ok(None) => {
            warn!(pod, "the speaker pod does not exist: ServiceBGPStatus and ConfigurationState objects get no owner");
            None
        }
        Err(e) => {
            warn!(pod, error = %e, "cannot read the speaker pod: ServiceBGPStatus and ConfigurationState objects get no owner");
            None
        }
    }
}

/// Recompile the node's configuration if an input changed. Both the FRR writer and the
/// ConfigurationState writer need it current; whichever gets there first logs the new
/// issues (once) and updates the staleness metric.
fn compile(st: &mut Inputs, metrics: &SpeakerMetrics) {
    if let Some(issues) = st.compile_if_dirty() {
        for i in &issues {
            warn!(issue = %i, "configuration object skipped or partly ignored");
        }
        metrics
            .k8s_client_config_stale_bool
            .set(i64::from(!issues.is_empty()));
    }
}

/// Notify `trigger` after `wait` (a writer's backoff), unless `shutdown` comes first.
fn wake_after(trigger: &Arc<Notify>, wait: Duration, shutdown: &CancellationToken) {
    let (t, stop) = (trigger.clone(), shutdown.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(wait) => t.notify_one(),
            _ = stop.cancelled() => {}
        }
    });
}

/// Create and patch parameters of every write, under our field manager.
fn write_params() -> (PostParams, PatchParams) {
    let p = WriteParams::new(FIELD_MANAGER);
    (p.post, p.patch)
}

// ===== FRRConfiguration writer =====

enum WriteError {
    /// The observed object was refreshed (conflict): try again at once.
    Retry,
    Failed(kube::Error),
    /// The kept versions could not be persisted (the FRRConfiguration was still written).
    Kept(MemoError),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Retry => write!(f, "conflict"),
            WriteError::Failed(e) => write!(f, "{e}"),
            WriteError::Kept(e) => write!(f, "{e}"),
        }
    }
}

/// A planned write: the JSON body, serialised under the lock straight from the
/// announcer's spec (a 10,000-prefix spec is ~1 MB as a struct; cloning it to hand to
/// `Api::replace` doubled the writer's transient memory).
enum FrrWrite {
    Create(Vec<u8>),
    Replace(Vec<u8>),
}

/// The body of a write, borrowing its parts.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct FrrBody<'a> {
    api_version: Cow<'static, str>,
    kind: Cow<'static, str>,
    metadata: &'a ObjectMeta,
    spec: &'a FRRConfigurationSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a FRRConfigurationStatus>,
}

impl<'a> FrrBody<'a> {
    fn new(
        metadata: &'a ObjectMeta,
        spec: &'a FRRConfigurationSpec,
        status: Option<&'a FRRConfigurationStatus>,
    ) -> Self {
        FrrBody {
            api_version: FRRConfiguration::api_version(&()),
            kind: FRRConfiguration::kind(&()),
            metadata,
            spec,
            status,
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an FRRConfiguration always serialises")
    }
}

/// What the writer reads back from a write's response: the spec is skipped while
/// decoding (it is what we sent), so the response costs no second copy of it.
#[derive(serde::Deserialize)]
struct Written {
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<FRRConfigurationStatus>,
}

struct FrrWriter {
    api: Api<FRRConfiguration>,
    client: Client,
    name: String,
    target: FrrTarget,
    shared: Shared,
    metrics: Arc<SpeakerMetrics>,
    /// What `metallb_speaker_announced` shows, per Service.
    exported: HashMap<ServiceKey, Vec<IpAddr>>,
    node: Arc<str>,
    /// Where the kept versions are persisted, and what was last persisted.
    memo: Option<Memo>,
    kept_saved: Vec<KeptVersion>,
}

impl FrrWriter {
    /// Decide under the lock; write without it.
    /// Returns the write and the generation of the desired configuration it carries.
    fn plan(&mut self, withdraw: bool) -> Option<(FrrWrite, u64)> {
        let shared = self.shared.clone();
        let mut st = lock(&shared);
        if !st.ready() {
            return None;
        }
        compile(&mut st, &self.metrics);
        self.metrics.k8s_client_config_loaded_bool.set(1);
        self.update_announced(&mut st);
        let Inputs { announcer, frr, .. } = &mut *st;
        let (built, generation) = announcer.desired_frr(&self.target);
        // The withdrawn form is never the announcer's: generation 0 names no content.
        let (desired, generation) = if withdraw {
            (Cow::Owned(withdraw::withdrawn(built)), 0)
        } else {
            (Cow::Borrowed(built), generation)
        };
        if !frr.differs_from(&desired.spec, generation) {
            return None;
        }
        let write = match &frr.obj {
            None => FrrWrite::Create(
                FrrBody::new(&desired.metadata, &desired.spec, desired.status.as_ref()).to_vec(),
            ),
            Some(obs) => FrrWrite::Replace(
                FrrBody::new(&obs.metadata, &desired.spec, obs.status.as_ref()).to_vec(),
            ),
        };
        Some((write, generation))
    }

    fn update_announced(&mut self, st: &mut Inputs) {
        let keys: Vec<ServiceKey> = match st.metrics_dirty.take() {
            Some(k) => k.into_iter().collect(),
            None => st
                .announcer
                .announcements()
                .services
                .keys()
                .chain(self.exported.keys())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        for k in keys {
            let now: Vec<IpAddr> = st
                .announcer
                .announcements()
                .services
                .get(&k)
                .filter(|a| a.is_announced())
                .map(|a| a.ips.iter().map(|i| i.ip).collect())
                .unwrap_or_default();
            let old = self.exported.remove(&k).unwrap_or_default();
            let labels = |ip: &IpAddr| AnnouncedLabels {
                ip: ip.to_string(),
                node: self.node.clone(),
                protocol: "bgp",
                service: k.clone(),
            };
            for ip in old.iter().filter(|ip| !now.contains(ip)) {
                self.metrics.announced.remove(&labels(ip));
            }
            for ip in &now {
                self.metrics.announced.get_or_create(&labels(ip)).set(1);
            }
            if !now.is_empty() {
                self.exported.insert(k, now);
            }
        }
    }

    /// Bring `metallb-<node>` in line with the index (or with the withdrawn form of it).
    async fn sync(&mut self, withdraw: bool) -> Result<(), WriteError> {
        let planned = self.plan(withdraw);
        // The record first: once a decision shows in the FRRConfiguration, a restart must
        // find the record that explains it. A failure to persist it does not hold the
        // announcements back (it is retried with the writer's backoff).
        let kept = self.persist_kept_versions().await;
        let Some((write, generation)) = planned else {
            return kept;
        };
        let (pp, _) = write_params();
        let request = kube::core::Request::new(self.api.resource_url());
        let (op, request) = match write {
            FrrWrite::Create(body) => ("create", request.create(&pp, body)),
            FrrWrite::Replace(body) => ("update", request.replace(&self.name, &pp, body)),
        };
        let result = match request {
            Ok(r) => self.client.request::<Written>(r).await,
            Err(e) => Err(kube::Error::BuildRequest(e)),
        };
        match result {
            Ok(written) => {
                info!(
                    op,
                    name = %self.name,
                    resource_version = written.metadata.resource_version.as_deref().unwrap_or(""),
                    withdraw,
                    "FRRConfiguration written"
                );
                self.metrics.frrconfiguration_writes_total.inc();
                lock(&self.shared)
                    .frr
                    .record_write(written.metadata, written.status, generation);
                kept
            }
            Err(kube::Error::Api(s))
                if s.is_conflict() || s.is_already_exists() || s.is_not_found() =>
            {
                debug!(op, reason = %s.message, "FRRConfiguration changed under us; re-reading");
                match self.api.get_opt(&self.name).await {
                    Ok(current) => {
                        lock(&self.shared).frr.record_read(current);
                        Err(WriteError::Retry)
                    }
                    Err(e) => {
                        self.metrics.k8s_client_update_errors_total.inc();
                        Err(WriteError::Failed(e))
                    }
                }
            }
            Err(e) => {
                self.metrics.k8s_client_update_errors_total.inc();
                Err(WriteError::Failed(e))
            }
        }
    }

    /// Persist the kept versions when they changed.
    async fn persist_kept_versions(&mut self) -> Result<(), WriteError> {
        let Some(memo) = &self.memo else {
            return Ok(());
        };
        let record = lock(&self.shared).kept_versions();
        if record == self.kept_saved {
            return Ok(());
        }
        memo.save(&record).await.map_err(WriteError::Kept)?;
        debug!(objects = record.len(), memo = %memo.name(), "kept versions persisted");
        self.kept_saved = record;
        Ok(())
    }

    /// The final write on shutdown.
    async fn shutdown(&mut self, settings: &Settings) -> ShutdownOutcome {
        if !settings.withdraw_on_shutdown {
            return ShutdownOutcome::Disabled;
        }
        let (prefixes, labels, gr) = {
            let mut st = lock(&self.shared);
            if !st.ready() {
                return ShutdownOutcome::NotSynced;
            }
            st.compile_if_dirty();
            let gr = withdraw::graceful_restart_peers(st.announcer.config());
            let labels = st
                .node
                .as_ref()
                .map(|n| n.labels.clone())
                .unwrap_or_default();
            let prefixes = match st.frr.obj.as_ref().map(|o| &o.spec) {
                None => BTreeSet::new(),
                Some(ObservedSpec::Held(spec)) => withdraw::originated_prefixes([&**spec]),
                // What we wrote last; the desired configuration stands for it (the writer
                // commits within milliseconds, so they differ only in that window).
                Some(ObservedSpec::Ours { .. }) => withdraw::originated_prefixes([&st
                    .announcer
                    .frr_configuration(&self.target)
                    .spec]),
            };
            (prefixes, labels, gr)
        };
        if !gr.is_empty() {
            info!(peers = ?gr, "graceful restart configured: leaving the announcements to it");
            return ShutdownOutcome::KeptForGracefulRestart { peers: gr };
        }
        let attempt = async {
            for _ in 0..5 {
                match self.sync(true).await {
                    Ok(()) => return Ok(()),
                    Err(WriteError::Retry) => continue,
                    Err(WriteError::Kept(e)) => {
                        warn!(error = %e, "persisting the kept versions failed")
                    }
                    Err(WriteError::Failed(e)) => return Err(e.to_string()),
                }
            }
            Err("conflicting writers".to_string())
        };
        match tokio::time::timeout(settings.shutdown_write_timeout, attempt).await {
            Ok(Ok(())) => {
                info!(prefixes = prefixes.len(), "announcements withdrawn");
                ShutdownOutcome::Withdrawn {
                    prefixes,
                    node_labels: labels,
                }
            }
            Ok(Err(e)) => {
                warn!(error = %e, "could not withdraw the announcements");
                ShutdownOutcome::Failed(e)
            }
            Err(_) => {
                warn!("withdrawing the announcements timed out");
                ShutdownOutcome::Failed("timed out".into())
            }
        }
    }
}

// ===== ServiceBGPStatus writer =====

async fn status_writer(
    api: Api<ServiceBGPStatus>,
    owner: Option<OwnerReference>,
    shared: Shared,
    trigger: Arc<Notify>,
    metrics: Arc<SpeakerMetrics>,
    shutdown: CancellationToken,
) {
    let ns = api_namespace(&api);
    let mut backoff = backoff();
    loop {
        tokio::select! {
            _ = trigger.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        // Take batches until one has work (or nothing is dirty): a batch can be all
        // no-ops (keys re-marked by the watch events of objects we just wrote), and
        // waiting for the next trigger after it would stall the rest of the backlog.
        let ops: Vec<StatusOp> = {
            let mut st = lock(&shared);
            if !st.ready() {
                continue;
            }
            if st.status_dirty.wants_all() {
                let universe = st.status_universe();
                st.status_dirty.expand(universe);
            }
            let mut ops = Vec::new();
            while ops.is_empty() && !st.status_dirty.is_empty() {
                let keys = st.status_dirty.take_some(STATUS_BATCH);
                ops = keys
                    .iter()
                    .flat_map(|k| {
                        let intent = st.status_intent(k);
                        st.status.ops(k, intent.as_ref())
                    })
                    .collect();
            }
            ops
        };
        if ops.is_empty() {
            continue;
        }
        let results: Vec<(StatusOp, Result<(), kube::Error>)> = futures::stream::iter(ops)
            .map(|op| {
                let api = api.clone();
                let shared = shared.clone();
                let owner = owner.clone();
                let ns = ns.clone();
                let metrics = metrics.clone();
                async move {
                    let r = apply_status_op(&api, &ns, owner, &shared, &metrics, &op).await;
                    (op, r)
                }
            })
            .buffer_unordered(STATUS_CONCURRENCY)
            .collect()
            .await;
        let mut failed = false;
        {
            let mut st = lock(&shared);
            for (op, r) in &results {
                if let Err(e) = r {
                    failed = true;
                    metrics.k8s_client_update_errors_total.inc();
                    let key = match op {
                        StatusOp::Create(i) | StatusOp::Patch { intent: i, .. } => &i.service,
                        StatusOp::Delete { key, .. } => key,
                    };
                    warn!(service = %key, error = %e, "ServiceBGPStatus write failed");
                    st.status_dirty.mark(key);
                }
            }
        }
        if failed {
            let wait = backoff.failed();
            wake_after(&trigger, wait, &shutdown);
        } else {
            backoff.reset();
            // more dirty keys than one batch: go on
            trigger.notify_one();
        }
    }
}

fn api_namespace(api: &Api<ServiceBGPStatus>) -> String {
    api.namespace().unwrap_or_default().to_string()
}

async fn apply_status_op(
    api: &Api<ServiceBGPStatus>,
    ns: &str,
    owner: Option<OwnerReference>,
    shared: &Shared,
    metrics: &SpeakerMetrics,
    op: &StatusOp,
) -> Result<(), kube::Error> {
    let (pp, patch_params) = write_params();
    match op {
        StatusOp::Create(intent) => {
            let mut obj = intent.to_object(ns);
            obj.metadata.owner_references = owner.map(|o| vec![o]);
            let mut created = api.create(&pp, &obj).await?;
            strip(&mut created);
            metrics.bgp_status_writes_total.inc();
            let name = created.name_any();
            lock(shared).status.record_written(&created);
            let mut patched = api
                .patch_status(
                    &name,
                    &patch_params,
                    &Patch::Merge(json!({ "status": intent.status() })),
                )
                .await?;
            strip(&mut patched);
            metrics.bgp_status_writes_total.inc();
            lock(shared).status.record_written(&patched);
            debug!(service = %intent.service, name, "ServiceBGPStatus created");
        }
        StatusOp::Patch { name, intent } => {
            match api
                .patch_status(
                    name,
                    &patch_params,
                    &Patch::Merge(json!({ "status": intent.status() })),
                )
                .await
            {
                Ok(mut patched) => {
                    strip(&mut patched);
                    metrics.bgp_status_writes_total.inc();
                    lock(shared).status.record_written(&patched);
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {
                    let mut st = lock(shared);
                    st.status.record_deleted(name);
                    st.status_dirty.mark(&intent.service);
                }
                Err(e) => return Err(e),
            }
        }
        StatusOp::Delete { name, .. } => {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    metrics.bgp_status_writes_total.inc();
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e),
            }
            lock(shared).status.record_deleted(name);
        }
    }
    Ok(())
}

// ===== ConfigurationState writer =====

/// Writes per pass at most: a create is followed by its status write, and a deletion noticed
/// meanwhile by one more create; anything beyond that is someone fighting us, and the next
/// pass (re-triggered at once) goes on after the other writers had their turn.
const CONFIG_STATE_STEPS: usize = 4;

/// Keeps `speaker-<node>` saying whether the configuration that applies to this node
/// compiled cleanly. Runs when the issues change or the object is edited or deleted by
/// someone else; writes only what differs (see [`config_state::next_step`]).
async fn config_state_writer(
    api: Api<ConfigurationState>,
    target: config_state::Target,
    shared: Shared,
    trigger: Arc<Notify>,
    metrics: Arc<SpeakerMetrics>,
    shutdown: CancellationToken,
) {
    let mut backoff = backoff();
    loop {
        tokio::select! {
            _ = trigger.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        match sync_config_state(&api, &target, &shared, &metrics).await {
            Ok(done) => {
                backoff.reset();
                if !done {
                    trigger.notify_one();
                }
            }
            Err(e) => {
                lock(&shared).config_state.dirty = true;
                metrics.k8s_client_update_errors_total.inc();
                let wait = backoff.failed();
                warn!(
                    name = %target.name(),
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "writing ConfigurationState failed"
                );
                wake_after(&trigger, wait, &shutdown);
            }
        }
    }
}

/// Decide under the lock, write without it, until nothing is left to write. Returns whether
/// it got there (false: [`CONFIG_STATE_STEPS`] writes were not enough, go on later).
async fn sync_config_state(
    api: &Api<ConfigurationState>,
    target: &config_state::Target,
    shared: &Shared,
    metrics: &SpeakerMetrics,
) -> Result<bool, kube::Error> {
    let name = target.name();
    let (pp, patch_params) = write_params();
    for _ in 0..CONFIG_STATE_STEPS {
        let step = {
            let mut st = lock(shared);
            // Before the watches synced, issues and the observed object are incomplete.
            if !st.ready() {
                return Ok(true);
            }
            compile(&mut st, metrics);
            if !st.config_state.dirty {
                return Ok(true);
            }
            let now = k8s_openapi::jiff::Timestamp::now();
            let step = config_state::next_step(
                st.config_state.obj.as_ref(),
                target,
                st.config_issues(),
                now,
            );
            match step {
                Some(step) => step,
                None => {
                    st.config_state.dirty = false;
                    return Ok(true);
                }
            }
        };
        let result = match &step {
            Step::Create(obj) => api.create(&pp, obj).await,
            Step::Metadata(patch) => api.patch(&name, &patch_params, &Patch::Merge(patch)).await,
            Step::Status(status) => {
                api.patch_status(&name, &patch_params, &Patch::Merge(status.merge_patch()))
                    .await
            }
        };
        match result {
            Ok(written) => {
                metrics.configuration_state_writes_total.inc();
                match &step {
                    Step::Create(_) => info!("ConfigurationState created"),
                    Step::Metadata(_) => info!("ConfigurationState labels and owner restored"),
                    Step::Status(s) => info!(
                        result = ?s.result,
                        error_summary = s.error_summary.as_deref().unwrap_or(""),
                        "ConfigurationState status written"
                    ),
                }
                lock(shared).config_state.record_write(written);
            }
            // Created meanwhile (a lagging watch), or deleted under us: read what is there
            // and decide again.
            Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_not_found() => {
                debug!(reason = %s.message, "ConfigurationState changed under us; re-reading");
                let current = api.get_opt(&name).await?;
                lock(shared).config_state.record_read(current);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// The speaker's writers retry from 100 ms, doubling to 5 s: a lost announcement costs
/// traffic, so they keep trying often.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}
