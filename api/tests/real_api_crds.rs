//! The generated CRDs against a real kube-apiserver (`METALLB_K8S_ASSETS`, see
//! `metallb_testkit::envtest`): every CRD is accepted without warnings and becomes
//! Established, and every CEL rule is enforced by the API server with its own message
//! (a bad object is rejected naming the rule's message, a good one is accepted).
//!
//! One control plane serves every test of this file (starting one takes ~7 s); each test
//! uses its own namespace.

use http::Request;
use kube::Client;
use metallb_testkit::envtest::{self, ControlPlane};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

/// The API server's answer to one raw request.
#[derive(Debug)]
struct Answer {
    status: u16,
    warnings: Vec<String>,
    body: Value,
}

async fn send(client: &Client, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", "application/json")
        .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .collect();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        warnings,
        body,
    }
}

/// The control plane shared by this file's tests, with every CRD installed and
/// Established; `None` when the tests skip. The CRD installation is itself checked here
/// (no warnings, every CRD Established), so each test depends on it.
async fn control_plane(test: &str) -> Option<&'static (ControlPlane, Vec<String>)> {
    static CP: OnceCell<Option<(ControlPlane, Vec<String>)>> = OnceCell::const_new();
    CP.get_or_init(|| async {
        let cp = envtest::start_or_skip("real_api_crds", envtest::Options::default()).await?;
        let client = cp.client();
        let mut warnings = Vec::new();
        for crd in metallb_api::crds::all() {
            let name = crd.metadata.name.clone().unwrap();
            let body = serde_json::to_value(&crd).unwrap();
            let a = send(
                &client,
                "POST",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                Some(&body),
            )
            .await;
            assert_eq!(a.status, 201, "CRD {name} rejected: {}", a.body);
            warnings.extend(a.warnings.iter().map(|w| format!("{name}: {w}")));
        }
        for crd in metallb_api::crds::all() {
            let name = crd.metadata.name.clone().unwrap();
            wait_established(&client, &name).await;
        }
        Some((cp, warnings))
    })
    .await
    .as_ref()
    .or_else(|| {
        eprintln!("SKIPPED: {test}: no real API server");
        None
    })
}

async fn wait_established(client: &Client, name: &str) {
    let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let a = send(client, "GET", &path, None).await;
        let established = a.body["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if established {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "CRD {name} not Established: {}",
            a.body["status"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A fresh namespace for one test.
async fn namespace(client: &Client, name: &str) -> String {
    let a = send(
        client,
        "POST",
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
    )
    .await;
    assert!(a.status == 201 || a.status == 409, "namespace {name}: {}", a.body);
    name.to_string()
}

fn path(group_version: &str, ns: &str, plural: &str) -> String {
    format!("/apis/{group_version}/namespaces/{ns}/{plural}")
}

/// Creates `obj`, expecting success.
async fn admit(client: &Client, collection: &str, obj: Value) -> Value {
    let a = send(client, "POST", collection, Some(&obj)).await;
    assert_eq!(a.status, 201, "expected {} to be admitted: {}", obj["metadata"]["name"], a.body);
    assert!(a.warnings.is_empty(), "warnings: {:?}", a.warnings);
    a.body
}

/// Creates `obj`, expecting a 422 whose message contains `message`.
async fn deny(client: &Client, collection: &str, obj: Value, message: &str) {
    let a = send(client, "POST", collection, Some(&obj)).await;
    let text = a.body["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(a.status, 422, "expected {} to be denied with {message:?}: {}", obj["metadata"]["name"], a.body);
    assert!(text.contains(message), "expected {message:?} in: {text}");
}

#[tokio::test]
async fn every_crd_is_accepted_without_warnings() {
    let Some((cp, warnings)) = control_plane("every_crd_is_accepted_without_warnings").await else {
        return;
    };
    assert!(warnings.is_empty(), "warnings on CRD creation: {warnings:#?}");
    // The API server serves every kind (discovery agrees with the generated CRDs).
    let client = cp.client();
    for crd in metallb_api::crds::all() {
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            let gv = format!("{}/{}", crd.spec.group, v.name);
            let a = send(&client, "GET", &format!("/apis/{gv}"), None).await;
            assert_eq!(a.status, 200, "{gv}: {}", a.body);
            let kinds: Vec<&str> = a.body["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["kind"].as_str())
                .collect();
            assert!(kinds.contains(&crd.spec.names.kind.as_str()), "{gv} lacks {}: {kinds:?}", crd.spec.names.kind);
        }
    }
}
