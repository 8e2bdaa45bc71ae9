//! Allocator benchmarks (issue targets: 10,000 services over 100 pools under 100 ms; a full
//! resync of 10,000 allocated services after a restart under 1 s with zero changes).
//!
//! `cargo bench -p metallb-controller --bench allocator`

use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use metallb_controller::allocator::{Allocator, Family, Pool, ServiceRequest};

fn pools() -> Vec<Pool> {
    // 100 pools of 128 addresses each in 198.18.0.0/15: 12,800 addresses for 10,000 services.
    (0..100)
        .map(|i| {
            let cidr = format!("198.18.{}.{}/25", i / 2, (i % 2) * 128);
            Pool::new(&format!("pool-{i:03}"), &[cidr.as_str()])
        })
        .collect()
}

fn services(n: usize) -> Vec<ServiceRequest> {
    (0..n)
        .map(|i| ServiceRequest {
            key: format!("ns-{}/svc-{i:05}", i % 50),
            namespace: format!("ns-{}", i % 50),
            cluster_families: vec![Family::V4],
            ..Default::default()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let svcs = services(10_000);
    c.bench_function("allocate 10k services over 100 pools", |b| {
        b.iter_batched(
            || Allocator::new(pools()),
            |mut a| {
                for s in &svcs {
                    a.allocate(s).expect("capacity suffices");
                }
                a
            },
            BatchSize::LargeInput,
        )
    });
    let mut a = Allocator::new(pools());
    for s in &svcs {
        a.allocate(s).expect("capacity suffices");
    }
    let existing: Vec<(ServiceRequest, Vec<IpAddr>)> = svcs
        .iter()
        .map(|s| {
            (
                s.clone(),
                a.assignment(&s.key).expect("allocated").ips.clone(),
            )
        })
        .collect();
    c.bench_function("resync 10k existing assignments after restart", |b| {
        b.iter_batched(
            || Allocator::new(pools()),
            |mut fresh| {
                for (s, ips) in &existing {
                    let got = fresh.assign(s, ips).expect("reloads");
                    assert_eq!(&got.ips, ips, "no change on resync");
                }
                fresh
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
