//! More full-stack scenarios (same lab as `scenarios.rs`): `passwordSecret`, aggregation,
//! node and pool selection, graceful restart, `dynamicASN`.
//!
//! Every test needs root and FRR (else `SKIPPED: ...`), and the speaker binary. Each one
//! asserts on the external router's tables, so it fails when the feature is broken.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metallb_e2e::objects::{
    self, basic_auth_secret, bgp_advertisement, bgp_peer, host_prefix, ip_pool, FRRK8S_NS,
    METALLB_NS,
};
use metallb_e2e::router::{node_v4, Pathspace};
use metallb_e2e::{require_full_stack, FrrQueries, Lab, LabOptions, Stack, VrfBackend};
use metallb_netlab::{wait_until, wait_until_some};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

fn lab(name: &str, tweak: impl FnOnce(&mut LabOptions)) -> Lab {
    let mut o = LabOptions::new(name);
    o.stack = Stack::Full;
    tweak(&mut o);
    Lab::start(o).expect("starting the lab")
}

/// Creates Service `name` with serving endpoints on every node; `annotations` go on the
/// Service (`metallb.io/address-pool`, `metallb.io/loadBalancerIPs`). Returns its IP.
fn service(lab: &Lab, name: &str, n: u8, annotations: Value) -> String {
    let mut svc = objects::lb_service(name, false);
    svc["metadata"]["annotations"] = annotations;
    lab.apply(svc).unwrap();
    lab.apply(objects::endpoint_slice(name, &lab.endpoints_everywhere(n)))
        .unwrap();
    lab.wait_service_ips(name, 1, T).unwrap()[0].clone()
}

/// Sets (or, with `None`, removes) a label on a Node.
fn label_node(lab: &Lab, node: &str, key: &str, value: Option<&str>) {
    lab.patch(
        "v1",
        "Node",
        None,
        node,
        json!({"metadata": {"labels": {key: value}}}),
    )
    .unwrap();
}

/// `a.b.c.d` masked to `len` bits, as `a.b.c.d/len`.
fn v4_aggregate(ip: &str, len: u32) -> String {
    let addr: std::net::Ipv4Addr = ip.parse().unwrap();
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let net = std::net::Ipv4Addr::from(u32::from(addr) & mask);
    format!("{net}/{len}")
}

/// Checks for `dur` that `cond` never holds; panics (with what `cond` saw) when it does.
fn never_for(what: &str, dur: Duration, mut cond: impl FnMut() -> Option<String>) {
    let start = Instant::now();
    while start.elapsed() < dur {
        if let Some(seen) = cond() {
            panic!("{what} after {:?}: {seen}", start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The external router's session state with a node (`""` when it has no such neighbor).
fn ext_state(lab: &Lab, addr: &str) -> String {
    lab.ext
        .neighbors()
        .get(addr)
        .map(|n| n.state.clone())
        .unwrap_or_default()
}

/// Samples the external router's next hops for one prefix in a thread until stopped:
/// a restart must be watched while the test thread is busy restarting things.
struct Watch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<(Duration, Vec<String>)>>,
}

impl Watch {
    fn start(lab: &Lab, prefix: &str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let ext = Pathspace(lab.ext.pathspace().to_string());
        let prefix = prefix.to_string();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples.push((start.elapsed(), ext.fib_nexthops(&prefix)));
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        });
        Watch { stop, handle }
    }

    /// Stops sampling; returns every sample (time since start, next hops).
    fn finish(self) -> Vec<(Duration, Vec<String>)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("watch thread")
    }
}

/// The first sample without `nh`, if any.
fn first_gap(samples: &[(Duration, Vec<String>)], nh: &str) -> Option<(Duration, Vec<String>)> {
    samples
        .iter()
        .find(|(_, hops)| !hops.iter().any(|h| h == nh))
        .cloned()
}

// ------------------------------------------------------------------------ passwordSecret

#[test]
fn password_secret() {
    if !require_full_stack("password_secret") {
        return;
    }
    const PW: &str = "e2e-s3cret-md5";
    const ROTATED: &str = "e2e-r0tated-md5";
    let lab = lab("pwsecret", |o| o.ext.password = Some(PW.into()));
    lab.apply(basic_auth_secret("bgp-auth", METALLB_NS, PW))
        .unwrap();
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer(
        "ext",
        64512,
        64513,
        "192.0.2.1",
        json!({"passwordSecret": {"name": "bgp-auth", "namespace": METALLB_NS}}),
    ))
    .unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service(&lab, "web", 1, json!({}));
    let p = host_prefix(&ip);
    // the external router only accepts TCP-MD5-signed sessions with PW
    let took = lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    println!("passwordSecret: {p} via every node after {took:?}");

    // The node's FRR really has the password (the session proves it, this says where).
    let rc = lab.node(1).frr.running_config().unwrap();
    assert!(
        rc.contains(&format!("neighbor 192.0.2.1 password {PW}")),
        "node1's FRR has no password line:\n{rc}"
    );

    // The cleartext never reaches an object: MetalLB's FRRConfiguration carries the
    // reference, FRRNodeState's runningConfig is redacted.
    let cfg = lab
        .get(
            "frrk8s.metallb.io/v1beta1",
            "FRRConfiguration",
            Some(FRRK8S_NS),
            "metallb-node1",
        )
        .unwrap()
        .expect("FRRConfiguration metallb-node1");
    let text = cfg.to_string();
    assert!(!text.contains(PW), "cleartext password in {text}");
    assert!(
        text.contains("bgp-auth"),
        "no passwordSecret reference in {text}"
    );
    let (running, _) = wait_until_some(
        "FRRNodeState node1 runningConfig with a password",
        T,
        || {
            let s = lab
                .get("frrk8s.metallb.io/v1beta1", "FRRNodeState", None, "node1")
                .ok()
                .flatten()?;
            let rc = s.pointer("/status/runningConfig")?.as_str()?.to_string();
            rc.contains("neighbor 192.0.2.1 password").then_some(rc)
        },
    )
    .unwrap();
    let line = running
        .lines()
        .find(|l| l.contains("password"))
        .unwrap_or_default();
    println!("FRRNodeState node1 runningConfig: {line:?}");
    assert!(!running.contains(PW), "cleartext password in FRRNodeState");

    // Rotation: the Secret changes, then the router's side. The session comes back only
    // if the new Secret reached the node's FRR.
    let (_, est_before) = lab.ext.session_counters();
    lab.apply(basic_auth_secret("bgp-auth", METALLB_NS, ROTATED))
        .unwrap();
    let (_, took) = wait_until_some("node1's FRR gets the rotated password", T, || {
        let rc = lab.node(1).frr.running_config().ok()?;
        rc.contains(&format!("password {ROTATED}")).then_some(())
    })
    .unwrap();
    println!("rotated Secret reached node1's FRR after {took:?}");
    lab.ext
        .frr
        .as_ref()
        .unwrap()
        .vtysh(&[
            "configure terminal",
            "router bgp 64513",
            &format!("neighbor NODES password {ROTATED}"),
        ])
        .unwrap();
    metallb_netlab::wait_until(
        "sessions re-established with the rotated password",
        T,
        || {
            let (_, est) = lab.ext.session_counters();
            est >= est_before + lab.nodes.len() as u64
                && lab
                    .nodes
                    .iter()
                    .all(|n| ext_state(&lab, &n.v4) == "Established")
        },
    )
    .unwrap();
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
}

// ------------------------------------------------------------------------ aggregation

#[test]
fn aggregation_length() {
    if !require_full_stack("aggregation_length") {
        return;
    }
    let lab = lab("aggregate", |_| {});
    lab.apply(ip_pool("agg", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer("ext", 64512, 64513, "192.0.2.1", json!({})))
        .unwrap();
    lab.apply(bgp_advertisement("agg", json!({"aggregationLength": 30})))
        .unwrap();
    // two Services in 198.18.0.4/30, one in 198.18.0.8/30
    let pin = |ip: &str| json!({"metallb.io/loadBalancerIPs": ip});
    let a = service(&lab, "a", 1, pin("198.18.0.5"));
    let b = service(&lab, "b", 2, pin("198.18.0.6"));
    let c = service(&lab, "c", 3, pin("198.18.0.9"));
    assert_eq!(
        (a.as_str(), b.as_str(), c.as_str()),
        ("198.18.0.5", "198.18.0.6", "198.18.0.9")
    );
    let (agg_ab, agg_c) = (v4_aggregate(&a, 30), v4_aggregate(&c, 30));
    assert_eq!(
        (agg_ab.as_str(), agg_c.as_str()),
        ("198.18.0.4/30", "198.18.0.8/30")
    );
    for agg in [&agg_ab, &agg_c] {
        let took = lab.wait_ext_nexthops(agg, &lab.all_node_v4(), T).unwrap();
        println!("aggregation: {agg} via every node after {took:?}");
    }
    // exactly the two aggregates, no /32
    let want = vec![agg_ab.clone(), agg_c.clone()];
    metallb_netlab::wait_until(
        "the external BGP table holds only the aggregates",
        T,
        || lab.ext.bgp_prefixes("ipv4") == want,
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", lab.ext.bgp_prefixes("ipv4")));
    println!("external BGP table: {:?}", lab.ext.bgp_prefixes("ipv4"));
    for ip in [&a, &b, &c] {
        assert!(
            lab.ext.bgp_paths(&host_prefix(ip)).is_empty(),
            "{ip}/32 announced next to its aggregate"
        );
    }

    // the aggregate stays while one Service in it remains, and goes with the last
    lab.delete_service("a").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.ext.nexthops(&agg_ab),
        lab.all_node_v4(),
        "{agg_ab} withdrawn too early"
    );
    lab.delete_service("b").unwrap();
    let took = lab.wait_ext_nexthops(&agg_ab, &[], T).unwrap();
    println!("aggregation: {agg_ab} withdrawn {took:?} after its last Service went");
    assert_eq!(lab.ext.nexthops(&agg_c), lab.all_node_v4());
    assert_eq!(lab.ext.bgp_prefixes("ipv4"), vec![agg_c]);
}

// ------------------------------------------------------------------------ node selectors

#[test]
fn peer_node_selectors() {
    if !require_full_stack("peer_node_selectors") {
        return;
    }
    let lab = lab("peersel", |_| {});
    label_node(&lab, "node1", "e2e.metallb.io/peer", Some("ext"));
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer(
        "ext",
        64512,
        64513,
        "192.0.2.1",
        json!({"nodeSelectors": [{"matchLabels": {"e2e.metallb.io/peer": "ext"}}]}),
    ))
    .unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service(&lab, "web", 1, json!({}));
    let p = host_prefix(&ip);
    let took = lab.wait_ext_nexthops(&p, &[node_v4(1)], T).unwrap();
    println!("peer nodeSelectors: {p} via node1 only after {took:?}");
    // node2 is not selected: it never peers, and the route never gets its next hop
    never_for(
        "node2 peered although not selected",
        Duration::from_secs(3),
        || {
            let st = ext_state(&lab, &node_v4(2));
            let hops = lab.ext.nexthops(&p);
            (st == "Established" || hops != [node_v4(1)])
                .then(|| format!("state {st:?}, next hops {hops:?}"))
        },
    );
    let rc = lab.node(2).frr.running_config().unwrap();
    assert!(
        !rc.contains("neighbor 192.0.2.1"),
        "node2's FRR has the peer:\n{rc}"
    );

    // labelling node2 selects it, unlabelling node1 deselects it
    label_node(&lab, "node2", "e2e.metallb.io/peer", Some("ext"));
    let took = lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    println!("node2 labelled: next hop added after {took:?}");
    label_node(&lab, "node1", "e2e.metallb.io/peer", None);
    let took = lab.wait_ext_nexthops(&p, &[node_v4(2)], T).unwrap();
    println!("node1 unlabelled: next hop removed after {took:?}");
}

#[test]
fn advertisement_node_selectors() {
    if !require_full_stack("advertisement_node_selectors") {
        return;
    }
    let lab = lab("adsel", |_| {});
    label_node(&lab, "node2", "e2e.metallb.io/announce", Some("yes"));
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer("ext", 64512, 64513, "192.0.2.1", json!({})))
        .unwrap();
    lab.apply(bgp_advertisement(
        "seed",
        json!({"nodeSelectors": [{"matchLabels": {"e2e.metallb.io/announce": "yes"}}]}),
    ))
    .unwrap();
    let ip = service(&lab, "web", 1, json!({}));
    let p = host_prefix(&ip);
    let took = lab.wait_ext_nexthops(&p, &[node_v4(2)], T).unwrap();
    println!("advertisement nodeSelectors: {p} via node2 only after {took:?}");
    // both nodes peer (the peer has no selector), only node2 announces
    wait_until("both sessions established", T, || {
        lab.nodes
            .iter()
            .all(|n| ext_state(&lab, &n.v4) == "Established")
    })
    .unwrap();
    never_for(
        "node1 announced although not selected",
        Duration::from_secs(3),
        || {
            let hops = lab.ext.bgp_nexthops(&p);
            (hops != [node_v4(2)]).then(|| format!("BGP next hops {hops:?}"))
        },
    );

    label_node(&lab, "node1", "e2e.metallb.io/announce", Some("yes"));
    let took = lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    println!("node1 labelled: next hop added after {took:?}");
    label_node(&lab, "node2", "e2e.metallb.io/announce", Some("no"));
    let took = lab.wait_ext_nexthops(&p, &[node_v4(1)], T).unwrap();
    println!("node2 relabelled: next hop removed after {took:?}");
}

#[test]
fn advertisement_selects_pools() {
    if !require_full_stack("advertisement_selects_pools") {
        return;
    }
    let lab = lab("poolsel", |_| {});
    lab.apply(ip_pool("loud", &["198.18.0.0/24"])).unwrap();
    lab.apply(ip_pool("quiet", &["198.18.1.0/24"])).unwrap();
    lab.apply(bgp_peer("ext", 64512, 64513, "192.0.2.1", json!({})))
        .unwrap();
    lab.apply(bgp_advertisement(
        "loud",
        json!({"ipAddressPools": ["loud"]}),
    ))
    .unwrap();
    let loud = service(&lab, "loud", 1, json!({"metallb.io/address-pool": "loud"}));
    let quiet = service(
        &lab,
        "quiet",
        2,
        json!({"metallb.io/address-pool": "quiet"}),
    );
    assert!(loud.starts_with("198.18.0."), "{loud}");
    assert!(quiet.starts_with("198.18.1."), "{quiet}");
    let took = lab
        .wait_ext_nexthops(&host_prefix(&loud), &lab.all_node_v4(), T)
        .unwrap();
    println!("pool selection: {loud} (pool loud) announced after {took:?}");
    // the speakers have converged on both Services; the quiet pool is never announced
    never_for(
        "the un-advertised pool reached the router",
        Duration::from_secs(4),
        || {
            let table = lab.ext.bgp_prefixes("ipv4");
            table
                .iter()
                .any(|p| p.starts_with("198.18.1."))
                .then(|| format!("external BGP table {table:?}"))
        },
    );
    assert_eq!(lab.ext.bgp_prefixes("ipv4"), vec![host_prefix(&loud)]);
    println!("{quiet} (pool quiet) allocated, never announced");

    // selecting the pool by label instead announces it
    lab.patch(
        "metallb.io/v1beta1",
        "IPAddressPool",
        Some(METALLB_NS),
        "quiet",
        json!({"metadata": {"labels": {"e2e.metallb.io/announce": "yes"}}}),
    )
    .unwrap();
    lab.apply(bgp_advertisement(
        "labelled",
        json!({"ipAddressPoolSelectors": [{"matchLabels": {"e2e.metallb.io/announce": "yes"}}]}),
    ))
    .unwrap();
    let took = lab
        .wait_ext_nexthops(&host_prefix(&quiet), &lab.all_node_v4(), T)
        .unwrap();
    println!("pool quiet selected by label: {quiet} announced after {took:?}");
}

// ------------------------------------------------------------------------ graceful restart

/// node1 peers with `enableGracefulRestart`, node2 without (the control); the external
/// router has graceful restart on both neighbors. A crash of a node's bgpd (SIGKILL: the
/// TCP session closes without a NOTIFICATION) keeps node1's route as a stale path until
/// node1 is back, and drops node2's at once. A speaker restart keeps node1's route
/// (the speaker withdraws nothing when a session has graceful restart).
#[test]
fn graceful_restart() {
    if !require_full_stack("graceful_restart") {
        return;
    }
    let mut lab = lab("gr", |o| {
        o.ext.extra = "router bgp 64513\n neighbor 192.0.2.11 graceful-restart\n \
                       neighbor 192.0.2.12 graceful-restart\nexit\n"
            .into();
    });
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    let only = |k: usize| json!([{"matchLabels": {"kubernetes.io/hostname": format!("node{k}")}}]);
    lab.apply(bgp_peer(
        "ext-gr",
        64512,
        64513,
        "192.0.2.1",
        json!({"enableGracefulRestart": true, "nodeSelectors": only(1)}),
    ))
    .unwrap();
    lab.apply(bgp_peer(
        "ext",
        64512,
        64513,
        "192.0.2.1",
        json!({"nodeSelectors": only(2)}),
    ))
    .unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service(&lab, "web", 1, json!({}));
    let p = host_prefix(&ip);
    let (n1, n2) = (node_v4(1), node_v4(2));
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    let rc = lab.node(1).frr.running_config().unwrap();
    assert!(
        rc.contains("neighbor 192.0.2.1 graceful-restart"),
        "node1 has no graceful-restart:\n{rc}"
    );
    // what the external router negotiated: node1 restarting-capable, node2 not
    let gr_info = |lab: &Lab, addr: &str| {
        lab.ext
            .query_json(&format!("show bgp neighbors {addr} json"))
            .and_then(|v| v.get(addr)?.get("gracefulRestartInfo").cloned())
            .unwrap_or_default()
    };
    let (gr1, gr2) = (gr_info(&lab, &n1), gr_info(&lab, &n2));
    println!("GR on ext for node1: {gr1}\nGR on ext for node2: {gr2}");
    assert_eq!(
        gr1["remoteGrMode"], "Restart",
        "node1 is not restart-capable"
    );
    assert_eq!(gr2["remoteGrMode"], "Helper", "node2 has graceful restart");
    let dropped = |lab: &Lab, addr: &str| {
        lab.ext
            .neighbors()
            .get(addr)
            .map(|n| n.dropped)
            .unwrap_or(0)
    };

    // ---- node1's bgpd crashes: its path goes stale and stays
    let drops_before = dropped(&lab, &n1);
    let watch = Watch::start(&lab, &p);
    let t = Instant::now();
    lab.node_mut(1).frr.crash_daemon("bgpd");
    let (stale, _) = wait_until_some("ext keeps node1's path as stale", T, || {
        let v = lab
            .ext
            .query_json(&format!("show bgp ipv4 unicast {p} json"))?;
        let paths = v.get("paths")?.as_array()?;
        paths
            .iter()
            .find(|x| {
                x.pointer("/peer/peerId").and_then(Value::as_str) == Some(n1.as_str())
                    && x.get("stale").and_then(Value::as_bool) == Some(true)
            })
            .map(|x| x.to_string())
    })
    .unwrap();
    println!(
        "after {:?} ext holds node1's stale path: {stale}",
        t.elapsed()
    );
    lab.node_mut(1).frr.start_missing(false).unwrap();
    wait_until("node1's session back", T, || {
        dropped(&lab, &n1) > drops_before && ext_state(&lab, &n1) == "Established"
    })
    .unwrap();
    let back = t.elapsed();
    // end-of-RIB from the restarted node replaces the stale path
    wait_until("node1's path no longer stale", T, || {
        lab.ext
            .query_json(&format!("show bgp ipv4 unicast {p} json"))
            .map(|v| !v.to_string().contains("\"stale\":true"))
            .unwrap_or(false)
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let samples = watch.finish();
    println!(
        "node1 bgpd crash: session back after {back:?}; {} samples over {:?}",
        samples.len(),
        t.elapsed()
    );
    assert!(samples.len() > 20, "too few samples: {samples:?}");
    if let Some((at, hops)) = first_gap(&samples, &n1) {
        panic!("node1's route left the external router {at:?} after its bgpd crashed (next hops {hops:?}) despite graceful restart");
    }
    assert_eq!(lab.ext.nexthops(&p), lab.all_node_v4());

    // ---- control: node2 (no graceful restart) loses its next hop at once
    let t = Instant::now();
    lab.node_mut(2).frr.crash_daemon("bgpd");
    let gone = lab
        .wait_ext_nexthops(&p, std::slice::from_ref(&n1), Duration::from_secs(10))
        .unwrap();
    println!(
        "control: node2 bgpd crash without graceful restart removed its next hop after {gone:?}"
    );
    lab.node_mut(2).frr.start_missing(false).unwrap();
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    println!("node2 back after {:?}", t.elapsed());

    // ---- speaker restarts: node1 (graceful restart) withdraws nothing
    let watch = Watch::start(&lab, &p);
    let t = Instant::now();
    lab.restart_speaker(1).unwrap();
    // watch until the new speaker has applied its configuration, and a bit longer
    let log = lab.log_dir().join("speaker-node1.log");
    wait_until(
        "the restarted speaker1 applied its configuration",
        T,
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let since = text.rfind("==== e2e: restart").map_or("", |i| &text[i..]);
            since.contains("FRR configuration applied")
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let samples = watch.finish();
    lab.check_processes().unwrap();
    if let Some((at, hops)) = first_gap(&samples, &n1) {
        panic!("node1's route left the external router {at:?} into its speaker restart (next hops {hops:?})");
    }
    println!(
        "speaker1 restart: node1's next hop kept ({} samples over {:?})",
        samples.len(),
        t.elapsed()
    );
    // control: node2's speaker withdraws on SIGTERM, the route comes back after
    let watch = Watch::start(&lab, &p);
    lab.restart_speaker(2).unwrap();
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let samples = watch.finish();
    let gap = first_gap(&samples, &n2);
    println!(
        "control: speaker2 restart without graceful restart: first sample without node2: {gap:?}"
    );
    assert!(gap.is_some(), "node2's speaker did not withdraw on SIGTERM");
}

// ------------------------------------------------------------------------ dynamicASN

#[test]
fn dynamic_asn() {
    if !require_full_stack("dynamic_asn") {
        return;
    }
    let lab = lab("dynasn", |_| {});
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    let mut peer = bgp_peer(
        "ext",
        64512,
        0,
        "192.0.2.1",
        json!({"dynamicASN": "external"}),
    );
    peer["spec"].as_object_mut().unwrap().remove("peerASN");
    lab.apply(peer).unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service(&lab, "web", 1, json!({}));
    let p = host_prefix(&ip);
    let took = lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    println!("dynamicASN external: {p} via every node after {took:?}");
    let rc = lab.node(1).frr.running_config().unwrap();
    assert!(
        rc.contains("neighbor 192.0.2.1 remote-as external"),
        "node1's FRR:\n{rc}"
    );
    for n in &lab.nodes {
        assert_eq!(ext_state(&lab, &n.v4), "Established");
    }

    // `internal` against a router in another AS cannot come up: the route goes
    lab.patch(
        "metallb.io/v1beta2",
        "BGPPeer",
        Some(METALLB_NS),
        "ext",
        json!({"spec": {"dynamicASN": "internal"}}),
    )
    .unwrap();
    let took = lab.wait_ext_nexthops(&p, &[], T).unwrap();
    let rc = lab.node(1).frr.running_config().unwrap();
    assert!(
        rc.contains("neighbor 192.0.2.1 remote-as internal"),
        "node1's FRR:\n{rc}"
    );
    println!("dynamicASN internal against AS 64513: route withdrawn after {took:?}");
}

// ------------------------------------------------------------------------ VRF (netns backend)

/// A BGPPeer with `vrf: red`, the VRF made with FRR's **netns VRF backend**
/// (`zebra --vrfwnetns`), not a kernel VRF device: each node's `eth0` (its only way to the
/// external router) lives in a second network namespace that the node's FRR sees as VRF
/// `red`. This runs on kernels without `CONFIG_NET_VRF`, where `vrf_peer` (kernel VRFs) in
/// `scenarios.rs` cannot; the product side is the same (`router bgp 64512 vrf red` with the
/// neighbor in it).
#[test]
fn vrf_peer_netns_backend() {
    if !require_full_stack("vrf_peer_netns_backend") {
        return;
    }
    let lab = lab("vrfns", |o| {
        o.node_vrf = Some("red".into());
        o.vrf_backend = Some(VrfBackend::Netns);
    });
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer(
        "ext",
        64512,
        64513,
        "192.0.2.1",
        json!({"vrf": "red"}),
    ))
    .unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service(&lab, "web", 1, json!({}));
    let p = host_prefix(&ip);
    let took = match lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T) {
        Ok(t) => t,
        Err(e) => {
            for n in &lab.nodes {
                eprintln!(
                    "{}: show vrf:\n{}\n{}",
                    n.name,
                    n.frr.vtysh(&["show vrf"]).unwrap_or_default(),
                    n.frr
                        .vtysh(&["show bgp vrf all summary"])
                        .unwrap_or_default()
                );
            }
            panic!("{e}");
        }
    };
    println!("VRF red (netns backend): {p} via every node after {took:?}");
    for n in &lab.nodes {
        let vrfs = n.frr.vtysh(&["show vrf"]).unwrap();
        assert!(vrfs.contains("netns-based"), "{}: {vrfs}", n.name);
        let rc = n.frr.running_config().unwrap();
        assert!(rc.contains("router bgp 64512 vrf red"), "{}:\n{rc}", n.name);
        // the session lives in the VRF
        let sum = n
            .frr
            .vtysh_json("show bgp vrf red ipv4 unicast summary json")
            .unwrap();
        assert_eq!(
            sum.pointer("/peers/192.0.2.1/state")
                .and_then(Value::as_str),
            Some("Established"),
            "{}: {sum}",
            n.name
        );
    }
    // every reload succeeded (the lab declares FRR's `vrf red` / `netns` stanza with a raw
    // FRRConfiguration, see `Lab::start`)
    for n in &lab.nodes {
        let (r, _) = wait_until_some(&format!("FRRNodeState {} reload result", n.name), T, || {
            let s = lab
                .get("frrk8s.metallb.io/v1beta1", "FRRNodeState", None, &n.name)
                .ok()
                .flatten()?;
            Some(s.pointer("/status/lastReloadResult")?.as_str()?.to_string())
        })
        .unwrap();
        assert_eq!(r, "success", "{}", n.name);
    }
}
