//! frr-k8s's FRRConfiguration validating webhook, called by a real kube-apiserver
//! (`METALLB_K8S_ASSETS`, see `metallb_testkit::envtest`).
//!
//! The webhook server runs in this process over TLS with a certificate from the control
//! plane's CA, registered as the chart registers it (`metallb_api::webhooks`: upstream's
//! name, path, operations and `failurePolicy: Fail`), with a URL instead of a Service.

use std::time::{Duration, Instant};

use frr_k8s::webhook::{self, DISABLE_MP_WARNING, GRACEFUL_RESTART_WARNING};
use metallb_api::webhooks::{self, Target};
use metallb_runtime::TlsFiles;
use metallb_testkit::envtest::{self, send, Answer};
use serde_json::{json, Value};

const NS: &str = "frr-k8s-system";
const HOOK: &str = "frrconfigurationsvalidationwebhook.metallb.io";
const CONFIGS: &str = "/apis/frrk8s.metallb.io/v1beta1/namespaces/frr-k8s-system/frrconfigurations";

/// Router 64512 with one neighbor, on the nodes `selector` selects.
fn config(name: &str, address: &str, peer_asn: u32, selector: Value) -> Value {
    json!({"apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "FRRConfiguration",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"nodeSelector": selector, "bgp": {"routers": [{"asn": 64512,
            "neighbors": [{"address": address, "asn": peer_asn}]}]}}})
}

fn rack(r: &str) -> Value {
    json!({"matchLabels": {"rack": r}})
}

fn assert_admitted(a: &Answer, what: &str) {
    assert!(
        a.status == 200 || a.status == 201,
        "{what}: expected admission, got {}: {}",
        a.status,
        a.body
    );
}

fn assert_denied(a: &Answer, parts: &[&str]) {
    let m = a.message();
    assert!(
        m.contains(&format!("admission webhook \"{HOOK}\" denied the request")),
        "expected a denial by {HOOK}, got {}: {}",
        a.status,
        a.body
    );
    for p in parts {
        assert!(m.contains(p), "expected {p:?} in: {m}");
    }
}

#[tokio::test]
async fn frrconfiguration_webhook_is_called_by_the_real_api_server() {
    let test = "frrconfiguration_webhook_is_called_by_the_real_api_server";
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
    for (node, r) in [("node-a", "a"), ("node-b", "b")] {
        let a = send(
            &c,
            "POST",
            "/api/v1/nodes",
            Some(&json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "labels": {"rack": r}}})),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
    }

    // The webhook server, over TLS with a certificate from the cluster CA.
    let (cert, key) = cp.serving_cert("frr-webhook", &["IP:127.0.0.1"]).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let (addr, task) = webhook::serve(
        "127.0.0.1:0".parse().unwrap(),
        c.clone(),
        Some(TlsFiles { cert, key }),
        stop.clone(),
    )
    .await
    .unwrap();
    let target = Target::url(&format!("https://{addr}"), cp.ca_pem().as_bytes());
    let vwc = serde_json::to_value(webhooks::frrk8s_validating(&target)).unwrap();
    let a = send(
        &c,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some(&vwc),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);

    // The API server loads webhook configurations asynchronously: wait until an object
    // only the webhook refuses (the schema takes any selector operator) is refused.
    let bad_selector = json!({"matchExpressions": [{"key": "rack", "operator": "Bogus"}]});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = send(
            &c,
            "POST",
            CONFIGS,
            Some(&config("probe", "192.0.2.99", 64699, bad_selector.clone())),
        )
        .await;
        if a.message().contains("denied the request") {
            assert_denied(&a, &[webhook::INVALID_NODE_SELECTOR, "spec.nodeSelector"]);
            break;
        }
        if a.status == 201 {
            send(&c, "DELETE", &format!("{CONFIGS}/probe"), None).await;
        }
        assert!(
            Instant::now() < deadline,
            "webhook never took effect: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A good object on node-a.
    let a = send(
        &c,
        "POST",
        CONFIGS,
        Some(&config("base", "192.0.2.1", 64600, rack("a"))),
    )
    .await;
    assert_admitted(&a, "base");
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);

    // The same neighbor with another ASN on every node: conflicts on node-a.
    let a = send(
        &c,
        "POST",
        CONFIGS,
        Some(&config("clash", "192.0.2.1", 64601, json!({}))),
    )
    .await;
    assert_denied(
        &a,
        &[
            "frr-k8s-system/base",
            "frr-k8s-system/clash",
            "neighbor 192.0.2.1",
            "resource is invalid for node node-a",
        ],
    );

    // The same conflict on node-b only: nothing to merge it with there.
    let a = send(
        &c,
        "POST",
        CONFIGS,
        Some(&config("clash-b", "192.0.2.1", 64601, rack("b"))),
    )
    .await;
    assert_admitted(&a, "clash-b");

    // An update widening clash-b onto node-a creates the conflict: denied.
    let mut obj = send(&c, "GET", &format!("{CONFIGS}/clash-b"), None)
        .await
        .body;
    obj["spec"]["nodeSelector"] = json!({});
    let a = send(&c, "PUT", &format!("{CONFIGS}/clash-b"), Some(&obj)).await;
    assert_denied(
        &a,
        &[
            "frr-k8s-system/base",
            "frr-k8s-system/clash-b",
            "resource is invalid for node node-a",
        ],
    );

    // The object's own problems, with their field paths: advertising a prefix the router
    // does not have (valid for the schema, invalid for frr-k8s).
    let mut bad = config("bad", "192.0.2.5", 64605, json!({}));
    bad["spec"]["bgp"]["routers"][0]["prefixes"] = json!(["192.0.2.0/24"]);
    bad["spec"]["bgp"]["routers"][0]["neighbors"][0]["toAdvertise"] =
        json!({"allowed": {"prefixes": ["198.51.100.0/24"]}});
    let a = send(&c, "POST", CONFIGS, Some(&bad)).await;
    assert_denied(
        &a,
        &[
            "frr-k8s-system/bad",
            "spec.bgp.routers[0].neighbors[0].toAdvertise.allowed.prefixes[0]",
        ],
    );

    // A Secret that does not exist (yet) never blocks.
    let mut with_secret = config("with-secret", "192.0.2.6", 64606, json!({}));
    with_secret["spec"]["bgp"]["routers"][0]["neighbors"][0]["passwordSecret"] =
        json!({"name": "created-later"});
    let a = send(&c, "POST", CONFIGS, Some(&with_secret)).await;
    assert_admitted(&a, "with-secret");

    // disableMP: admitted with the deprecation warning (the API server's Warning header).
    let mut mp = config("mp", "192.0.2.7", 64607, json!({}));
    mp["spec"]["bgp"]["routers"][0]["neighbors"][0]["disableMP"] = json!(true);
    let a = send(&c, "POST", CONFIGS, Some(&mp)).await;
    assert_admitted(&a, "mp");
    assert!(
        a.warnings.iter().any(|w| w.contains(DISABLE_MP_WARNING)),
        "{:?}",
        a.warnings
    );

    // Turning graceful restart on: admitted with its warning.
    let mut obj = a.body;
    obj["spec"]["bgp"]["routers"][0]["neighbors"][0]["enableGracefulRestart"] = json!(true);
    let a = send(&c, "PUT", &format!("{CONFIGS}/mp"), Some(&obj)).await;
    assert_admitted(&a, "mp update");
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains(GRACEFUL_RESTART_WARNING)),
        "{:?}",
        a.warnings
    );

    // What was admitted is there; what was denied is not.
    let list = send(&c, "GET", CONFIGS, None).await.body;
    let mut names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["base", "clash-b", "mp", "with-secret"]);
    let clash_b = send(&c, "GET", &format!("{CONFIGS}/clash-b"), None)
        .await
        .body;
    assert_eq!(clash_b["spec"]["nodeSelector"], rack("b"));

    stop.cancel();
    let _ = task.await;
}
