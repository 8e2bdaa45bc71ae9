//! Shared helpers for the controller's tests against the in-memory API server.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use metallb_api::metallb::{IPAddressPool, IPAddressPoolSpec};
use metallb_controller::{Controller, Metrics, Progress, Settings};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const NS: &str = "metallb-system";

pub async fn server() -> metallb_testkit::TestApi {
    let api = metallb_testkit::start()
        .await
        .expect("test API server starts");
    let ns: Api<Namespace> = Api::all(api.client());
    for name in [NS, "apps"] {
        let obj: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        ns.create(&PostParams::default(), &obj)
            .await
            .expect("namespace created");
    }
    api
}

/// A running controller task.
pub struct Running {
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), metallb_controller::Error>>,
    pub progress: watch::Receiver<Progress>,
}

impl Running {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Wait until the initial resync is done; returns its progress.
    pub async fn synced(&mut self) -> Progress {
        let p = tokio::time::timeout(
            Duration::from_secs(60),
            self.progress.wait_for(|p| p.synced),
        )
        .await
        .expect("controller syncs in time")
        .expect("controller running")
        .clone();
        p
    }
}

pub fn settings() -> Settings {
    let mut s = Settings::new(NS);
    s.debounce = Duration::from_millis(5);
    s.max_batch_delay = Duration::from_millis(50);
    s
}

pub fn spawn_with(client: Client, settings: Settings) -> Running {
    let ctl = Controller::new(client, settings, Metrics::default());
    let progress = ctl.progress_rx();
    let stop = CancellationToken::new();
    let task = tokio::spawn(ctl.run(stop.clone(), None));
    Running {
        stop,
        task,
        progress,
    }
}

pub fn spawn(client: Client) -> Running {
    spawn_with(client, settings())
}

pub fn pool(name: &str, addrs: &[&str]) -> IPAddressPool {
    let mut p = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
            auto_assign: None,
            avoid_buggy_ips: None,
            service_allocation: None,
        },
    );
    p.metadata.namespace = Some(NS.into());
    p
}

pub async fn create_pool(client: &Client, name: &str, addrs: &[&str]) {
    let api: Api<IPAddressPool> = Api::namespaced(client.clone(), NS);
    api.create(&PostParams::default(), &pool(name, addrs))
        .await
        .expect("pool created");
}

pub fn lb(name: &str, annotations: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "apps", "annotations": annotations },
        "spec": { "type": "LoadBalancer", "selector": { "app": name },
                  "ports": [{ "name": "http", "port": 80 }] }
    }))
    .expect("valid service")
}

pub async fn create_svc(client: &Client, svc: Service) {
    let api: Api<Service> = Api::namespaced(client.clone(), "apps");
    api.create(&PostParams::default(), &svc)
        .await
        .expect("service created");
}

pub fn services(client: &Client) -> Api<Service> {
    Api::namespaced(client.clone(), "apps")
}

pub fn ingress(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

pub async fn ingress_of(client: &Client, name: &str) -> Vec<String> {
    ingress(&services(client).get(name).await.expect("service exists"))
}

/// Poll `f` until it returns `Some`, for up to 30 s (what is awaited takes milliseconds;
/// the margin is for a busy machine).
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until a service shows exactly `want` as ingress.
pub async fn wait_ingress(client: &Client, name: &str, want: &[&str]) {
    let c = client.clone();
    eventually(&format!("{name} ingress {want:?}"), || {
        let c = c.clone();
        async move {
            let got = ingress_of(&c, name).await;
            (got == want).then_some(())
        }
    })
    .await
}

/// Wait until an event with `reason` about `name` exists; returns every event about it.
/// (The controller writes a Service's events and its status concurrently: an event can
/// land after the status it goes with.)
pub async fn wait_event(client: &Client, name: &str, reason: &str) -> Vec<(String, String)> {
    let c = client.clone();
    eventually(&format!("{reason} event on {name}"), || {
        let c = c.clone();
        async move {
            let evs = events_of(&c, name).await;
            evs.iter().any(|(r, _)| r == reason).then_some(evs)
        }
    })
    .await
}

/// Events about `name` in `apps`, as (reason, message).
pub async fn events_of(client: &Client, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "apps");
    let mut out: Vec<(String, String)> = api
        .list(&ListParams::default())
        .await
        .expect("events list")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect();
    out.sort();
    out
}
