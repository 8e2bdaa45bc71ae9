//! Speaker benchmarks: one node's FRRConfiguration with 10,000 Services, 50 nodes and 20
//! peers, recomputed after a single endpoint change (target < 20 ms).
//!
//! `cargo bench -p metallb-speaker --bench announce`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use metallb_api::metallb::{BGPAdvertisement, BGPPeer, Community, IPAddressPool};
use metallb_speaker::bgp::{
    build_frr_configuration, spec_changed, Endpoints, FrrTarget, MetalLbConfig, NodeAnnouncements,
    NodeAnnouncer, NodeConfig, NodeInfo, ServiceInfo, ServiceKey, SpeakerOptions, TrafficPolicy,
};

const SERVICES: usize = 10_000;
const NODES: usize = 50;
const PEERS: usize = 20;

fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_yaml::from_str(s).expect("valid bench YAML")
}

fn config() -> MetalLbConfig {
    // 10 pools of /20 (4096 addresses) in 10.128.0.0/12, plus one IPv6 pool.
    let mut pools: Vec<IPAddressPool> = (0..10)
        .map(|i| {
            yaml(&format!(
                "metadata: {{name: pool-{i}, namespace: metallb-system}}\nspec: {{addresses: [10.{}.{}.0/20]}}",
                128 + i / 16,
                (i % 16) * 16
            ))
        })
        .collect();
    pools.push(yaml(
        "metadata: {name: pool-v6, namespace: metallb-system}\nspec: {addresses: ['fd00:10::/112']}",
    ));
    // 20 peers: 16 on every node, 4 on half the nodes (rack label), one VRF.
    let peers: Vec<BGPPeer> = (0..PEERS)
        .map(|i| {
            let sel = if i >= 16 {
                ", nodeSelectors: [{matchLabels: {rack: even}}]"
            } else {
                ""
            };
            let vrf = if i == 19 { ", vrf: red" } else { "" };
            let addr = if i % 5 == 4 {
                format!("'fd00:ff::{}'", i + 1)
            } else {
                format!("172.16.0.{}", i + 1)
            };
            yaml(&format!(
                "metadata: {{name: peer-{i:02}, namespace: metallb-system}}\nspec: {{myASN: 64512, peerASN: {}, peerAddress: {addr}, holdTime: 90s{sel}{vrf}}}",
                65000 + i
            ))
        })
        .collect();
    let advertisements: Vec<BGPAdvertisement> = vec![
        yaml("metadata: {name: hosts, namespace: metallb-system}\nspec: {localPref: 100, communities: [no-export, '64512:1']}"),
        yaml("metadata: {name: aggregate, namespace: metallb-system}\nspec: {aggregationLength: 24, aggregationLengthV6: 120, peers: [peer-00, peer-01, peer-04], communities: ['large:64512:2:3']}"),
    ];
    let communities: Vec<Community> = vec![yaml(
        "metadata: {name: aliases, namespace: metallb-system}\nspec: {communities: [{name: no-export, value: '65535:65281'}]}",
    )];
    MetalLbConfig {
        pools,
        peers,
        advertisements,
        communities,
        bfd_profiles: Vec::new(),
        l2_advertisements: Vec::new(),
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:02}")
}

fn node(i: usize) -> NodeInfo {
    NodeInfo {
        name: node_name(i),
        labels: BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), node_name(i)),
            (
                "rack".to_string(),
                if i % 2 == 0 { "even" } else { "odd" }.to_string(),
            ),
        ]),
        network_unavailable: false,
    }
}

/// 10,000 Services: every third ETP Local, every tenth dual-stack; endpoints on 3 nodes.
fn services() -> Vec<(ServiceInfo, Endpoints)> {
    (0..SERVICES)
        .map(|i| {
            let pool = i / 1000;
            let off = i % 1000;
            let mut ips = vec![format!(
                "10.{}.{}.{}",
                128 + pool / 16,
                (pool % 16) * 16 + off / 256,
                off % 256
            )
            .parse()
            .expect("ip")];
            if i % 10 == 0 {
                ips.push(format!("fd00:10::{:x}", i).parse().expect("ip"));
            }
            let svc = ServiceInfo {
                key: ServiceKey::new(format!("ns-{}", i % 100), format!("svc-{i:05}")),
                labels: Default::default(),
                is_load_balancer: true,
                load_balancer_class: None,
                traffic_policy: if i % 3 == 0 {
                    TrafficPolicy::Local
                } else {
                    TrafficPolicy::Cluster
                },
                ingress_ips: ips,
                invalid_ingress: Vec::new(),
                shares_ip: false,
                uid: None,
            };
            let eps = Endpoints {
                serving_nodes: (0..3)
                    .map(|k| node_name((i * 7 + k * 13) % NODES))
                    .collect(),
                any_serving: true,
            };
            (svc, eps)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let target = FrrTarget {
        frr_namespace: "metallb-system".into(),
        secrets_namespace: "metallb-system".into(),
    };
    let config = config();
    let me = node(0);
    let svcs = services();
    let opts = SpeakerOptions::default();

    c.bench_function("full: compile + 10k services + FRRConfiguration", |b| {
        b.iter(|| {
            let cfg = NodeConfig::compile(&config, &me, &opts);
            let ann = NodeAnnouncements::compute(&cfg, svcs.iter().map(|(s, e)| (s, Some(e))));
            black_box(build_frr_configuration(&cfg, &ann.routes, &target))
        })
    });

    // Incremental: the announcer holds everything; one ETP Local Service's only local
    // endpoint comes and goes, then the FRRConfiguration is rebuilt and compared with
    // the previous one (what the writer does before deciding to write).
    let cfg = NodeConfig::compile(&config, &me, &opts);
    let mut announcer = NodeAnnouncer::new(cfg);
    for (s, e) in &svcs {
        announcer.apply_endpoints(&s.key, e.clone());
        announcer.apply_service(s.clone());
    }
    let (svc, _) = svcs
        .iter()
        .find(|(s, e)| s.traffic_policy == TrafficPolicy::Local && e.serving_on(&me.name))
        .expect("a local service with an endpoint on node-00");
    let with = Endpoints {
        serving_nodes: [me.name.clone()].into(),
        any_serving: true,
    };
    let without = Endpoints {
        serving_nodes: [node_name(1)].into(),
        any_serving: true,
    };
    let observed = announcer.frr_configuration(&target).clone();
    let mut flip = false;
    c.bench_function(
        "incremental: endpoint change + FRRConfiguration (patched)",
        |b| {
            b.iter(|| {
                flip = !flip;
                let eps = if flip { without.clone() } else { with.clone() };
                assert!(announcer.apply_endpoints(&svc.key, eps));
                black_box(announcer.frr_configuration(&target));
            })
        },
    );
    c.bench_function(
        "incremental: endpoint change + FRRConfiguration + spec_changed vs observed",
        |b| {
            b.iter(|| {
                flip = !flip;
                let eps = if flip { without.clone() } else { with.clone() };
                assert!(announcer.apply_endpoints(&svc.key, eps));
                let desired = announcer.frr_configuration(&target);
                black_box(spec_changed(&observed.spec, &desired.spec))
            })
        },
    );
    c.bench_function("incremental: endpoint change only", |b| {
        b.iter(|| {
            flip = !flip;
            let eps = if flip { without.clone() } else { with.clone() };
            black_box(announcer.apply_endpoints(&svc.key, eps))
        })
    });
    c.bench_function("rebuild FRRConfiguration from the route table", |b| {
        b.iter(|| black_box(announcer.build_frr_configuration(&target)))
    });
    let a = announcer.build_frr_configuration(&target);
    let mut defaulted = a.clone();
    defaulted.spec.apply_schema_defaults();
    c.bench_function(
        "spec_changed: 10k-service config vs apiserver-defaulted copy",
        |b| b.iter(|| black_box(spec_changed(&defaulted.spec, &a.spec))),
    );
    let routes: usize = announcer.announcements().routes.len();
    eprintln!(
        "node-00: {} sessions, {routes} (peer, prefix) routes",
        announcer.config().sessions.len()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
