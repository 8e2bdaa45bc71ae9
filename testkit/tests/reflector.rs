//! kube-runtime against the test server: reflectors and a controller survive a forced
//! watch expiry (410) by re-listing, and end up with the right state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "k": value } })).unwrap()
}

fn snapshot(store: &Store<ConfigMap>) -> BTreeMap<String, String> {
    store
        .state()
        .iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap(),
                c.data
                    .as_ref()
                    .and_then(|d| d.get("k").cloned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Run a reflector; returns its store and a counter of completed (re-)lists.
fn spawn_reflector(
    api: Api<ConfigMap>,
    config: watcher::Config,
) -> (Store<ConfigMap>, Arc<AtomicUsize>) {
    let (reader, writer) = reflector::store();
    let lists = Arc::new(AtomicUsize::new(0));
    let counter = lists.clone();
    tokio::spawn(async move {
        watcher(api, config)
            .default_backoff()
            .reflect(writer)
            .inspect_ok(move |ev| {
                if matches!(ev, watcher::Event::InitDone) {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            })
            .for_each(|_| async {})
            .await;
    });
    (reader, lists)
}

#[tokio::test]
async fn reflector_recovers_from_watch_expiry() {
    let server = metallb_testkit::start_with(metallb_testkit::Options {
        crds: vec![],
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let pp = PostParams::default();
    api.create(&pp, &cm("a", "1")).await.unwrap();

    let (store, lists) = spawn_reflector(api.clone(), watcher::Config::default());
    let (streamed, streamed_lists) =
        spawn_reflector(api.clone(), watcher::Config::default().streaming_lists());
    store.wait_until_ready().await.unwrap();
    streamed.wait_until_ready().await.unwrap();
    assert_eq!(snapshot(&store), expect(&[("a", "1")]));

    api.create(&pp, &cm("b", "1")).await.unwrap();
    api.create(&pp, &cm("c", "1")).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "2" } })),
    )
    .await
    .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    let want = expect(&[("a", "2"), ("c", "1")]);
    eventually("watch events applied", || {
        snapshot(&store) == want && snapshot(&streamed) == want
    })
    .await;
    assert_eq!(lists.load(Ordering::SeqCst), 1);

    // Expire every watch and change things while the watchers recover.
    server.expire_watches();
    api.create(&pp, &cm("d", "1")).await.unwrap();
    api.delete("c", &DeleteParams::default()).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "3" } })),
    )
    .await
    .unwrap();
    let want = expect(&[("a", "3"), ("d", "1")]);
    eventually("re-list after 410", || {
        lists.load(Ordering::SeqCst) >= 2
            && streamed_lists.load(Ordering::SeqCst) >= 2
            && snapshot(&store) == want
            && snapshot(&streamed) == want
    })
    .await;

    // And the new watches keep working.
    api.create(&pp, &cm("e", "1")).await.unwrap();
    let want = expect(&[("a", "3"), ("d", "1"), ("e", "1")]);
    eventually("events after recovery", || {
        snapshot(&store) == want && snapshot(&streamed) == want
    })
    .await;
}

#[derive(Debug)]
struct ReconcileError(kube::Error);

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ReconcileError {}

/// Mirror `data.k` into the `mirror` annotation, writing only when it differs.
async fn reconcile(
    obj: Arc<ConfigMap>,
    api: Arc<Api<ConfigMap>>,
) -> Result<Action, ReconcileError> {
    let want = obj
        .data
        .as_ref()
        .and_then(|d| d.get("k").cloned())
        .unwrap_or_default();
    let have = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("mirror").cloned());
    if have.as_deref() != Some(want.as_str()) {
        let name = obj.metadata.name.clone().unwrap();
        let patch = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name, "annotations": { "mirror": want } } });
        api.patch(
            &name,
            &PatchParams::apply("mirror").force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(ReconcileError)?;
    }
    Ok(Action::await_change())
}

#[tokio::test]
async fn controller_converges_through_expiry() {
    let server = metallb_testkit::start_with(metallb_testkit::Options {
        crds: vec![],
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let pp = PostParams::default();
    api.create(&pp, &cm("x", "1")).await.unwrap();
    let ctx = Arc::new(api.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default());
    let state = controller.store();
    tokio::spawn(
        controller
            .run(
                reconcile,
                |_, _, _| Action::requeue(Duration::from_millis(100)),
                ctx,
            )
            .for_each(|_| async {}),
    );
    let mirrored = |s: &Store<ConfigMap>| -> BTreeMap<String, (String, String)> {
        s.state()
            .iter()
            .map(|c| {
                let k = c
                    .data
                    .as_ref()
                    .and_then(|d| d.get("k").cloned())
                    .unwrap_or_default();
                let m = c
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("mirror").cloned())
                    .unwrap_or_default();
                (c.metadata.name.clone().unwrap(), (k, m))
            })
            .collect()
    };
    let converged = |s: &Store<ConfigMap>, names: &[&str]| {
        let m = mirrored(s);
        m.len() == names.len() && names.iter().all(|n| m.get(*n).is_some_and(|(k, v)| k == v))
    };
    eventually("first reconcile", || converged(&state, &["x"])).await;
    api.create(&pp, &cm("y", "1")).await.unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "2" } })),
    )
    .await
    .unwrap();
    eventually("updates reconciled", || converged(&state, &["x", "y"])).await;

    server.expire_watches();
    api.delete("y", &DeleteParams::default()).await.unwrap();
    api.create(&pp, &cm("z", "1")).await.unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "3" } })),
    )
    .await
    .unwrap();
    eventually("converged after 410", || converged(&state, &["x", "z"])).await;
    // The server state agrees with the controller's view.
    let x = api.get("x").await.unwrap();
    assert_eq!(x.metadata.annotations.unwrap()["mirror"], "3");
    let mf = x.metadata.managed_fields.unwrap();
    assert!(
        mf.iter()
            .any(|m| m.manager.as_deref() == Some("mirror")
                && m.operation.as_deref() == Some("Apply"))
    );
}
