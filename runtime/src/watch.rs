//! Watches into indexes, written once for every binary (after kubert's `index` module).
//!
//! A watch turns `watcher::Event`s into three calls on an [`Index`]: `apply` for every
//! object created, changed or (re-)listed, `delete` for every deletion seen, and `reset`
//! when a (re-)list ends, with the keys of every object that list returned, so the index
//! can drop what disappeared while the watch was down. The re-list bookkeeping lives here
//! and only here; an index never sees `Init`/`InitApply`/`InitDone`.
//!
//! [`WatchSet`] runs several watches into one state behind one synchronous lock (never
//! held across an `.await`): each event is applied under the lock, then every consumer is
//! woken through its [`Notify`], outside the lock. A consumer that is busy finds one pending
//! wake-up when it is done and reads the latest state once, so bursts coalesce without a
//! timer. Each watch strips `managedFields` before indexing, counts its events and errors,
//! opens its own readiness gate once it has listed, and runs as a supervised task
//! ([`crate::tasks::Tasks`]): a watch that ends or panics takes the process down instead of
//! leaving a frozen index behind a ready `/readyz`.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, warn, Instrument};

use crate::admin::Gate;
use crate::tasks::Supervisor;
use crate::Readiness;

/// `(namespace, name)` of an object; the namespace is empty for cluster-scoped kinds.
pub type ObjKey = (String, String);

/// The [`ObjKey`] of `obj`.
pub fn obj_key<K: Resource>(obj: &K) -> ObjKey {
    let meta = obj.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Drop what no index reads and that can be large (server-side apply's bookkeeping).
pub fn strip<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// A state kept current by a watch of `K`.
pub trait Index<K> {
    /// `obj` was created or changed, or is part of a (re-)list.
    fn apply(&mut self, obj: K);

    /// `obj` was deleted (its last known state).
    fn delete(&mut self, obj: K);

    /// A (re-)list ended; `listed` holds the key of every object it returned, each of them
    /// already passed to [`Index::apply`]. Anything else the index holds for `K` is gone.
    fn reset(&mut self, listed: &HashSet<ObjKey>);

    /// A (re-)list begins; its objects follow through [`Index::apply`], then
    /// [`Index::reset`]. Only an index that tracks its own writes needs this: the echoes
    /// it waits for may never come, and the list says what the objects are now.
    fn listing(&mut self) {}
}

/// A state fed by several watches, told which of them have listed. A decision that needs
/// the whole picture waits until [`WatchedState::watch_listed`] was called for every watch
/// announced through [`WatchedState::watch_added`].
pub trait WatchedState {
    /// A watch named `what` will feed this state.
    fn watch_added(&mut self, _what: &'static str) {}
    /// The watch named `what` completed its first list.
    fn watch_listed(&mut self, _what: &'static str) {}
}

/// The re-list bookkeeping of one watch: turns events into [`Index`] calls.
#[derive(Debug, Default)]
pub struct Relist {
    listing: Option<HashSet<ObjKey>>,
}

/// What one event did, for the caller's counters and readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fed {
    /// An object changed or was deleted (not part of a list).
    Update,
    /// A (re-)list began or delivered an object.
    Listing,
    /// A (re-)list ended.
    Listed,
}

impl Relist {
    /// Apply one watcher event to `index`.
    pub fn feed<K: Resource, I: Index<K> + ?Sized>(&mut self, index: &mut I, ev: Event<K>) -> Fed {
        match ev {
            Event::Apply(obj) => {
                // a re-list is only ever interleaved with its own InitApply events, but an
                // object applied meanwhile exists all the same
                if let Some(seen) = self.listing.as_mut() {
                    seen.insert(obj_key(&obj));
                }
                index.apply(obj);
                Fed::Update
            }
            Event::Delete(obj) => {
                if let Some(seen) = self.listing.as_mut() {
                    seen.remove(&obj_key(&obj));
                }
                index.delete(obj);
                Fed::Update
            }
            Event::Init => {
                self.listing = Some(HashSet::new());
                index.listing();
                Fed::Listing
            }
            Event::InitApply(obj) => {
                self.listing
                    .get_or_insert_with(HashSet::new)
                    .insert(obj_key(&obj));
                index.apply(obj);
                Fed::Listing
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                index.reset(&listed);
                Fed::Listed
            }
        }
    }
}

/// Counters every watch keeps; each binary maps them onto its metrics registry.
pub trait WatchMetrics: Send + Sync + 'static {
    /// An object was created, changed or deleted (list events are not counted).
    fn update(&self, _what: &'static str) {}
    /// The watch failed and will retry with backoff.
    fn error(&self, _what: &'static str) {}
}

/// For callers with no metrics.
impl WatchMetrics for () {}

/// Lock a state shared with watches. A panic while holding the lock leaves plain data
/// behind (the panicking task takes the process down through its supervisor), so the
/// poison is ignored rather than turned into a second panic.
pub fn lock<I>(shared: &Mutex<I>) -> MutexGuard<'_, I> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Several watches feeding one state.
pub struct WatchSet<I> {
    state: Arc<Mutex<I>>,
    wake: Vec<Arc<Notify>>,
    metrics: Arc<dyn WatchMetrics>,
    readiness: Readiness,
    stop: CancellationToken,
    /// Where the watches look (a namespace), for task names and logs.
    scope: Option<String>,
    /// Whether each watch holds a readiness gate until it has listed.
    gated: bool,
}

impl<I: WatchedState + Send + 'static> WatchSet<I> {
    /// Watches into `state`, each with a readiness gate in `readiness`, all ending when
    /// `stop` is cancelled.
    pub fn new(
        state: Arc<Mutex<I>>,
        readiness: Readiness,
        metrics: Arc<dyn WatchMetrics>,
        stop: CancellationToken,
    ) -> Self {
        WatchSet {
            state,
            wake: Vec::new(),
            metrics,
            readiness,
            stop,
            scope: None,
            gated: true,
        }
    }

    /// The watches look in `scope` (a namespace): named in their task and their logs, so
    /// that several sets watching one kind in different places are told apart.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The watches hold no readiness gate: for watches started on demand, whose consumer
    /// decides how long to wait for their first list (a watch the API refuses must not
    /// keep the process unready forever).
    pub fn ungated(mut self) -> Self {
        self.gated = false;
        self
    }

    /// Wake `consumer` after every event.
    pub fn wake(mut self, consumer: Arc<Notify>) -> Self {
        self.wake.push(consumer);
        self
    }

    /// Watch `api` (filtered by `config`) into the state, as a task of `tasks` (a
    /// [`crate::Tasks`] set, or a [`crate::tasks::Spawner`] of one for a watch started on demand)
    /// named `watch <what>`. The readiness gate is `what` too.
    pub fn watch<K>(
        &self,
        tasks: &mut impl Supervisor,
        what: &'static str,
        api: Api<K>,
        config: watcher::Config,
    ) where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        I: Index<K>,
    {
        let stream = watcher::watcher(api, config).default_backoff();
        self.watch_stream(tasks, what, stream);
    }

    /// [`WatchSet::watch`] over any stream of watcher events (tests feed their own).
    pub fn watch_stream<K, S>(&self, tasks: &mut impl Supervisor, what: &'static str, stream: S)
    where
        K: Resource + Clone + Debug + Send + 'static,
        I: Index<K>,
        S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    {
        let (name, run) = self.prepare(what, stream);
        tasks.start(name, run);
    }

    /// The task of one watch, and its name.
    fn prepare<K, S>(
        &self,
        what: &'static str,
        stream: S,
    ) -> (
        String,
        impl Future<Output = anyhow::Result<()>> + Send + 'static,
    )
    where
        K: Resource + Clone + Debug + Send + 'static,
        I: Index<K>,
        S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    {
        lock(&self.state).watch_added(what);
        let gate = self.gated.then(|| self.readiness.gate(what));
        let scope = self.scope.clone().unwrap_or_default();
        let name = match scope.as_str() {
            "" => format!("watch {what}"),
            s => format!("watch {what} in {s}"),
        };
        let run = run_watch(
            what,
            stream,
            self.state.clone(),
            self.wake.clone(),
            self.metrics.clone(),
            gate,
            self.stop.clone(),
        );
        (
            name,
            run.instrument(info_span!("watch", kind = what, scope = %scope)),
        )
    }
}

/// One watch into a new `state`, waking the returned [`Notify`] after every event: what a
/// writer that watches the objects it writes starts from (it plans from the state, and
/// wakes when someone else changed them).
pub fn watch_into<I, K>(
    tasks: &mut impl Supervisor,
    readiness: &Readiness,
    stop: &CancellationToken,
    state: I,
    what: &'static str,
    api: Api<K>,
    config: watcher::Config,
) -> (Arc<Mutex<I>>, Arc<Notify>)
where
    I: Index<K> + WatchedState + Send + 'static,
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let state = Arc::new(Mutex::new(state));
    let wake = Arc::new(Notify::new());
    WatchSet::new(state.clone(), readiness.clone(), Arc::new(()), stop.clone())
        .wake(wake.clone())
        .watch(tasks, what, api, config);
    (state, wake)
}

/// After a wake-up, let the rest of a burst arrive: returns once `quiet` passed without
/// another notification of `wake`, or `max` after the call, whichever comes first. For a
/// consumer that prefers one batch per burst to the first event's latency (the controller:
/// 1,000 Services created at once are decided and written together).
pub async fn settle(wake: &Notify, quiet: std::time::Duration, max: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let until = (tokio::time::Instant::now() + quiet).min(deadline);
        if tokio::time::timeout_at(until, wake.notified())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// [`settle`] for a consumer that also wants a lone change handled at once: a wake-up that
/// finds the consumer idle for `quiet` or longer (the last batch ended that long ago) is
/// not delayed; one that comes sooner (a burst is on: events arrived while the last batch
/// was being written) coalesces as [`settle`] does. A single Service created on a calm
/// cluster then gets its IP without the quiet gap, and 1,000 created at once still go out
/// in a few batches (the first alone, the rest behind it).
#[derive(Debug)]
pub struct Settle {
    quiet: std::time::Duration,
    max: std::time::Duration,
    /// When the last batch ended; `None` before the first (the initial list coalesces).
    idle_since: Option<tokio::time::Instant>,
}

impl Settle {
    pub fn new(quiet: std::time::Duration, max: std::time::Duration) -> Self {
        Settle {
            quiet,
            max,
            idle_since: None,
        }
    }

    /// After a wake-up: returns when the batch should be taken.
    pub async fn wait(&self, wake: &Notify) {
        if (self.idle_since).is_some_and(|t| t.elapsed() >= self.quiet) {
            return;
        }
        settle(wake, self.quiet, self.max).await;
    }

    /// The batch was handled: the consumer is idle from now.
    pub fn batch_done(&mut self) {
        self.idle_since = Some(tokio::time::Instant::now());
    }
}

/// A watch of `api` that starts at the first notification of `restart` and starts over
/// (a fresh list) at every further one, for an index whose view of the objects depends on
/// something that can change (the node component stubs the FRRConfigurations that do not
/// select its node: when its labels come to select a stub, the full objects must be listed
/// again). The re-list reaches the index as any other: `Init`, the objects, `InitDone`.
pub fn restartable<K>(
    api: Api<K>,
    config: watcher::Config,
    restart: Arc<Notify>,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    type Watch<K> = std::pin::Pin<Box<dyn Stream<Item = Result<Event<K>, watcher::Error>> + Send>>;
    let start = move || -> Watch<K> {
        Box::pin(watcher::watcher(api.clone(), config.clone()).default_backoff())
    };
    futures::stream::unfold(None::<Watch<K>>, move |current| {
        let restart = restart.clone();
        let start = start.clone();
        async move {
            let mut current = match current {
                Some(w) => w,
                None => {
                    restart.notified().await;
                    start()
                }
            };
            loop {
                tokio::select! {
                    ev = current.next() => return ev.map(|ev| (ev, Some(current))),
                    _ = restart.notified() => current = start(),
                }
            }
        }
    })
}

async fn run_watch<K, I, S>(
    what: &'static str,
    stream: S,
    state: Arc<Mutex<I>>,
    wake: Vec<Arc<Notify>>,
    metrics: Arc<dyn WatchMetrics>,
    gate: Option<Gate>,
    stop: CancellationToken,
) -> anyhow::Result<()>
where
    K: Resource + Clone + Send + 'static,
    I: Index<K> + WatchedState,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    let mut stream = std::pin::pin!(stream.map(|ev| { ev.map(|ev| ev.modify(strip::<K>)) }));
    let mut relist = Relist::default();
    let mut listed_once = false;
    loop {
        let ev = tokio::select! {
            ev = stream.next() => ev,
            _ = stop.cancelled() => return Ok(()),
        };
        match ev {
            Some(Ok(ev)) => {
                let fed = {
                    let mut st = lock(&state);
                    let fed = relist.feed(&mut *st, ev);
                    if fed == Fed::Listed && !listed_once {
                        st.watch_listed(what);
                    }
                    fed
                };
                match fed {
                    Fed::Update => metrics.update(what),
                    Fed::Listed if !listed_once => {
                        listed_once = true;
                        if let Some(g) = &gate {
                            g.ready();
                        }
                        debug!("listed");
                    }
                    Fed::Listed | Fed::Listing => {}
                }
                for w in &wake {
                    w.notify_one();
                }
            }
            Some(Err(e)) => {
                metrics.error(what);
                warn!(error = %e, "watch error; retrying with backoff");
            }
            // The watcher retries forever: its end is a bug, and an index nobody updates
            // any more must not keep serving decisions.
            None => anyhow::bail!("the {what} watch ended"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Tasks;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn cm(name: &str, v: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                managed_fields: Some(vec![Default::default()]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("v".to_string(), v.to_string())])),
            ..Default::default()
        }
    }

    #[derive(Default)]
    struct Values {
        items: BTreeMap<String, String>,
        stripped: bool,
        added: Vec<&'static str>,
        listed: Vec<&'static str>,
    }

    impl Index<ConfigMap> for Values {
        fn apply(&mut self, o: ConfigMap) {
            self.stripped = o.metadata.managed_fields.is_none();
            let v = o.data.unwrap_or_default().remove("v").unwrap_or_default();
            self.items.insert(o.metadata.name.unwrap(), v);
        }
        fn delete(&mut self, o: ConfigMap) {
            self.items.remove(&o.metadata.name.unwrap());
        }
        fn reset(&mut self, listed: &HashSet<ObjKey>) {
            self.items
                .retain(|k, _| listed.contains(&("ns".to_string(), k.clone())));
        }
    }

    impl WatchedState for Values {
        fn watch_added(&mut self, what: &'static str) {
            self.added.push(what);
        }
        fn watch_listed(&mut self, what: &'static str) {
            self.listed.push(what);
        }
    }

    #[test]
    fn a_relist_drops_what_it_did_not_return() {
        let mut v = Values::default();
        let mut r = Relist::default();
        for ev in [
            Event::Init,
            Event::InitApply(cm("a", "1")),
            Event::InitApply(cm("b", "1")),
            Event::InitDone,
            Event::Apply(cm("c", "1")),
        ] {
            r.feed(&mut v, ev);
        }
        assert_eq!(v.items.len(), 3);
        // the watch drops; meanwhile b is deleted and a changed
        assert_eq!(r.feed(&mut v, Event::Init), Fed::Listing);
        r.feed(&mut v, Event::InitApply(cm("a", "2")));
        r.feed(&mut v, Event::InitApply(cm("c", "1")));
        assert_eq!(r.feed(&mut v, Event::InitDone), Fed::Listed);
        assert_eq!(
            v.items,
            BTreeMap::from([("a".into(), "2".into()), ("c".into(), "1".into())])
        );
        assert_eq!(r.feed(&mut v, Event::Delete(cm("a", "2"))), Fed::Update);
        assert_eq!(v.items.len(), 1);
    }

    #[test]
    fn an_empty_relist_empties_the_index() {
        let mut v = Values::default();
        let mut r = Relist::default();
        r.feed(&mut v, Event::Apply(cm("a", "1")));
        r.feed(&mut v, Event::Init);
        r.feed(&mut v, Event::InitDone);
        assert!(v.items.is_empty());
    }

    fn events(
        evs: Vec<Event<ConfigMap>>,
    ) -> impl Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Send + 'static {
        futures::stream::iter(evs.into_iter().map(Ok)).chain(futures::stream::pending())
    }

    #[tokio::test]
    async fn a_watch_indexes_strips_wakes_and_opens_its_gate() {
        let state = Arc::new(Mutex::new(Values::default()));
        let readiness = Readiness::default();
        let stop = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let set = WatchSet::new(state.clone(), readiness.clone(), Arc::new(()), stop.clone())
            .wake(wake.clone());
        let mut tasks = Tasks::new();
        set.watch_stream(
            &mut tasks,
            "configmaps",
            events(vec![
                Event::Init,
                Event::InitApply(cm("a", "1")),
                Event::InitDone,
            ]),
        );
        assert_eq!(lock(&state).added, ["configmaps"]);
        assert_eq!(readiness.pending(), ["configmaps"]);
        wake.notified().await;
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !readiness.is_ready() {
                wake.notified().await;
            }
        })
        .await
        .expect("the watch lists and opens its gate");
        {
            let st = lock(&state);
            assert_eq!(st.listed, ["configmaps"]);
            assert!(st.stripped, "managedFields reach the index");
            assert_eq!(st.items.get("a").map(String::as_str), Some("1"));
        }
        stop.cancel();
        tasks
            .supervise(&stop)
            .await
            .expect("stopped watches end cleanly");
    }

    #[tokio::test(start_paused = true)]
    async fn settle_waits_for_a_quiet_gap_but_never_past_its_bound() {
        use std::time::Duration;
        use tokio::time::{sleep, Instant};
        let wake = Arc::new(Notify::new());
        let quiet = Duration::from_millis(20);
        let max = Duration::from_millis(250);
        // no further event: one quiet gap
        let t0 = Instant::now();
        settle(&wake, quiet, max).await;
        assert_eq!(t0.elapsed(), quiet);
        // events every 10 ms for 100 ms: done one quiet gap after the last
        let t0 = Instant::now();
        let w = wake.clone();
        let burst = tokio::spawn(async move {
            for _ in 0..10 {
                sleep(Duration::from_millis(10)).await;
                w.notify_one();
            }
        });
        settle(&wake, quiet, max).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(120));
        burst.await.unwrap();
        // an endless stream of events: cut at the bound
        let t0 = Instant::now();
        let w = wake.clone();
        let endless = tokio::spawn(async move {
            loop {
                sleep(Duration::from_millis(10)).await;
                w.notify_one();
            }
        });
        settle(&wake, quiet, max).await;
        assert_eq!(t0.elapsed(), max);
        endless.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_change_after_a_calm_is_taken_at_once_and_a_burst_coalesces() {
        use std::time::Duration;
        use tokio::time::{sleep, Instant};
        let wake = Arc::new(Notify::new());
        let quiet = Duration::from_millis(20);
        let mut s = Settle::new(quiet, Duration::from_millis(250));
        // the first batch (the initial list) coalesces
        let t0 = Instant::now();
        s.wait(&wake).await;
        assert_eq!(t0.elapsed(), quiet);
        s.batch_done();
        // a change right after a batch: part of a burst, one quiet gap
        sleep(Duration::from_millis(5)).await;
        let t0 = Instant::now();
        s.wait(&wake).await;
        assert_eq!(t0.elapsed(), quiet);
        s.batch_done();
        // a change after a calm longer than the gap: no delay
        sleep(Duration::from_secs(1)).await;
        let t0 = Instant::now();
        s.wait(&wake).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
        s.batch_done();
        // exactly one gap of calm counts as calm
        sleep(quiet).await;
        let t0 = Instant::now();
        s.wait(&wake).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_watch_that_ends_is_an_error_naming_it() {
        let state = Arc::new(Mutex::new(Values::default()));
        let stop = CancellationToken::new();
        let set = WatchSet::new(state, Readiness::default(), Arc::new(()), stop.clone());
        let mut tasks = Tasks::new();
        set.watch_stream(&mut tasks, "configmaps", futures::stream::iter(Vec::new()));
        let err = tasks.supervise(&stop).await.unwrap_err().to_string();
        assert!(err.contains("watch configmaps"), "{err}");
    }
}
