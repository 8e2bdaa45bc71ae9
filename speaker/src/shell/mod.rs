//! The speaker's shell: watches feed the index, writers publish its decisions.
//!
//! ```text
//!  Nodes (all) ────────────┐                          ┌─▶ FRR writer ──▶ FRRConfiguration
//!  Services (all) ─────────┤   Inputs (one lock)      │    metallb-<node>: create once,
//!  EndpointSlices (all) ───┼─▶ ServiceInfo/Endpoints ─┤    update in place when the spec
//!  pools, peers, ads,      │   NodeAnnouncer          │    differs (never delete)
//!  L2 ads, communities, BFD┤   L2View (election)      │
//!  metallb-<node> ─────────┤   observed objects       ├─▶ status writers ──▶ ServiceBGPStatus
//!  Service{BGP,L2}Status   ┤                          │    per (Service, node), ServiceL2Status
//!   (this node's)          │                          │    per Service (the elected node)
//!  speaker-<node> ─────────┘                          ├─▶ config-state writer ──▶
//!                                                     │    ConfigurationState speaker-<node>
//!                                                     └─▶ L2 decisions ──▶ responder (ARP/NDP)
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
//! One module per writer: `frr_writer` (FRRConfiguration), `status_writer`
//! (ServiceBGPStatus and ServiceL2Status), `config_state_writer` (ConfigurationState),
//! `l2_task` (the IPs the responder answers for); `index` is the state they read,
//! `withdraw` the pure shutdown decision.
//!
//! Nothing is written before every watch has listed once and this node's Node was seen,
//! so a restart compares the complete desired object with the one already in the cluster
//! and, when nothing changed meanwhile, writes nothing.

mod config_state_writer;
mod frr_writer;
pub mod index;
mod l2_task;
mod status_writer;
pub mod withdraw;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use metallb_api::frrk8s::{FRRConfiguration, FRRConfigurationSpec, FRRConfigurationStatus};
use metallb_api::metallb::status::{speaker_configuration_state_name, LABEL_NODE};
use metallb_api::metallb::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, ConfigurationState, IPAddressPool,
    L2Advertisement, ServiceBGPStatus, ServiceL2Status,
};
use metallb_api::versions::KeptVersion;
use metallb_runtime::memo::{node_owner, Memo, MemoError};
use metallb_runtime::watch::{lock, strip, WatchSet};
use metallb_runtime::write::{Backoff, WriteParams};
use metallb_runtime::{Readiness, Tasks};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::bgp::{config_name, FrrTarget, ServiceKey, SpeakerOptions};
use crate::config_state::{self, Step};
use crate::l2::responder::{self, Wanted};
use crate::members::{self, agent::Peers, Membership};
use crate::metrics::{AnnouncedLabels, SpeakerMetrics};
use config_state_writer::config_state_writer;
use frr_writer::{FrrWriter, WriteError};
use index::{DirtySet, Inputs, ObservedSpec, StatusOp};
use status_writer::status_writer;

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
    /// Label selector of the speaker Pods (MetalLB's namespace): a node is an L2
    /// candidate only while its speaker Pod runs and is not being deleted, so a drain or a
    /// rollout hands the node's L2 IPs over before the speaker exits. `None`: Node
    /// readiness alone.
    pub speaker_pods: Option<String>,
    /// Answer ARP/NDP for the L2 Services this node is elected for; `None`: L2 decisions
    /// are made but nothing is answered (tests of the shell that must not touch the host's
    /// interfaces).
    pub l2: Option<responder::Settings>,
    /// Run the membership agent (`crate::members`): an abrupt loss of a node's speaker
    /// moves its L2 IPs in about a second. `None`: liveness from the API alone.
    pub members: Option<members::agent::Settings>,
    /// The embedded frr-k8s component's in-process input: each new desired configuration
    /// is handed to it before `metallb-<node>` is written. `None`: frr-k8s runs elsewhere
    /// and reads the object, so every change is written at once.
    pub frr_handoff: Option<frr_k8s::node::LocalConfig>,
    /// With `frr_handoff`: the shortest time between two writes of `metallb-<node>` while
    /// changes keep coming (a lone change is written at once).
    pub frr_write_interval: Duration,
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
            speaker_pods: None,
            l2: None,
            members: None,
            frr_handoff: None,
            frr_write_interval: Duration::from_secs(1),
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
    let l2_trigger = Arc::new(Notify::new());
    let l2_status_trigger = Arc::new(Notify::new());
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
    .wake(config_state_trigger.clone())
    .wake(l2_trigger.clone())
    .wake(l2_status_trigger.clone());
    let ns = settings.namespace.as_str();
    let all = watcher::Config::default;
    let by_name = |n: &str| all().fields(&format!("metadata.name={n}"));
    let t = &mut tasks;
    // every Node: this one for BGP, all of them as L2 candidates
    watches.watch(t, "nodes", Api::<Node>::all(client.clone()), all());
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
    let l2ads = Api::<L2Advertisement>::namespaced(client.clone(), ns);
    watches.watch(t, "l2advertisements", l2ads, all());
    if let Some(selector) = &settings.speaker_pods {
        let pods = Api::<Pod>::namespaced(client.clone(), ns);
        watches.watch(t, "speaker-pods", pods, all().labels(selector));
    }
    // Our own objects: a deletion or someone else's edit is repaired.
    let own_config = config_name(&settings.node_name);
    let frr_api = Api::<FRRConfiguration>::namespaced(client.clone(), &settings.frr_namespace);
    watches.watch(t, "speaker-frrconfiguration", frr_api, by_name(&own_config));
    let statuses = Api::<ServiceBGPStatus>::namespaced(client.clone(), ns);
    let this_node = all().labels(&format!("{LABEL_NODE}={}", settings.node_name));
    watches.watch(t, "servicebgpstatuses", statuses, this_node.clone());
    // every node's: the elected node deletes the others' (upstream's leader does)
    let l2_statuses = Api::<ServiceL2Status>::namespaced(client.clone(), ns);
    watches.watch(t, "servicel2statuses", l2_statuses, all());
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
        status_writer::<ServiceBGPStatus>(
            Api::namespaced(client.clone(), ns),
            owner.clone(),
            shared.clone(),
            status_trigger,
            metrics.clone(),
            shutdown.clone(),
        )
        .instrument(info_span!("bgp-status"))
        .map(Ok),
    );
    tasks.spawn(
        "ServiceL2Status writer",
        status_writer::<ServiceL2Status>(
            Api::namespaced(client.clone(), ns),
            owner,
            shared.clone(),
            l2_status_trigger.clone(),
            metrics.clone(),
            shutdown.clone(),
        )
        .instrument(info_span!("l2-status"))
        .map(Ok),
    );

    let (wanted_tx, wanted_rx) = watch::channel(Wanted::default());
    let (links_tx, links_rx) = watch::channel(None);
    let membership = settings.members.clone().map(|agent_settings| {
        let (peers_tx, peers_rx) = watch::channel(Peers::new());
        let (view_tx, view_rx) = watch::channel(Membership::default());
        let port = agent_settings.bind.port();
        let run = members::agent::run(
            agent_settings,
            peers_rx,
            view_tx,
            metrics.members.clone(),
            shutdown.clone(),
        );
        tasks.spawn("membership", run.instrument(info_span!("membership")));
        l2_task::MembershipLink {
            peers: peers_tx,
            view: view_rx,
            port,
        }
    });
    tasks.spawn(
        "L2 decisions",
        l2_task::l2_decisions(
            client.clone(),
            shared.clone(),
            l2_trigger,
            l2_status_trigger,
            wanted_tx,
            links_rx,
            membership,
            metrics.clone(),
            shutdown.clone(),
        )
        .instrument(info_span!("l2"))
        .map(Ok),
    );
    if let Some(l2) = settings.l2.clone() {
        let counters = metrics.l2.clone();
        let stop = shutdown.clone();
        let run = responder::run(l2, wanted_rx, links_tx, counters, stop);
        tasks.spawn("L2 responder", run.instrument(info_span!("l2-responder")));
    } else {
        // no responder: the L2 task has no interfaces to check against
        drop(links_tx);
    }

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
        handoff: (settings.frr_handoff.clone())
            .map(|l| frr_writer::Handoff::new(l, settings.frr_write_interval)),
        deferred: None,
    };
    let span = info_span!("frr-writer", node = %settings.node_name);
    let failed = async {
        let mut backoff = backoff();
        loop {
            let deferred = writer.deferred.take();
            tokio::select! {
                // a writer that stops because of the shutdown is no failure
                biased;
                _ = shutdown.cancelled() => break None,
                _ = frr_trigger.notified() => {}
                // a write held back while changes keep coming (see `frr_writer`)
                _ = tokio::time::sleep_until(deferred.unwrap_or_else(tokio::time::Instant::now)), if deferred.is_some() => {}
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

/// The speaker's writers retry from 100 ms, doubling to 5 s: a lost announcement costs
/// traffic, so they keep trying often.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}
