//! Memory and latency figures of the all-in-one `metallb-speaker` process at scale.
//!
//! The test API server runs in this process and is filled with 1,000 Nodes, 10,000
//! LoadBalancer Services (each with an EndpointSlice of three endpoints on other nodes,
//! all announced by the measured node), 2,000 FRRConfigurations (another speaker's object
//! and a user's object per other node) and the MetalLB configuration. `metallb-speaker`
//! runs as a separate process against its kubeconfig, with the embedded frr-k8s component
//! driving a stand-in FRR (`--vtysh /bin/true`: accepts every batch, reports nothing),
//! so its RSS (`/proc/<pid>/status`) is its own.
//!
//! `cargo bench -p metallb-speaker --bench rss` (scale with `RSS_SERVICES`, `RSS_NODES`;
//! `RSS_VARIANTS=embedded,chart` also runs it with the chart's malloc settings; after the
//! one-change figure, `RSS_BURST` Services are deleted `RSS_BURST_PACE_MS` apart and the
//! speaker's CPU per change at this scale is printed).
//! Prints figures; asserts only sanity (the object is complete, RSS below 256 MiB).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use metallb_api::frrk8s::FRRConfiguration;
use metallb_api::metallb::{BGPAdvertisement, BGPPeer, IPAddressPool, ServiceBGPStatus};
use metallb_testkit::procstat::cpu_seconds;
use serde_json::{json, Value};

const NS: &str = "metallb-system";
const NODE: &str = "node-0000";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

async fn create_all<K>(api: Api<K>, items: Vec<Value>)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    futures::stream::iter(items)
        .map(|v| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &obj::<K>(v))
                    .await
                    .expect("create");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
}

fn ip_of(i: usize) -> String {
    format!("10.128.{}.{}", i / 250, 1 + i % 250)
}

async fn fill(client: &Client, services: usize, nodes: usize) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": NS}})),
        )
        .await
        .expect("namespace");
    create_all(
        Api::<Node>::all(client.clone()),
        (0..nodes)
            .map(|i| {
                let n = format!("node-{i:04}");
                json!({"metadata": {"name": n, "labels": {
                    "kubernetes.io/hostname": n, "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}}})
            })
            .collect(),
    )
    .await;
    let ns = |c: &Client| c.clone();
    create_all(
        Api::<IPAddressPool>::namespaced(ns(client), NS),
        vec![json!({"metadata": {"name": "pool", "namespace": NS},
                    "spec": {"addresses": ["10.128.0.0/16"]}})],
    )
    .await;
    create_all(
        Api::<BGPPeer>::namespaced(ns(client), NS),
        (0..2)
            .map(|i| {
                json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
                       "metadata": {"name": format!("tor-{i}"), "namespace": NS},
                       "spec": {"myASN": 64512, "peerASN": 65000 + i, "peerAddress": format!("172.18.0.{}", i + 1)}})
            })
            .collect(),
    )
    .await;
    create_all(
        Api::<BGPAdvertisement>::namespaced(ns(client), NS),
        vec![json!({"metadata": {"name": "ad", "namespace": NS}, "spec": {}})],
    )
    .await;
    // other nodes' speaker objects and users' objects
    let mut frr = Vec::new();
    for i in 1..nodes {
        let n = format!("node-{i:04}");
        let prefixes: Vec<String> = (0..10)
            .map(|k| format!("{}/32", ip_of(i * 10 + k)))
            .collect();
        frr.push(json!({"metadata": {"name": format!("metallb-{n}"), "namespace": NS},
            "spec": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": n}},
                     "bgp": {"routers": [{"asn": 64512, "prefixes": prefixes,
                        "neighbors": [{"address": "172.18.0.1", "asn": 65000, "toAdvertise": {"allowed": {"prefixes": prefixes}}},
                                      {"address": "172.18.0.2", "asn": 65001, "toAdvertise": {"allowed": {"prefixes": prefixes}}}]}]}}}));
        frr.push(json!({"metadata": {"name": format!("user-{n}"), "namespace": NS},
            "spec": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": n}},
                     "bgp": {"routers": [{"asn": 64512,
                        "neighbors": [{"address": "172.18.0.9", "asn": 65009, "toReceive": {"allowed": {"mode": "all"}}}]}]}}}));
    }
    frr.push(json!({"metadata": {"name": "user-all", "namespace": NS},
        "spec": {"bgp": {"routers": [{"asn": 64512,
            "neighbors": [{"address": "172.18.0.9", "asn": 65009}]}]}}}));
    let t = Instant::now();
    create_all(Api::<FRRConfiguration>::namespaced(ns(client), NS), frr).await;
    eprintln!("  FRRConfigurations: {:.1}s", t.elapsed().as_secs_f64());
    let t = Instant::now();

    let svc_api = Api::<Service>::namespaced(client.clone(), "default");
    futures::stream::iter(0..services)
        .map(|i| {
            let api = svc_api.clone();
            async move {
                let name = format!("svc-{i:05}");
                api.create(
                    &PostParams::default(),
                    &obj(json!({"metadata": {"name": name, "namespace": "default",
                                             "labels": {"app": name}},
                                "spec": {"type": "LoadBalancer", "selector": {"app": name}, "allocateLoadBalancerNodePorts": false,
                                         "ports": [{"port": 80, "targetPort": 8080}]}})),
                )
                .await
                .expect("service");
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"status": {"loadBalancer": {"ingress": [{"ip": ip_of(i)}]}}}),
                    ),
                )
                .await
                .expect("service status");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    eprintln!("  Services: {:.1}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    create_all(
        Api::<EndpointSlice>::namespaced(client.clone(), "default"),
        (0..services)
            .map(|i| {
                let name = format!("svc-{i:05}");
                json!({"metadata": {"name": format!("{name}-x1y2z"), "namespace": "default",
                        "labels": {"kubernetes.io/service-name": name,
                                   "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                       "addressType": "IPv4",
                       "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
                       "endpoints": (0..3).map(|k| {
                           let node = 1 + (i * 3 + k) % (nodes - 1).max(1);
                           json!({"addresses": [format!("10.244.{}.{}", node % 250, 1 + (i + k) % 250)],
                                  "conditions": {"ready": true, "serving": true, "terminating": false},
                                  "nodeName": format!("node-{node:04}"),
                                  "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("{name}-pod-{k}")}})
                       }).collect::<Vec<_>>()})
            })
            .collect(),
    )
    .await;
    eprintln!("  EndpointSlices: {:.1}s", t.elapsed().as_secs_f64());
}

/// VmRSS, VmHWM, RssAnon (heap, stacks) and RssFile (the binary's pages), in kB.
fn proc_status(pid: u32) -> (u64, u64, u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        field("VmRSS:"),
        field("VmHWM:"),
        field("RssAnon:"),
        field("RssFile:"),
    )
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn prefixes_of(c: &FRRConfiguration) -> usize {
    c.spec
        .bgp
        .as_ref()
        .and_then(|b| b.routers.first())
        .map(|r| r.prefixes.len())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let services = env_usize("RSS_SERVICES", 10_000);
    let nodes = env_usize("RSS_NODES", 1_000).max(2);
    let api = metallb_testkit::start().await.expect("test API server");
    let client = api.client();
    let t = Instant::now();
    fill(&client, services, nodes).await;
    println!(
        "filled: {services} Services + EndpointSlices, {nodes} Nodes, {} FRRConfigurations in {:.1}s",
        2 * (nodes - 1) + 1,
        t.elapsed().as_secs_f64()
    );

    let variants = std::env::var("RSS_VARIANTS").unwrap_or_else(|_| "embedded".into());
    let mut deleted = 0;
    for v in variants.split(',') {
        deleted = measure(&api, v, services, deleted).await;
    }
}

/// Run one speaker process, which finds the first `deleted` Services of the second half
/// already deleted; returns how many are deleted when it is done.
async fn measure(
    api: &metallb_testkit::TestApi,
    variant: &str,
    services: usize,
    deleted: usize,
) -> usize {
    let expected = services - deleted;
    let client = api.client();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let log = std::fs::File::create(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("speaker-rss.log"),
    )
    .expect("log file");
    let started = Instant::now();
    // RSS_WRAPPER runs the binary under a profiler, e.g.
    // `RSS_WRAPPER="valgrind --tool=massif --massif-out-file=/tmp/massif.speaker"` (the
    // RSS figures are then the profiler's).
    let mut cmd = match std::env::var("RSS_WRAPPER") {
        Ok(w) if !w.trim().is_empty() => {
            let mut parts = w.split_whitespace();
            let mut c = Command::new(parts.next().expect("a wrapper command"));
            c.args(parts).arg(env!("CARGO_BIN_EXE_metallb-speaker"));
            c
        }
        _ => Command::new(env!("CARGO_BIN_EXE_metallb-speaker")),
    };
    match variant {
        "external" => cmd.arg("--external-frr-k8s"),
        "arena2" => cmd.env("MALLOC_ARENA_MAX", "2"),
        // the chart's `speaker.mallocEnv`
        "chart" => cmd.envs([
            ("MALLOC_ARENA_MAX", "1"),
            ("MALLOC_MMAP_THRESHOLD_", "131072"),
            ("MALLOC_TRIM_THRESHOLD_", "131072"),
        ]),
        _ => &mut cmd,
    };
    let mut child = cmd
        .args(["--node-name", NODE, "--vtysh", "/bin/true"])
        // measured below: SIGTERM → withdrawal written → exit (off by default)
        .arg("--withdraw-on-shutdown")
        .arg("--kubeconfig")
        .arg(api.kubeconfig_path())
        .args(["--kube-api-qps", "0", "--log-level", "warn"])
        .args(["--admin-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::from(log.try_clone().expect("log file")))
        .stderr(Stdio::from(log))
        // its own process group: SIGTERM reaches the speaker under an `RSS_WRAPPER` too
        .process_group(0)
        .spawn()
        .expect("spawn metallb-speaker");
    let pid = child.id();

    let frr_api = Api::<FRRConfiguration>::namespaced(client.clone(), NS);
    let own = format!("metallb-{NODE}");
    let mut ready_at = None;
    let mut written_at = None;
    while started.elapsed() < Duration::from_secs(300) {
        if ready_at.is_none()
            && http_get(port, "/readyz")
                .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
        {
            ready_at = Some(started.elapsed());
        }
        if written_at.is_none()
            && frr_api
                .get_opt(&own)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| prefixes_of(&c) == expected)
        {
            written_at = Some(started.elapsed());
        }
        if ready_at.is_some() && written_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ready_at, written_at) = (
        ready_at.expect("speaker became ready"),
        written_at.expect("complete FRRConfiguration written"),
    );
    // let the ServiceBGPStatus writer finish
    let statuses = Api::<ServiceBGPStatus>::namespaced(client.clone(), NS);
    let t = Instant::now();
    let mut n_status = 0;
    // every status written, so runs are comparable (the RSS includes their index)
    while t.elapsed() < Duration::from_secs(400) {
        // Count with a one-item page (items + remainingItemCount): listing thousands of
        // objects every few hundred ms would itself slow the writes down.
        n_status = statuses
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .map(|l| l.items.len() + l.metadata.remaining_item_count.unwrap_or(0) as usize)
            .unwrap_or(0);
        if n_status >= services {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, hwm, anon, file) = proc_status(pid);

    // one change: a Service deleted → its prefix leaves the object
    let gone = format!("{}/32", ip_of(services / 2 + deleted));
    let t = Instant::now();
    Api::<Service>::namespaced(client.clone(), "default")
        .delete(
            &format!("svc-{:05}", services / 2 + deleted),
            &DeleteParams::default(),
        )
        .await
        .expect("delete");
    let mut change_ms = None;
    while t.elapsed() < Duration::from_secs(10) {
        let c = frr_api.get(&own).await.expect("object");
        let still = c
            .spec
            .bgp
            .as_ref()
            .is_some_and(|b| b.routers.iter().any(|r| r.prefixes.contains(&gone)));
        if !still {
            change_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = http_get(port, "/metrics").unwrap_or_default();
    let (rss_after, hwm_after, _, _) = proc_status(pid);
    let burst = burst(
        &client,
        &frr_api,
        &own,
        pid,
        services / 2 + deleted + 1,
        expected - 1,
    )
    .await;

    // SIGTERM: withdraw and exit
    let t = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pid}")])
        .status();
    let status = child.wait().expect("wait");
    let exit_ms = t.elapsed().as_millis();
    let withdrawn = frr_api
        .get(&own)
        .await
        .map(|c| prefixes_of(&c) == 0)
        .unwrap_or(false);

    println!("metallb-speaker, variant {variant} (embedded: frr-k8s inside with a stand-in FRR; external: --external-frr-k8s; arena2: MALLOC_ARENA_MAX=2; chart: the chart's speaker.mallocEnv):");
    println!(
        "  ready (/readyz 200) after         {:>8.0} ms",
        ready_at.as_secs_f64() * 1000.0
    );
    println!(
        "  metallb-{NODE} complete after   {:>8.0} ms ({expected} prefixes)",
        written_at.as_secs_f64() * 1000.0
    );
    println!("  ServiceBGPStatus objects          {n_status:>8}");
    println!(
        "  VmRSS after sync                  {:>8.1} MiB (peak VmHWM {:.1} MiB)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "    of which anonymous (heap, stacks) {:>6.1} MiB, file-backed (the binary) {:.1} MiB",
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
    println!(
        "  VmRSS after one change            {:>8.1} MiB (peak VmHWM {:.1} MiB)",
        rss_after as f64 / 1024.0,
        hwm_after as f64 / 1024.0
    );
    match change_ms {
        Some(ms) => {
            println!("  Service delete → prefix withdrawn {ms:>8.1} ms (API round trips included)")
        }
        None => println!("  Service delete → prefix withdrawn: not seen within 10 s"),
    }
    if let Some(b) = &burst {
        println!(
            "  burst: {} Services deleted {} ms apart: speaker CPU {:.0} ms ({:.1} ms per Service), object complete {:.0} ms after the last",
            b.count,
            b.pace.as_millis(),
            b.cpu_ms,
            b.cpu_ms / b.count as f64,
            b.settled_ms
        );
    }
    println!("  SIGTERM → exit                    {exit_ms:>8} ms ({status}), object withdrawn: {withdrawn}");
    let updates = metrics
        .lines()
        .find(|l| l.starts_with("metallb_speaker_frrconfiguration_writes_total"))
        .unwrap_or("");
    println!("  {updates}");
    assert!(rss > 0 && rss < 256 * 1024, "VmRSS {rss} kB");
    assert!(withdrawn, "the withdrawal was not written");
    deleted + 1 + burst.map_or(0, |b| b.count)
}

/// What a paced burst of deletions cost the speaker.
struct Burst {
    count: usize,
    pace: Duration,
    /// The speaker's CPU time (user + system) from the first deletion until the object
    /// was complete.
    cpu_ms: f64,
    settled_ms: f64,
}

/// `RSS_BURST` Services (default 100; 0: none) from `first` on deleted one by one,
/// `RSS_BURST_PACE_MS` apart (default 50: the pace at which a bulk run on a real API
/// server brings Services, so each change is a pass of its own rather than coalesced),
/// until the object lacks them all. Its CPU per Service shows what one change costs at
/// this scale (the configuration is rendered and compared whole on every change).
async fn burst(
    client: &Client,
    frr_api: &Api<FRRConfiguration>,
    own: &str,
    pid: u32,
    first: usize,
    before: usize,
) -> Option<Burst> {
    let count = env_usize("RSS_BURST", 100);
    if count == 0 {
        return None;
    }
    let pace = Duration::from_millis(env_usize("RSS_BURST_PACE_MS", 50) as u64);
    let services = Api::<Service>::namespaced(client.clone(), "default");
    let cpu0 = cpu_seconds(pid);
    for j in 0..count {
        services
            .delete(&format!("svc-{:05}", first + j), &DeleteParams::default())
            .await
            .expect("delete");
        tokio::time::sleep(pace).await;
    }
    let t = Instant::now();
    let want = before - count;
    while t.elapsed() < Duration::from_secs(120) {
        let c = frr_api.get(own).await.expect("object");
        if prefixes_of(&c) == want {
            let settled_ms = t.elapsed().as_secs_f64() * 1000.0;
            // the CPU of the last pass, not of an idle wait: read it at once
            let cpu_ms = (cpu_seconds(pid) - cpu0) * 1000.0;
            return Some(Burst {
                count,
                pace,
                cpu_ms,
                settled_ms,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the object did not lose the {count} deleted Services within 120 s");
}
