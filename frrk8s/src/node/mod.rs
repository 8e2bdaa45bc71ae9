//! The node component's shell: watches feed an in-memory index (`index`, `secrets`, on the
//! runtime's watch kit), one task recomputes the desired
//! FRR configuration from them, one task owns FRR's configuration (applies, detects
//! restarts, audits withdrawals), one polls session state apart from it (a poll never
//! delays a change), and one writer per status kind publishes what happened.
//!
//! ```text
//!  FRRConfiguration ─┐                      desired text        apply
//!  Node (this one)  ─┼─▶ compute (pure) ──▶ watch channel ──▶ FRR worker ──▶ FRR (vtysh)
//!  Secrets          ─┘   select+merge+render  (latest wins)      │             │ show, every poll
//!                              │                                  ▼             ▼
//!                              └─ conversion result ──────▶ FRRNodeState   status poller ──▶ BGPSessionState,
//!                                                            .status                          metrics
//! ```
//!
//! FRRConfigurations that do not select this node are kept as stubs (name, selector) so a
//! namespace holding one object per node costs each node little ([`crate::stub`]); when the
//! node's labels come to select a stub, the objects are listed again (`index`).
//!
//! Bursts coalesce without a timer: the compute task wakes on a [`Notify`] (events arriving
//! while it works leave one pending wake-up), and the FRR worker reads a `watch` channel
//! that only keeps the latest desired text, so a burst of N changes costs at most two
//! applies, each as soon as FRR is free.

mod index;
mod secrets;
mod status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher;
use kube::{Api, Client};
use metallb_api::frrk8s::FRRConfiguration;
use metallb_runtime::watch::{lock, restartable, WatchSet};
use metallb_runtime::{Readiness, Tasks};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::frr::apply::{Applier, ApplyError, ApplyOptions};
use crate::frr::audit::{self, Audits};
use crate::frr::control::{redact, ControlError, FrrControl};
use crate::frr::status::{read_bfd_status, read_bgp_status, BfdPeerStatus, BgpNeighborStatus};
use crate::metrics::FrrMetrics;
use crate::versions::Versions;
use crate::{merge, render, select, RenderOptions};
use metallb_api::versions::KeptVersion;
use metallb_runtime::memo::{node_owner, Memo};

pub use index::NodeIndex;
pub use secrets::SecretIndex;
pub use status::{owner_patch, pod_owner_reference, NodeStatus, PodRef, SessionStatusWriter};

/// What the node component needs to know about where it runs.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// This node's name (the FRRNodeState name, the BGPSessionState `node`).
    pub node_name: String,
    /// The namespace whose FRRConfigurations (and, by default, Secrets) are consumed.
    pub namespace: String,
    pub render: RenderOptions,
    /// How often FRR is asked for session state and checked for restarts.
    pub poll_interval: Duration,
    /// Write FRRNodeState and BGPSessionState objects.
    pub write_status: bool,
    /// Persist the refused FRRConfiguration versions and the versions kept instead in the
    /// node's Secret ([`kept_versions_name`]), so that a restart makes the same choices.
    pub persist_versions: bool,
    /// How FRR is driven (verification, dry-run checks).
    pub apply: ApplyOptions,
}

/// The result of one computation from the stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// The rendered configuration (contains passwords: never log it).
    pub text: Arc<String>,
    /// `success`, or `failed: ...` naming every skipped object and why.
    pub conversion_result: String,
    /// True when every selected object was merged.
    pub complete: bool,
}

/// Pure: from the current objects to the desired FRR text and conversion result, taking
/// every object as it is (a component's first computation; see [`compute_versions`]).
pub fn compute(
    configs: &[Arc<FRRConfiguration>],
    node_labels: &BTreeMap<String, String>,
    secrets: &dyn crate::SecretLookup,
    settings: &NodeSettings,
) -> Desired {
    compute_versions(
        &mut Versions::default(),
        configs,
        node_labels,
        secrets,
        settings,
        k8s_openapi::jiff::Timestamp::now(),
    )
}

/// From the current objects to the desired FRR text and conversion result; which version
/// of each object is merged is decided by `versions` (an edit that cannot be merged keeps
/// the version in effect, see [`crate::versions`]), which remembers the decision.
pub fn compute_versions(
    versions: &mut Versions,
    configs: &[Arc<FRRConfiguration>],
    node_labels: &BTreeMap<String, String>,
    secrets: &dyn crate::SecretLookup,
    settings: &NodeSettings,
    now: k8s_openapi::jiff::Timestamp,
) -> Desired {
    let selection = select(
        configs.iter().map(|c| c.as_ref()),
        &settings.namespace,
        node_labels,
    );
    let picked: std::collections::HashSet<*const FRRConfiguration> = (selection.selected.iter())
        .map(|c| *c as *const FRRConfiguration)
        .collect();
    let selected: Vec<Arc<FRRConfiguration>> = configs
        .iter()
        .filter(|c| picked.contains(&Arc::as_ptr(c)))
        .cloned()
        .collect();
    let merge_set = |set: &[Arc<FRRConfiguration>]| {
        let refs: Vec<&FRRConfiguration> = set.iter().map(|c| c.as_ref()).collect();
        merge(&refs, secrets, &settings.namespace)
    };
    let resolved = versions.resolve(&selected, now, |set| {
        (merge_set(set).errors.iter())
            .map(|e| {
                let why: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
                (e.object.clone(), why.join("; "))
            })
            .collect()
    });
    let outcome = merge_set(&resolved.chosen);
    let text = render(&outcome.config, &settings.render);
    let mut problems: Vec<String> = selection.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(resolved.problems);
    problems.extend(outcome.errors.iter().map(|e| e.to_string()));
    let complete = problems.is_empty();
    let conversion_result = if complete {
        "success".to_string()
    } else {
        format!("failed: {}", problems.join("\n"))
    };
    Desired {
        text: Arc::new(text),
        conversion_result,
        complete,
    }
}

/// Name of the Secret holding a node's kept FRRConfiguration versions (a Secret: an
/// FRRConfiguration can carry a password).
pub fn kept_versions_name(node: &str) -> String {
    metallb_runtime::memo::per_node_name("frr-k8s-kept-", node)
}

/// The node's kept-versions Secret, owned by the Node (it outlives the daemon's Pods and
/// goes with the Node).
fn kept_versions_memo(client: &Client, settings: &NodeSettings, index: &Mutex<NodeIndex>) -> Memo {
    let owner = (lock(index).node())
        .and_then(|n| node_owner(&settings.node_name, n.metadata.uid.as_deref()));
    Memo::secret(
        Api::namespaced(client.clone(), &settings.namespace),
        kept_versions_name(&settings.node_name),
        owner,
        [(
            "app.kubernetes.io/component".to_string(),
            "frr-k8s".to_string(),
        )]
        .into(),
        "frr-k8s",
    )
}

/// Run the node component until `shutdown`. `control` reaches this node's FRR. The
/// objects it writes have no owner; see [`run_in_pod`].
pub async fn run<C>(
    client: Client,
    settings: NodeSettings,
    control: C,
    readiness: Readiness,
    metrics: Arc<FrrMetrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    C: FrrControl + Clone + Send + Sync + 'static,
{
    run_in_pod(
        client, settings, None, control, readiness, metrics, shutdown,
    )
    .await
}

/// [`run`] inside `pod` (the frr-k8s daemon pod, or the all-in-one speaker pod): the
/// pod owns this node's BGPSessionState objects, so the garbage collector deletes them
/// with it, as upstream. The pod must be in `settings.namespace` (an owner lives in its
/// dependents' namespace); otherwise, or with `None`, the objects have no owner.
/// FRRNodeState is cluster-scoped and cannot have a Pod owner (upstream's status cleaner
/// deletes it instead).
pub async fn run_in_pod<C>(
    client: Client,
    settings: NodeSettings,
    pod: Option<PodRef>,
    control: C,
    readiness: Readiness,
    metrics: Arc<FrrMetrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    C: FrrControl + Clone + Send + Sync + 'static,
{
    run_in_pod_with_local(
        client,
        settings,
        pod,
        control,
        readiness,
        metrics,
        shutdown,
        LocalConfig::new(),
    )
    .await
}

/// [`run_in_pod`], taking FRRConfigurations handed over through `local` as well (the
/// all-in-one speaker hands over its own `metallb-<node>` the moment it decides it, rather
/// than through a write and the watch's echo of it).
#[allow(clippy::too_many_arguments)]
pub async fn run_in_pod_with_local<C>(
    client: Client,
    settings: NodeSettings,
    pod: Option<PodRef>,
    control: C,
    readiness: Readiness,
    metrics: Arc<FrrMetrics>,
    shutdown: CancellationToken,
    local: LocalConfig,
) -> anyhow::Result<()>
where
    C: FrrControl + Clone + Send + Sync + 'static,
{
    let first = (local.first_wait).map(|wait| (local.decided.clone(), wait));
    run_full(
        client,
        settings,
        pod,
        control,
        readiness,
        metrics,
        shutdown,
        local.index,
        local.wake,
        first,
    )
    .await
}

/// The hand-over of FRRConfigurations in process into a node component
/// ([`run_in_pod_with_local`]).
#[derive(Clone, Debug)]
pub struct LocalConfig {
    index: Arc<Mutex<NodeIndex>>,
    /// The component's compute loop.
    wake: Arc<Notify>,
    /// Set once the producer decided its configuration for the first time.
    decided: Arc<AtomicBool>,
    /// How long the component's first computation waits for that ([`LocalConfig::first_awaited`]).
    first_wait: Option<Duration>,
}

impl LocalConfig {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        LocalConfig {
            index: Arc::new(Mutex::new(NodeIndex::new(Arc::new(Notify::new())))),
            wake: Arc::new(Notify::new()),
            decided: Arc::new(AtomicBool::new(false)),
            first_wait: None,
        }
    }

    /// The component computes nothing until the producer has [`LocalConfig::decided`]
    /// (at most `wait`, then it goes on with the watched objects alone). The copy in the
    /// cluster may be older than what FRR has: the producer hands over at once but writes
    /// at most once per interval, and a process that stopped in between left the older
    /// copy behind. Applying it first would withdraw the newest announcements until the
    /// producer's hand-over brought them back.
    pub fn first_awaited(mut self, wait: Duration) -> Self {
        self.first_wait = Some(wait);
        self
    }

    /// Take `cfg` in place of the watched object of its name from now on (see
    /// [`NodeIndex::set_local`] for what its `uid` and `generation` must be), and compute
    /// at once.
    pub fn hand_over(&self, cfg: FRRConfiguration) {
        lock(&self.index).set_local(cfg);
        self.wake.notify_one();
    }

    /// The producer has decided its configuration: handed over (before this call), or the
    /// cluster's copy is what it decided, or it creates that copy (the watch brings it).
    pub fn decided(&self) {
        if !self.decided.swap(true, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }
}

/// [`run`] into the index the caller made (tests keep it to see what the component
/// keeps).
#[allow(clippy::too_many_arguments)]
#[cfg(test)]
async fn run_with_index<C>(
    client: Client,
    settings: NodeSettings,
    control: C,
    readiness: Readiness,
    metrics: Arc<FrrMetrics>,
    shutdown: CancellationToken,
    index: Arc<Mutex<NodeIndex>>,
) -> anyhow::Result<()>
where
    C: FrrControl + Clone + Send + Sync + 'static,
{
    run_full(
        client,
        settings,
        None,
        control,
        readiness,
        metrics,
        shutdown,
        index,
        Arc::new(Notify::new()),
        None,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn run_full<C>(
    client: Client,
    settings: NodeSettings,
    pod: Option<PodRef>,
    control: C,
    readiness: Readiness,
    metrics: Arc<FrrMetrics>,
    shutdown: CancellationToken,
    index: Arc<Mutex<NodeIndex>>,
    trigger: Arc<Notify>,
    first: Option<(Arc<AtomicBool>, Duration)>,
) -> anyhow::Result<()>
where
    C: FrrControl + Clone + Send + Sync + 'static,
{
    // Every watch, the FRR worker and the status writers: one that ends stops the
    // component with an error naming it (the process exits and is restarted) rather than
    // leaving FRR driven from a frozen store.
    let mut tasks = Tasks::new().with_gate(readiness.gate("frr-k8s-tasks"));
    // Only our own Node; the FRRConfigurations of our namespace, stubbed unless they
    // select us (see `index`), listed again when the node's labels select a stub.
    let relist = lock(&index).relist();
    let watches = WatchSet::new(
        index.clone(),
        readiness.clone(),
        Arc::new(()),
        shutdown.clone(),
    )
    .wake(trigger.clone());
    watches.watch(
        &mut tasks,
        index::NODE,
        Api::<Node>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", settings.node_name)),
    );
    watches.watch_stream(
        &mut tasks,
        index::CONFIGS,
        restartable(
            Api::<FRRConfiguration>::namespaced(client.clone(), &settings.namespace),
            watcher::Config::default(),
            relist,
        ),
    );
    let secrets = SecretIndex::new(
        client.clone(),
        &settings.namespace,
        readiness.clone(),
        trigger.clone(),
        shutdown.clone(),
        tasks.spawner(),
    );
    loop {
        if lock(&index).synced() && secrets.listed(&settings.namespace) {
            break;
        }
        tokio::select! {
            _ = trigger.notified() => {}
            err = tasks.failure() => return Err(err),
            _ = shutdown.cancelled() => return tasks.shutdown(Duration::from_secs(5)).await,
        }
    }
    info!(node = %settings.node_name, namespace = %settings.namespace, "watches synced");
    if let Some((decided, wait)) = first {
        let deadline = tokio::time::Instant::now() + wait;
        while !decided.load(Ordering::SeqCst) {
            tokio::select! {
                _ = trigger.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    warn!(waited_s = wait.as_secs(), "the speaker has not decided its FRRConfiguration; going on with the cluster's copy");
                    break;
                }
                err = tasks.failure() => return Err(err),
                _ = shutdown.cancelled() => return tasks.shutdown(Duration::from_secs(5)).await,
            }
        }
    }

    let (desired_tx, desired_rx) = watch::channel::<Option<Desired>>(None);
    let (status_tx, status_rx) = watch::channel(NodeStatus::default());
    let (sessions_tx, sessions_rx) = watch::channel::<Option<Vec<BgpNeighborStatus>>>(None);

    tasks.spawn(
        "FRR status poller",
        poll_status(
            control.clone(),
            sessions_tx,
            metrics.clone(),
            settings.poll_interval,
            shutdown.clone(),
        ),
    );
    tasks.spawn(
        "FRR worker",
        frr_worker(
            control,
            settings.apply.clone(),
            desired_rx,
            status_tx.clone(),
            metrics.clone(),
            settings.poll_interval,
            shutdown.clone(),
        ),
    );
    if settings.write_status {
        status::spawn_node_state_writer(
            &mut tasks,
            &readiness,
            client.clone(),
            settings.node_name.clone(),
            status_rx,
            metrics.clone(),
            shutdown.clone(),
        );
        SessionStatusWriter::new(client.clone(), &settings.namespace, &settings.node_name)
            .owned_by(pod)
            .spawn(
                &mut tasks,
                &readiness,
                sessions_rx,
                metrics.clone(),
                shutdown.clone(),
            );
    }

    // Which version of each FRRConfiguration is in effect, continued from the record a
    // previous process persisted (read before the first computation).
    let memo = match settings.persist_versions {
        true => Some(kept_versions_memo(&client, &settings, &index)),
        false => None,
    };
    let mut versions = Versions::default();
    let mut kept_saved = Vec::new();
    if let Some(m) = &memo {
        let record: Vec<KeptVersion> = m.load_or_default().await;
        if !record.is_empty() {
            info!(memo = %m.name(), objects = record.len(), "resuming with FRRConfigurations kept at their last valid version");
        }
        versions = Versions::seeded(&record);
        kept_saved = record;
    }

    // The compute loop: the only producer of desired configurations. `recheck` is when to
    // look again with no news (waiting for a Secret namespace, retrying the record).
    trigger.notify_one();
    let mut recheck: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            // tasks that end because of the shutdown are no failure
            biased;
            _ = shutdown.cancelled() => break,
            err = tasks.failure() => return Err(err),
            _ = trigger.notified() => {}
            _ = tokio::time::sleep_until(recheck.unwrap_or_else(tokio::time::Instant::now)), if recheck.is_some() => {}
        }
        recheck = None;
        let (labels, all) = {
            let st = lock(&index);
            let Some(labels) = st.labels().cloned() else {
                debug!(node = %settings.node_name, "node object not seen yet; waiting");
                continue;
            };
            // A stub these labels select was made under older labels: its full object is
            // being listed again (see `index`), whose arrival wakes us up. Computing now
            // would leave that object out.
            if let Some(stub) = st.selected_stub() {
                debug!(node = %settings.node_name, object = %stub,
                       "node labels now select a stubbed FRRConfiguration; waiting for the full object");
                continue;
            }
            (labels, st.configs())
        };
        // Secrets in other namespaces are watched on first reference; decisions wait (a
        // bounded time) for their first list, the arrival of which wakes this loop.
        let mut syncing = false;
        for ns in secrets::referenced_namespaces(&all, &settings.namespace) {
            secrets.ensure(&ns);
            syncing |= secrets.syncing(&ns);
        }
        if syncing {
            debug!(node = %settings.node_name, "waiting for the first list of a Secret namespace");
            recheck = Some(tokio::time::Instant::now() + SECRETS_RECHECK);
            continue;
        }
        let desired = compute_versions(
            &mut versions,
            &all,
            &labels,
            &secrets,
            &settings,
            k8s_openapi::jiff::Timestamp::now(),
        );
        // The record first: once a decision reaches FRR, a restart must find the record
        // that explains it.
        let record = versions.record();
        if let Some(m) = memo.as_ref().filter(|_| record != kept_saved) {
            match m.save(&record).await {
                Ok(()) => kept_saved = record,
                Err(e) => {
                    warn!(error = %e, "persisting the kept FRRConfiguration versions failed; will retry");
                    recheck = Some(tokio::time::Instant::now() + RECORD_RETRY);
                }
            }
        }
        metrics
            .k8s_client_config_loaded_bool
            .set(desired.complete as i64);
        if !desired.complete {
            warn!(node = %settings.node_name, result = %desired.conversion_result, "some FRRConfigurations were skipped");
        }
        status_tx.send_if_modified(|s| s.set_conversion(&desired.conversion_result));
        publish(&desired_tx, desired);
    }
    tasks.shutdown(Duration::from_secs(10)).await
}

/// How long FRR must go without an apply before a deferred verification is done (during a
/// burst the applier verifies at most once per `ApplyOptions::defer_direct_verification`).
const VERIFY_QUIET: Duration = Duration::from_millis(300);

/// After a failed apply (FRR rejected the batch, or its running configuration still differed
/// after the repair) the desired configuration is applied again after this long, doubling up
/// to [`RETRY_MAX`]: without a retry FRR would keep a wrong configuration until the next
/// change, however long that takes.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The warning logged when an apply failed (tests that must see none look for it).
pub const LOG_REJECTED: &str = "FRR rejected the configuration; the last good one stays in force";
/// The warning logged when a deferred verification's repair did not converge.
pub const LOG_STILL_DIFFERS: &str =
    "FRR's running configuration still differs from the applied one after a repair";

/// How often the compute loop looks again while a Secret namespace's first list is awaited
/// (its arrival wakes the loop too; this bounds the wait at [`secrets::SYNC_GRACE`]).
const SECRETS_RECHECK: Duration = Duration::from_millis(500);

/// How soon a failed write of the kept-versions record is retried.
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// Drop what the component never reads before an object enters a store: managedFields and
/// kubectl's last-applied copy can be larger than the object itself, and the store holds
/// every FRRConfiguration of the namespace (thousands on big clusters; those that do not
/// select this node only as stubs, see [`crate::stub`]).
pub fn slim<K: kube::Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Replace the value `tx` holds by `value`, waking its receivers only when it differs.
fn publish<T: PartialEq>(tx: &watch::Sender<Option<T>>, value: T) {
    tx.send_if_modified(|cur| {
        if cur.as_ref() == Some(&value) {
            return false;
        }
        *cur = Some(value);
        true
    });
}

/// A tick every `interval`, the first at once; a late tick does not bunch up the next.
fn poll_ticks(interval: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Now on tokio's clock (paused in tests), as the pure schedules' `std` instant.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Reads FRR's BGP and BFD session state every `poll_interval` for the metrics and the
/// BGPSessionState writer. Apart from the FRR worker: the reads (two vtysh calls, 50-100 ms
/// on a busy node) never hold a configuration change back, as they did while the worker
/// ran them (a change arriving during a poll waited for it: 67 and 110 ms of the 20
/// samples' "FRRConfiguration written -> apply started", whose median is 4 ms). On FRR 8.4
/// show commands and a configuration batch run at the same time (each vtysh has its own
/// connections to the daemons); on an FRR with mgmtd the driver runs a batch alone, since
/// FRR 10.3 drops lines of a batch that another vtysh runs beside (`Vtysh::exclusive`).
async fn poll_status<C>(
    control: C,
    sessions_tx: watch::Sender<Option<Vec<BgpNeighborStatus>>>,
    metrics: Arc<FrrMetrics>,
    poll_interval: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    C: FrrControl + Clone + Send + Sync + 'static,
{
    let mut tick = poll_ticks(poll_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        let c = control.clone();
        let (bgp, bfd) =
            tokio::task::spawn_blocking(move || (read_bgp_status(&c), read_bfd_status(&c)))
                .await
                .context("polling FRR panicked")?;
        match (bgp, bfd) {
            (Ok(bgp), bfd) => {
                let bfd: Vec<BfdPeerStatus> = bfd.unwrap_or_default();
                metrics.observe(&bgp, &bfd);
                publish(&sessions_tx, bgp);
            }
            (Err(e), _) => debug!(error = %e, "FRR status unavailable"),
        }
    }
}

/// The single owner of FRR's configuration: applies desired configurations (latest wins),
/// re-applies after an FRR restart (checked every `poll_interval` from the daemons' PID
/// files; only without them by reading the running config) and audits withdrawals.
async fn frr_worker<C>(
    control: C,
    options: ApplyOptions,
    mut desired_rx: watch::Receiver<Option<Desired>>,
    status_tx: watch::Sender<NodeStatus>,
    metrics: Arc<FrrMetrics>,
    poll_interval: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    C: FrrControl + Clone + Send + Sync + 'static,
{
    let audit_rounds = options.audit_rounds.clone();
    let mut applier = Some(Applier::with_options(control, options));
    let mut tick = poll_ticks(poll_interval);
    let mut applied_text: Option<Arc<String>> = None;
    let mut audits = Audits::default();
    // when a deferred verification is done: after VERIFY_QUIET without an apply
    let mut verify_at: Option<tokio::time::Instant> = None;
    // when a failed apply is tried again, and the wait after that one
    let mut retry = Retry::default();
    loop {
        let next_audit = audits.next_due();
        // the audit schedule is pure (std instants); the clock is tokio's
        let audit_at = tokio::time::Instant::from_std(
            next_audit.unwrap_or_else(|| now() + Duration::from_secs(3600)),
        );
        let mut to_apply: Option<Desired> = None;
        tokio::select! {
            changed = desired_rx.changed() => {
                if changed.is_err() {
                    // the compute loop ended: the component is stopping
                    break;
                }
                to_apply = desired_rx.borrow_and_update().clone();
            }
            _ = tokio::time::sleep_until(retry.at.unwrap_or_else(tokio::time::Instant::now)), if retry.at.is_some() => {
                retry.at = None;
                // what FRR holds is unknown after a failure: read it again, diff from there
                if let Some(a) = applier.as_mut() {
                    a.invalidate();
                }
                applied_text = None;
                to_apply = desired_rx.borrow().clone();
                if to_apply.is_some() {
                    info!("applying the desired FRR configuration again after a failure");
                }
            }
            _ = tokio::time::sleep_until(audit_at), if next_audit.is_some() => {
                let now = now();
                let due = audits.take_due(now);
                let since = due.withdrawn_at.map(|w| now.duration_since(w)).unwrap_or_default();
                let a = applier.take().context("the FRR applier was lost")?;
                let joined = tokio::task::spawn_blocking(move || {
                    // Nothing known about FRR's configuration: the next apply reads it first.
                    let Some(applied) = a.applied() else { return (a, Ok(Default::default())) };
                    let r = audit::find(a.control(), &due, since, applied);
                    (a, r)
                })
                .await;
                let (mut a, mut result) = joined.context("the withdrawal audit panicked")?;
                if let Ok(report) = &result {
                    let control = a.control().clone();
                    let repaired = audit::repair(report, |batch| {
                        let c = control.clone();
                        async move {
                            tokio::task::spawn_blocking(move || c.apply(&batch))
                                .await
                                .unwrap_or_else(|e| Err(ControlError::Io(format!("the repair panicked: {e}"))))
                        }
                    })
                    .await;
                    if let Err(e) = repaired {
                        result = Err(e);
                    }
                }
                if result.is_err() {
                    a.invalidate();
                }
                applier = Some(a);
                match result {
                    Ok(report) => {
                        for (s, prefixes) in &report.repaired {
                            metrics.stale_advertisement_repairs_total.inc();
                            warn!(peer = %s.peer, vrf = %s.vrf, prefixes = ?prefixes,
                                  "FRR still advertised withdrawn prefixes to this neighbor; originated and withdrew them again");
                        }
                        debug!(checked = report.checked, repaired = report.repaired.len(), "withdrawal audit done");
                        // last: a reader of the count sees the repairs' counts too
                        metrics.withdrawal_audits_total.inc();
                    }
                    Err(e) => debug!(error = %redact(&e.to_string()), "withdrawal audit could not read FRR"),
                }
            }
            _ = tokio::time::sleep_until(verify_at.unwrap_or_else(tokio::time::Instant::now)), if verify_at.is_some() => {
                verify_at = None;
                let mut a = applier.take().context("the FRR applier was lost")?;
                let joined = tokio::task::spawn_blocking(move || {
                    let r = a.verify_pending();
                    let running = a.take_running().map(|t| redact(&t));
                    (a, r, running)
                })
                .await;
                let (a, result, running) = joined.context("verifying FRR's configuration panicked")?;
                applier = Some(a);
                let reload_result = match result {
                    None => continue,
                    Some(Ok(report)) => {
                        info!(repaired = report.repaired, commands = report.commands,
                              verify_ms = report.verify_time.as_millis() as u64, "FRR configuration verified");
                        "success".to_string()
                    }
                    Some(Err(e)) => retry.failed(&metrics, &e, LOG_STILL_DIFFERS),
                };
                status_tx.send_if_modified(|s| s.set_reload(&reload_result, running));
            }
            _ = tick.tick() => {
                let mut a = applier.take().context("the FRR applier was lost")?;
                let joined = tokio::task::spawn_blocking(move || {
                    let restarted = a.reapply_if_restarted();
                    (a, restarted)
                })
                .await;
                let (a, restarted) = joined.context("checking for an FRR restart panicked")?;
                applier = Some(a);
                match restarted {
                    Ok(Some(report)) => info!(commands = report.commands, "FRR restarted; last good configuration re-applied"),
                    Ok(None) => {}
                    Err(e) => warn!(error = %redact(&e.to_string()), "FRR restart check failed"),
                }
            }
            _ = shutdown.cancelled() => break,
        }
        let Some(desired) = to_apply else { continue };
        if applied_text.as_ref() == Some(&desired.text) {
            continue;
        }
        let text = desired.text.clone();
        let mut a = applier.take().context("the FRR applier was lost")?;
        let joined = tokio::task::spawn_blocking(move || {
            let r = a.apply(&text);
            // the verification's read when there was one: no second vtysh call;
            // none when the verification was deferred (it reads when it is done)
            let running = match &r {
                Ok(report) if report.verify_deferred => None,
                _ => (a.take_running()).or_else(|| a.control().running_config().ok()),
            };
            (a, r, running.map(|t| redact(&t)))
        })
        .await;
        let (a, result, running) = joined.context("applying the configuration to FRR panicked")?;
        applier = Some(a);
        metrics.reloads_total.inc();
        let reload_result = match &result {
            Ok(report) => {
                metrics.reload_commands_total.inc_by(report.commands as u64);
                info!(
                    commands = report.commands,
                    direct = report.direct,
                    full = report.full_reapply,
                    repaired = report.repaired,
                    check_ms = report.check_time.as_millis() as u64,
                    apply_ms = report.apply_time.as_millis() as u64,
                    verify_ms = report.verify_time.as_millis() as u64,
                    "FRR configuration applied"
                );
                audits.schedule(now(), &audit_rounds, &report.withdrawn);
                verify_at =
                    (report.verify_deferred).then(|| tokio::time::Instant::now() + VERIFY_QUIET);
                applied_text = Some(desired.text.clone());
                metrics.k8s_client_config_stale_bool.set(0);
                retry = Retry::default();
                "success".to_string()
            }
            Err(e) => retry.failed(&metrics, e, LOG_REJECTED),
        };
        status_tx.send_if_modified(|s| s.set_reload(&reload_result, running));
    }
    Ok(())
}

/// When a failed apply is tried again: [`RETRY_FIRST`] after the first failure, the wait
/// doubling with each failure after it up to [`RETRY_MAX`]; a success starts over.
#[derive(Debug)]
struct Retry {
    at: Option<tokio::time::Instant>,
    wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            at: None,
            wait: RETRY_FIRST,
        }
    }
}

impl Retry {
    /// A failed apply or verification: counted, logged with `what` happened, tried again
    /// later. Returns the reload result the FRRNodeState shows.
    fn failed(&mut self, metrics: &FrrMetrics, e: &ApplyError, what: &str) -> String {
        metrics.reload_errors_total.inc();
        metrics.k8s_client_config_stale_bool.set(1);
        // The applier's errors carry FRR's output, which never echoes passwords verbatim;
        // redact anyway.
        let msg = redact(&e.to_string());
        warn!(error = %msg, retry_in_ms = self.wait.as_millis() as u64, "{what}");
        self.at = Some(tokio::time::Instant::now() + self.wait);
        self.wait = (self.wait * 2).min(RETRY_MAX);
        format!("failed: {msg}")
    }
}

#[cfg(test)]
mod tests;
