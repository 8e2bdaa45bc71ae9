//! The lab driving the standalone `frr-k8s` with FRRConfigurations written by the test
//! (no MetalLB): proves the harness (namespaces, FRR per node, test API, processes) and
//! frr-k8s' merge of several FRRConfigurations against a real external router.

use std::time::Duration;

use metallb_e2e::objects::{frr_configuration, host_prefix};
use metallb_e2e::{require_lab, FrrQueries, Lab, LabOptions, Stack};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn node_config(node: &str, prefixes: &[&str], bird: bool) -> serde_json::Value {
    let mut neighbors = vec![json!({
        "address": "192.0.2.1", "asn": 64513, "connectTime": "1s",
        "toAdvertise": {"allowed": {"prefixes": prefixes}},
    })];
    if bird {
        neighbors.push(json!({
            "address": "192.0.2.2", "asn": 64514, "connectTime": "1s",
            "toAdvertise": {"allowed": {"prefixes": prefixes}},
        }));
    }
    json!({
        "nodeSelector": {"matchLabels": {"kubernetes.io/hostname": node}},
        "bgp": {"routers": [{
            "asn": 64512,
            "prefixes": prefixes,
            "neighbors": neighbors,
        }]},
    })
}

#[test]
fn frrk8s_lab_advertises_and_withdraws() {
    if !require_lab("frrk8s_lab_advertises_and_withdraws") {
        return;
    }
    let mut opts = LabOptions::new("frrk8s");
    opts.stack = Stack::FrrK8s;
    let bird = metallb_netlab::require_bird("frrk8s_lab_advertises_and_withdraws");
    opts.bird = bird;
    let lab = Lab::start(opts).expect("lab");
    let prefix = host_prefix("198.18.0.1");
    for n in &lab.nodes {
        lab.apply(frr_configuration(
            &format!("test-{}", n.name),
            node_config(&n.name, &["198.18.0.1/32"], bird),
        ))
        .unwrap();
    }
    let took = lab
        .wait_ext_nexthops(&prefix, &lab.all_node_v4(), T)
        .unwrap();
    println!(
        "frr-k8s lab: {prefix} via {:?} after {took:?}",
        lab.all_node_v4()
    );
    println!("{}", lab.ext.kernel_route(&prefix));
    if let Some(b) = &lab.bird {
        metallb_netlab::wait_until("BIRD learns both paths", T, || {
            b.nexthops(&prefix) == lab.all_node_v4()
        })
        .unwrap();
        metallb_netlab::wait_until("BIRD installs the ECMP route", T, || {
            b.kernel_nexthops(&prefix) == lab.all_node_v4()
        })
        .unwrap();
        println!("BIRD: {prefix} via {:?}", b.kernel_nexthops(&prefix));
    }

    // a second configuration for node1 only, merged with the first
    lab.apply(frr_configuration(
        "extra-node1",
        node_config("node1", &["198.18.0.2/32"], bird),
    ))
    .unwrap();
    lab.wait_ext_nexthops(&host_prefix("198.18.0.2"), &[lab.node(1).v4.clone()], T)
        .unwrap();
    // the first prefix is still there from both nodes
    assert_eq!(lab.ext.nexthops(&prefix), lab.all_node_v4());

    // deleting it withdraws only its prefix
    lab.delete(
        "frrk8s.metallb.io/v1beta1",
        "FRRConfiguration",
        Some(metallb_e2e::objects::FRRK8S_NS),
        "extra-node1",
    )
    .unwrap();
    lab.wait_ext_nexthops(&host_prefix("198.18.0.2"), &[], T)
        .unwrap();
    assert_eq!(lab.ext.nexthops(&prefix), lab.all_node_v4());

    let (dropped, established) = lab.ext.session_counters();
    println!("sessions: established {established}, dropped {dropped}");
    assert_eq!(dropped, 0, "no session reset expected");
}
