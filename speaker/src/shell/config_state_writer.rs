//! The ConfigurationState writer: `speaker-<node>`, which reports the configuration issues
//! this node's speaker found (see [`crate::config_state`] for the steps).

use super::*;

/// Writes per pass at most: a create is followed by its status write, and a deletion noticed
/// meanwhile by one more create; anything beyond that is someone fighting us, and the next
/// pass (re-triggered at once) goes on after the other writers had their turn.
const CONFIG_STATE_STEPS: usize = 4;

/// Keeps `speaker-<node>` saying whether the configuration that applies to this node
/// compiled cleanly. Runs when the issues change or the object is edited or deleted by
/// someone else; writes only what differs (see [`config_state::next_step`]).
pub(super) async fn config_state_writer(
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
    let shared_target = target.shared();
    let params = WriteParams::new(FIELD_MANAGER);
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
            let step =
                config_state::next_step(st.config_state.own.get(), target, st.config_issues(), now);
            match step {
                Some(step) => step,
                None => {
                    st.config_state.dirty = false;
                    return Ok(true);
                }
            }
        };
        let result = metallb_runtime::config_state::execute(api, &shared_target, &step, &params);
        match result.await {
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
