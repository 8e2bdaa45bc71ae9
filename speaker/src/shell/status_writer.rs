//! The ServiceBGPStatus writer: one object per (Service, node), created, patched or deleted
//! from [`StatusOp`]s the index plans ([`index::StatusIndex::ops`]); bounded batches with
//! bounded concurrency so that the FRR writer never waits for status.

use super::*;

pub(super) async fn status_writer(
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
