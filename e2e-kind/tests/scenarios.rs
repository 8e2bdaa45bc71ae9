//! Full-stack scenarios: metallb-controller + one all-in-one metallb-speaker per node,
//! each driving its node's FRR; assertions on the external router's tables.
//!
//! Every test needs root and FRR (else `SKIPPED: ...`), and the speaker binary.

use std::time::{Duration, Instant};

use metallb_e2e::objects::{
    self, bfd_profile, bgp_advertisement, bgp_peer, frr_configuration, host_prefix, ip_pool,
    Endpoint, FRRK8S_NS, METALLB_NS,
};
use metallb_e2e::router::{node_v4, EXT_V6};
use metallb_e2e::{require_full_stack, FrrQueries, Lab, LabOptions, Stack};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn lab(name: &str, tweak: impl FnOnce(&mut LabOptions)) -> Lab {
    let mut o = LabOptions::new(name);
    o.stack = Stack::Full;
    tweak(&mut o);
    Lab::start(o).expect("starting the lab")
}

/// Creates Service `name` with serving endpoints on every node; returns its IP.
fn service_everywhere(lab: &Lab, name: &str, n: u8) -> String {
    lab.create_service(name, false, &lab.endpoints_everywhere(n))
        .unwrap();
    lab.wait_service_ips(name, 1, T).unwrap()[0].clone()
}

#[test]
fn seed_demo_ecmp_on_every_node() {
    if !require_full_stack("seed_demo_ecmp_on_every_node") {
        return;
    }
    let lab = lab("seed", |o| o.nodes = 3);
    lab.apply_seed_config("198.18.0.0/24").unwrap();
    let ip = service_everywhere(&lab, "web", 1);
    assert!(ip.starts_with("198.18.0."), "{ip} not from the pool");
    let took = lab
        .wait_ext_nexthops(&host_prefix(&ip), &lab.all_node_v4(), T)
        .unwrap();
    println!(
        "seed: {ip}/32 via {:?} after {took:?}\n{}",
        lab.all_node_v4(),
        lab.ext.kernel_route(&host_prefix(&ip))
    );
}

#[test]
fn etp_local_only_serving_nodes_are_next_hops() {
    if !require_full_stack("etp_local_only_serving_nodes_are_next_hops") {
        return;
    }
    let lab = lab("local", |o| o.nodes = 3);
    lab.apply_seed_config("198.18.0.0/24").unwrap();
    let eps = |serving: [bool; 3]| -> Vec<Endpoint> {
        (1..=3)
            .map(|k| {
                Endpoint::new(
                    &format!("node{k}"),
                    &format!("100.64.{k}.1"),
                    serving[k - 1],
                )
            })
            .collect()
    };
    lab.create_service("local", true, &eps([true, true, false]))
        .unwrap();
    let ip = lab.wait_service_ips("local", 1, T).unwrap()[0].clone();
    let p = host_prefix(&ip);
    lab.wait_ext_nexthops(&p, &[node_v4(1), node_v4(2)], T)
        .unwrap();
    // node1's endpoint stops serving: its next hop goes
    lab.apply(objects::endpoint_slice("local", &eps([false, true, false])))
        .unwrap();
    let took = lab.wait_ext_nexthops(&p, &[node_v4(2)], T).unwrap();
    println!("local: node1 withdrawn {took:?} after its endpoint stopped serving");
    // node3 starts serving
    lab.apply(objects::endpoint_slice("local", &eps([false, true, true])))
        .unwrap();
    lab.wait_ext_nexthops(&p, &[node_v4(2), node_v4(3)], T)
        .unwrap();
    // nobody serves: the route is withdrawn
    lab.apply(objects::endpoint_slice(
        "local",
        &eps([false, false, false]),
    ))
    .unwrap();
    lab.wait_ext_nexthops(&p, &[], T).unwrap();
}

#[test]
fn user_frrconfiguration_alongside_metallb() {
    if !require_full_stack("user_frrconfiguration_alongside_metallb") {
        return;
    }
    let bird = metallb_netlab::require_bird("user_frrconfiguration_alongside_metallb");
    let lab = lab("userfrr", |o| {
        o.bird = bird;
        // the external router also announces prefixes to the nodes
        o.ext.extra = "router bgp 64513\n no bgp network import-check\n \
                       address-family ipv4 unicast\n  network 198.19.1.0/24\n  \
                       network 198.19.2.1/32\n  network 198.18.200.0/24\n \
                       exit-address-family\nexit\n"
            .into();
    });
    lab.apply_seed_config("198.18.0.0/24").unwrap();
    let ip = service_everywhere(&lab, "web", 1);
    let p = host_prefix(&ip);
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();

    // the user's FRRConfiguration: receive 198.19.0.0/16 le 32 from the same router, and
    // an extra neighbor (BIRD) when available
    let mut neighbors = vec![json!({
        // same session parameters as MetalLB's (BGPPeer connectTime 1s), else frr-k8s
        // reports a conflict
        "address": "192.0.2.1", "asn": 64513, "connectTime": "1s",
        "toReceive": {"allowed": {"prefixes": [{"prefix": "198.19.0.0/16", "le": 32}]}},
    })];
    if bird {
        neighbors.push(json!({"address": "192.0.2.2", "asn": 64514, "connectTime": "1s"}));
    }
    lab.apply(frr_configuration(
        "user",
        json!({"bgp": {"routers": [{"asn": 64512, "neighbors": neighbors}]}}),
    ))
    .unwrap();
    for n in &lab.nodes {
        metallb_netlab::wait_until(
            &format!("{} receives 198.19.1.0/24 and 198.19.2.1/32 only", n.name),
            T,
            || {
                let got = n.frr.bgp_prefixes("ipv4");
                got.contains(&"198.19.1.0/24".to_string())
                    && got.contains(&"198.19.2.1/32".to_string())
                    && !got.contains(&"198.18.200.0/24".to_string())
            },
        )
        .unwrap();
    }
    if let Some(b) = &lab.bird {
        metallb_netlab::wait_until("BIRD sessions established", T, || {
            b.bird
                .birdc(&["show", "protocols"])
                .map(|s| s.matches("Established").count() == lab.nodes.len())
                .unwrap_or(false)
        })
        .unwrap();
    }
    assert_eq!(lab.ext.nexthops(&p), lab.all_node_v4());
    let (dropped_before, _) = lab.ext.session_counters();

    // a conflicting user object (same neighbor, another AS) on node1
    lab.apply(frr_configuration(
        "conflict",
        json!({
            "nodeSelector": {"matchLabels": {"kubernetes.io/hostname": "node1"}},
            "bgp": {"routers": [{"asn": 64512, "neighbors": [
                {"address": "192.0.2.1", "asn": 64999}]}]},
        }),
    ))
    .unwrap();
    let (result, _) = metallb_netlab::wait_until_some("FRRNodeState node1 reports", T, || {
        let s = lab
            .get("frrk8s.metallb.io/v1beta1", "FRRNodeState", None, "node1")
            .ok()
            .flatten()?;
        let r = s
            .pointer("/status/lastConversionResult")?
            .as_str()?
            .to_string();
        (r != "success").then_some(r)
    })
    .unwrap();
    println!("conflict reported in FRRNodeState node1: {result}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.ext.nexthops(&p),
        lab.all_node_v4(),
        "MetalLB's route moved"
    );
    let (dropped_after, _) = lab.ext.session_counters();
    assert_eq!(dropped_before, dropped_after, "a session was reset");
    let _ = FRRK8S_NS;
}

#[test]
fn ibgp_with_communities_and_local_pref() {
    if !require_full_stack("ibgp_with_communities_and_local_pref") {
        return;
    }
    let lab = lab("ibgp", |o| o.ext.asn = 64512);
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer("ext", 64512, 64512, "192.0.2.1", json!({})))
        .unwrap();
    lab.apply(bgp_advertisement(
        "seed",
        json!({"localPref": 150, "communities": ["64512:100", "65535:65281"]}),
    ))
    .unwrap();
    let ip = service_everywhere(&lab, "web", 1);
    let p = host_prefix(&ip);
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    let paths = lab.ext.bgp_paths(&p);
    println!("ibgp paths: {paths:#?}");
    assert_eq!(paths.len(), 2);
    for path in &paths {
        assert_eq!(path.local_pref, Some(150), "{path:?}");
        assert!(path.communities.contains("64512:100"), "{path:?}");
        // 65535:65281 is the well-known no-export community
        assert!(
            path.communities.contains("no-export") || path.communities.contains("noExport"),
            "{path:?}"
        );
    }
}

#[test]
fn ebgp_multihop() {
    if !require_full_stack("ebgp_multihop") {
        return;
    }
    let lab = lab("multihop", |o| o.ext.multihop = true);
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer(
        "ext",
        64512,
        64513,
        metallb_e2e::router::EXT_LOOPBACK,
        json!({"ebgpMultiHop": true}),
    ))
    .unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service_everywhere(&lab, "web", 1);
    lab.wait_ext_nexthops(&host_prefix(&ip), &lab.all_node_v4(), T)
        .unwrap();
}

#[test]
fn bgp_password() {
    if !require_full_stack("bgp_password") {
        return;
    }
    let lab = lab("password", |o| o.ext.password = Some("e2e-secret".into()));
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bgp_peer(
        "ext",
        64512,
        64513,
        "192.0.2.1",
        json!({"password": "e2e-secret"}),
    ))
    .unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service_everywhere(&lab, "web", 1);
    lab.wait_ext_nexthops(&host_prefix(&ip), &lab.all_node_v4(), T)
        .unwrap();
    // the password never shows up in FRRNodeState's desired/running config? (secrets
    // stay out of status is checked by the product's own tests; here the session is up)
}

#[test]
fn ipv6_and_dual_stack() {
    if !require_full_stack("ipv6_and_dual_stack") {
        return;
    }
    let lab = lab("dual", |o| o.ext.ipv6 = true);
    lab.apply(ip_pool("dual", &["198.18.0.0/24", "2001:db8:100::/120"]))
        .unwrap();
    lab.apply(bgp_peer("ext4", 64512, 64513, "192.0.2.1", json!({})))
        .unwrap();
    lab.apply(bgp_peer("ext6", 64512, 64513, EXT_V6, json!({})))
        .unwrap();
    lab.apply(bgp_advertisement("dual", json!({}))).unwrap();
    lab.apply(objects::lb_service_dual("dual")).unwrap();
    lab.apply(objects::endpoint_slice(
        "dual",
        &lab.endpoints_everywhere(1),
    ))
    .unwrap();
    let ips = lab.wait_service_ips("dual", 2, T).unwrap();
    let v4 = ips.iter().find(|i| !i.contains(':')).expect("IPv4").clone();
    let v6 = ips.iter().find(|i| i.contains(':')).expect("IPv6").clone();
    lab.wait_ext_nexthops(&host_prefix(&v4), &lab.all_node_v4(), T)
        .unwrap();
    let mut want6: Vec<String> = lab.nodes.iter().map(|n| n.v6.clone()).collect();
    want6.sort();
    lab.wait_ext_nexthops(&host_prefix(&v6), &want6, T).unwrap();
    println!("dual-stack: {v4} and {v6} via every node");
}

#[test]
fn vrf_peer() {
    if !require_full_stack("vrf_peer") {
        return;
    }
    // Kernel VRF devices when the kernel has them; else FRR's netns VRF backend
    // (`zebra --vrfwnetns`, the VRF is a second namespace holding eth0): not kernel VRFs,
    // but the product's side (`router bgp 64512 vrf red`) is the same. See
    // `metallb_e2e::VrfBackend`.
    let lab = lab("vrf", |o| o.node_vrf = Some("red".into()));
    println!("vrf_peer: VRF backend {:?}", lab.vrf_backend());
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
    let ip = service_everywhere(&lab, "web", 1);
    lab.wait_ext_nexthops(&host_prefix(&ip), &lab.all_node_v4(), T)
        .unwrap();
}

#[test]
fn bfd_link_cut_vs_hold_timer() {
    if !require_full_stack("bfd_link_cut_vs_hold_timer") {
        return;
    }
    let lab = lab("bfd", |o| {
        o.ext.bfd_nodes = vec![1];
        o.ext.timers = Some((3, 9));
    });
    lab.apply(ip_pool("seed", &["198.18.0.0/24"])).unwrap();
    lab.apply(bfd_profile("fast", 300, 3)).unwrap();
    let timers = json!({"holdTime": "9s", "keepaliveTime": "3s"});
    let mut with_bfd = timers.clone();
    objects::merge(
        &mut with_bfd,
        json!({"bfdProfile": "fast",
               "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "node1"}}]}),
    );
    let mut without = timers;
    objects::merge(
        &mut without,
        json!({"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "node2"}}]}),
    );
    lab.apply(bgp_peer("ext-bfd", 64512, 64513, "192.0.2.1", with_bfd))
        .unwrap();
    lab.apply(bgp_peer("ext-hold", 64512, 64513, "192.0.2.1", without))
        .unwrap();
    lab.apply(bgp_advertisement("seed", json!({}))).unwrap();
    let ip = service_everywhere(&lab, "web", 1);
    let p = host_prefix(&ip);
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();
    metallb_netlab::wait_until("BFD up on ext for node1", T, || {
        lab.ext
            .neighbors()
            .get("192.0.2.11")
            .and_then(|n| n.bfd_status.clone())
            .as_deref()
            == Some("Up")
    })
    .unwrap();

    // Why the external router dropped a node's session last (FRR's `lastResetDueTo`, with
    // the NOTIFICATION it sent, if any).
    let last_reset = |addr: &str| {
        lab.ext
            .query_json(&format!("show bgp neighbors {addr} json"))
            .and_then(|v| v.get(addr).cloned())
            .map(|n| {
                format!(
                    "{} {}",
                    n.get("lastResetDueTo")
                        .and_then(|x| x.as_str())
                        .unwrap_or(""),
                    n.get("lastNotificationReason")
                        .and_then(|x| x.as_str())
                        .unwrap_or("")
                )
            })
            .unwrap_or_default()
    };

    let t = Instant::now();
    lab.set_node_link(1, false).unwrap();
    lab.wait_ext_nexthops(&p, &[node_v4(2)], T).unwrap();
    let bfd = t.elapsed();
    let bfd_reason = last_reset(&node_v4(1));
    lab.set_node_link(1, true).unwrap();
    lab.wait_ext_nexthops(&p, &lab.all_node_v4(), T).unwrap();

    let t = Instant::now();
    lab.set_node_link(2, false).unwrap();
    lab.wait_ext_nexthops(&p, &[node_v4(1)], T).unwrap();
    let hold = t.elapsed();
    let hold_reason = last_reset(&node_v4(2));
    lab.set_node_link(2, true).unwrap();
    println!(
        "link cut -> next hop gone: BFD 300ms x3 {bfd:?} ({bfd_reason}), hold timer 9s {hold:?} ({hold_reason})"
    );
    // what took each session down, rather than how long it took (a busy machine stretches
    // both): BFD for node1, the hold timer for node2
    assert!(
        bfd_reason.contains("BFD Down"),
        "node1's session did not go down on BFD: {bfd_reason}"
    );
    assert!(
        hold_reason.contains("Hold Timer Expired"),
        "node2's session did not go down on its hold timer: {hold_reason}"
    );
}

#[test]
fn service_deleted_and_pool_shrunk() {
    if !require_full_stack("service_deleted_and_pool_shrunk") {
        return;
    }
    let lab = lab("lifecycle", |_| {});
    lab.apply_seed_config("198.18.0.0/24").unwrap();
    let a = service_everywhere(&lab, "a", 1);
    let b = service_everywhere(&lab, "b", 2);
    lab.wait_ext_nexthops(&host_prefix(&a), &lab.all_node_v4(), T)
        .unwrap();
    lab.wait_ext_nexthops(&host_prefix(&b), &lab.all_node_v4(), T)
        .unwrap();
    lab.delete_service("a").unwrap();
    let took = lab.wait_ext_nexthops(&host_prefix(&a), &[], T).unwrap();
    println!("service a deleted: {a} withdrawn after {took:?}");
    assert_eq!(lab.ext.nexthops(&host_prefix(&b)), lab.all_node_v4());

    // shrink the pool so that b's IP is no longer in it
    lab.apply(ip_pool("seed", &["198.18.1.0/24"])).unwrap();
    let (moved, _) = metallb_netlab::wait_until_some("service b moves", T, || {
        let ips = lab.service_ips("b");
        ips.first().filter(|i| i.starts_with("198.18.1.")).cloned()
    })
    .unwrap();
    lab.wait_ext_nexthops(&host_prefix(&moved), &lab.all_node_v4(), T)
        .unwrap();
    lab.wait_ext_nexthops(&host_prefix(&b), &[], T).unwrap();
    println!("pool shrunk: b moved {b} -> {moved}, old route withdrawn");
}

/// A Service deleted while its sessions are brand new is withdrawn all the same. FRR 8.4
/// loses a withdrawal processed in a new session's first second once a route-map pass has
/// announced the prefix: the session, its policy and the prefix arriving in one batch is
/// exactly that, and this suite saw the route stay on the router for good in 1 run of 4.
/// frr-k8s renders `coalesce-time 0`, which closes the window, and audits young sessions
/// after removals as a safety net (`frrk8s/src/frr/audit.rs`). Each trial recreates the
/// BGPPeer so that neighbor, policy and prefix reach FRR together, waits for the route on
/// the router (the start of the old window) and deletes the Service D ms later. The race
/// itself is too narrow to hit on demand here (about 60 ms, and the deletion path adds
/// ~150 ms): with the old rendering these 6 trials all passed too. The reproducer that
/// does hit it, and the measurements behind the fix, are in `docs/frr-8.4-lost-withdrawal/`.
#[test]
fn service_deleted_right_after_its_sessions_come_up() {
    if !require_full_stack("service_deleted_right_after_its_sessions_come_up") {
        return;
    }
    let lab = lab("young", |_| {});
    lab.apply_seed_config("198.18.0.0/24").unwrap();
    let nodes = lab.all_node_v4();
    let peer = || {
        objects::bgp_peer(
            "ext",
            lab.options().ext.node_asn,
            lab.options().ext.asn,
            lab.options().ext.peer_address(),
            json!({}),
        )
    };
    let mut stale = Vec::new();
    for (i, d) in [0u64, 0, 30, 60, 100, 150].into_iter().enumerate() {
        lab.delete("metallb.io/v1beta2", "BGPPeer", Some(METALLB_NS), "ext")
            .unwrap();
        metallb_netlab::wait_until_some("sessions down", T, || {
            let n = lab.ext.neighbors();
            n.values().all(|i| i.state != "Established").then_some(())
        })
        .unwrap();
        let name = format!("young-{i}");
        let ip = service_everywhere(&lab, &name, i as u8 + 1);
        let prefix = host_prefix(&ip);
        let t = Instant::now();
        lab.apply(peer()).unwrap();
        let (_, routed) = metallb_netlab::wait_until_some("route on the router", T, || {
            (lab.ext.nexthops(&prefix) == nodes).then_some(())
        })
        .unwrap();
        let up_ms = lab
            .ext
            .neighbors()
            .values()
            .map(|n| n.up_ms)
            .max()
            .unwrap_or(0);
        std::thread::sleep(Duration::from_millis(d));
        lab.delete_service(&name).unwrap();
        let took = lab.wait_ext_nexthops(&prefix, &[], T);
        // A lost withdrawal never comes; one that comes back would show up here.
        std::thread::sleep(Duration::from_secs(2));
        let left = lab.ext.nexthops(&prefix);
        println!(
            "trial {i}: routed {:?} after the peer (sessions up {up_ms} ms), Service deleted \
             {d} ms later, withdrawn after {took:?}; 2 s later via {left:?}",
            t.elapsed()
                .saturating_sub(Duration::from_millis(d))
                .min(routed)
        );
        // how fast the withdrawal came is a figure, not a verdict (a busy machine stretches
        // it); that it came and stayed is
        if !left.is_empty() || took.is_err() {
            stale.push((d, took, left));
        }
    }
    // reported: withdrawals frr-k8s' audit found lost and repaired (its safety net)
    let repaired: usize = lab
        .nodes
        .iter()
        .map(|n| {
            std::fs::read_to_string(lab.log_dir().join(format!("speaker-{}.log", n.name)))
                .unwrap_or_default()
                .matches("FRR still advertised withdrawn prefixes")
                .count()
        })
        .sum();
    println!("withdrawals repaired by frr-k8s' audit: {repaired}");
    assert!(stale.is_empty(), "withdrawals lost: {stale:?}");
}

#[test]
fn restarts_keep_ips_and_routes() {
    if !require_full_stack("restarts_keep_ips_and_routes") {
        return;
    }
    let mut lab = lab("restarts", |o| {
        // After FRR restarts, the driver re-applies its last good configuration as soon as
        // the new daemons are there, while FRR's own boot (`vtysh -b`, as its init scripts
        // run it) may still be loading the startup configuration: on FRR 10 two vtysh at
        // once lose lines in mgmtd and bgpd (README, "FRR 10"), and the read-back finds
        // and repairs them (1 of 3 runs). A repair is the expected outcome there; a
        // rejection, or a difference left after the repair, still fails the test.
        o.frr_repairs_expected = matches!(o.frr_nodes, metallb_netlab::FrrBuild::Tree(_));
    });
    lab.apply_seed_config("198.18.0.0/24").unwrap();
    let names = ["r1", "r2", "r3"];
    let ips: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| service_everywhere(&lab, n, i as u8 + 1))
        .collect();
    for ip in &ips {
        lab.wait_ext_nexthops(&host_prefix(ip), &lab.all_node_v4(), T)
            .unwrap();
    }
    let check = |lab: &Lab, what: &str| {
        for (n, ip) in names.iter().zip(&ips) {
            assert_eq!(
                lab.service_ips(n),
                vec![ip.clone()],
                "{what}: {n} changed IP"
            );
            let took = lab
                .wait_ext_nexthops(&host_prefix(ip), &lab.all_node_v4(), T)
                .unwrap();
            println!("{what}: {n} {ip} back/kept after {took:?}");
        }
    };
    lab.restart_controller().unwrap();
    // the new controller's initial resync is done, its writes included (a moved IP would be
    // in the Services by now)
    let log = lab.log_dir().join("controller.log");
    metallb_netlab::wait_until("the restarted controller resynced", T, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let since = text.rfind("==== e2e: restart").map_or("", |i| &text[i..]);
        since.contains("initial resync done")
    })
    .unwrap();
    check(&lab, "controller restart");
    lab.restart_speaker(1).unwrap();
    check(&lab, "speaker restart");
    lab.restart_node_frr(2).unwrap();
    check(&lab, "FRR restart");
    lab.check_processes().unwrap();
}
