//! Bulk: many LoadBalancer Services (with their EndpointSlices) created at once, with the
//! product at its default flags. Prints the API server's own pace (how long creating them
//! took), when every Service had its IP after the last was created, and when the external
//! router had every /32 via every node after that.
//!
//! `E2E_BULK=N` sets the count (default 1,000). Runs on the API server the lab picks (the
//! real kube-apiserver in CI). Needs root and FRR; skips loudly without them outside CI.

use metallb_testkit::procstat::cpu_seconds;
use std::collections::{BTreeMap, HashSet};
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

/// CPU seconds used so far by the machine's processes of these names (`/proc/*/comm`):
/// the API server, etcd and the FRR daemons, which the lab starts through wrappers.
fn cpu_by_name(names: &[&str]) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = names.iter().map(|n| (n.to_string(), 0.0)).collect();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // prefixes: the lab's copies of the Kubernetes binaries carry a suffix, and a
        // command name is cut at 15 characters
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if let Some(name) = names.iter().find(|n| comm.trim().starts_with(*n)) {
            *out.get_mut(*name).expect("every name is in") += cpu_seconds(pid);
        }
    }
    out
}

/// What `cpu_by_name` reports on.
const OTHERS: &[&str] = &[
    "kube-apiserver",
    "etcd",
    "kube-controller",
    "bgpd",
    "zebra",
    "bfdd",
    "staticd",
    "mgmtd",
    "bird",
];

/// The machine's busy CPU seconds (all cores), from `/proc/stat`.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = (stat.lines().next().unwrap_or_default().split_whitespace())
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait
    let busy: u64 = (cpu.iter().enumerate())
        .filter(|(i, _)| *i != 3 && *i != 4)
        .take(8)
        .map(|(_, v)| v)
        .sum();
    busy as f64 / 100.0
}

/// The API server's request counters (`apiserver_request_total`), summed by verb,
/// resource and subresource.
fn api_requests(lab: &Lab) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let Ok(text) = lab.block_on(lab.client().request_text(req)) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            (labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\""))))
            .map_or("", |v| v.trim_end_matches('"'))
            .to_string()
        };
        let mut key = format!("{} {}", label("verb"), label("resource"));
        let sub = label("subresource");
        if !sub.is_empty() {
            key = format!("{key}/{sub}");
        }
        *out.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// What the product and the rest of the machine did during a window.
struct Load {
    busy: f64,
    product: Vec<(String, u32, f64)>,
    others: BTreeMap<String, f64>,
    requests: BTreeMap<String, f64>,
    at: Instant,
}

impl Load {
    fn now(lab: &Lab) -> Self {
        Load {
            busy: machine_busy_seconds(),
            product: (lab.product_pids().into_iter())
                .map(|(name, pid)| (name, pid, cpu_seconds(pid)))
                .collect(),
            others: cpu_by_name(OTHERS),
            requests: api_requests(lab),
            at: Instant::now(),
        }
    }

    /// A report of the window from `self` to now.
    fn report(&self, lab: &Lab, what: &str) -> String {
        let end = Load::now(lab);
        let secs = end.at.duration_since(self.at).as_secs_f64();
        let mut out = format!(
            "{what} ({secs:.1} s): the machine busy {:.0}% of its {} cores",
            100.0 * (end.busy - self.busy) / secs / cores() as f64,
            cores()
        );
        for (name, pid, t0) in &self.product {
            out.push_str(&format!(", {name} {:.1} s CPU", cpu_seconds(*pid) - t0));
        }
        for (name, t) in &end.others {
            let d = t - self.others.get(name).copied().unwrap_or(0.0);
            if d >= 0.1 {
                out.push_str(&format!(", {name} {d:.1} s"));
            }
        }
        let mut reqs: Vec<(String, f64)> = (end.requests.iter())
            .map(|(k, v)| (k.clone(), v - self.requests.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d >= 1.0)
            .collect();
        reqs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = reqs.iter().map(|r| r.1).sum();
        out.push_str(&format!("\n  API requests: {total:.0}, the most frequent:"));
        for (k, d) in reqs.iter().take(10) {
            out.push_str(&format!("\n    {d:>7.0}  {k}"));
        }
        out
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
    let load = Load::now(&lab);
    let t = Instant::now();
    lab.create_typed_services_at_once("ClusterIP", &plain, &lab.endpoints_everywhere(1), 32)
        .expect("create the ClusterIP Services");
    let baseline = t.elapsed();
    let baseline_load = load.report(&lab, "creating the ClusterIP Services");

    let with_ips = count_with_ips(&lab);
    let names: Vec<String> = (0..n).map(|i| format!("bulk{i}")).collect();
    let load = Load::now(&lab);
    let start = Instant::now();
    lab.create_services_at_once(&names, &lab.endpoints_everywhere(1), 32)
        .expect("create");
    let created = start.elapsed();
    let burst_load = load.report(&lab, "creating the LoadBalancer Services");
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
         (upstream MetalLB: 3 s speaker batching + 3 s frr-k8s debounce + frr-reload)\n\
         {baseline_load}\n{burst_load}",
        lab.api_kind().map_or("?", |k| k.name()),
        baseline_n as f64 / baseline.as_secs_f64(),
        n as f64 / created.as_secs_f64(),
    );
}
