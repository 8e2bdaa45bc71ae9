//! The FRRConfiguration writer: `metallb-<node>` in the frr-k8s namespace, created once and
//! updated in place when the desired spec differs from the observed one (never deleted).
//! [`FrrWriter::plan`] decides from the index alone; `sync` does the one write and records
//! its response in the index (so the watch's echo of it is recognised), then the kept
//! versions are persisted.
//!
//! With the embedded frr-k8s component ([`Handoff`]), each new desired configuration is
//! handed to it in process first, the moment it is decided: the write is then for
//! visibility and for other readers, off the path to FRR, and while changes keep coming it
//! is made at most once per [`Handoff::interval`] (a lone change is still written at
//! once). A burst of 1,000 Services would otherwise rewrite a growing object back to back,
//! each version stored by etcd, for nothing FRR needs.

use frr_k8s::node::LocalConfig;
use tokio::time::Instant;

use super::*;

pub(super) enum WriteError {
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

pub(super) struct FrrWriter {
    pub(super) api: Api<FRRConfiguration>,
    pub(super) client: Client,
    pub(super) name: String,
    pub(super) target: FrrTarget,
    pub(super) shared: Shared,
    pub(super) metrics: Arc<SpeakerMetrics>,
    /// What `metallb_speaker_announced` shows, per Service.
    pub(super) exported: HashMap<ServiceKey, Vec<IpAddr>>,
    pub(super) node: Arc<str>,
    /// Where the kept versions are persisted, and what was last persisted.
    pub(super) memo: Option<Memo>,
    pub(super) kept_saved: Vec<KeptVersion>,
    pub(super) handoff: Option<Handoff>,
    /// When a write held back by [`Handoff::interval`] is due.
    pub(super) deferred: Option<Instant>,
}

/// The embedded frr-k8s component's in-process input.
pub(super) struct Handoff {
    pub(super) local: LocalConfig,
    /// Shortest time between two writes while changes keep coming.
    pub(super) interval: Duration,
    /// The desired generation handed over last (0: the withdrawn form).
    handed: Option<u64>,
    /// Hand-overs so far.
    count: i64,
    /// When the last write completed.
    last_write: Option<Instant>,
}

impl Handoff {
    pub(super) fn new(local: LocalConfig, interval: Duration) -> Self {
        Handoff {
            local,
            interval,
            handed: None,
            count: 0,
            last_write: None,
        }
    }

    /// Hand `desired` (of desired `generation`) over unless it was the last one handed.
    /// `obs` is the object in the cluster: the handed version carries its uid and
    /// creation time, so that frr-k8s's version engine sees a new version of the same
    /// object, and its generation plus the hand-overs so far, so that every handed version
    /// has a generation of its own, above every earlier one (both only grow).
    fn hand_over(
        &mut self,
        name: &str,
        obs: &ObjectMeta,
        desired: &FRRConfiguration,
        generation: u64,
        differs: bool,
    ) {
        // Until the first change, the object in the cluster is what frr-k8s reads.
        let due = match self.handed {
            None => differs,
            Some(g) => g != generation,
        };
        if !due {
            return;
        }
        self.count += 1;
        let metadata = ObjectMeta {
            name: Some(name.to_string()),
            namespace: obs.namespace.clone(),
            uid: obs.uid.clone(),
            creation_timestamp: obs.creation_timestamp.clone(),
            generation: Some(obs.generation.unwrap_or(0) + self.count),
            labels: desired.metadata.labels.clone(),
            ..ObjectMeta::default()
        };
        self.local.hand_over(FRRConfiguration {
            metadata,
            spec: desired.spec.clone(),
            status: None,
        });
        self.handed = Some(generation);
        debug!(generation, "desired FRRConfiguration handed to frr-k8s");
    }

    /// When the next write may be made, if not now.
    fn hold_until(&self, now: Instant) -> Option<Instant> {
        let t = self.last_write? + self.interval;
        (t > now).then_some(t)
    }
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
        let differs = frr.differs_from(&desired.spec, generation);
        // The object exists (its uid is known): frr-k8s takes the change from here.
        // Before that, the first write creates it and frr-k8s reads it from the watch.
        let handed = match (self.handoff.as_mut(), frr.obj.as_ref()) {
            (Some(h), Some(obs)) => {
                h.hand_over(&self.name, &obs.metadata, &desired, generation, differs);
                // after the hand-over: the component that waited for it computes from it
                h.local.decided();
                Some(h)
            }
            (Some(h), None) => {
                h.local.decided();
                None
            }
            (None, _) => None,
        };
        if !differs {
            return None;
        }
        // Withdrawing (the shutdown's last write) is never held back.
        if let Some(until) = handed
            .filter(|_| !withdraw)
            .and_then(|h| h.hold_until(Instant::now()))
        {
            self.deferred = Some(until);
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
    pub(super) async fn sync(&mut self, withdraw: bool) -> Result<(), WriteError> {
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
                if let Some(h) = self.handoff.as_mut() {
                    h.last_write = Some(Instant::now());
                }
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

    /// On a shutdown that leaves the announcements in place: the write that
    /// [`Handoff::interval`] may still hold back is made now, so that the object the next
    /// process's frr-k8s component starts from (and every other reader sees) is what FRR
    /// has. Without it a restart right after a burst applied the older object first: the
    /// newest announcements left and came back.
    async fn flush(&mut self, timeout: Duration) {
        if let Some(h) = self.handoff.as_mut() {
            h.last_write = None;
        }
        let attempt = async {
            for _ in 0..5 {
                match self.sync(false).await {
                    Err(WriteError::Retry) => continue,
                    other => return other,
                }
            }
            Err(WriteError::Retry)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "the last FRRConfiguration write before stopping failed")
            }
            Err(_) => warn!("the last FRRConfiguration write before stopping timed out"),
        }
    }

    /// The final write on shutdown.
    pub(super) async fn shutdown(&mut self, settings: &Settings) -> ShutdownOutcome {
        if !settings.withdraw_on_shutdown {
            self.flush(settings.shutdown_write_timeout).await;
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
            self.flush(settings.shutdown_write_timeout).await;
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
