//! The reconciler: watches feed one index ([`crate::watched`], on the runtime's watch kit);
//! one task owns the allocator and decides; writes go out in concurrent batches and only
//! when something differs.
//!
//! ```text
//!  watch Services ──┐                    ┌─ converge(svc) ─→ ServicePatch ─┐
//!  watch Pools ─────┼→ index + changes ──┤                                 ├→ PATCH / POST
//!  watch Namespaces ┘   (coalesced)      └─ pool stats, ConfigurationState ┘
//! ```
//!
//! Start-up: nothing is decided until all three watches have listed. Then every address a
//! Service already shows is loaded into the allocator (`assign`) *before* any Service is
//! allocated, so a restart never moves an IP (upstream issues #1774/#2443).
//!
//! Stale reads: after a write, the index shows the old object until the watch delivers the
//! new one. Each write remembers the resourceVersions it made stale; while the index still
//! shows one of them, what we wrote is taken as the observed state, so nothing is written
//! twice and decisions never flip back.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use metallb_api::metallb::status::{CONTROLLER_CONFIGURATION_STATE, LABEL_COMPONENT_TYPE};
use metallb_api::metallb::{ConfigurationState, ConfigurationStateStatus, IPAddressPool};
use metallb_runtime::admin::Gate;
use metallb_runtime::config_state;
use metallb_runtime::watch::{lock, Settle, WatchSet};
use metallb_runtime::write::{ApiErrorExt as _, Backoff, WriteParams};
use metallb_runtime::{Readiness, Tasks};
use serde_json::json;
use std::sync::Mutex;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::allocator::{Allocator, ServiceKey};
use crate::converge::{converge, Decision, Desired, Note};
use crate::events::{core_event, service_ref, EventLog};
use crate::metrics::Metrics;
use crate::pools::{build_pools, PoolConfig};
use crate::service::{has_foreign_ingress, ingress_ips, intake, key, pool_annotation, Intake};
use crate::slim::Service;
use crate::status::{
    configuration_state, desired_service_patch, pool_status, Observed, ServicePatch,
};
use crate::watched::{Changes, WatchCounters, Watched};
use crate::Error;
use metallb_api::metallb::effective::{KeptVersion, Resolver};
use metallb_runtime::memo::{Memo, MemoError};

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "metallb-controller";

/// The ConfigMap holding the pools whose current version is refused and the version kept
/// instead ([`KeptVersion`]), so that a restarted controller makes the same choice.
pub const KEPT_VERSIONS: &str = "metallb-controller-kept-versions";

/// Reconciler settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The MetalLB namespace (IPAddressPools, ConfigurationState).
    pub namespace: String,
    /// `--lb-class`: handle only Services of this class (none: only Services without one).
    pub lb_class: Option<String>,
    /// Quiet time that ends a burst of watch events (a change after at least this much
    /// calm is taken at once, see [`Settle`]).
    pub debounce: Duration,
    /// Longest a burst is collected before it is processed anyway.
    pub max_batch_delay: Duration,
    /// Writes in flight at once.
    pub write_concurrency: usize,
    /// Reporting instance in events (the pod name).
    pub instance: String,
    /// The controller's Pod: owner of its ConfigurationState, so that the garbage
    /// collector removes it with the pod (as upstream); `None`: no owner.
    pub owner: Option<OwnerReference>,
    /// Name of the ConfigMap that persists the kept versions across restarts (no owner:
    /// it must outlive the pod); `None`: not persisted (a restart then takes every pool
    /// without a record as in effect as it is).
    pub kept_versions: Option<String>,
    /// Shortest time between two status writes of one IPAddressPool while its counts keep
    /// changing (a lone change is written at once). The counts are informational, and a
    /// burst of Services changed them once per batch: 9,303 writes for 10,000 Services,
    /// each stored by etcd and sent to every watcher of the pools.
    pub pool_status_interval: Duration,
}

impl Settings {
    pub fn new(namespace: &str) -> Self {
        Settings {
            namespace: namespace.to_string(),
            lb_class: None,
            debounce: Duration::from_millis(20),
            max_batch_delay: Duration::from_millis(250),
            write_concurrency: 32,
            instance: FIELD_MANAGER.to_string(),
            owner: None,
            kept_versions: Some(KEPT_VERSIONS.to_string()),
            pool_status_interval: Duration::from_secs(1),
        }
    }
}

/// When a write last made at `last` may be made again, if not now: `interval` after it.
/// A first write, or one after a calm of `interval` or more, is made at once.
fn paced(last: Option<Instant>, now: Instant, interval: Duration) -> Option<Instant> {
    let due = last? + interval;
    (due > now).then_some(due)
}

/// Progress counters, published after every batch (tests and benchmarks wait on them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The initial resync has been processed and its writes have completed.
    pub synced: bool,
    pub batches: u64,
    /// Successful writes (patches, creates, events).
    pub writes: u64,
    pub write_errors: u64,
    /// Services seen in the last batch's store.
    pub services: usize,
    /// Services holding addresses.
    pub allocated: usize,
    /// Services waiting for an address.
    pub pending: usize,
    /// From `run` until every watch had listed.
    pub listed_after: Option<Duration>,
    /// Deciding the initial resync (allocator rebuild and convergence of every Service).
    pub initial_decide: Option<Duration>,
    /// Writing what the initial resync decided.
    pub initial_write: Option<Duration>,
}

/// The reconciler. Build it, take a progress receiver if you want one, then `run` it.
pub struct Controller {
    client: Client,
    settings: Settings,
    metrics: Metrics,
    progress: watch::Sender<Progress>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What a write left behind: the state we wrote and the resourceVersions that predate it.
#[derive(Clone, Debug)]
struct Written<T> {
    state: T,
    stale_rvs: Vec<String>,
}

enum Write {
    Service {
        key: ServiceKey,
        namespace: String,
        name: String,
        pre_rv: String,
        observed: Observed,
        written: Observed,
        patch: ServicePatch,
    },
    PoolStatus {
        name: String,
        pre_rv: String,
        status: metallb_api::metallb::IPAddressPoolStatus,
    },
    Event {
        regarding: ObjectReference,
        note: Note,
    },
    ConfigState {
        config: PoolConfig,
    },
    /// Persist the kept versions (before any other write of the batch).
    KeptVersions(Vec<KeptVersion>),
}

enum Outcome {
    Service {
        key: ServiceKey,
        result: Result<Written<Observed>, kube::Error>,
    },
    PoolStatus {
        name: String,
        result: Result<Written<metallb_api::metallb::IPAddressPoolStatus>, kube::Error>,
    },
    Event(Result<(), kube::Error>),
    ConfigState(Result<(ConfigurationStateStatus, bool), kube::Error>),
    KeptVersions(Result<Vec<KeptVersion>, MemoError>),
}

/// Everything the reconciler task owns.
struct State {
    settings: Settings,
    alloc: Allocator,
    config: Option<PoolConfig>,
    config_state: Option<ConfigurationStateStatus>,
    config_state_dirty: bool,
    /// Which version of each pool is in effect.
    resolver: Resolver,
    /// The record last persisted (or loaded at start).
    kept_saved: Vec<KeptVersion>,
    events: EventLog,
    pending: BTreeSet<ServiceKey>,
    svc_written: HashMap<ServiceKey, Written<Observed>>,
    pool_written: HashMap<String, Written<metallb_api::metallb::IPAddressPoolStatus>>,
    /// When each pool's status was last written (see `Settings::pool_status_interval`).
    pool_written_at: HashMap<String, Instant>,
    /// When a pool status write held back by the interval is due.
    pool_due: Option<Instant>,
    started: bool,
    dirty: BTreeSet<ServiceKey>,
    config_dirty: bool,
    reprocess_all: bool,
    retry_keys: BTreeSet<ServiceKey>,
    retry_pools: bool,
    retry_at: Option<Instant>,
    /// Failed writes are retried from 500 ms, doubling to a minute: a refused allocation
    /// write usually needs someone to fix something.
    backoff: Backoff,
    progress: Progress,
    exported_pools: Vec<String>,
}

// === impl Controller ===

impl Controller {
    pub fn new(client: Client, settings: Settings, metrics: Metrics) -> Self {
        let (progress, _) = watch::channel(Progress::default());
        Controller {
            client,
            settings,
            metrics,
            progress,
        }
    }

    /// Progress after every batch.
    pub fn progress_rx(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Run until `shutdown` is cancelled. `ready` is opened once the initial resync is done.
    pub async fn run(self, shutdown: CancellationToken, ready: Option<Gate>) -> Result<(), Error> {
        let Controller {
            client,
            settings,
            metrics,
            progress,
        } = self;
        let watched = Arc::new(Mutex::new(Watched::default()));
        let wake = Arc::new(Notify::new());
        // The watches are this task's inputs: one that ends or panics ends `run` with an
        // error naming it (the process exits and is restarted) instead of deciding from a
        // frozen index.
        let mut tasks = Tasks::new();
        // the watches end with `run`, however it ends (returned, or dropped by its caller)
        let watches_stop = shutdown.child_token();
        let _stop_watches = watches_stop.clone().drop_guard();
        let watches = WatchSet::new(
            watched.clone(),
            // the controller's own gate opens after the first batch, which needs every
            // watch listed: the watches' gates would add nothing
            Readiness::default(),
            Arc::new(WatchCounters(metrics.clone())),
            watches_stop,
        )
        .wake(wake.clone());
        let all = watcher::Config::default();
        watches.watch(
            &mut tasks,
            "services",
            Api::<Service>::all(client.clone()),
            all.clone(),
        );
        watches.watch(
            &mut tasks,
            "ipaddresspools",
            Api::<IPAddressPool>::namespaced(client.clone(), &settings.namespace),
            all.clone(),
        );
        watches.watch(
            &mut tasks,
            "namespaces",
            Api::<Namespace>::all(client.clone()),
            all,
        );
        let mut st = State::new(settings);
        let memo = st.settings.kept_versions.as_ref().map(|name| {
            Memo::new(
                Api::namespaced(client.clone(), &st.settings.namespace),
                name.clone(),
                None,
                [(LABEL_COMPONENT_TYPE.to_string(), "controller".to_string())].into(),
                FIELD_MANAGER,
            )
        });
        if let Some(m) = &memo {
            // Without the record a restart could take an invalid edit for the version in
            // effect: do not start deciding until it is read.
            let record: Vec<KeptVersion> = m.load_or_default().await;
            if !record.is_empty() {
                info!(
                    memo = %m.name(),
                    objects = record.len(),
                    "resuming with pools kept at their last valid version"
                );
            }
            st.resolver = Resolver::seeded(&record);
            st.kept_saved = record;
        }
        let io = Io {
            memo,
            client,
            metrics,
            namespace: st.settings.namespace.clone(),
            instance: st.settings.instance.clone(),
            owner: st.settings.owner.clone(),
            concurrency: st.settings.write_concurrency.max(1),
        };
        let started = Instant::now();
        let mut settle = Settle::new(st.settings.debounce, st.settings.max_batch_delay);
        loop {
            let retry = async {
                match st.retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let pool_due = async {
                match st.pool_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                err = tasks.failure() => return Err(Error::Task(format!("{err:#}"))),
                _ = wake.notified() => {}
                _ = retry => st.fire_retry(),
                // a batch with nothing dirty: it makes the pool status writes held back
                _ = pool_due => st.pool_due = None,
            }
            // Coalesce the rest of a burst (a quiet `debounce`, at most `max_batch_delay`
            // in all); a lone change after a calm is taken at once.
            settle.wait(&wake).await;
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let t0 = Instant::now();
            let writes = {
                let mut w = lock(&watched);
                if !w.listed() {
                    continue;
                }
                let changes = w.take_changes();
                st.absorb_changes(changes);
                st.batch(&w)
            };
            let t1 = Instant::now();
            let outcomes = io.execute(writes, &shutdown).await;
            st.absorb(outcomes, &io.metrics);
            st.export_metrics(&io.metrics);
            if !st.progress.synced {
                st.progress.synced = true;
                st.progress.listed_after = Some(t0 - started);
                st.progress.initial_decide = Some(t1 - t0);
                st.progress.initial_write = Some(t1.elapsed());
                info!(
                    services = st.progress.services,
                    allocated = st.progress.allocated,
                    pending = st.progress.pending,
                    writes = st.progress.writes,
                    listed_after = ?st.progress.listed_after,
                    decide = ?st.progress.initial_decide,
                    write = ?st.progress.initial_write,
                    "initial resync done"
                );
                if let Some(g) = &ready {
                    g.ready();
                }
            }
            settle.batch_done();
            st.progress.batches += 1;
            progress.send_replace(st.progress.clone());
        }
    }
}

// === impl State ===

impl State {
    fn new(settings: Settings) -> Self {
        State {
            settings,
            alloc: Allocator::default(),
            config: None,
            config_state: None,
            config_state_dirty: false,
            resolver: Resolver::new(),
            kept_saved: Vec::new(),
            events: EventLog::default(),
            pending: BTreeSet::new(),
            svc_written: HashMap::new(),
            pool_written: HashMap::new(),
            pool_written_at: HashMap::new(),
            pool_due: None,
            started: false,
            dirty: BTreeSet::new(),
            config_dirty: false,
            reprocess_all: false,
            retry_keys: BTreeSet::new(),
            retry_pools: false,
            retry_at: None,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(60)),
            progress: Progress::default(),
            exported_pools: Vec::new(),
        }
    }

    /// Take what the watches changed since the last batch.
    fn absorb_changes(&mut self, changes: Changes) {
        self.dirty.extend(changes.services);
        self.config_dirty |= changes.config;
        self.reprocess_all |= changes.all_services;
    }

    fn fire_retry(&mut self) {
        self.retry_at = None;
        self.dirty.append(&mut self.retry_keys);
        if std::mem::take(&mut self.retry_pools) {
            self.config_dirty = true;
        }
    }

    /// Decide everything that is dirty; return the writes.
    fn batch(&mut self, watched: &Watched) -> Vec<Write> {
        let mut writes = Vec::new();
        if !self.started {
            self.started = true;
            self.reprocess_all = true;
            self.config_dirty = true;
            self.config_state_dirty = true;
        }
        if std::mem::take(&mut self.config_dirty) {
            self.apply_config(watched);
        }
        let kept = self.resolver.record();
        if kept != self.kept_saved {
            writes.push(Write::KeptVersions(kept));
        }
        if std::mem::take(&mut self.config_state_dirty) {
            if let Some(cfg) = &self.config {
                writes.push(Write::ConfigState {
                    config: cfg.clone(),
                });
            }
        }
        if std::mem::take(&mut self.reprocess_all) {
            self.dirty.clear();
            let mut all: Vec<(ServiceKey, Arc<Service>)> = (watched.services.iter())
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            // Forget services that disappeared while we were not watching.
            let present: HashSet<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
            let gone: Vec<ServiceKey> = self
                .alloc
                .assignments()
                .into_keys()
                .filter(|k| !present.contains(k.as_str()))
                .collect();
            for k in gone {
                self.forget(&k);
            }
            self.pending.retain(|k| present.contains(k.as_str()));
            // Phase 1: every address a Service already shows is claimed before anything is
            // allocated.
            for (_, svc) in &all {
                if let Intake::Request(req) = intake(svc, self.settings.lb_class.as_deref()) {
                    let current = self.observed(svc).ingress;
                    let ips: Option<Vec<std::net::IpAddr>> =
                        current.iter().map(|s| s.parse().ok()).collect();
                    if let Some(ips) = ips.filter(|v| !v.is_empty()) {
                        let _ = self.alloc.assign(&req, &ips);
                    }
                }
            }
            // Phase 2: converge everything in name order.
            for (k, svc) in &all {
                self.process(k, svc, &mut writes);
            }
        } else {
            let mut freed = false;
            let dirty = std::mem::take(&mut self.dirty);
            for k in &dirty {
                match watched.service(k) {
                    Some(svc) => freed |= self.process(k, &svc, &mut writes),
                    None => freed |= self.forget(k),
                }
            }
            if freed {
                let pending: Vec<ServiceKey> = self.pending.iter().cloned().collect();
                for k in pending {
                    if let Some(svc) = watched.service(&k) {
                        self.process(&k, &svc, &mut writes);
                    }
                }
            }
        }
        self.pool_writes(watched, &mut writes);
        self.progress.services = watched.services.len();
        self.progress.allocated = self.alloc.len();
        self.progress.pending = self.pending.len();
        writes
    }

    /// Rebuild pools from the index; on change, hand them to the allocator and reprocess
    /// every Service.
    fn apply_config(&mut self, watched: &Watched) {
        let objects: Vec<IPAddressPool> = watched.pools.values().cloned().collect();
        let cfg = build_pools(
            &objects,
            &watched.namespaces,
            &mut self.resolver,
            k8s_openapi::jiff::Timestamp::now(),
        );
        if self.config.as_ref() == Some(&cfg) {
            return;
        }
        let errors_changed = self.config.as_ref().map(|c| &c.problems) != Some(&cfg.problems);
        if errors_changed {
            for p in &cfg.problems {
                warn!(problem = %p, "IPAddressPool not in effect as it is");
            }
        }
        let pools_changed = self.config.as_ref().map(|c| &c.pools) != Some(&cfg.pools);
        if pools_changed {
            let evicted = self.alloc.set_pools(cfg.pools.clone());
            info!(
                pools = cfg.pools.len(),
                evicted = evicted.len(),
                "pool configuration changed"
            );
            self.reprocess_all = true;
        }
        if errors_changed {
            self.config_state_dirty = true;
        }
        self.config = Some(cfg);
    }

    /// What the Service shows, or what we last wrote while the watch has not caught up.
    fn observed(&self, svc: &Service) -> Observed {
        let k = key(svc);
        if let Some(w) = self.svc_written.get(&k) {
            if svc
                .resource_version()
                .is_some_and(|rv| w.stale_rvs.contains(&rv))
            {
                return w.state.clone();
            }
        }
        Observed {
            ingress: ingress_ips(svc),
            foreign: has_foreign_ingress(svc),
            pool: pool_annotation(svc).map(String::from),
            legacy_pool: svc
                .annotations()
                .contains_key(metallb_api::metallb::annotations::LEGACY_IP_ALLOCATED_FROM_POOL),
        }
    }

    /// Converge one Service; returns whether addresses were freed.
    fn process(&mut self, k: &str, svc: &Service, writes: &mut Vec<Write>) -> bool {
        let span = info_span!("service", service = %k);
        let _g = span.enter();
        // Drop the stale-read guard once the watch has caught up.
        if let Some(w) = self.svc_written.get(k) {
            if !svc
                .resource_version()
                .is_some_and(|rv| w.stale_rvs.contains(&rv))
            {
                self.svc_written.remove(k);
            }
        }
        let observed = self.observed(svc);
        let before = self.alloc.assignment(k).map(|a| a.ips.clone());
        let decision = converge(
            &mut self.alloc,
            svc,
            self.settings.lb_class.as_deref(),
            &observed.ingress,
        );
        let after = self.alloc.assignment(k).map(|a| a.ips.clone());
        let freed =
            before.is_some_and(|b| after.is_none_or(|a| b.iter().any(|ip| !a.contains(ip))));
        let (desired, notes, pending) = match decision {
            Decision::Ignore => {
                self.pending.remove(k);
                self.events.forget(k);
                return freed;
            }
            Decision::Converge {
                desired,
                notes,
                pending,
            } => (desired, notes, pending),
        };
        if pending {
            self.pending.insert(k.to_string());
        } else {
            self.pending.remove(k);
        }
        let mut notes = self.events.filter(k, notes);
        if let Some(patch) = desired_service_patch(&observed, &desired) {
            debug!(?desired, ?observed, "service needs an update");
            if patch.ingress.as_ref().is_some_and(|i| !i.is_empty()) {
                notes.push(Note::allocated(&desired.ips));
            }
            writes.push(Write::Service {
                key: k.to_string(),
                namespace: svc.namespace().unwrap_or_default(),
                name: svc.name_any(),
                pre_rv: svc.resource_version().unwrap_or_default(),
                written: written_state(&desired),
                observed,
                patch,
            });
        }
        let regarding = service_ref(svc);
        for note in notes {
            writes.push(Write::Event {
                regarding: regarding.clone(),
                note,
            });
        }
        freed
    }

    /// A Service is gone: release what it held.
    fn forget(&mut self, k: &str) -> bool {
        self.pending.remove(k);
        self.events.forget(k);
        self.svc_written.remove(k);
        self.alloc.unassign(k).is_some()
    }

    /// Pool status writes, for every valid pool whose counts differ from what it shows.
    fn pool_writes(&mut self, watched: &Watched, writes: &mut Vec<Write>) {
        let Some(cfg) = &self.config else { return };
        for pool in &cfg.pools {
            let Some(stats) = self.alloc.pool_stats(&pool.name) else {
                continue;
            };
            let want = pool_status(stats);
            let Some(obj) = watched.pools.get(&pool.name) else {
                continue;
            };
            let rv = obj.resource_version().unwrap_or_default();
            let shown = match self.pool_written.get(&pool.name) {
                Some(w) if w.stale_rvs.contains(&rv) => Some(w.state.clone()),
                _ => {
                    self.pool_written.remove(&pool.name);
                    obj.status.clone()
                }
            };
            if shown.as_ref() != Some(&want) {
                let now = Instant::now();
                let last = self.pool_written_at.get(&pool.name).copied();
                if let Some(due) = paced(last, now, self.settings.pool_status_interval) {
                    self.pool_due = Some(self.pool_due.map_or(due, |d| d.min(due)));
                    continue;
                }
                self.pool_written_at.insert(pool.name.clone(), now);
                writes.push(Write::PoolStatus {
                    name: pool.name.clone(),
                    pre_rv: rv,
                    status: want,
                });
            }
        }
    }

    fn absorb(&mut self, outcomes: Vec<Outcome>, metrics: &Metrics) {
        let mut failed = false;
        for o in outcomes {
            let ok = match o {
                Outcome::Service { key, result } => match result {
                    Ok(w) => {
                        self.svc_written.insert(key, w);
                        true
                    }
                    Err(e) => {
                        warn!(service = %key, error = %e, "updating Service failed; will retry");
                        self.svc_written.remove(&key);
                        self.retry_keys.insert(key);
                        false
                    }
                },
                Outcome::PoolStatus { name, result } => match result {
                    Ok(w) => {
                        self.pool_written.insert(name, w);
                        true
                    }
                    Err(e) => {
                        warn!(pool = %name, error = %e, "updating IPAddressPool status failed; will retry");
                        self.retry_pools = true;
                        false
                    }
                },
                Outcome::Event(r) => match r {
                    Ok(()) => true,
                    Err(e) => {
                        warn!(error = %e, "creating event failed");
                        false
                    }
                },
                Outcome::KeptVersions(r) => match r {
                    Ok(record) => {
                        self.kept_saved = record;
                        true
                    }
                    Err(e) => {
                        warn!(error = %e, "persisting the kept pool versions failed; will retry");
                        self.retry_pools = true;
                        false
                    }
                },
                Outcome::ConfigState(r) => match r {
                    Ok((s, wrote)) => {
                        self.config_state = Some(s);
                        if !wrote {
                            continue;
                        }
                        true
                    }
                    Err(e) => {
                        warn!(error = %e, "writing ConfigurationState failed; will retry");
                        self.config_state_dirty = true;
                        self.retry_pools = true;
                        false
                    }
                },
            };
            if ok {
                self.progress.writes += 1;
            } else {
                failed = true;
                self.progress.write_errors += 1;
                metrics.update_errors.inc();
            }
        }
        if failed {
            self.retry_at = Some(Instant::now() + self.backoff.failed());
        } else if self.retry_keys.is_empty() {
            self.backoff.reset();
        }
    }

    fn export_metrics(&mut self, metrics: &Metrics) {
        let Some(cfg) = &self.config else { return };
        metrics.config_loaded.set(1);
        metrics
            .config_stale
            .set(i64::from(!cfg.problems.is_empty()));
        let mut per_pool: HashMap<String, usize> = HashMap::new();
        for a in self.alloc.assignments().values() {
            *per_pool.entry(a.pool.clone()).or_default() += 1;
        }
        for pool in &cfg.pools {
            if let Some(stats) = self.alloc.pool_stats(&pool.name) {
                metrics.set_pool(pool, stats, per_pool.get(&pool.name).copied().unwrap_or(0));
            }
        }
        // Series of pools that went away.
        for name in &self.exported_pools {
            if !cfg.pools.iter().any(|p| &p.name == name) {
                metrics.remove_pool(name);
            }
        }
        self.exported_pools = cfg.pools.iter().map(|p| p.name.clone()).collect();
    }
}

fn written_state(desired: &Desired) -> Observed {
    Observed {
        ingress: desired.ips.iter().map(ToString::to_string).collect(),
        foreign: false,
        pool: desired.pool.clone(),
        legacy_pool: false,
    }
}

// === impl Io ===

/// The thin I/O side: executes writes.
struct Io {
    client: Client,
    metrics: Metrics,
    namespace: String,
    instance: String,
    /// See [`Settings::owner`].
    owner: Option<OwnerReference>,
    concurrency: usize,
    /// Where the kept versions are persisted (see [`Settings::kept_versions`]).
    memo: Option<Memo>,
}

impl Io {
    async fn execute(&self, writes: Vec<Write>, shutdown: &CancellationToken) -> Vec<Outcome> {
        if writes.is_empty() {
            return Vec::new();
        }
        debug!(writes = writes.len(), "writing");
        // The record first: once a decision shows in a Service or a route, a restart must
        // find the record that explains it.
        let (first, writes): (Vec<Write>, Vec<Write>) = writes
            .into_iter()
            .partition(|w| matches!(w, Write::KeptVersions(_)));
        let mut done = Vec::new();
        for w in first {
            done.push(self.write(w).await);
        }
        let run = stream::iter(writes)
            .map(|w| self.write(w))
            .buffer_unordered(self.concurrency)
            .collect::<Vec<_>>();
        tokio::select! {
            out = run => done.into_iter().chain(out).collect(),
            // Abandon in-flight writes on shutdown; the next controller recomputes them.
            _ = shutdown.cancelled() => Vec::new(),
        }
    }

    async fn write(&self, w: Write) -> Outcome {
        match w {
            Write::Service {
                key,
                namespace,
                name,
                pre_rv,
                observed,
                written,
                patch,
            } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), &namespace);
                let span = info_span!("service", service = %key);
                let result = async {
                    let pp = PatchParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..Default::default()
                    };
                    let mut stale_rvs = vec![pre_rv];
                    let meta = patch.metadata_patch(&observed);
                    let status = patch.status_patch();
                    // Adding: annotation first, then the address. Clearing: address first.
                    let clearing = patch.ingress.as_ref().is_some_and(Vec::is_empty);
                    let mut steps: Vec<(bool, serde_json::Value)> = Vec::new();
                    if clearing {
                        steps.extend(status.map(|s| (true, s)));
                        steps.extend(meta.map(|m| (false, m)));
                    } else {
                        steps.extend(meta.map(|m| (false, m)));
                        steps.extend(status.map(|s| (true, s)));
                    }
                    let n = steps.len();
                    for (i, (is_status, body)) in steps.into_iter().enumerate() {
                        let obj = if is_status {
                            api.patch_status(&name, &pp, &Patch::Merge(&body)).await?
                        } else {
                            api.patch(&name, &pp, &Patch::Merge(&body)).await?
                        };
                        if i + 1 < n {
                            stale_rvs.extend(obj.resource_version());
                        }
                    }
                    info!(ingress = ?written.ingress, pool = ?written.pool, "service updated");
                    Ok(Written {
                        state: written,
                        stale_rvs,
                    })
                }
                .instrument(span)
                .await;
                Outcome::Service { key, result }
            }
            Write::PoolStatus {
                name,
                pre_rv,
                status,
            } => {
                let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), &self.namespace);
                let body = json!({ "status": status });
                let pp = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                let result = api
                    .patch_status(&name, &pp, &Patch::Merge(&body))
                    .await
                    .map(|_| Written {
                        state: status,
                        stale_rvs: vec![pre_rv],
                    });
                Outcome::PoolStatus { name, result }
            }
            Write::Event { regarding, note } => {
                let ns = regarding.namespace.clone().unwrap_or_default();
                let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), &ns);
                let ev = core_event(
                    &regarding,
                    &note,
                    &self.instance,
                    k8s_openapi::jiff::Timestamp::now(),
                );
                let result = api.create(&PostParams::default(), &ev).await.map(|_| ());
                Outcome::Event(result)
            }
            Write::ConfigState { config } => {
                Outcome::ConfigState(self.write_config_state(&config).await)
            }
            Write::KeptVersions(record) => Outcome::KeptVersions(match &self.memo {
                Some(m) => m.save(&record).await.map(|()| record),
                None => Ok(record),
            }),
        }
    }

    /// Bring the `controller` ConfigurationState to what `config` says (created when
    /// missing, given our pod as owner when it lacks it: a restarted controller takes over
    /// the object the previous pod owned); returns the status and whether anything was
    /// written.
    async fn write_config_state(
        &self,
        config: &PoolConfig,
    ) -> Result<(ConfigurationStateStatus, bool), kube::Error> {
        let api: Api<ConfigurationState> = Api::namespaced(self.client.clone(), &self.namespace);
        let target = config_state::Target {
            name: CONTROLLER_CONFIGURATION_STATE.to_string(),
            namespace: self.namespace.clone(),
            labels: [(LABEL_COMPONENT_TYPE.to_string(), "controller".to_string())].into(),
            owner: self.owner.clone(),
        };
        let params = WriteParams::new(FIELD_MANAGER);
        let now = k8s_openapi::jiff::Timestamp::now();
        let mut observed = api.get_opt(CONTROLLER_CONFIGURATION_STATE).await?;
        let mut wrote = false;
        // create, owner and labels, status: three writes at most, and one more after a
        // re-read when someone created or deleted the object meanwhile
        for _ in 0..4 {
            let want = |previous: Option<&ConfigurationStateStatus>| {
                configuration_state(config, previous, now)
            };
            let Some(step) = config_state::next_step(observed.as_ref(), &target, want) else {
                break;
            };
            match config_state::execute(&api, &target, &step, &params).await {
                Ok(obj) => {
                    wrote = true;
                    if let config_state::Step::Status(s) = &step {
                        if crate::status::is_invalid(s) {
                            warn!(summary = ?s.error_summary, "pool configuration is invalid");
                        }
                    }
                    observed = Some(obj);
                }
                Err(e) if e.is_already_exists() || e.is_not_found() => {
                    observed = api.get_opt(CONTROLLER_CONFIGURATION_STATE).await?;
                }
                Err(e) => return Err(e),
            }
        }
        let status = observed.and_then(|o| o.status);
        Ok((
            status.unwrap_or_else(|| configuration_state(config, None, now)),
            wrote,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_status_write_is_paced_only_within_the_interval_of_the_last() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        // the first write, and one after a calm: at once
        assert_eq!(paced(None, now, second), None);
        assert_eq!(paced(Some(now - second), now, second), None);
        // within the interval: when it ends
        let last = now - Duration::from_millis(300);
        assert_eq!(paced(Some(last), now, second), Some(last + second));
        // no interval: never held back
        assert_eq!(paced(Some(now), now, Duration::ZERO), None);
    }
}
