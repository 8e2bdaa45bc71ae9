//! Bulk: many LoadBalancer Services (with their EndpointSlices) created at once, with the
//! product at its default flags. Prints the API server's own pace (how long creating them
//! took), when every Service had its IP after the last was created, and when the external
//! router had every /32 via every node after that.
//!
//! `E2E_BULK=N` sets the count (default 1,000). Runs on the API server the lab picks (the
//! real kube-apiserver in CI). Needs root and FRR; skips loudly without them outside CI.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use metallb_e2e::objects::{self, APP_NS};
use metallb_e2e::{require_full_stack, FrrQueries, Lab, LabOptions, Stack};
use serde_json::Value;

fn count() -> usize {
    std::env::var("E2E_BULK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// Counts the Services with an ingress IP as the watch reports them (a list of 10,000
/// Services every few milliseconds would load the API server it measures).
fn count_with_ips(lab: &Lab) -> Arc<AtomicUsize> {
    use futures::StreamExt as _;
    use kube::runtime::watcher;
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let api: Api<Service> = Api::namespaced(lab.client(), APP_NS);
    lab.spawn(async move {
        let mut with_ip = HashSet::new();
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let Ok(ev) = ev else { continue };
            let (upserts, deletes): (Vec<Service>, Vec<Service>) = match ev {
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => (vec![s], vec![]),
                watcher::Event::Delete(s) => (vec![], vec![s]),
                watcher::Event::Init | watcher::Event::InitDone => (vec![], vec![]),
            };
            for s in deletes {
                with_ip.remove(&s.metadata.name);
            }
            for s in upserts {
                let has = (s.status.as_ref())
                    .and_then(|st| st.load_balancer.as_ref())
                    .and_then(|lb| lb.ingress.as_ref())
                    .is_some_and(|i| !i.is_empty());
                match has {
                    true => with_ip.insert(s.metadata.name),
                    false => with_ip.remove(&s.metadata.name),
                };
            }
            c.store(with_ip.len(), Ordering::SeqCst);
        }
    });
    count
}

/// Prefixes the external router has with one usable path per node: from its kernel table
/// when it has a namespace (cheap), else from its BGP table.
fn routed(lab: &Lab, nodes: usize) -> usize {
    if let Some(n) = lab.ext.fib_v4_routes_via(nodes) {
        return n;
    }
    let Some(v) = lab.ext.query_json("show bgp ipv4 unicast json") else {
        return 0;
    };
    v.get("routes")
        .and_then(Value::as_object)
        .map(|routes| {
            routes
                .values()
                .filter(|paths| {
                    let usable = (paths.as_array().into_iter().flatten())
                        .filter(|p| {
                            p.get("valid").and_then(Value::as_bool) == Some(true)
                                && (p.get("bestpath").is_some() || p.get("multipath").is_some())
                        })
                        .count();
                    usable >= nodes
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn bulk_services_get_ips_and_routes() {
    if !require_full_stack("bulk_services_get_ips_and_routes") {
        return;
    }
    let n = count();
    let mut o = LabOptions::new("bulk");
    o.stack = Stack::Full;
    let lab = Lab::start(o).expect("lab");
    // a /20 holds 4,096 addresses, a /18 16,384
    lab.apply_seed_config(if n <= 4000 {
        "198.18.0.0/20"
    } else {
        "198.18.0.0/18"
    })
    .unwrap();
    let nodes = lab.nodes.len();
    // sessions up and the first route through (not what is measured)
    lab.create_service("warmup", false, &lab.endpoints_everywhere(1))
        .unwrap();
    let ip = lab
        .wait_service_ips("warmup", 1, Duration::from_secs(60))
        .unwrap()[0]
        .clone();
    lab.wait_ext_nexthops(
        &objects::host_prefix(&ip),
        &lab.all_node_v4(),
        Duration::from_secs(60),
    )
    .unwrap();

    // The API server's own pace, in the same run: ClusterIP Services (with their
    // EndpointSlices), which the product watches but does not act on, created the same way.
    let baseline_n = n.min(1000);
    let plain: Vec<String> = (0..baseline_n).map(|i| format!("plain{i}")).collect();
    let t = Instant::now();
    lab.create_typed_services_at_once("ClusterIP", &plain, &lab.endpoints_everywhere(1), 32)
        .expect("create the ClusterIP Services");
    let baseline = t.elapsed();

    let with_ips = count_with_ips(&lab);
    let names: Vec<String> = (0..n).map(|i| format!("bulk{i}")).collect();
    let start = Instant::now();
    lab.create_services_at_once(&names, &lab.endpoints_everywhere(1), 32)
        .expect("create");
    let created = start.elapsed();
    let last_created = Instant::now();

    let want = n + 1; // and the warm-up
    let deadline = Duration::from_secs(300);
    let ips_after = loop {
        if with_ips.load(Ordering::SeqCst) >= want {
            break last_created.elapsed();
        }
        assert!(
            last_created.elapsed() < deadline,
            "not every Service has an IP {deadline:?} after the last was created"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let ips_at = Instant::now();
    let routed_after = loop {
        if routed(&lab, nodes) >= want {
            break ips_at.elapsed();
        }
        assert!(
            ips_at.elapsed() < deadline,
            "the external router lacks routes {deadline:?} after every Service had its IP \
             ({} of {want} routed via {nodes} nodes)",
            routed(&lab, nodes)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "\n===== bulk: {n} LoadBalancer Services created at once (API: {}, default flags) =====\n\
         the API server's own pace: {baseline_n} ClusterIP Services (+ EndpointSlice each, \
         32 in flight) in {baseline:.2?} ({:.0} Services/s)\n\
         created (Service + EndpointSlice each, 32 in flight): {created:.2?} \
         ({:.0} Services/s while the product works)\n\
         every Service has its IP:                         {ips_after:.2?} after the last was created\n\
         every /32 via all {nodes} nodes on the external router: {routed_after:.2?} after that\n\
         (upstream MetalLB: 3 s speaker batching + 3 s frr-k8s debounce + frr-reload)",
        lab.api_kind().map_or("?", |k| k.name()),
        baseline_n as f64 / baseline.as_secs_f64(),
        n as f64 / created.as_secs_f64(),
    );
}
