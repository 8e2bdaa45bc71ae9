//! L2 election cost: every Service's decision recomputed, as after a Node change (the
//! worst case: `decide` ranks every candidate node for every Service, one sha256 each).
//!
//! `cargo bench -p metallb-speaker --bench l2_elect`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use metallb_api::metallb::{IPAddressPool, L2Advertisement};
use metallb_speaker::bgp::{Endpoints, NodeInfo, ServiceInfo, ServiceKey, SpeakerOptions};
use metallb_speaker::l2::{decide, L2Config, L2Node};

const SERVICES: usize = 1_000;

fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_yaml::from_str(s).expect("valid bench YAML")
}

fn bench(c: &mut Criterion) {
    let pool: IPAddressPool = yaml(
        "metadata: {name: lan, namespace: metallb-system}\nspec: {addresses: [198.18.0.0/20]}",
    );
    let ad: L2Advertisement =
        yaml("metadata: {name: lan, namespace: metallb-system}\nspec: {ipAddressPools: [lan]}");
    let cfg = L2Config::compile(&[pool], &[ad]);
    let services: Vec<ServiceInfo> = (0..SERVICES)
        .map(|i| ServiceInfo {
            key: ServiceKey::new("default", format!("svc-{i:04}")),
            is_load_balancer: true,
            ingress_ips: vec![format!("198.18.{}.{}", i / 250, i % 250 + 1)
                .parse()
                .expect("ip")],
            ..Default::default()
        })
        .collect();
    let eps = Endpoints {
        any_serving: true,
        ..Default::default()
    };
    let opts = SpeakerOptions::default();
    for nodes in [10usize, 100, 1000] {
        let ns: Vec<L2Node> = (0..nodes)
            .map(|i| L2Node {
                info: NodeInfo::new(format!("node-{i:04}")),
                alive: true,
            })
            .collect();
        c.bench_function(
            &format!("l2 elect {SERVICES} services x {nodes} nodes"),
            |b| {
                b.iter(|| {
                    for s in &services {
                        black_box(decide(&cfg, s, Some(&eps), &ns, &opts));
                    }
                })
            },
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
