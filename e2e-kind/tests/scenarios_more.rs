//! More full-stack scenarios (same lab as `scenarios.rs`): `passwordSecret`, aggregation,
//! node and pool selection, graceful restart, `dynamicASN`.
//!
//! Every test needs root and FRR (else `SKIPPED: ...`), and the speaker binary. Each one
//! asserts on the external router's tables, so it fails when the feature is broken.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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

/// The nodes whose speaker reports announcing Service `name` (their ServiceBGPStatus),
/// sorted; `None` when the API cannot be read.
fn bgp_status_nodes(lab: &Lab, name: &str) -> Option<Vec<String>> {
    let mut nodes: Vec<String> = lab
        .list("metallb.io/v1beta1", "ServiceBGPStatus", Some(METALLB_NS))
        .ok()?
        .iter()
        .filter(|o| {
            o.pointer("/metadata/labels/metallb.io~1service-name")
                .and_then(Value::as_str)
                == Some(name)
        })
        .filter_map(|o| o.pointer("/status/node")?.as_str().map(str::to_string))
        .collect();
    nodes.sort();
    Some(nodes)
}

/// One observation of the external router's next hops for a prefix: the query started at
/// `start` and returned at `end`, so the FIB held `hops` at some instant in between.
#[derive(Clone, Debug)]
struct Sample {
    start: Instant,
    end: Instant,
    hops: Vec<String>,
}

/// Answers like [`Pathspace`] and remembers whether the last query worked, so that a
/// failed `vtysh` call is not taken for "no next hop".
struct Probe {
    ext: Pathspace,
    ok: std::cell::Cell<bool>,
}

impl FrrQueries for Probe {
    fn query_json(&self, cmd: &str) -> Option<Value> {
        let v = self.ext.query_json(cmd);
        self.ok.set(v.is_some());
        v
    }
}

/// Samples the external router's next hops for one prefix in a thread until stopped:
/// a restart must be watched while the test thread is busy restarting things. Each sample
/// records when its query started and ended, so that a test can prove which interval the
/// watch observed instead of counting samples (a query takes 10 ms on an idle machine and
/// well over 100 ms on a busy one).
struct Watch {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: JoinHandle<()>,
}

impl Watch {
    fn start(lab: &Lab, prefix: &str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe {
            ext: Pathspace(lab.ext.pathspace().to_string()),
            ok: std::cell::Cell::new(false),
        };
        let prefix = prefix.to_string();
        let (flag, out) = (stop.clone(), samples.clone());
        let handle = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let start = Instant::now();
                let hops = probe.fib_nexthops(&prefix);
                let end = Instant::now();
                // a failed query observed nothing
                if probe.ok.get() {
                    out.lock().unwrap().push(Sample { start, end, hops });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watch {
            stop,
            samples,
            handle,
        }
    }

    /// Waits (up to `T`) until the watch has a sample whose query started at or after
    /// `after`; returns it.
    fn wait_sample_after(&self, what: &str, after: Instant) -> Sample {
        wait_until_some(what, T, || {
            self.samples
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.start >= after)
                .cloned()
        })
        .unwrap()
        .0
    }

    /// Stops sampling; returns every sample, in order.
    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("watch thread");
        Arc::try_unwrap(self.samples)
            .expect("watch thread ended")
            .into_inner()
            .unwrap()
    }
}

/// The first sample without `nh`, if any.
fn first_gap<'a>(samples: &'a [Sample], nh: &str) -> Option<&'a Sample> {
    samples.iter().find(|s| !s.hops.iter().any(|h| h == nh))
}

/// Whether a sample was taken entirely within `[from, to]`.
fn sampled_within(samples: &[Sample], from: Instant, to: Instant) -> bool {
    samples.iter().any(|s| s.start >= from && s.end <= to)
}

/// Whether a sample was started at or after `from`.
fn sampled_after(samples: &[Sample], from: Instant) -> bool {
    samples.iter().any(|s| s.start >= from)
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
    // reference, FRRNodeState's runningConfig is redacted. FRR has the configuration from
    // the speaker in process; the object follows within --frr-config-write-interval-ms
    // (1 s) while changes keep coming, so every version read on the way is checked.
    let mut last = None;
    let (text, _) = wait_until_some("metallb-node1 with the passwordSecret reference", T, || {
        let cfg = lab
            .get(
                "frrk8s.metallb.io/v1beta1",
                "FRRConfiguration",
                Some(FRRK8S_NS),
                "metallb-node1",
            )
            .ok()??;
        let text = cfg.to_string();
        assert!(!text.contains(PW), "cleartext password in {text}");
        last = Some(text.clone());
        text.contains("bgp-auth").then_some(text)
    })
    .unwrap_or_else(|e| panic!("{e:#}; last read: {last:?}"));
    assert!(!text.contains(PW), "cleartext password in {text}");
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
    let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    wait_until("every speaker announces a", T, || {
        bgp_status_nodes(&lab, "a").as_ref() == Some(&names)
    })
    .unwrap();
    lab.delete_service("a").unwrap();
    // every speaker has processed the deletion (its ServiceBGPStatus for a is gone); then
    // 2 s for a wrong withdrawal to reach the router
    wait_until("every speaker dropped a", T, || {
        bgp_status_nodes(&lab, "a").is_some_and(|n| n.is_empty())
    })
    .unwrap();
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
    // A probe peer for node2 only (nobody listens at its address), created after `ext`:
    // once node2's FRR has it, node2's speaker has processed `ext` too and its frr-k8s has
    // applied the result.
    lab.apply(bgp_peer(
        "probe",
        64512,
        64599,
        "192.0.2.99",
        json!({"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "node2"}}]}),
    ))
    .unwrap();
    wait_until("node2's FRR has the probe peer", T, || {
        lab.node(2)
            .frr
            .running_config()
            .is_ok_and(|rc| rc.contains("neighbor 192.0.2.99 remote-as 64599"))
    })
    .unwrap();
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
    lab.delete("metallb.io/v1beta2", "BGPPeer", Some(METALLB_NS), "probe")
        .unwrap();

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
    // A probe Service in its own pool, advertised everywhere, created after `seed` and
    // `web`: once node1 announces it, node1's speaker has processed those too.
    lab.apply(ip_pool("probe", &["198.18.9.0/24"])).unwrap();
    lab.apply(bgp_advertisement(
        "probe",
        json!({"ipAddressPools": ["probe"]}),
    ))
    .unwrap();
    let probe = service(
        &lab,
        "probe",
        2,
        json!({"metallb.io/address-pool": "probe"}),
    );
    lab.wait_ext_nexthops(&host_prefix(&probe), &lab.all_node_v4(), T)
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
    // quiet first: once every node announces loud, every speaker has processed quiet too
    // (each kind's events arrive in order)
    let quiet = service(
        &lab,
        "quiet",
        2,
        json!({"metallb.io/address-pool": "quiet"}),
    );
    let loud = service(&lab, "loud", 1, json!({"metallb.io/address-pool": "loud"}));
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
/// node1 is back, and drops node2's at once. With `--withdraw-on-shutdown` a speaker
/// restart still keeps node1's route (the speaker withdraws nothing when a session has
/// graceful restart) and withdraws node2's.
#[test]
fn graceful_restart() {
    if !require_full_stack("graceful_restart") {
        return;
    }
    let mut lab = lab("gr", |o| {
        o.speaker_args.push("--withdraw-on-shutdown".into());
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
    let crashed = Instant::now();
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
    let stale_seen = Instant::now();
    println!(
        "after {:?} ext holds node1's stale path: {stale}",
        t.elapsed()
    );
    // bgpd stays down until the watch has looked at the router while it holds node1's path
    // only as stale (however long a query takes on a busy machine)
    watch.wait_sample_after("a sample while node1's bgpd is down", stale_seen);
    let restarting = Instant::now();
    lab.node_mut(1).frr.start_missing(false).unwrap();
    wait_until("node1's session back", T, || {
        dropped(&lab, &n1) > drops_before && ext_state(&lab, &n1) == "Established"
    })
    .unwrap();
    let back = Instant::now();
    // end-of-RIB from the restarted node replaces the stale path
    wait_until("node1's path no longer stale", T, || {
        lab.ext
            .query_json(&format!("show bgp ipv4 unicast {p} json"))
            .map(|v| !v.to_string().contains("\"stale\":true"))
            .unwrap_or(false)
    })
    .unwrap();
    let fresh = Instant::now();
    watch.wait_sample_after("a sample after node1's path was refreshed", fresh);
    let samples = watch.finish();
    println!(
        "node1 bgpd crash: session back after {:?}; {} samples over {:?}",
        back - t,
        samples.len(),
        t.elapsed()
    );
    if let Some(s) = first_gap(&samples, &n1) {
        panic!(
            "node1's route left the external router {:?} after its bgpd crashed (next hops {:?}) despite graceful restart",
            s.start.saturating_duration_since(crashed),
            s.hops
        );
    }
    // the watch saw the outage itself and its end, not only the time around it
    assert!(
        sampled_within(&samples, crashed, restarting),
        "no sample while node1's bgpd was down: {samples:?}"
    );
    assert!(
        sampled_after(&samples, back),
        "no sample after node1's session came back: {samples:?}"
    );
    assert_eq!(lab.ext.nexthops(&p), lab.all_node_v4());

    // ---- control: node2 (no graceful restart) loses its next hop at once
    let t = Instant::now();
    lab.node_mut(2).frr.crash_daemon("bgpd");
    let gone = lab
        .wait_ext_nexthops(&p, std::slice::from_ref(&n1), T)
        .unwrap();
    println!(
        "control: node2 bgpd crash without graceful restart removed its next hop after {gone:?}"
    );
    lab.node_mut(2).frr.start_missing(false).unwrap();
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    println!("node2 back after {:?}", t.elapsed());

    // ---- speaker restarts: node1 (graceful restart) withdraws nothing
    let log = lab.log_dir().join("speaker-node1.log");
    let watch = Watch::start(&lab, &p);
    let t = Instant::now();
    lab.restart_speaker(1).unwrap();
    // watch until the new speaker has applied its configuration, and 2 s longer
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
    let applied = Instant::now();
    watch.wait_sample_after(
        "a sample 2 s after speaker1 applied its configuration",
        applied + Duration::from_secs(2),
    );
    let samples = watch.finish();
    lab.check_processes().unwrap();
    if let Some(s) = first_gap(&samples, &n1) {
        panic!(
            "node1's route left the external router {:?} into its speaker restart (next hops {:?})",
            s.start.saturating_duration_since(t),
            s.hops
        );
    }
    assert!(
        sampled_after(&samples, t),
        "no sample during speaker1's restart"
    );
    // the old speaker decided to leave its announcements to graceful restart (logged on
    // SIGTERM, before the restart marker)
    let old = previous_run(&log);
    assert!(
        old.contains("graceful restart configured: leaving the announcements to it"),
        "speaker1 did not keep its announcements for graceful restart:\n{old}"
    );
    println!(
        "speaker1 restart: node1's next hop kept ({} samples over {:?}, {} before the new speaker applied its configuration)",
        samples.len(),
        t.elapsed(),
        samples.iter().filter(|s| s.start >= t && s.end <= applied).count()
    );
    // control: node2's speaker withdraws on SIGTERM (and waits until its FRR applied the
    // withdrawal), the route comes back after
    let log = lab.log_dir().join("speaker-node2.log");
    let watch = Watch::start(&lab, &p);
    lab.restart_speaker(2).unwrap();
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    let samples = watch.finish();
    let old = previous_run(&log);
    assert!(
        old.contains("announcements withdrawn")
            && old.contains("FRR no longer originates the withdrawn prefixes"),
        "node2's speaker did not withdraw on SIGTERM:\n{old}"
    );
    // how long the external router went without node2 depends on how fast the new speaker
    // comes back: reported, not asserted
    println!(
        "control: speaker2 restart without graceful restart: first sample without node2: {:?}",
        first_gap(&samples, &n2).map(|s| &s.hops)
    );
}

/// Issue 13, item 5: with default flags a speaker restart (SIGTERM, then a new process)
/// withdraws nothing: no session has graceful restart here, yet across 10 restarts,
/// alternating nodes, the external router always has both next hops (sampled continuously
/// from before the first SIGTERM until the last new speaker has applied its configuration),
/// and the old speakers logged that they left their announcements in place.
#[test]
fn speaker_restarts_never_withdraw() {
    if !require_full_stack("speaker_restarts_never_withdraw") {
        return;
    }
    let mut lab = lab("restarts", |_| {});
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer("ext", 64512, 64513, "192.0.2.1", json!({})))
        .unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service(&lab, "web", 1, json!({}));
    let p = host_prefix(&ip);
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    let hops = lab.all_node_v4();
    let watch = Watch::start(&lab, &p);
    let t = Instant::now();
    for i in 0..10 {
        let k = 1 + i % 2;
        let log = lab.log_dir().join(format!("speaker-node{k}.log"));
        let restarts_before = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("==== e2e: restart")
            .count();
        lab.restart_speaker(k).unwrap();
        wait_until(
            &format!("restart {i}: the new speaker on node{k} is running its writer"),
            T,
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                text.matches("==== e2e: restart").count() > restarts_before
                    && text
                        .rfind("==== e2e: restart")
                        .is_some_and(|at| text[at..].contains("FRR configuration applied"))
            },
        )
        .unwrap_or_else(|e| {
            lab.dump_logs(80);
            panic!("{e}")
        });
        // The new process took over with no FRR command: nothing changed.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let since = text.rfind("==== e2e: restart").map_or("", |at| &text[at..]);
        let applied = since
            .lines()
            .find(|l| l.contains("FRR configuration applied"))
            .map(strip_ansi)
            .unwrap_or_default();
        if !applied.contains("commands=0") {
            // the batches FRR got from the new process (the lab logs them at debug level)
            let sent: Vec<String> = since
                .lines()
                .filter(|l| l.contains("frr_k8s::frr::control"))
                .map(strip_ansi)
                .collect();
            lab.dump_logs(80);
            panic!(
                "restart {i}: speaker{k}'s first apply sent commands: {applied}\nbatches:\n{}",
                sent.join("\n")
            );
        }
        let old = previous_run(&log);
        assert!(
            old.contains("speaker stopped") && !old.contains("announcements withdrawn"),
            "restart {i}: speaker{k} withdrew on SIGTERM:\n{old}"
        );
    }
    watch.wait_sample_after(
        "a sample 2 s after the last restart",
        Instant::now() + Duration::from_secs(2),
    );
    let samples = watch.finish();
    lab.check_processes().unwrap();
    for nh in &hops {
        if let Some(s) = first_gap(&samples, nh) {
            panic!(
                "{nh} left the external router {:?} into the restarts (next hops {:?})",
                s.start.saturating_duration_since(t),
                s.hops
            );
        }
    }
    assert!(sampled_after(&samples, t), "no sample during the restarts");
    println!(
        "10 speaker restarts over {:?}: both next hops in all {} samples",
        t.elapsed(),
        samples.len()
    );
}

/// `line` without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The log of a managed process before its last restart (since the one before, if any).
fn previous_run(log: &std::path::Path) -> String {
    const MARKER: &str = "==== e2e: restart";
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let end = text.rfind(MARKER).unwrap_or(text.len());
    let start = text[..end].rfind(MARKER).unwrap_or(0);
    text[start..end].to_string()
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
