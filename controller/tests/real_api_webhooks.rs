//! metallb-controller's admission and conversion webhooks, called by a real kube-apiserver
//! (`METALLB_K8S_ASSETS`, see `metallb_testkit::envtest`).
//!
//! The webhook server runs in this process with a certificate signed by the control
//! plane's CA. It is registered as the chart registers it (`metallb_api::webhooks`:
//! upstream's names, paths and operations, `failurePolicy: Fail`), only with a URL client
//! config instead of a Service. The API server negotiates HTTP/2 with it (ALPN), which is
//! what a cluster does.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use metallb_api::webhooks::{self, Target};
use metallb_controller::webhook;
use metallb_testkit::envtest::{self, send, Answer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NS: &str = "metallb-system";

fn pool(name: &str, addrs: &[&str]) -> Value {
    json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS}, "spec": {"addresses": addrs}})
}

fn coll(gv: &str, plural: &str) -> String {
    format!("/apis/{gv}/namespaces/{NS}/{plural}")
}

fn assert_denied(a: &Answer, webhook: &str, parts: &[&str]) {
    assert!(
        a.status == 400 || a.status == 403 || a.status == 422,
        "expected a denial by {webhook}, got {}: {}",
        a.status,
        a.body
    );
    let m = a.message();
    assert!(
        m.contains(&format!(
            "admission webhook \"{webhook}\" denied the request"
        )),
        "not denied by {webhook}: {m}"
    );
    for p in parts {
        assert!(m.contains(p), "expected {p:?} in: {m}");
    }
}

#[tokio::test]
async fn webhooks_are_called_by_the_real_api_server() {
    let test = "webhooks_are_called_by_the_real_api_server";
    let Some(cp) = envtest::start_or_skip(test, envtest::Options::default()).await else {
        return;
    };
    let c = cp.client();
    let warnings = envtest::install_crds(&c, &metallb_api::crds::all())
        .await
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let a = send(
        &c,
        "POST",
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = send(
        &c,
        "POST",
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);

    // The controller's webhook server, over TLS with a certificate from the cluster CA.
    let (cert, key) = cp.serving_cert("webhook", &["IP:127.0.0.1"]).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let (addr, task) = webhook::serve(
        "127.0.0.1:0".parse().unwrap(),
        webhook::router(c.clone(), NS),
        Some(webhook::TlsFiles { cert, key }),
        stop.clone(),
    )
    .await
    .unwrap();

    // Registered as the chart registers them.
    let target = Target::url(&format!("https://{addr}"), cp.ca_pem().as_bytes());
    let vwc = serde_json::to_value(webhooks::metallb_validating(&target)).unwrap();
    let a = send(
        &c,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some(&vwc),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let mut conversion = serde_json::to_value(webhooks::bgppeer_conversion(&target)).unwrap();
    // a merge patch: drop the shipped CRD's Service reference for the URL
    conversion["webhook"]["clientConfig"]["service"] = Value::Null;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    crds.patch(
        "bgppeers.metallb.io",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"conversion": conversion}})),
    )
    .await
    .unwrap();

    // The API server picks up a new webhook configuration asynchronously: wait until a
    // pool that the webhook must deny is denied.
    let pools = coll("metallb.io/v1beta1", "ipaddresspools");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = send(
            &c,
            "POST",
            &pools,
            Some(&pool("probe", &["not-an-address"])),
        )
        .await;
        if a.message().contains("denied the request") {
            break;
        }
        if a.status == 201 {
            send(&c, "DELETE", &format!("{pools}/probe"), None).await;
        }
        assert!(
            Instant::now() < deadline,
            "webhook never took effect: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // ---- IPAddressPool: good admitted; bad and overlapping denied with field path / both names
    let a = send(&c, "POST", &pools, Some(&pool("seed", &["198.18.0.0/24"]))).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = send(
        &c,
        "POST",
        &pools,
        Some(&pool("bad", &["198.18.1.0/24", "nonsense"])),
    )
    .await;
    assert_denied(
        &a,
        "ipaddresspoolvalidationwebhook.metallb.io",
        &["spec.addresses[1]", "nonsense"],
    );
    let a = send(
        &c,
        "POST",
        &pools,
        Some(&pool("overlap", &["198.18.0.128/25"])),
    )
    .await;
    assert_denied(
        &a,
        "ipaddresspoolvalidationwebhook.metallb.io",
        &["overlap", "seed"],
    );
    let mut elsewhere = pool("elsewhere", &["198.18.2.0/24"]);
    elsewhere["metadata"]["namespace"] = json!("elsewhere");
    let a = send(
        &c,
        "POST",
        "/apis/metallb.io/v1beta1/namespaces/elsewhere/ipaddresspools",
        Some(&elsewhere),
    )
    .await;
    assert_denied(
        &a,
        "ipaddresspoolvalidationwebhook.metallb.io",
        &["resource must be created in metallb-system namespace"],
    );
    // an update is checked as well
    let mut seed = send(&c, "GET", &format!("{pools}/seed"), None).await.body;
    seed["spec"]["addresses"] = json!(["198.18.0.0/33"]);
    let a = send(&c, "PUT", &format!("{pools}/seed"), Some(&seed)).await;
    assert_denied(
        &a,
        "ipaddresspoolvalidationwebhook.metallb.io",
        &["spec.addresses[0]"],
    );

    // ---- Community, BFDProfile (delete while referenced), BGPAdvertisement
    let comms = coll("metallb.io/v1beta1", "communities");
    let a = send(
        &c,
        "POST",
        &comms,
        Some(
            &json!({"apiVersion": "metallb.io/v1beta1", "kind": "Community",
        "metadata": {"name": "bad", "namespace": NS},
        "spec": {"communities": [{"name": "x", "value": "not-a-community"}]}}),
        ),
    )
    .await;
    assert_denied(
        &a,
        "communityvalidationwebhook.metallb.io",
        &["spec.communities[0]"],
    );
    let bfds = coll("metallb.io/v1beta1", "bfdprofiles");
    let a = send(
        &c,
        "POST",
        &bfds,
        Some(
            &json!({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
        "metadata": {"name": "fast", "namespace": NS}, "spec": {"receiveInterval": 300}}),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let peers2 = coll("metallb.io/v1beta2", "bgppeers");
    let a = send(&c, "POST", &peers2, Some(&json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "tor", "namespace": NS},
        "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1", "bfdProfile": "fast"}}))).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = send(&c, "DELETE", &format!("{bfds}/fast"), None).await;
    assert_denied(
        &a,
        "bfdprofilevalidationwebhook.metallb.io",
        &["fast", "tor"],
    );
    let advs = coll("metallb.io/v1beta1", "bgpadvertisements");
    let a = send(
        &c,
        "POST",
        &advs,
        Some(
            &json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": "agg", "namespace": NS},
        "spec": {"ipAddressPools": ["seed"], "aggregationLength": 16}}),
        ),
    )
    .await;
    assert_denied(
        &a,
        "bgpadvertisementvalidationwebhook.metallb.io",
        &["aggregationLength"],
    );
    let a = send(
        &c,
        "POST",
        &advs,
        Some(
            &json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": "good", "namespace": NS}, "spec": {"ipAddressPools": ["seed"]}}),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let l2s = coll("metallb.io/v1beta1", "l2advertisements");
    let a = send(
        &c,
        "POST",
        &l2s,
        Some(
            &json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "bad-l2", "namespace": NS},
        "spec": {"nodeSelectors": [{"matchExpressions": [{"key": "rack", "operator": "Near"}]}]}}),
        ),
    )
    .await;
    assert_denied(
        &a,
        "l2advertisementvalidationwebhook.metallb.io",
        &["spec.nodeSelectors[0]"],
    );
    let a = send(
        &c,
        "POST",
        &l2s,
        Some(
            &json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "l2", "namespace": NS}, "spec": {"ipAddressPools": ["seed"]}}),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);

    // ---- BGPPeer: validated, and converted both ways by /convert
    let a = send(
        &c,
        "POST",
        &peers2,
        Some(
            &json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "bad-peer", "namespace": NS},
        "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.300"}}),
        ),
    )
    .await;
    assert_denied(
        &a,
        "bgppeervalidationwebhook.metallb.io",
        &["spec.peerAddress"],
    );
    let peers1 = coll("metallb.io/v1beta1", "bgppeers");
    let a = send(
        &c,
        "POST",
        &peers1,
        Some(
            &json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
        "metadata": {"name": "legacy", "namespace": NS},
        "spec": {"myASN": 64512, "peerASN": 64514, "peerAddress": "192.0.2.2", "holdTime": "90s",
                 "nodeSelectors": [{"matchLabels": {"rack": "a"}}]}}),
        ),
    )
    .await;
    assert_eq!(a.status, 201, "v1beta1 create: {}", a.body);
    assert_eq!(a.body["apiVersion"], "metallb.io/v1beta1");
    let v2 = send(&c, "GET", &format!("{peers2}/legacy"), None).await;
    assert_eq!(v2.status, 200, "{}", v2.body);
    assert_eq!(v2.body["apiVersion"], "metallb.io/v1beta2");
    assert_eq!(
        v2.body["spec"]["nodeSelectors"][0]["matchLabels"]["rack"], "a",
        "{}",
        v2.body
    );
    assert_eq!(v2.body["spec"]["holdTime"], "90s", "{}", v2.body);
    let v1 = send(&c, "GET", &format!("{peers1}/tor"), None).await;
    assert_eq!(v1.status, 200, "{}", v1.body);
    assert_eq!(v1.body["apiVersion"], "metallb.io/v1beta1");
    assert_eq!(v1.body["spec"]["bfdProfile"], "fast");
    assert!(
        v1.body["spec"].get("holdTime").is_none(),
        "absent timers stay absent: {}",
        v1.body
    );
    // the v1beta1 list goes through the webhook too
    let list = send(&c, "GET", &peers1, None).await;
    assert_eq!(
        list.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        list.body
    );

    stop.cancel();
    let _ = task.await;
}

/// The listener serves HTTP/2 and HTTP/1.1 (ALPN): a ConversionReview over each, with
/// curl checking the certificate against the cluster CA.
#[tokio::test]
async fn webhook_listener_serves_h2_and_http1() {
    let test = "webhook_listener_serves_h2_and_http1";
    let Some(cp) = envtest::start_or_skip(test, envtest::Options::default()).await else {
        return;
    };
    let (cert, key) = cp.serving_cert("webhook", &["IP:127.0.0.1"]).unwrap();
    let ca = cp.dir().join("ca-bundle.pem");
    std::fs::write(&ca, cp.ca_pem()).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let (addr, task) = webhook::serve(
        "127.0.0.1:0".parse().unwrap(),
        webhook::router(cp.client(), NS),
        Some(webhook::TlsFiles { cert, key }),
        stop.clone(),
    )
    .await
    .unwrap();
    let body = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "u", "desiredAPIVersion": "metallb.io/v1beta2", "objects": []}})
    .to_string();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "30", flag, "--cacert"])
            .arg(&ca)
            .args(["-H", "Content-Type: application/json", "-d", &body])
            .args(["-w", "\nHTTP_VERSION=%{http_version}"])
            .arg(format!("https://{addr}/convert"))
            .output()
            .await
            .expect("curl (install the curl package)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{flag}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("\"Success\""), "{flag}: {text}");
        assert!(
            text.ends_with(&format!("HTTP_VERSION={version}")),
            "{flag}: {text}"
        );
    }
    stop.cancel();
    let _ = task.await;
}
