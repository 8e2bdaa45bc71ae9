//! Issue 13: configuration mistakes never move a Service's IP or withdraw a route.
//!
//! On the lab (real API server when the assets are there, real FRR on every node and at the
//! external router, webhooks deliberately absent: the controller runs with
//! `--webhook-mode disabled`), six Services are announced; then a seeded random sequence of
//! at least 50 bad creations and edits across every kind (overlapping and malformed pools,
//! invalid and incompatible peers, peers naming a missing BFD profile, advertisements with
//! unknown communities or impossible aggregation, conflicting community aliases, malformed
//! community values, conflicting user FRRConfigurations), interleaved with restarts of the
//! controller and of a speaker. Checked throughout:
//!
//! * no Service IP changes (after every step);
//! * no /32 loses a next hop at the external router (its kernel table is sampled in a
//!   thread from before the first mistake until after the last check);
//! * no BGP session resets (`connectionsDropped` and `connectionsEstablished` unchanged).
//!
//! At the end every mistake is undone (bad objects deleted, edits reverted) and every
//! ConfigurationState is Valid and every FRRNodeState's conversion succeeded. The seed is
//! printed; `CHAOS_SEED=N` replays a sequence.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metallb_e2e::objects::{
    self, bgp_advertisement, bgp_peer, frr_configuration, host_prefix, ip_pool, FRRK8S_NS,
    METALLB_NS,
};
use metallb_e2e::{require_full_stack, Lab, LabOptions, Stack};
use metallb_netlab::wait_until;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);
const SERVICES: usize = 6;
const MIN_MISTAKES: usize = 50;
/// What the user's FRRConfiguration announces.
const USER_PREFIX: &str = "198.19.0.0/24";

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One object the sequence touched, and how to undo it.
enum Undo {
    /// Delete it (it was created by the sequence).
    Delete {
        api_version: &'static str,
        kind: &'static str,
        ns: &'static str,
    },
    /// Apply this again (an established object the sequence edited).
    Restore(Value),
}

/// Next hops of every BGP route in the external router's kernel table.
fn kernel_routes(lab: &Lab) -> Option<BTreeMap<String, Vec<String>>> {
    let ns = lab.ext.netns.as_ref()?;
    let out = ns.ip(&["-4", "route", "show", "proto", "bgp"]).ok()?;
    Some(parse_routes(&out))
}

/// The external router's kernel table, sampled in a thread; each sample that lacks a next
/// hop of a watched prefix is kept as a violation.
struct RouteWatch {
    stop: Arc<AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    samples: Arc<Mutex<usize>>,
    handle: std::thread::JoinHandle<()>,
}

impl RouteWatch {
    fn start(lab: &Lab, want: BTreeMap<String, Vec<String>>) -> RouteWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(0usize));
        let ns = (lab.ext.netns.as_ref())
            .expect("the lab's external router")
            .name()
            .to_string();
        let (flag, bad, count) = (stop.clone(), violations.clone(), samples.clone());
        let started = Instant::now();
        let handle = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let t = started.elapsed();
                let out = std::process::Command::new("ip")
                    .args(["-n", &ns, "-4", "route", "show", "proto", "bgp"])
                    .output()
                    .ok()
                    .filter(|o| o.status.success());
                // a failed query observed nothing
                if let Some(out) = out {
                    let routes = parse_routes(&String::from_utf8_lossy(&out.stdout));
                    for (p, hops) in &want {
                        let have = routes.get(p).cloned().unwrap_or_default();
                        if hops.iter().any(|h| !have.contains(h)) {
                            bad.lock()
                                .unwrap()
                                .push(format!("{t:?}: {p} via {have:?}, expected {hops:?}"));
                        }
                    }
                    *count.lock().unwrap() += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RouteWatch {
            stop,
            violations,
            samples,
            handle,
        }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        let n = *self.samples.lock().unwrap();
        let v = self.violations.lock().unwrap().clone();
        (n, v)
    }
}

fn parse_routes(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut routes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(char::is_whitespace) {
            let Some(dst) = words.first() else { continue };
            let dst = if dst.contains('/') {
                dst.to_string()
            } else {
                format!("{dst}/32")
            };
            routes.entry(dst.clone()).or_default();
            current = Some(dst);
        }
        if let Some(dst) = &current {
            for w in words.windows(2).filter(|w| w[0] == "via") {
                routes.get_mut(dst).unwrap().push(w[1].to_string());
            }
        }
    }
    for v in routes.values_mut() {
        v.sort();
        v.dedup();
    }
    routes
}

/// `connectionsDropped` / `connectionsEstablished` summed at the external router. A failed
/// `vtysh` query reads as no neighbor at all, (0, 0), which a router with sessions
/// established never shows (both counters only grow): asked again rather than taken for a
/// reset.
fn session_counters(lab: &Lab) -> (u64, u64) {
    let mut c = lab.ext.session_counters();
    for _ in 0..5 {
        if c != (0, 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        c = lab.ext.session_counters();
    }
    c
}

fn community(name: &str, aliases: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "Community",
        "metadata": {"name": name, "namespace": METALLB_NS},
        "spec": {"communities": aliases.iter()
            .map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>()},
    })
}

/// One bad step: what it does, the object, how to undo it.
struct Mistake {
    what: String,
    obj: Value,
    undo: Undo,
}

const MB: &str = "metallb.io/v1beta1";

fn created(what: String, obj: Value) -> Mistake {
    let (api_version, kind, ns) = match obj["kind"].as_str().unwrap() {
        "IPAddressPool" => (MB, "IPAddressPool", METALLB_NS),
        "BGPPeer" => ("metallb.io/v1beta2", "BGPPeer", METALLB_NS),
        "BGPAdvertisement" => (MB, "BGPAdvertisement", METALLB_NS),
        "Community" => (MB, "Community", METALLB_NS),
        "FRRConfiguration" => ("frrk8s.metallb.io/v1beta1", "FRRConfiguration", FRRK8S_NS),
        k => panic!("unexpected kind {k}"),
    };
    Mistake {
        what,
        obj,
        undo: Undo::Delete {
            api_version,
            kind,
            ns,
        },
    }
}

fn edited(what: String, obj: Value, original: &Value) -> Mistake {
    Mistake {
        what,
        obj,
        undo: Undo::Restore(original.clone()),
    }
}

/// A random mistake; `i` keeps names unique.
fn mistake(rng: &mut Rng, i: usize, established: &BTreeMap<&str, Value>) -> Mistake {
    // Names that sort before and after the established objects: order by name must not
    // matter.
    let early = rng.below(2) == 0;
    let name = |base: &str| {
        if early {
            format!("a-{base}-{i}")
        } else {
            format!("z-{base}-{i}")
        }
    };
    match rng.below(14) {
        0 => {
            let cidr = [
                "198.18.0.0/24",
                "198.18.0.0/25",
                "198.18.0.128/25",
                "198.18.0.64/26",
                "198.18.0.5/32",
                "198.18.0.0/23",
                "198.18.0.10-198.18.0.20",
            ][rng.below(7)];
            created(
                format!("new pool overlapping seed ({cidr})"),
                ip_pool(&name("overlap"), &[cidr]),
            )
        }
        1 => {
            let bad = [
                "198.18.9.0/33",
                "not-an-ip",
                "198.18.9.9-198.18.9.1",
                "198.18.9.0/24/1",
            ][rng.below(4)];
            created(
                format!("new malformed pool ({bad})"),
                ip_pool(&name("malformed"), &[bad]),
            )
        }
        2 => {
            let bad = ["198.18.0.0/33", "198.18.0.0/24x", "198.18.0.300/24"][rng.below(3)];
            let mut o = established["pool"].clone();
            o["spec"]["addresses"] = json!([bad]);
            edited(
                format!("pool seed edited to {bad}"),
                o,
                &established["pool"],
            )
        }
        3 => {
            let bad = [
                json!({"holdTime": "2500ms"}),
                json!({"holdTime": "1s"}),
                json!({"holdTime": "90s", "keepaliveTime": "200s"}),
            ][rng.below(3)]
            .clone();
            let mut o = established["peer"].clone();
            objects::merge(&mut o["spec"], bad.clone());
            edited(format!("peer ext edited: {bad}"), o, &established["peer"])
        }
        4 => created(
            "new peer to the same router with another local ASN".into(),
            bgp_peer(&name("other-asn"), 64600, 64513, "192.0.2.1", json!({})),
        ),
        5 => created(
            "new peer naming a missing BFD profile".into(),
            bgp_peer(
                &name("missing-bfd"),
                64512,
                64513,
                "192.0.2.1",
                json!({"bfdProfile": "nowhere"}),
            ),
        ),
        6 => {
            let mut o = established["ad"].clone();
            let bad = ["65536:1", "no-such-alias", "x:1"][rng.below(3)];
            o["spec"]["communities"] = json!([bad]);
            edited(
                "advertisement seed edited to a bad community".into(),
                o,
                &established["ad"],
            )
        }
        7 => created(
            "new advertisement aggregating wider than the pool".into(),
            bgp_advertisement(
                &name("wide"),
                json!({"ipAddressPools": ["seed"], "aggregationLength": 16}),
            ),
        ),
        8 => created(
            "new advertisement with an unknown community alias".into(),
            bgp_advertisement(
                &name("unknown-alias"),
                json!({"ipAddressPools": ["seed"], "communities": ["nowhere"]}),
            ),
        ),
        9 => created(
            "new community redefining the alias in use".into(),
            community(&name("dup"), &[("tagged", "64512:999")]),
        ),
        10 => {
            let mut o = established["community"].clone();
            let bad = ["99999999:1", "x:y", "1:2:3:4"][rng.below(3)];
            o["spec"]["communities"][0]["value"] = json!(bad);
            edited(
                "community edited to a malformed value".into(),
                o,
                &established["community"],
            )
        }
        11 => created(
            "new user FRRConfiguration with another ASN for the default VRF".into(),
            frr_configuration(
                &name("conflict"),
                json!({"bgp": {"routers": [{"asn": 64999,
                    "neighbors": [{"address": "192.0.2.1", "asn": 64513}]}]}}),
            ),
        ),
        12 => {
            let mut o = established["frr"].clone();
            let asn = [64999, 64512][rng.below(2)];
            o["spec"]["bgp"]["routers"][0]["asn"] = json!(asn);
            if asn == 64512 {
                o["spec"]["bgp"]["routers"][0]["prefixes"] = json!(["198.19.0.0/40"]);
            }
            edited(
                "the user's FRRConfiguration edited into a conflict or a malformed prefix".into(),
                o,
                &established["frr"],
            )
        }
        _ => created(
            "new user FRRConfiguration with a malformed prefix".into(),
            frr_configuration(
                &name("malformed"),
                json!({"bgp": {"routers": [{"asn": 64512, "prefixes": ["198.18.0.0/40"]}]}}),
            ),
        ),
    }
}

#[test]
fn configuration_mistakes_never_move_an_ip_or_withdraw_a_route() {
    if !require_full_stack("configuration_mistakes_never_move_an_ip_or_withdraw_a_route") {
        return;
    }
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("chaos: seed {seed} (replay with CHAOS_SEED={seed})");
    let mut rng = Rng(seed);
    let mut o = LabOptions::new("chaos");
    o.stack = Stack::Full;
    let mut lab = Lab::start(o).expect("starting the lab");

    // The established configuration.
    let established: BTreeMap<&str, Value> = [
        ("pool", ip_pool("seed", &["198.18.0.0/24"])),
        (
            "peer",
            bgp_peer("ext", 64512, 64513, "192.0.2.1", json!({})),
        ),
        ("community", community("tags", &[("tagged", "64512:100")])),
        (
            "ad",
            bgp_advertisement("seed", json!({"communities": ["tagged"]})),
        ),
        // A user's FRRConfiguration beside MetalLB's: one more prefix to the same router.
        (
            "frr",
            frr_configuration(
                "user-extra",
                json!({"bgp": {"routers": [{"asn": 64512, "prefixes": [USER_PREFIX],
                    "neighbors": [{"address": "192.0.2.1", "asn": 64513, "connectTime": "1s",
                        "toAdvertise": {"allowed": {"prefixes": [USER_PREFIX]}}}]}]}}),
            ),
        ),
    ]
    .into();
    // MetalLB's configuration first, so that the speakers' FRRConfigurations are in
    // effect before the user's joins them.
    for k in ["pool", "peer", "community", "ad"] {
        lab.apply(established[k].clone()).unwrap();
    }
    let mut ips = BTreeMap::new();
    for i in 0..SERVICES {
        let name = format!("svc-{i}");
        lab.create_service(&name, false, &lab.endpoints_everywhere(i as u8 + 1))
            .unwrap();
        ips.insert(name.clone(), lab.wait_service_ips(&name, 1, T).unwrap());
    }
    lab.apply(established["frr"].clone()).unwrap();
    let hops = lab.all_node_v4();
    let mut want: BTreeMap<String, Vec<String>> = ips
        .values()
        .map(|v| (host_prefix(&v[0]), hops.clone()))
        .collect();
    want.insert(USER_PREFIX.to_string(), hops.clone());
    for p in want.keys() {
        lab.wait_ext_nexthops(p, &hops, T).unwrap();
    }
    assert_eq!(
        kernel_routes(&lab).map(|r| want.keys().all(|p| r.get(p) == Some(&hops))),
        Some(true),
        "the external router's kernel table lacks a next hop before the test: {:?}",
        kernel_routes(&lab)
    );
    let counters = session_counters(&lab);
    assert!(
        counters.1 > 0,
        "no session established at the external router: {counters:?}"
    );
    let watch = RouteWatch::start(&lab, want.clone());
    let t0 = Instant::now();

    let check = |lab: &Lab, step: &str| {
        for (name, ip) in &ips {
            assert_eq!(
                &lab.service_ips(name),
                ip,
                "seed {seed}: after {step}: {name} changed IP"
            );
        }
        assert_eq!(
            session_counters(lab),
            counters,
            "seed {seed}: after {step}: a BGP session reset (dropped, established)"
        );
    };

    let mut undo: Vec<(String, Undo)> = Vec::new();
    let (mut accepted, mut refused, mut restarts) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while accepted < MIN_MISTAKES && i < 4 * MIN_MISTAKES {
        i += 1;
        let m = mistake(&mut rng, i, &established);
        let key = format!(
            "{}/{}",
            m.obj["kind"].as_str().unwrap(),
            m.obj["metadata"]["name"].as_str().unwrap()
        );
        match lab.apply(m.obj.clone()) {
            Ok(_) => {
                accepted += 1;
                println!("chaos {i}: {}", m.what);
                // An edit of an established object is undone once, to its original.
                if !undo.iter().any(|(k, _)| *k == key) {
                    undo.push((key, m.undo));
                }
            }
            Err(e) => {
                // The CRD schema (or CEL) refused it: the API server is doing its part.
                refused += 1;
                println!("chaos {i}: {} refused by the API server: {e:#}", m.what);
                continue;
            }
        }
        // Give the components time to react (a wrong reaction shows in the routes, the
        // watch, or the IPs).
        std::thread::sleep(Duration::from_millis(300));
        check(&lab, &m.what);
        if i % 9 == 0 {
            restarts += 1;
            if restarts % 2 == 1 {
                lab.restart_controller().unwrap();
                println!("chaos {i}: controller restarted");
            } else {
                let k = 1 + restarts / 2 % 2;
                lab.restart_speaker(k).unwrap();
                println!("chaos {i}: speaker{k} restarted");
            }
            std::thread::sleep(Duration::from_secs(2));
            check(&lab, "a restart");
        }
    }
    assert!(
        accepted >= MIN_MISTAKES,
        "seed {seed}: only {accepted} mistakes got past the API server ({refused} refused)"
    );
    // A last restart of everything, with every mistake still in place.
    lab.restart_controller().unwrap();
    lab.restart_speaker(1).unwrap();
    lab.restart_speaker(2).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    check(&lab, "the final restarts");
    lab.check_processes().unwrap();

    // Undo every mistake: the statuses turn Valid, nothing moved.
    for (key, u) in undo.iter().rev() {
        let name = key.split_once('/').unwrap().1;
        match u {
            Undo::Delete {
                api_version,
                kind,
                ns,
            } => lab.delete(api_version, kind, Some(ns), name).unwrap(),
            Undo::Restore(obj) => {
                lab.apply(obj.clone()).unwrap();
            }
        }
    }
    let states = ["controller", "speaker-node1", "speaker-node2"];
    for s in states {
        wait_until(&format!("ConfigurationState {s} Valid"), T, || {
            lab.get(MB, "ConfigurationState", Some(METALLB_NS), s)
                .ok()
                .flatten()
                .and_then(|o| o.pointer("/status/result").cloned())
                == Some(json!("Valid"))
        })
        .unwrap_or_else(|e| {
            let o = lab.get(MB, "ConfigurationState", Some(METALLB_NS), s);
            panic!("seed {seed}: {e}: {o:?}")
        });
    }
    for n in ["node1", "node2"] {
        wait_until(&format!("FRRNodeState {n} converted"), T, || {
            lab.get("frrk8s.metallb.io/v1beta1", "FRRNodeState", None, n)
                .ok()
                .flatten()
                .and_then(|o| {
                    o.pointer("/status/lastConversionResult")
                        .and_then(Value::as_str)
                        .map(|r| r == "success")
                })
                == Some(true)
        })
        .unwrap_or_else(|e| {
            let o = lab.get("frrk8s.metallb.io/v1beta1", "FRRNodeState", None, n);
            panic!("seed {seed}: {e}: {o:?}")
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    check(&lab, "undoing every mistake");
    let (samples, violations) = watch.finish();
    assert!(
        violations.is_empty(),
        "seed {seed}: the external router lost a next hop:\n{}",
        violations.join("\n")
    );
    assert!(samples > 0, "the route watch never sampled");
    println!(
        "chaos: seed {seed}: {accepted} mistakes (+{refused} refused by the API server), \
         {} restarts, over {:?}: no IP moved, no next hop lost in {samples} samples of the \
         external router's kernel table, sessions untouched ({counters:?})",
        restarts + 3,
        t0.elapsed()
    );
}
