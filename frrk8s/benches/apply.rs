//! Timing of the FRR driver against real FRR in network namespaces (prints figures).
//!
//!     cargo bench -p frr-k8s --bench apply
//!     BENCH_NEIGHBORS=10 BENCH_PREFIXES=10000 BENCH_RELOAD=1 cargo bench -p frr-k8s --bench apply
//!
//! Layout: whatever the product renders (`frr_k8s::merge` + `frr_k8s::render`) for one
//! FRRConfiguration whose neighbors may receive every prefix (`mode: all`).
//! Skips (prints `SKIPPED`) without root or FRR. Addresses: 192.0.2.0/24 and
//! 100.64.0.0/16 on the veth, advertised /32s from 198.18.0.0/15.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use frr_k8s::frr::{Applier, ApplyOptions, FrrControl};
use metallb_netlab::{require_root_and_frr, veth, wait_until, FrrInstance, Netns};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pfx(i: usize) -> String {
    format!("198.18.{}.{}/32", (i + 1) / 256, (i + 1) % 256)
}

fn neighbor(i: usize) -> (String, Option<String>) {
    if i == 0 {
        ("192.0.2.1".into(), None)
    } else {
        (format!("100.64.1.{i}"), Some(format!("100.64.2.{i}")))
    }
}

/// The product's own pipeline: one FRRConfiguration (every neighbor allowed every prefix,
/// `mode: all`), merged and rendered exactly as the node component does.
fn render(neighbors: usize, prefixes: &[usize]) -> String {
    let nbrs: Vec<serde_json::Value> = (0..neighbors)
        .map(|i| {
            let (addr, src) = neighbor(i);
            let mut n = serde_json::json!({
                "address": addr,
                "asn": 64513,
                "connectTime": "1s",
                "toAdvertise": {"allowed": {"mode": "all"}},
            });
            if let Some(s) = src {
                n["sourceaddress"] = s.into();
            }
            n
        })
        .collect();
    let cfg: metallb_api::frrk8s::FRRConfiguration = serde_json::from_value(serde_json::json!({
        "apiVersion": "frrk8s.metallb.io/v1beta1",
        "kind": "FRRConfiguration",
        "metadata": {"name": "bench", "namespace": "frr-k8s-system"},
        "spec": {"bgp": {"routers": [{
            "asn": 64512,
            "id": "192.0.2.11",
            "prefixes": prefixes.iter().map(|p| pfx(*p)).collect::<Vec<_>>(),
            "neighbors": nbrs,
        }]}}
    }))
    .expect("bench FRRConfiguration");
    let merged = frr_k8s::merge(&[&cfg], &frr_k8s::NoSecrets, "frr-k8s-system");
    assert!(merged.errors.is_empty(), "{}", merged.errors);
    frr_k8s::render(&merged.config, &frr_k8s::RenderOptions::default())
}

/// upstream frr-k8s layout: one list per neighbor, one entry per /32
fn render_upstream(prefixes: &[usize]) -> String {
    let addr = "192.0.2.1";
    let mut t = String::from("log stdout informational\nip nht resolve-via-default\n");
    if prefixes.is_empty() {
        writeln!(t, "ip prefix-list {addr}-allowed-ipv4 seq 1 deny any").unwrap();
    }
    for (k, p) in prefixes.iter().enumerate() {
        writeln!(
            t,
            "ip prefix-list {addr}-allowed-ipv4 seq {} permit {}",
            k + 1,
            pfx(*p)
        )
        .unwrap();
    }
    writeln!(
        t,
        "route-map {addr}-out permit 1\n match ip address prefix-list {addr}-allowed-ipv4\nexit"
    )
    .unwrap();
    writeln!(t, "ip prefix-list {addr}-inpl-ipv4 seq 1 deny any\nroute-map {addr}-in permit 2\n match ip address prefix-list {addr}-inpl-ipv4\nexit").unwrap();
    writeln!(t, "router bgp 64512\n bgp router-id 192.0.2.11\n no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n neighbor {addr} remote-as 64513\n neighbor {addr} timers connect 1").unwrap();
    writeln!(t, " address-family ipv4 unicast\n  neighbor {addr} activate\n  neighbor {addr} route-map {addr}-in in\n  neighbor {addr} route-map {addr}-out out").unwrap();
    for p in prefixes {
        writeln!(t, "  network {}", pfx(*p)).unwrap();
    }
    t.push_str(" exit-address-family\nexit\n");
    t
}

struct Lab {
    node: FrrInstance,
    ext: FrrInstance,
    _ns: (Netns, Netns),
}

fn lab(neighbors: usize) -> Lab {
    let n = Netns::new("ban").unwrap();
    let e = Netns::new("bae").unwrap();
    let mut na = vec!["192.0.2.11/24".to_string()];
    let mut ea = vec!["192.0.2.1/24".to_string()];
    for i in 1..neighbors {
        na.push(format!("100.64.2.{i}/16"));
        ea.push(format!("100.64.1.{i}/16"));
    }
    let na: Vec<&str> = na.iter().map(String::as_str).collect();
    let ea: Vec<&str> = ea.iter().map(String::as_str).collect();
    veth(&n, "eth0", &na, &e, "eth0", &ea).unwrap();
    let node = FrrInstance::start(&n, "frr defaults traditional\n").unwrap();
    let ext = FrrInstance::start(
        &e,
        "router bgp 64513\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n bgp listen limit 1000\n\
         neighbor NODES peer-group\n neighbor NODES remote-as 64512\n\
         bgp listen range 192.0.2.0/24 peer-group NODES\n bgp listen range 100.64.0.0/16 peer-group NODES\nexit\n",
    )
    .unwrap();
    Lab {
        node,
        ext,
        _ns: (n, e),
    }
}

impl Lab {
    /// (established sessions, prefixes received summed over sessions)
    fn ext_state(&self) -> (usize, u64) {
        let Ok(v) = self.ext.vtysh_json("show bgp ipv4 unicast summary json") else {
            return (0, 0);
        };
        let mut est = 0;
        let mut pfx = 0;
        if let Some(peers) = v.get("peers").and_then(|p| p.as_object()) {
            for p in peers.values() {
                if p.get("state").and_then(|s| s.as_str()) == Some("Established") {
                    est += 1;
                    pfx += p.get("pfxRcd").and_then(|x| x.as_u64()).unwrap_or(0);
                }
            }
        }
        (est, pfx)
    }

    fn wait_ext(&self, sessions: usize, total: u64, what: &str, t0: Instant) -> Duration {
        wait_until(what, Duration::from_secs(600), || {
            self.ext_state() == (sessions, total)
        })
        .unwrap_or_else(|e| panic!("{e}: ext state {:?}", self.ext_state()));
        t0.elapsed()
    }

    fn running_has(&self, needle: &str) -> bool {
        self.node.running_config().is_ok_and(|r| r.contains(needle))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !require_root_and_frr("bench apply") {
        return;
    }
    let nbrs = env("BENCH_NEIGHBORS", 10);
    let count = env("BENCH_PREFIXES", 10_000);
    println!("== FRR driver timings: {nbrs} neighbors x {count} /32 (product renderer, mode: all)");
    let l = lab(nbrs);
    let fast = ApplyOptions {
        verify: false,
        ..ApplyOptions::default()
    };
    let mut a = Applier::with_options(common::vtysh_for(&l.node), fast);
    a.apply(&render(nbrs, &[])).unwrap();
    l.wait_ext(nbrs, 0, "sessions established", Instant::now());
    // let the sessions settle (update-group coalescing right after establishment)
    std::thread::sleep(Duration::from_secs(3));

    // first advertisement on an idle session
    let t0 = Instant::now();
    let r = a.apply(&render(nbrs, &[0])).unwrap();
    let t = l.wait_ext(nbrs, nbrs as u64, "first prefix on ext", t0);
    println!(
        "first advertisement (1 /32, idle sessions): {} commands, apply {}, on ext after {}",
        r.commands,
        ms(r.apply_time),
        ms(t)
    );

    // cold apply of `count`
    // hold count-1 so that "add one" fills the last chunk instead of opening a new one
    let count = count - 1;
    let all: Vec<usize> = (0..count).collect();
    let text = render(nbrs, &all);
    let t0 = Instant::now();
    let r = a.apply(&text).unwrap();
    let apply = t0.elapsed();
    let t = l.wait_ext(nbrs, (nbrs * count) as u64, "all prefixes on ext", t0);
    println!(
        "cold apply {count} /32 to {nbrs} neighbors: {} commands, check {}, vtysh -f {}, apply total {}, ext holds all {} paths after {}",
        r.commands, ms(r.check_time), ms(r.apply_time), ms(apply), nbrs * count, ms(t)
    );
    println!(
        "  RSS node bgpd {} KiB zebra {} KiB, ext bgpd {} KiB",
        l.node.rss_kib("bgpd").unwrap_or(0),
        l.node.rss_kib("zebra").unwrap_or(0),
        l.ext.rss_kib("bgpd").unwrap_or(0)
    );

    // verification cost at this size
    let t0 = Instant::now();
    let running = a.control().running_config().unwrap();
    println!(
        "show running-config at this size: {} ({} lines)",
        ms(t0.elapsed()),
        running.lines().count()
    );

    // add one / remove one
    let mut plus = all.clone();
    plus.push(count);
    // render outside the timed region (the node component renders in ~10 ms at this size,
    // measured separately by the merge_render bench)
    let plus_text = render(nbrs, &plus);
    let t0 = Instant::now();
    let r = a.apply(&plus_text).unwrap();
    let in_running = t0.elapsed();
    assert!(l.running_has(&format!("network {}", pfx(count))));
    let t = l.wait_ext(nbrs, (nbrs * (count + 1)) as u64, "added prefix on ext", t0);
    println!("add one on top of {count}: {} commands, into running config {} (check {} + vtysh -f {}), on ext (all {nbrs} sessions) after {}", r.commands, ms(in_running), ms(r.check_time), ms(r.apply_time), ms(t));
    let t0 = Instant::now();
    let r = a.apply(&text).unwrap();
    let in_running = t0.elapsed();
    let t = l.wait_ext(
        nbrs,
        (nbrs * count) as u64,
        "removed prefix gone from ext",
        t0,
    );
    println!(
        "remove one: {} commands, into running config {}, gone from ext after {}",
        r.commands,
        ms(in_running),
        ms(t)
    );

    // no-op
    let t0 = Instant::now();
    let r = a.apply(&text).unwrap();
    println!(
        "no-op resync: {} commands, {}",
        r.commands,
        ms(t0.elapsed())
    );

    // the same add with verification on
    a.options_mut().verify = true;
    let t0 = Instant::now();
    let r = a.apply(&plus_text).unwrap();
    println!(
        "add one with read-back verification: {} commands, total {} (verify {})",
        r.commands,
        ms(t0.elapsed()),
        ms(r.verify_time)
    );
    a.apply(&text).unwrap();
    a.options_mut().verify = false;

    // withdraw 1000 at once
    let rest: Vec<usize> = (1000..count.max(1000)).collect();
    let rest_text = render(nbrs, &rest);
    let t0 = Instant::now();
    let r = a.apply(&rest_text).unwrap();
    let apply = t0.elapsed();
    let t = l.wait_ext(nbrs, (nbrs * rest.len()) as u64, "1000 withdrawn", t0);
    println!(
        "withdraw 1000 at once: {} commands, apply {}, ext updated after {}",
        r.commands,
        ms(apply),
        ms(t)
    );
    drop(a);
    drop(l);

    if std::env::var("BENCH_RELOAD").is_ok_and(|v| v == "1") {
        reload_comparison();
    } else {
        println!(
            "(set BENCH_RELOAD=1 for the frr-reload.py side-by-side, 1 neighbor x 100 / 1000)"
        );
    }
}

/// Upstream layout (one list per neighbor, one entry per /32) with frr-reload.py vs this
/// driver, 1 neighbor.
fn reload_comparison() {
    for count in [100usize, 1000] {
        for method in ["driver", "frr-reload"] {
            let l = lab(1);
            let mut a = Applier::with_options(
                common::vtysh_for(&l.node),
                ApplyOptions {
                    verify: false,
                    ..ApplyOptions::default()
                },
            );
            let base = render_upstream(&[]);
            a.apply(&base).unwrap();
            l.wait_ext(1, 0, "session", Instant::now());
            let all: Vec<usize> = (0..count).collect();
            let text = render_upstream(&all);
            let t0 = Instant::now();
            if method == "driver" {
                a.apply(&text).unwrap();
            } else {
                let path = l.node.tmp_dir().join("new.conf");
                std::fs::write(&path, &text).unwrap();
                for mode in ["--test", "--reload"] {
                    let mut c = std::process::Command::new("/usr/lib/frr/frr-reload.py");
                    c.args([
                        mode,
                        "--stdout",
                        "-N",
                        l.node.name(),
                        "--confdir",
                        "/etc/frr",
                        "--rundir",
                    ])
                    .arg(l.node.run_dir())
                    .args(["--bindir", "/usr/bin"]);
                    if mode == "--reload" {
                        c.arg("--overwrite");
                    }
                    let out = c.arg(&path).output().unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            let apply = t0.elapsed();
            let t = l.wait_ext(1, count as u64, "advertised", t0);
            println!(
                "upstream layout 1 x {count}, {method}: apply {}, ext has all after {}",
                ms(apply),
                ms(t)
            );
        }
    }
}
