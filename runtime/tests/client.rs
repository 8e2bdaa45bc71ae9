//! The shared client settings work against an API server over HTTP: an explicit kubeconfig
//! path is honoured, and the QPS/burst limiter paces requests.

use std::time::Instant;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use metallb_runtime::ClientArgs;

#[tokio::test]
async fn kubeconfig_flag_and_rate_limit() {
    let api = metallb_testkit::start()
        .await
        .expect("test API server starts");
    let args = ClientArgs {
        kubeconfig: Some(api.kubeconfig_path().to_path_buf()),
        kube_context: None,
        kube_api_qps: 10.0,
        kube_api_burst: 2,
    };
    let client = args.client().await.expect("client from kubeconfig");
    let namespaces: Api<Namespace> = Api::all(client);
    let start = Instant::now();
    for _ in 0..7 {
        let list = namespaces
            .list(&ListParams::default())
            .await
            .expect("list namespaces");
        assert!(list
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default")));
    }
    // 2 requests ride the burst, the other 5 wait 100 ms each at 10 qps.
    let took = start.elapsed();
    assert!(
        took.as_millis() >= 450,
        "7 requests at 10 qps / burst 2 must be paced, took {took:?}"
    );

    let unlimited = ClientArgs {
        kube_api_qps: 0.0,
        ..args.clone()
    };
    let client = unlimited.client().await.expect("unlimited client");
    Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .expect("list");
}

#[tokio::test]
async fn missing_kubeconfig_is_a_clear_error() {
    let args = ClientArgs {
        kubeconfig: Some("/nonexistent/kubeconfig".into()),
        ..ClientArgs::default()
    };
    let err = match args.client().await {
        Ok(_) => panic!("a missing kubeconfig must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
}
