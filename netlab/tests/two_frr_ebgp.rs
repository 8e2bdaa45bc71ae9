//! Two FRRs in two namespaces, eBGP over a veth, a route arrives; plus BIRD as peer.

use std::time::Duration;

use metallb_netlab::{
    require_bird, require_root_and_frr, veth, wait_until, BirdInstance, FrrInstance, Netns,
};

fn node_conf(peer: &str) -> String {
    format!(
        "frr defaults traditional\n\
         router bgp 64512\n bgp router-id 192.0.2.11\n no bgp ebgp-requires-policy\n\
         no bgp network import-check\n neighbor {peer} remote-as external\n\
         neighbor {peer} timers connect 1\n\
         address-family ipv4 unicast\n  network 198.18.0.1/32\n exit-address-family\nexit\n"
    )
}

#[test]
fn ebgp_route_arrives_between_two_frrs() {
    if !require_root_and_frr("ebgp_route_arrives_between_two_frrs") {
        return;
    }
    let a = Netns::new("nla").unwrap();
    let b = Netns::new("nlb").unwrap();
    veth(
        &a,
        "eth0",
        &["192.0.2.11/24"],
        &b,
        "eth0",
        &["192.0.2.1/24"],
    )
    .unwrap();
    let node = FrrInstance::start(&a, &node_conf("192.0.2.1")).unwrap();
    let ext = FrrInstance::start(
        &b,
        "router bgp 64513\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n\
         neighbor 192.0.2.11 remote-as 64512\n neighbor 192.0.2.11 timers connect 1\nexit\n",
    )
    .unwrap();
    let took = wait_until("198.18.0.1/32 on ext", Duration::from_secs(30), || {
        ext.vtysh_json("show bgp ipv4 unicast 198.18.0.1/32 json")
            .map(|v| {
                v.get("paths")
                    .and_then(|p| p.as_array())
                    .is_some_and(|p| !p.is_empty())
            })
            .unwrap_or(false)
    })
    .unwrap();
    println!("route arrived after {took:?}");
    // and into ext's kernel
    wait_until("kernel route on ext", Duration::from_secs(30), || {
        b.ip(&["route", "show", "198.18.0.1"])
            .map(|s| s.contains("192.0.2.11"))
            .unwrap_or(false)
    })
    .unwrap();
    assert!(node
        .running_config()
        .unwrap()
        .contains("network 198.18.0.1/32"));
}

#[test]
fn restart_changes_pids_and_reloads_startup() {
    if !require_root_and_frr("restart_changes_pids_and_reloads_startup") {
        return;
    }
    let a = Netns::new("nlr").unwrap();
    let mut frr = FrrInstance::start(&a, "router bgp 64512\nexit\n").unwrap();
    let before = frr.pid("bgpd").unwrap();
    frr.set_startup_config("router bgp 64599\nexit\n").unwrap();
    frr.restart().unwrap();
    assert_ne!(frr.pid("bgpd").unwrap(), before);
    assert!(frr.running_config().unwrap().contains("router bgp 64599"));
    let pid = frr.pid("bgpd").unwrap();
    frr.crash_daemon("bgpd");
    assert!(!metallb_netlab::pid_alive(pid));
    frr.start_missing(false).unwrap();
    assert!(!frr.running_config().unwrap().contains("router bgp"));
}

#[test]
fn bird_learns_route_from_frr() {
    if !require_root_and_frr("bird_learns_route_from_frr") {
        return;
    }
    if !require_bird("bird_learns_route_from_frr") {
        return;
    }
    let a = Netns::new("nlc").unwrap();
    let b = Netns::new("nld").unwrap();
    veth(
        &a,
        "eth0",
        &["192.0.2.11/24"],
        &b,
        "eth0",
        &["192.0.2.2/24"],
    )
    .unwrap();
    let _node = FrrInstance::start(&a, &node_conf("192.0.2.2")).unwrap();
    let bird = BirdInstance::start(
        &b,
        "router id 192.0.2.2;\nprotocol device { }\n\
         protocol bgp node1 { local as 64514; neighbor 192.0.2.11 as 64512; \
         ipv4 { import all; export none; }; }\n",
    )
    .unwrap();
    wait_until("bird has 198.18.0.1/32", Duration::from_secs(30), || {
        bird.routes()
            .map(|r| {
                r.iter()
                    .any(|r| r.prefix == "198.18.0.1/32" && r.protocol == "node1")
            })
            .unwrap_or(false)
    })
    .unwrap();
}

/// A static route of the startup config reaches zebra's table. On FRR 10 static routes go
/// through mgmtd: without it (the lab starts it where the build has one) they are dropped
/// silently while `vtysh -b` still succeeds, and this fails.
#[test]
fn startup_static_route_is_installed() {
    if !require_root_and_frr("startup_static_route_is_installed") {
        return;
    }
    let ns = Netns::new("nls").unwrap();
    let frr = FrrInstance::start(
        &ns,
        "frr defaults traditional\nip route 198.18.50.0/24 Null0\n",
    )
    .unwrap();
    let installed = || {
        frr.vtysh_json("show ip route static json")
            .ok()
            .and_then(|v| v.get("198.18.50.0/24").cloned())
            .is_some()
    };
    wait_until(
        &format!("the static route in {}'s table", frr.build().label()),
        Duration::from_secs(10),
        installed,
    )
    .unwrap();
    let kernel = ns
        .ip(&["route", "show", "198.18.50.0/24"])
        .unwrap_or_default();
    assert!(kernel.contains("blackhole"), "kernel route: {kernel:?}");
}
