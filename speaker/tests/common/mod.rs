//! Shared helpers for the speaker's tests against the test API server.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use metallb_api::frrk8s::FRRConfiguration;
use metallb_runtime::Readiness;
use metallb_speaker::metrics::SpeakerMetrics;
use metallb_speaker::shell::{self, Settings, ShutdownOutcome};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const NS: &str = "metallb-system";
pub const NODE: &str = "node-1";
pub const OBJ: &str = "metallb-node-1";

pub fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid test object")
}

/// Polls `f` until it holds, for up to 30 s (what is awaited takes milliseconds; the
/// margin is for a busy machine).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `counter` reaches `n`, then checks it did not pass it. A counter of writes
/// is incremented when the speaker has the API server's answer, which can be after the
/// test already sees the written object.
pub async fn count_reaches(what: &str, counter: impl Fn() -> u64, n: u64) {
    eventually(&format!("{what} reach {n}"), || {
        let c = counter();
        async move { c >= n }
    })
    .await;
    assert_eq!(counter(), n, "{what}");
}

pub async fn create<K>(api: &Api<K>, v: Value) -> K
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.create(&PostParams::default(), &obj::<K>(v))
        .await
        .expect("create")
}

/// Namespace, Node, a pool, a peer and an advertisement.
pub async fn base_config(client: &Client) {
    let _: Namespace = create(&Api::all(client.clone()), json!({"metadata": {"name": NS}})).await;
    for (n, rack) in [(NODE, "a"), ("node-2", "b")] {
        let _: Node = create(
            &Api::all(client.clone()),
            json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n, "rack": rack}}}),
        )
        .await;
    }
    let _: metallb_api::metallb::IPAddressPool = create(&Api::namespaced(client.clone(), NS),
        json!({"metadata": {"name": "pool", "namespace": NS}, "spec": {"addresses": ["192.168.10.0/24"]}}),
    )
    .await;
    let _: metallb_api::metallb::BGPPeer = create(
        &Api::namespaced(client.clone(), NS),
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "tor", "namespace": NS},
               "spec": {"myASN": 64512, "peerASN": 65000, "peerAddress": "172.18.0.1"}}),
    )
    .await;
    let _: metallb_api::metallb::BGPAdvertisement = create(
        &Api::namespaced(client.clone(), NS),
        json!({"metadata": {"name": "ad", "namespace": NS}, "spec": {"ipAddressPools": ["pool"]}}),
    )
    .await;
}

/// A LoadBalancer Service with `ip` in its status.
pub async fn lb_service(client: &Client, name: &str, ip: &str, local: bool, class: Option<&str>) {
    let mut spec = json!({"type": "LoadBalancer", "ports": [{"port": 80}],
                          "externalTrafficPolicy": if local {"Local"} else {"Cluster"}});
    if let Some(c) = class {
        spec["loadBalancerClass"] = json!(c);
    }
    let _: Service = create(
        &Api::namespaced(client.clone(), "default"),
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .await;
    Api::<Service>::namespaced(client.clone(), "default")
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})),
        )
        .await
        .expect("service status");
}

pub fn slice_json(svc: &str, nodes: &[&str]) -> Value {
    json!({
        "metadata": {"name": format!("{svc}-abc"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": nodes.iter().map(|n| json!({"addresses": ["10.244.0.5"], "nodeName": n,
                                                 "conditions": {"ready": true}})).collect::<Vec<_>>(),
        "ports": [{"port": 80}]
    })
}

pub async fn slice(client: &Client, svc: &str, nodes: &[&str]) {
    let _: EndpointSlice = create(
        &Api::namespaced(client.clone(), "default"),
        slice_json(svc, nodes),
    )
    .await;
}

pub async fn move_slice(client: &Client, svc: &str, nodes: &[&str]) {
    let api = Api::<EndpointSlice>::namespaced(client.clone(), "default");
    let name = format!("{svc}-abc");
    let mut cur = api.get(&name).await.expect("slice");
    let new: EndpointSlice = obj(slice_json(svc, nodes));
    cur.endpoints = new.endpoints;
    api.replace(&name, &PostParams::default(), &cur)
        .await
        .expect("replace slice");
}

/// The node's FRRConfiguration, if present.
pub async fn frr_config(client: &Client) -> Option<FRRConfiguration> {
    Api::<FRRConfiguration>::namespaced(client.clone(), NS)
        .get_opt(OBJ)
        .await
        .expect("get")
}

/// `toAdvertise.allowed.prefixes` of the first neighbor.
pub fn advertised(c: &FRRConfiguration) -> Vec<String> {
    c.spec
        .bgp
        .as_ref()
        .and_then(|b| b.routers.first())
        .and_then(|r| r.neighbors.first())
        .and_then(|n| n.to_advertise.as_ref())
        .and_then(|a| a.allowed.as_ref())
        .map(|a| a.prefixes.clone())
        .unwrap_or_default()
}

pub async fn advertised_now(client: &Client) -> Vec<String> {
    frr_config(client)
        .await
        .map(|c| advertised(&c))
        .unwrap_or_default()
}

pub fn rv(c: &Option<FRRConfiguration>) -> Option<String> {
    c.as_ref().and_then(|c| c.metadata.resource_version.clone())
}

/// A running speaker shell.
pub struct Speaker {
    pub stop: CancellationToken,
    pub readiness: Readiness,
    pub metrics: Arc<SpeakerMetrics>,
    pub task: JoinHandle<anyhow::Result<ShutdownOutcome>>,
}

impl Speaker {
    pub fn start(client: &Client, withdraw: bool) -> Self {
        let mut settings = Settings::new(NODE, NS, NS);
        settings.withdraw_on_shutdown = withdraw;
        Self::start_with(client, settings)
    }

    pub fn start_with(client: &Client, settings: Settings) -> Self {
        let stop = CancellationToken::new();
        let readiness = Readiness::default();
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = SpeakerMetrics::register(&mut registry);
        let task = tokio::spawn(shell::run(
            client.clone(),
            settings,
            readiness.clone(),
            metrics.clone(),
            stop.clone(),
        ));
        Speaker {
            stop,
            readiness,
            metrics,
            task,
        }
    }

    pub fn writes(&self) -> u64 {
        self.metrics.frrconfiguration_writes_total.get()
    }

    pub async fn stop(self) -> ShutdownOutcome {
        self.stop.cancel();
        self.task.await.expect("join").expect("speaker")
    }
}
