//! The status writer, one per kind: ServiceBGPStatus (one object per (Service, node)) and
//! ServiceL2Status (one per Service, by the elected node). Objects are created, patched or
//! deleted from [`StatusOp`]s the index plans ([`index::StatusIndex::ops`]); bounded
//! batches with bounded concurrency so that the FRR writer never waits for status.

use prometheus_client::metrics::counter::Counter;

use super::index::StatusIndex;
use super::*;
use crate::status::{StatusIntent, StatusKind};

/// Where a kind's state lives in the shell's index.
pub(super) trait StatusSide: StatusKind {
    fn index(st: &mut Inputs) -> &mut StatusIndex<Self>;
    fn dirty(st: &mut Inputs) -> &mut DirtySet;
    /// The object this node wants for `key`.
    fn intent(st: &Inputs, key: &ServiceKey) -> Option<StatusIntent>;
    /// Every Service with an intent or an object.
    fn universe(st: &Inputs) -> BTreeSet<ServiceKey>;
    fn writes(m: &SpeakerMetrics) -> &Counter;
    /// The node that wants a Service's object deletes other nodes' objects for it (one
    /// object per Service, watched across nodes).
    const CLEANS_OTHERS: bool;
}

impl StatusSide for ServiceBGPStatus {
    fn index(st: &mut Inputs) -> &mut StatusIndex<Self> {
        &mut st.status
    }
    fn dirty(st: &mut Inputs) -> &mut DirtySet {
        &mut st.status_dirty
    }
    fn intent(st: &Inputs, key: &ServiceKey) -> Option<StatusIntent> {
        st.status_intent(key)
    }
    fn universe(st: &Inputs) -> BTreeSet<ServiceKey> {
        st.status_universe()
    }
    fn writes(m: &SpeakerMetrics) -> &Counter {
        &m.bgp_status_writes_total
    }
    // one object per (Service, node): each node only manages its own
    const CLEANS_OTHERS: bool = false;
}

impl StatusSide for ServiceL2Status {
    fn index(st: &mut Inputs) -> &mut StatusIndex<Self> {
        &mut st.l2_status
    }
    fn dirty(st: &mut Inputs) -> &mut DirtySet {
        &mut st.l2_status_dirty
    }
    fn intent(st: &Inputs, key: &ServiceKey) -> Option<StatusIntent> {
        st.l2_status_intent(key)
    }
    fn universe(st: &Inputs) -> BTreeSet<ServiceKey> {
        st.l2_status_universe()
    }
    fn writes(m: &SpeakerMetrics) -> &Counter {
        &m.l2_status_writes_total
    }
    const CLEANS_OTHERS: bool = true;
}

pub(super) async fn status_writer<K: StatusSide>(
    api: Api<K>,
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
            if K::dirty(&mut st).wants_all() {
                let universe = K::universe(&st);
                K::dirty(&mut st).expand(universe);
            }
            let own = st.node_name().to_string();
            let mut ops = Vec::new();
            while ops.is_empty() && !K::dirty(&mut st).is_empty() {
                let keys = K::dirty(&mut st).take_some(STATUS_BATCH);
                ops = keys
                    .iter()
                    .flat_map(|k| {
                        let intent = K::intent(&st, k);
                        K::index(&mut st).ops(k, intent.as_ref(), &own, K::CLEANS_OTHERS)
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
                    warn!(service = %key, error = %e, kind = K::KIND, "status write failed");
                    K::dirty(&mut st).mark(key);
                }
            }
        }
        if failed {
            // Wait here, not only for a timer: the watch events of the objects involved
            // (ours, or another node's during a split brain, when two elected nodes
            // delete each other's) would otherwise wake this loop at once, and the retry
            // would become a create/delete storm.
            let wait = backoff.failed();
            tokio::select! {
                _ = tokio::time::sleep(wait) => trigger.notify_one(),
                _ = shutdown.cancelled() => return,
            }
        } else {
            backoff.reset();
            // more dirty keys than one batch: go on
            trigger.notify_one();
        }
    }
}

fn api_namespace<K: StatusKind>(api: &Api<K>) -> String {
    api.namespace().unwrap_or_default().to_string()
}

async fn apply_status_op<K: StatusSide>(
    api: &Api<K>,
    ns: &str,
    owner: Option<OwnerReference>,
    shared: &Shared,
    metrics: &SpeakerMetrics,
    op: &StatusOp,
) -> Result<(), kube::Error> {
    let (pp, patch_params) = write_params();
    match op {
        StatusOp::Create(intent) => {
            let mut obj: K = intent.to_object(ns);
            obj.meta_mut().owner_references = owner.map(|o| vec![o]);
            let mut created = api.create(&pp, &obj).await?;
            strip(&mut created);
            K::writes(metrics).inc();
            let name = created.name_any();
            K::index(&mut lock(shared)).record_written(&created);
            let mut patched = api
                .patch_status(&name, &patch_params, &Patch::Merge(K::status_patch(intent)))
                .await?;
            strip(&mut patched);
            K::writes(metrics).inc();
            K::index(&mut lock(shared)).record_written(&patched);
            debug!(service = %intent.service, name, kind = K::KIND, "status object created");
        }
        StatusOp::Patch { name, intent } => {
            let patch = K::status_patch(intent);
            match api
                .patch_status(name, &patch_params, &Patch::Merge(patch))
                .await
            {
                Ok(mut patched) => {
                    strip(&mut patched);
                    K::writes(metrics).inc();
                    K::index(&mut lock(shared)).record_written(&patched);
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {
                    let mut st = lock(shared);
                    K::index(&mut st).record_deleted(name);
                    K::dirty(&mut st).mark(&intent.service);
                }
                Err(e) => return Err(e),
            }
        }
        StatusOp::Delete { name, .. } => {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    K::writes(metrics).inc();
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e),
            }
            K::index(&mut lock(shared)).record_deleted(name);
        }
    }
    Ok(())
}
