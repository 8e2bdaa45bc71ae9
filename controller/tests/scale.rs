//! Scale figures (ignored by default; run in release mode):
//!
//! `cargo test --release -p metallb-controller --test scale -- --ignored --nocapture`
//!
//! * full resync after a restart with 10,000 allocated services: time from start to
//!   "synced, 0 writes" (target < 1 s);
//! * RSS of the `metallb-controller` binary holding 10,000 services (target < 50 MiB);
//! * where a 10,000-Service list's time goes (`list_10k_breakdown`).
//!
//! `SCALE_SERVICES=n` changes the count (`=1` shows the fixed cost); `SCALE_WRAPPER` runs
//! the binary under a profiler, e.g.
//! `SCALE_WRAPPER="valgrind --tool=massif --massif-out-file=/tmp/massif.out"` (the binary
//! is stopped with SIGTERM so the profiler writes its report).

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use kube::api::PostParams;
use metallb_testkit::store::{PatchType, WriteCtx};
use serde_json::json;

/// Number of Services (`SCALE_SERVICES`, default 10,000; smaller values show the fixed cost).
fn n() -> usize {
    std::env::var("SCALE_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

async fn populate(c: &kube::Client) {
    create_pool(c, "big", &["198.18.0.0/15"]).await;
    let api = services(c);
    let t = Instant::now();
    futures::stream::iter(0..n())
        .map(|i| {
            let api = api.clone();
            async move {
                // 10,000 services exceed the node-port range (as in a real cluster).
                let mut svc = lb(&format!("svc-{i:05}"), json!({}));
                if let Some(spec) = svc.spec.as_mut() {
                    spec.allocate_load_balancer_node_ports = Some(false);
                }
                api.create(&PostParams::default(), &svc)
                    .await
                    .expect("service created");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    eprintln!("created {} services in {:?}", n(), t.elapsed());
}

/// 10,000 services as an earlier controller left them (status and pool annotation), written
/// straight into the store (HTTP creation of 10,000 objects is slow in the test server).
async fn populate_allocated(api: &metallb_testkit::TestApi) {
    create_pool(&api.client(), "big", &["198.18.0.0/15"]).await;
    let store = api.store();
    let rt = store.resolve("", "v1", "services").expect("services");
    let ctx = WriteCtx {
        field_manager: "earlier-controller".into(),
        ..Default::default()
    };
    let t = Instant::now();
    for i in 0..n() {
        let name = format!("svc-{i:05}");
        let mut svc = serde_json::to_value(lb(
            &name,
            json!({"metallb.io/ip-allocated-from-pool": "big"}),
        ))
        .unwrap();
        svc["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
        store.create(&rt, Some("apps"), svc, &ctx).expect("created");
        // 198.18.0.0/15 holds 131,072 addresses (enough for SCALE_SERVICES=100000)
        let ip =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + i as u32);
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
        store
            .patch(
                &rt,
                Some("apps"),
                &name,
                PatchType::Merge,
                status.to_string().as_bytes(),
                true,
                &ctx,
            )
            .expect("status written");
    }
    eprintln!("stored {} allocated services in {:?}", n(), t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "scale figure; run with --release -- --ignored"]
async fn resync_10k_after_restart() {
    let api = server().await;
    let c = api.client();
    populate_allocated(&api).await;
    // First start: adopts every address, writes only the pool status and the
    // ConfigurationState.
    let mut first = spawn(c.clone());
    let p = first.synced().await;
    eprintln!(
        "first start: {} writes, {} allocated, listed after {:?}, decided in {:?}",
        p.writes, p.allocated, p.listed_after, p.initial_decide
    );
    assert_eq!(p.allocated, n());
    assert!(p.writes <= 2, "{p:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.stop().await;
    let rv = api.resource_version();
    let t = Instant::now();
    let mut second = spawn(c.clone());
    let p = second.synced().await;
    let took = t.elapsed();
    eprintln!(
        "resync after restart: synced in {took:?} (listed after {:?}, decided in {:?}, written in {:?}), {} writes, {} allocated, {} pending",
        p.listed_after, p.initial_decide, p.initial_write, p.writes, p.allocated, p.pending
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.writes, 0);
    assert_eq!(second.progress.borrow().writes, 0);
    assert_eq!(p.allocated, n());
    assert_eq!(api.resource_version(), rv, "nothing changed");
    second.stop().await;
}

/// Allocation of 10,000 new services through the API (slow: bounded by the test server's
/// write path).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow scale figure"]
async fn allocate_10k_new() {
    let api = server().await;
    let c = api.client();
    populate(&c).await;
    let t = Instant::now();
    let mut ctl = spawn(c.clone());
    ctl.progress
        .wait_for(|p| p.synced && p.allocated == n() && p.pending == 0)
        .await
        .unwrap();
    eprintln!(
        "decided {} allocations after {:?}; writing...",
        n(),
        t.elapsed()
    );
    let mut last = ctl.progress.borrow().writes;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = ctl.progress.borrow().writes;
        if now == last {
            break;
        }
        last = now;
    }
    eprintln!(
        "allocated and written {} services in {:?} ({last} writes)",
        n(),
        t.elapsed()
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "scale figure; run with --release -- --ignored"]
async fn binary_rss_with_10k_services() {
    let api = server().await;
    populate_allocated(&api).await;
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin_addr = admin.local_addr().unwrap();
    drop(admin);
    let t = Instant::now();
    let mut cmd = match std::env::var("SCALE_WRAPPER") {
        Ok(w) if !w.is_empty() => {
            let mut parts = w.split_whitespace();
            let mut c = tokio::process::Command::new(parts.next().unwrap());
            c.args(parts).arg(env!("CARGO_BIN_EXE_metallb-controller"));
            c
        }
        _ => tokio::process::Command::new(env!("CARGO_BIN_EXE_metallb-controller")),
    };
    let mut child = cmd
        .arg("--kubeconfig")
        .arg(api.kubeconfig_path())
        .args([
            "--namespace",
            NS,
            "--webhook-mode",
            "disabled",
            "--kube-api-qps",
            "0",
        ])
        .arg("--admin-addr")
        .arg(admin_addr.to_string())
        .env("METALLB_LOG_LEVEL", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("controller binary starts");
    let pid = child.id().expect("pid");
    let http = reqwest_less_get(admin_addr);
    // Ready = initial resync done; then wait until every service shows an address.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !http("/readyz").await.is_some_and(|b| b.starts_with("ok")) {
        assert!(Instant::now() < deadline, "controller never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_after = t.elapsed();
    loop {
        let m = http("/metrics").await.unwrap_or_default();
        if m.contains(&format!(
            "metallb_allocator_addresses_in_use_total{{pool=\"big\"}} {}",
            n()
        )) {
            break;
        }
        assert!(Instant::now() < deadline, "not all services allocated");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_default()
            .to_string()
    };
    eprintln!(
        "binary: ready after {ready_after:?}, all {} allocated after {:?}; {} {}",
        n(),
        t.elapsed(),
        rss("VmRSS"),
        rss("VmHWM")
    );
    let kb: u64 = rss("VmRSS")
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SIGTERM (clean exit: a wrapper such as massif writes its report), then wait.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        child.kill().await.ok();
    }
    assert!(kb > 0);
    // the target is for the default 10,000 Services; other counts only print the figure
    if n() == 10_000 {
        assert!(kb < 50 * 1024, "RSS {kb} kB over the 50 MiB target");
    }
}

/// A minimal HTTP GET (no extra client dependency).
fn reqwest_less_get(
    addr: std::net::SocketAddr,
) -> impl Fn(&'static str) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>
{
    move |path| {
        Box::pin(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.ok()?;
            let text = String::from_utf8_lossy(&buf).to_string();
            text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
        })
    }
}

/// Where the time of a 10,000-Service list goes (server + transfer + decoding).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "scale figure; run with --release -- --ignored"]
async fn list_10k_breakdown() {
    use k8s_openapi::api::core::v1::Service;
    let api = server().await;
    populate_allocated(&api).await;
    let c = api.client();
    let svc: kube::Api<Service> = kube::Api::all(c.clone());
    for limit in [None, Some(500u32)] {
        let t = Instant::now();
        let mut n = 0;
        let mut token: Option<String> = None;
        loop {
            let mut lp = kube::api::ListParams::default();
            if let Some(l) = limit {
                lp = lp.limit(l);
            }
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = svc.list(&lp).await.unwrap();
            n += page.items.len();
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        eprintln!("typed list limit={limit:?}: {n} in {:?}", t.elapsed());
    }
    let t = Instant::now();
    let raw = c
        .request_text(
            http::Request::get("/api/v1/services")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    eprintln!("raw list: {} bytes in {:?}", raw.len(), t.elapsed());
    let t = Instant::now();
    let _: kube::core::ObjectList<Service> = serde_json::from_str(&raw).unwrap();
    eprintln!("decode only: {:?}", t.elapsed());
}
