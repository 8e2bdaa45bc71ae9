//! Supervised tasks: every long-lived task of a binary (watches, writers, servers) is owned
//! by one [`Tasks`] set that the binary watches.
//!
//! A task that ends before the binary asked it to stop is a failure, whatever it returned:
//! a watch or a writer that quietly ends leaves an index nobody updates, or decisions
//! nobody writes, behind a `/readyz` that still says ready. The set closes its readiness
//! gate at the first such end and hands the cause to the binary, which logs it and exits
//! non-zero so that the DaemonSet or Deployment restarts it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::admin::Gate;

type Outcome = Result<anyhow::Result<()>, JoinError>;

/// A running task and its name.
struct Named {
    name: String,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Future for Named {
    type Output = (String, Outcome);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|r| (std::mem::take(&mut self.name), r))
    }
}

/// Long-lived tasks by name.
pub struct Tasks {
    running: FuturesUnordered<Named>,
    /// Tasks started through a [`Spawner`] (by a component that starts watches on demand).
    adopted: mpsc::UnboundedReceiver<Named>,
    spawner: Spawner,
    gate: Option<Gate>,
}

/// Starts tasks owned by a [`Tasks`] set from anywhere (cheap to clone).
#[derive(Clone)]
pub struct Spawner(mpsc::UnboundedSender<Named>);

impl Spawner {
    /// Run `task` under `name`, owned by the set this spawner came from. If that set is
    /// gone (the binary is stopping), the task runs detached until it ends.
    pub fn spawn<F>(&self, name: impl Into<String>, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let named = Named {
            name: name.into(),
            handle: tokio::spawn(task),
        };
        let _ = self.0.send(named);
    }
}

/// Where a long-lived task is started: a [`Tasks`] set, or a [`Spawner`] of one (for
/// tasks started on demand, away from the set).
pub trait Supervisor {
    /// Run `task` under `name`, owned by the set.
    fn start<F>(&mut self, name: String, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static;
}

impl Supervisor for Tasks {
    fn start<F>(&mut self, name: String, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.spawn(name, task);
    }
}

impl Supervisor for Spawner {
    fn start<F>(&mut self, name: String, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.spawn(name, task);
    }
}

impl Default for Tasks {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Tasks {
            running: FuturesUnordered::new(),
            adopted: rx,
            spawner: Spawner(tx),
            gate: None,
        }
    }
}

impl Tasks {
    pub fn new() -> Self {
        Tasks::default()
    }

    /// Tie the set to a readiness gate: open now, closed when a task ends unasked.
    pub fn with_gate(mut self, gate: Gate) -> Self {
        gate.ready();
        self.gate = Some(gate);
        self
    }

    /// Run `task` under `name` (what a failure report says).
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.running.push(Named {
            name: name.into(),
            handle: tokio::spawn(task),
        });
    }

    /// A handle that adds tasks to this set from elsewhere.
    pub fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    fn adopt(&mut self) {
        while let Ok(named) = self.adopted.try_recv() {
            self.running.push(named);
        }
    }

    /// Number of tasks still running.
    pub fn len(&mut self) -> usize {
        self.adopt();
        self.running.len()
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Wait for the first task to end and describe it. Every end counts: call this while
    /// the tasks are expected to run. Pending while no task ends. Cancel-safe (it can sit
    /// in a `select!` next to the binary's own loop).
    pub async fn failure(&mut self) -> anyhow::Error {
        loop {
            self.adopt();
            tokio::select! {
                Some(named) = self.adopted.recv() => self.running.push(named),
                Some((name, outcome)) = self.running.next(), if !self.running.is_empty() => {
                    if let Some(g) = &self.gate {
                        g.unready();
                    }
                    return describe(&name, outcome);
                }
            }
        }
    }

    /// Until `stop` is cancelled, [`Tasks::failure`]; then wait for every task to end
    /// (see [`Tasks::shutdown`]).
    pub async fn supervise(&mut self, stop: &CancellationToken) -> anyhow::Result<()> {
        tokio::select! {
            err = self.failure() => Err(err),
            _ = stop.cancelled() => self.shutdown(Duration::from_secs(10)).await,
        }
    }

    /// The tasks were asked to stop: wait up to `grace` for them to end, then abort the
    /// rest. The first task that failed (an error or a panic, not a plain end) is the
    /// result.
    pub async fn shutdown(&mut self, grace: Duration) -> anyhow::Result<()> {
        self.adopt();
        let mut first = None;
        let drained = tokio::time::timeout(grace, async {
            while let Some((name, outcome)) = self.running.next().await {
                if !matches!(outcome, Ok(Ok(()))) {
                    let err = describe(&name, outcome);
                    warn!(error = %format!("{err:#}"), "task failed while stopping");
                    first.get_or_insert(err);
                }
            }
        })
        .await;
        if drained.is_err() {
            let left: Vec<&str> = self.running.iter().map(|n| n.name.as_str()).collect();
            warn!(tasks = ?left, "tasks still running after the grace period; aborting them");
            for n in self.running.iter() {
                n.handle.abort();
            }
            while self.running.next().await.is_some() {}
        }
        first.map_or(Ok(()), Err)
    }
}

fn describe(name: &str, outcome: Outcome) -> anyhow::Error {
    match outcome {
        Ok(Ok(())) => anyhow::anyhow!("task `{name}` ended"),
        Ok(Err(e)) => e.context(format!("task `{name}` failed")),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            anyhow::anyhow!("task `{name}` panicked: {msg}")
        }
        Err(_) => anyhow::anyhow!("task `{name}` was cancelled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Readiness;

    #[tokio::test]
    async fn a_panicking_task_is_named_and_closes_the_gate() {
        let readiness = Readiness::default();
        let mut tasks = Tasks::new().with_gate(readiness.gate("tasks"));
        assert!(readiness.is_ready());
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("watch things", async {
            tokio::task::yield_now().await;
            panic!("index corrupted");
        });
        let err = tasks.failure().await.to_string();
        assert_eq!(err, "task `watch things` panicked: index corrupted");
        assert_eq!(readiness.pending(), ["tasks"]);
        assert_eq!(tasks.len(), 1);
    }

    #[tokio::test]
    async fn an_error_keeps_its_cause_and_a_plain_end_is_a_failure_too() {
        let mut tasks = Tasks::new();
        tasks.spawn("writer", async { Err(anyhow::anyhow!("forbidden")) });
        let err = tasks.failure().await;
        assert_eq!(format!("{err:#}"), "task `writer` failed: forbidden");
        tasks.spawn("quiet", async { Ok(()) });
        assert_eq!(tasks.failure().await.to_string(), "task `quiet` ended");
    }

    #[tokio::test]
    async fn stop_waits_for_every_task_and_reports_a_failed_one() {
        let stop = CancellationToken::new();
        let mut tasks = Tasks::new();
        for name in ["a", "b"] {
            let s = stop.clone();
            tasks.spawn(name, async move {
                s.cancelled().await;
                Ok(())
            });
        }
        stop.cancel();
        tasks.supervise(&stop).await.expect("clean stop");
        assert!(tasks.is_empty());

        let stop = CancellationToken::new();
        let s = stop.clone();
        tasks.spawn("flush", async move {
            s.cancelled().await;
            anyhow::bail!("final write refused")
        });
        stop.cancel();
        let err = tasks.supervise(&stop).await.unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "task `flush` failed: final write refused"
        );
    }

    #[tokio::test]
    async fn tasks_started_through_a_spawner_are_supervised_too() {
        let mut tasks = Tasks::new();
        tasks.spawn("forever", std::future::pending());
        let spawner = tasks.spawner();
        let waiter = tokio::spawn(async move {
            let err = tasks.failure().await;
            (format!("{err:#}"), tasks.len())
        });
        // started while the set is already waiting
        tokio::task::yield_now().await;
        spawner.spawn("watch secrets in ns2", async {
            anyhow::bail!("stream ended")
        });
        let (err, left) = waiter.await.unwrap();
        assert_eq!(err, "task `watch secrets in ns2` failed: stream ended");
        assert_eq!(left, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_stop_is_aborted_after_the_grace() {
        let mut tasks = Tasks::new();
        tasks.spawn("stuck", std::future::pending());
        tasks
            .shutdown(Duration::from_secs(5))
            .await
            .expect("an aborted task is not a failure");
        assert!(tasks.is_empty());
    }
}
