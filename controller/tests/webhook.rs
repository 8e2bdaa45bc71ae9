//! Admission and conversion webhooks: AdmissionReview / ConversionReview JSON posted to the
//! axum router, which lists current objects from the in-memory API server.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use kube::api::{Api, PostParams};
use metallb_api::metallb::{BFDProfile, BGPPeer};
use metallb_controller::webhook;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn post(router: &axum::Router, path: &str, body: Value) -> Value {
    let resp = router
        .clone()
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn review(op: &str, kind: (&str, &str), ns: &str, name: &str, object: Value) -> Value {
    let (version, k) = kind;
    let (obj, old) = if op == "DELETE" {
        (Value::Null, object)
    } else {
        (object, Value::Null)
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f1c-uid",
            "kind": {"group": "metallb.io", "version": version, "kind": k},
            "resource": {"group": "metallb.io", "version": version, "resource": format!("{}s", k.to_lowercase())},
            "requestKind": {"group": "metallb.io", "version": version, "kind": k},
            "requestResource": {"group": "metallb.io", "version": version, "resource": format!("{}s", k.to_lowercase())},
            "name": name,
            "namespace": ns,
            "operation": op,
            "userInfo": {"username": "admin"},
            "object": obj,
            "oldObject": old,
            "dryRun": false
        }
    })
}

fn pool_json(ns: &str, name: &str, addrs: &[&str]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"addresses": addrs}
    })
}

fn allowed(resp: &Value) -> bool {
    assert_eq!(resp["response"]["uid"], "3f1c-uid");
    resp["response"]["allowed"].as_bool().unwrap()
}

fn message(resp: &Value) -> String {
    resp["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn pool_validation_namespace_and_overlap() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "existing", &["192.0.2.0/24"]).await;
    let r = webhook::router(c.clone(), NS);
    let kind = ("v1beta1", "IPAddressPool");

    let ok = post(
        &r,
        webhook::PATH_IPADDRESSPOOL,
        review(
            "CREATE",
            kind,
            NS,
            "new",
            pool_json(NS, "new", &["198.18.0.0/24"]),
        ),
    )
    .await;
    assert!(allowed(&ok), "{ok}");

    let wrong_ns = post(
        &r,
        webhook::PATH_IPADDRESSPOOL,
        review(
            "CREATE",
            kind,
            "default",
            "new",
            pool_json("default", "new", &["198.18.0.0/24"]),
        ),
    )
    .await;
    assert!(!allowed(&wrong_ns));
    assert_eq!(
        message(&wrong_ns),
        "resource must be created in metallb-system namespace"
    );

    let overlap = post(
        &r,
        webhook::PATH_IPADDRESSPOOL,
        review(
            "CREATE",
            kind,
            NS,
            "another",
            pool_json(NS, "another", &["192.0.2.128/25"]),
        ),
    )
    .await;
    assert!(!allowed(&overlap));
    let m = message(&overlap);
    assert!(
        m.contains("metallb-system/another") && m.contains("metallb-system/existing"),
        "{m}"
    );

    let bad = post(
        &r,
        webhook::PATH_IPADDRESSPOOL,
        review(
            "CREATE",
            kind,
            NS,
            "bad",
            pool_json(NS, "bad", &["10.0.0.0/33"]),
        ),
    )
    .await;
    assert!(!allowed(&bad));
    assert!(
        message(&bad).contains("spec.addresses[0]"),
        "{}",
        message(&bad)
    );

    // Updating the existing pool within its own range is fine.
    let upd = post(
        &r,
        webhook::PATH_IPADDRESSPOOL,
        review(
            "UPDATE",
            kind,
            NS,
            "existing",
            pool_json(NS, "existing", &["192.0.2.0/25"]),
        ),
    )
    .await;
    assert!(allowed(&upd), "{upd}");
}

#[tokio::test]
async fn bfd_profile_delete_denied_while_referenced() {
    let api = server().await;
    let c = api.client();
    let profiles: Api<BFDProfile> = Api::namespaced(c.clone(), NS);
    let fast: BFDProfile = serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
        "metadata": {"name": "fast", "namespace": NS}, "spec": {}
    }))
    .unwrap();
    profiles
        .create(&PostParams::default(), &fast)
        .await
        .unwrap();
    let peer_obj = json!({
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "router", "namespace": NS},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "bfdProfile": "fast"}
    });
    let r = webhook::router(c.clone(), NS);
    // The peer validates even though creation order is free (bfdProfile is blanked).
    let ok = post(
        &r,
        webhook::PATH_BGPPEER,
        review(
            "CREATE",
            ("v1beta2", "BGPPeer"),
            NS,
            "router",
            peer_obj.clone(),
        ),
    )
    .await;
    assert!(allowed(&ok), "{ok}");
    let peers: Api<BGPPeer> = Api::namespaced(c.clone(), NS);
    peers
        .create(
            &PostParams::default(),
            &serde_json::from_value(peer_obj).unwrap(),
        )
        .await
        .unwrap();
    let fast_json = serde_json::to_value(&fast).unwrap();
    let del = post(
        &r,
        webhook::PATH_BFDPROFILE,
        review(
            "DELETE",
            ("v1beta1", "BFDProfile"),
            NS,
            "fast",
            fast_json.clone(),
        ),
    )
    .await;
    assert!(!allowed(&del));
    assert_eq!(
        message(&del),
        "failed to delete BFDProfile fast, used by BGPPeer router"
    );
    let other = post(
        &r,
        webhook::PATH_BFDPROFILE,
        review("DELETE", ("v1beta1", "BFDProfile"), NS, "slow", fast_json),
    )
    .await;
    assert!(allowed(&other));
}

#[tokio::test]
async fn bgppeer_disable_mp_warns_and_still_validates() {
    let api = server().await;
    let r = webhook::router(api.client(), NS);
    let peer = |asn: Value| {
        json!({
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"myASN": asn, "peerASN": 64501, "peerAddress": "10.0.0.1", "disableMP": true}
        })
    };
    let ok = post(
        &r,
        webhook::PATH_BGPPEER,
        review(
            "CREATE",
            ("v1beta2", "BGPPeer"),
            NS,
            "p",
            peer(json!(64500)),
        ),
    )
    .await;
    assert!(allowed(&ok));
    assert_eq!(ok["response"]["warnings"][0], webhook::DISABLE_MP_WARNING);
    let bad = post(
        &r,
        webhook::PATH_BGPPEER,
        review("CREATE", ("v1beta2", "BGPPeer"), NS, "p", peer(json!(0))),
    )
    .await;
    assert!(!allowed(&bad), "{bad}");
}

#[tokio::test]
async fn conversion_v1beta1_to_v1beta2_and_back() {
    let api = server().await;
    let r = webhook::router(api.client(), NS);
    let v1 = json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1",
                 "holdTime": "90s",
                 "nodeSelectors": [{"matchLabels": {"rack": "a"}}]}
    });
    let req = |desired: &str, obj: Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": "conv-1", "desiredAPIVersion": desired, "objects": [obj]}
        })
    };
    let up = post(
        &r,
        webhook::PATH_CONVERT,
        req("metallb.io/v1beta2", v1.clone()),
    )
    .await;
    assert_eq!(up["response"]["uid"], "conv-1");
    assert_eq!(up["response"]["result"]["status"], "Success");
    let v2 = up["response"]["convertedObjects"][0].clone();
    assert_eq!(v2["apiVersion"], "metallb.io/v1beta2");
    assert_eq!(v2["spec"]["nodeSelectors"][0]["matchLabels"]["rack"], "a");
    let down = post(&r, webhook::PATH_CONVERT, req("metallb.io/v1beta1", v2)).await;
    let back = &down["response"]["convertedObjects"][0];
    assert_eq!(back["apiVersion"], "metallb.io/v1beta1");
    assert_eq!(back["spec"]["holdTime"], "90s");
    let bad = post(&r, webhook::PATH_CONVERT, req("metallb.io/v9", v1)).await;
    assert_eq!(bad["response"]["result"]["status"], "Failure");
}

/// The HTTPS listener, with a throwaway certificate from the `openssl` CLI (skipped when
/// the tool is missing).
#[tokio::test]
async fn serves_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        eprintln!("openssl not available; skipping");
        return;
    }
    let api = server().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let (addr, task) = webhook::serve(
        "127.0.0.1:0".parse().unwrap(),
        webhook::router(api.client(), NS),
        Some(webhook::TlsFiles { cert, key }),
        stop.clone(),
    )
    .await
    .unwrap();
    // A raw TLS handshake with certificate checks off, then an HTTP/1.1 request.
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = out else { return };
    use tokio::io::AsyncWriteExt;
    let body = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "u", "desiredAPIVersion": "metallb.io/v1beta2", "objects": []}})
    .to_string();
    let req = format!(
        "POST /convert HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(req.as_bytes()).await.unwrap();
    // generous: a TLS handshake takes milliseconds, but openssl may start slowly on a busy
    // machine
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"Success\""), "{text}");
    stop.cancel();
    let _ = task.await;
}
