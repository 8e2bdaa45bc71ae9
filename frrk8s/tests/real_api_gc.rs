//! BGPSessionState objects are owned by the frr-k8s pod and deleted with it by the real
//! garbage collector (kube-apiserver + kube-controller-manager from `METALLB_K8S_ASSETS`,
//! see `metallb_testkit::envtest`). The node component runs in this process with a fake
//! FRR; the Pod is only an object (no kubelet: it stays Pending).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frr_k8s::frr::apply::ApplyOptions;
use frr_k8s::frr::control::{ControlError, FrrControl};
use frr_k8s::metrics::FrrMetrics;
use frr_k8s::node::{self, NodeSettings, PodRef};
use frr_k8s::RenderOptions;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use metallb_api::frrk8s::BGPSessionState;
use metallb_runtime::Readiness;
use metallb_testkit::envtest::{self, send};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const NS: &str = "frr-k8s-system";
const NODE: &str = "node-1";
const POD: &str = "frr-k8s-daemon-x7k2p";

/// FRR as far as the component's status poll sees it: two established sessions.
#[derive(Clone, Default)]
struct FakeFrr {
    applied: Arc<Mutex<Vec<String>>>,
}

impl FrrControl for FakeFrr {
    fn apply(&self, batch: &str) -> Result<(), ControlError> {
        self.applied.lock().unwrap().push(batch.to_string());
        Ok(())
    }
    fn apply_direct(&self, _batch: &str) -> Option<Result<(), ControlError>> {
        None
    }

    fn check(&self, _batch: &str) -> Result<(), ControlError> {
        Ok(())
    }
    fn running_config(&self) -> Result<String, ControlError> {
        Ok(self.applied.lock().unwrap().join("\n"))
    }
    fn show_json(&self, command: &str) -> Result<Value, ControlError> {
        Ok(if command == "show bgp vrf all neighbors json" {
            json!({"default": {"vrfName": "default",
                "192.0.2.1": {"bgpState": "Established", "remoteAs": 64601},
                "192.0.2.2": {"bgpState": "Established", "remoteAs": 64602}}})
        } else if command.contains("bgp") {
            json!({})
        } else {
            json!([])
        })
    }
    fn instance_token(&self) -> Option<String> {
        Some("fake".into())
    }
}

async fn post(c: &kube::Client, path: &str, obj: Value) -> Value {
    let a = send(c, "POST", path, Some(&obj)).await;
    assert_eq!(a.status, 201, "POST {path}: {}", a.body);
    a.body
}

/// A BGPSessionState as the component labels them, without owner.
fn session_state(node: &str, peer: &str) -> BGPSessionState {
    serde_json::from_value(json!({
        "apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "BGPSessionState",
        "metadata": {"generateName": format!("{node}-"), "namespace": NS, "labels": {
            "frrk8s.metallb.io/node": node, "frrk8s.metallb.io/peer": peer,
            "frrk8s.metallb.io/vrf": ""}},
        "spec": {}
    }))
    .unwrap()
}

fn owner_uids(s: &BGPSessionState) -> Vec<String> {
    s.metadata
        .owner_references
        .iter()
        .flatten()
        .map(|o| o.uid.clone())
        .collect()
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "timed out ({timeout:?}) waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn bgpsessionstates_are_owned_by_the_pod_and_collected_with_it() {
    let test = "bgpsessionstates_are_owned_by_the_pod_and_collected_with_it";
    let opts = envtest::Options {
        controller_manager: true,
        ..Default::default()
    };
    let Some(cp) = envtest::start_or_skip(test, opts).await else {
        return;
    };
    let c = cp.client();
    let warnings = envtest::install_crds(&c, &metallb_api::crds::all())
        .await
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    post(
        &c,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await;
    post(
        &c,
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}}),
    )
    .await;
    // An explicit ServiceAccount: no wait for kube-controller-manager's `default` one.
    post(
        &c,
        &format!("/api/v1/namespaces/{NS}/serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "frr-k8s-daemon"}}),
    )
    .await;
    let pod = post(
        &c,
        &format!("/api/v1/namespaces/{NS}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD},
            "spec": {"serviceAccountName": "frr-k8s-daemon", "automountServiceAccountToken": false,
                "containers": [{"name": "frr-k8s", "image": "example.invalid/frr-k8s:test"}]}}),
    )
    .await;
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();

    let sessions: Api<BGPSessionState> = Api::namespaced(c.clone(), NS);
    // One object from before (a previous daemon without pod name): the component gives it
    // its owner. One of another node: not the component's, never touched.
    let before = sessions
        .create(&PostParams::default(), &session_state(NODE, "192.0.2.2"))
        .await
        .unwrap();
    let other = sessions
        .create(
            &PostParams::default(),
            &session_state("node-2", "192.0.2.9"),
        )
        .await
        .unwrap();
    let other_name = other.metadata.name.clone().unwrap();

    let settings = NodeSettings {
        node_name: NODE.into(),
        namespace: NS.into(),
        render: RenderOptions::default(),
        poll_interval: Duration::from_millis(100),
        write_status: true,
        persist_versions: true,
        apply: ApplyOptions {
            verify: false,
            dry_run: false,
            ..ApplyOptions::default()
        },
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = FrrMetrics::register(&mut registry);
    let stop = CancellationToken::new();
    let task = tokio::spawn(node::run_in_pod(
        c.clone(),
        settings,
        Some(PodRef {
            namespace: NS.into(),
            name: POD.into(),
        }),
        FakeFrr::default(),
        Readiness::default(),
        metrics,
        stop.clone(),
    ));

    let mine = ListParams::default().labels(&format!("frrk8s.metallb.io/node={NODE}"));
    eventually(
        "both BGPSessionStates of the node owned by the pod",
        Duration::from_secs(60),
        || async {
            let l = sessions.list(&mine).await.unwrap();
            l.items.len() == 2
                && l.items.iter().all(|s| {
                    owner_uids(s) == [pod_uid.clone()]
                        && s.status.as_ref().and_then(|s| s.bgp_status.as_deref())
                            == Some("Established")
                })
        },
    )
    .await;
    let owned = sessions.list(&mine).await.unwrap();
    let o = &owned.items[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (o.api_version.as_str(), o.kind.as_str(), o.name.as_str()),
        ("v1", "Pod", POD)
    );
    assert!(
        owned
            .items
            .iter()
            .any(|s| s.metadata.name == before.metadata.name),
        "the existing object was kept and given its owner, not replaced"
    );
    let other_now = sessions.get(&other_name).await.unwrap();
    assert!(other_now.metadata.owner_references.is_none());

    // The daemon goes away with its pod.
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(c.clone(), NS)
        .delete(POD, &DeleteParams::default())
        .await
        .unwrap();

    // The real garbage collector deletes what the pod owned (it may first have to
    // discover the new CRDs: generous).
    eventually(
        "the garbage collector deletes the pod's BGPSessionStates",
        Duration::from_secs(120),
        || async { sessions.list(&mine).await.unwrap().items.is_empty() },
    )
    .await;
    assert!(
        sessions.get_opt(&other_name).await.unwrap().is_some(),
        "an object the pod did not own stays"
    );
    drop(cp);
}
