//! The outbound policy the renderer uses when a neighbor may receive every prefix its router
//! originates: an empty AS path (`bgp as-path access-list ... permit ^$`) admits exactly the
//! routes this router originates (its `network` statements) and nothing it learned from eBGP
//! neighbors. Proven on a real FRR: a route learned from one peer must not leak to another.
//! This is the exact shape `render` emits. (`match peer local` does not work for this in an
//! outbound route-map: it admitted nothing.)

use std::time::Duration;

use metallb_netlab::{require_root_and_frr, veth, wait_until, FrrInstance, Netns};

fn has_route(frr: &FrrInstance, prefix: &str) -> bool {
    frr.vtysh_json(&format!("show bgp ipv4 unicast {prefix} json"))
        .map(|v| {
            v.get("paths")
                .and_then(|p| p.as_array())
                .is_some_and(|p| !p.is_empty())
        })
        .unwrap_or(false)
}

#[test]
fn empty_as_path_admits_only_originated_routes() {
    if !require_root_and_frr("empty_as_path_admits_only_originated_routes") {
        return;
    }
    let node_ns = Netns::new("mpln").unwrap();
    let ext1_ns = Netns::new("mple").unwrap();
    let ext2_ns = Netns::new("mplf").unwrap();
    veth(
        &node_ns,
        "e1",
        &["192.0.2.1/30"],
        &ext1_ns,
        "eth0",
        &["192.0.2.2/30"],
    )
    .unwrap();
    veth(
        &node_ns,
        "e2",
        &["192.0.2.5/30"],
        &ext2_ns,
        "eth0",
        &["192.0.2.6/30"],
    )
    .unwrap();
    let node = FrrInstance::start(
        &node_ns,
        "frr defaults traditional\n\
         route-map allow-all permit 1\nexit\n\
         bgp as-path access-list frrk8s-originated seq 5 permit ^$\n\
         ip prefix-list frrk8s-any-ipv4 seq 5 permit 0.0.0.0/0 le 32\n\
         route-map local-only permit 1\n match as-path frrk8s-originated\n\
         match ip address prefix-list frrk8s-any-ipv4\nexit\n\
         route-map local-only deny 2\nexit\n\
         router bgp 64512\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n\
         no bgp default ipv4-unicast\n no bgp network import-check\n\
         neighbor 192.0.2.2 remote-as 64513\n neighbor 192.0.2.2 timers connect 1\n\
         neighbor 192.0.2.6 remote-as 64514\n neighbor 192.0.2.6 timers connect 1\n\
         address-family ipv4 unicast\n  network 198.18.0.1/32\n\
         neighbor 192.0.2.2 activate\n  neighbor 192.0.2.2 route-map allow-all in\n\
         neighbor 192.0.2.2 route-map local-only out\n\
         neighbor 192.0.2.6 activate\n  neighbor 192.0.2.6 route-map allow-all in\n\
         neighbor 192.0.2.6 route-map local-only out\n exit-address-family\nexit\n",
    )
    .unwrap();
    let ext1 = FrrInstance::start(
        &ext1_ns,
        "router bgp 64513\n bgp router-id 192.0.2.2\n no bgp ebgp-requires-policy\n\
         no bgp network import-check\n neighbor 192.0.2.1 remote-as 64512\n\
         neighbor 192.0.2.1 timers connect 1\n address-family ipv4 unicast\n\
         network 198.18.100.0/24\n exit-address-family\nexit\n",
    )
    .unwrap();
    let ext2 = FrrInstance::start(
        &ext2_ns,
        "router bgp 64514\n bgp router-id 192.0.2.6\n no bgp ebgp-requires-policy\n\
         neighbor 192.0.2.5 remote-as 64512\n neighbor 192.0.2.5 timers connect 1\nexit\n",
    )
    .unwrap();
    // The node learns ext1's route and originates its own.
    wait_until(
        "node learns 198.18.100.0/24 from ext1",
        Duration::from_secs(30),
        || has_route(&node, "198.18.100.0/24"),
    )
    .unwrap();
    wait_until(
        "ext2 gets the node's own /32",
        Duration::from_secs(30),
        || has_route(&ext2, "198.18.0.1/32"),
    )
    .unwrap();
    wait_until(
        "ext1 gets the node's own /32",
        Duration::from_secs(30),
        || has_route(&ext1, "198.18.0.1/32"),
    )
    .unwrap();
    // Give any leak time to show up, then check it did not.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !has_route(&ext2, "198.18.100.0/24"),
        "a route learned from ext1 leaked to ext2"
    );
    // Withdrawing the network statement withdraws it from both peers.
    node.vtysh(&[
        "configure terminal",
        "router bgp 64512",
        "address-family ipv4 unicast",
        "no network 198.18.0.1/32",
    ])
    .unwrap();
    wait_until("withdrawn from ext2", Duration::from_secs(30), || {
        !has_route(&ext2, "198.18.0.1/32")
    })
    .unwrap();
    // The node's updates to ext2 kept flowing after the window above (this withdrawal
    // went out seconds after the node learned ext1's route), and still no leak.
    assert!(
        !has_route(&ext2, "198.18.100.0/24"),
        "a route learned from ext1 leaked to ext2"
    );
}
