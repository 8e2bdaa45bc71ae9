//! Merge + render micro-benchmark: 200 FRRConfigurations totalling 1,000 neighbor
//! declarations (250 distinct neighbors, each declared by 4 objects) and 10,000 router
//! prefixes (/32s, 50 per object, every neighbor advertising its objects' prefixes with
//! `mode: all`, some with communities and local preferences). Target: merge + render < 50 ms.
//!
//! And MetalLB's shape: one object per node holding a prefix per Service (10,000), each
//! of its two neighbors allowed every one of them by name (`mode: filtered`): validation
//! and merge of that object, which the embedded frr-k8s does on every Service change.
//!
//! And the driver's own share of an apply: parsing, a no-op diff, and which prefixes a
//! change withdraws.
//!
//! `cargo bench -p frr-k8s --bench merge_render`

use criterion::{criterion_group, criterion_main, Criterion};
use frr_k8s::{merge, render, NoSecrets, RenderOptions};
use metallb_api::frrk8s::FRRConfiguration;

fn configs() -> Vec<FRRConfiguration> {
    (0..200)
        .map(|i| {
            let prefixes: Vec<String> = (0..50)
                .map(|k| {
                    let n = i * 50 + k;
                    format!("\"198.18.{}.{}/32\"", n / 256, n % 256)
                })
                .collect();
            let neighbors: Vec<String> = (0..5)
                .map(|k| {
                    let peer = (i * 5 + k) % 250;
                    format!(
                        r#"{{"asn": 64600, "address": "10.{}.{}.1", "holdTime": "90s", "keepaliveTime": "30s",
                           "toAdvertise": {{"allowed": {{"mode": "all"}},
                              "withCommunity": [{{"community": "64512:{}", "prefixes": [{}]}}],
                              "withLocalPref": [{{"localPref": 200, "prefixes": [{}]}}]}},
                           "toReceive": {{"allowed": {{"prefixes": [{{"prefix": "10.{}.0.0/16", "le": 24}}]}}}}}}"#,
                        peer / 256,
                        peer % 256,
                        i % 7,
                        prefixes[..10].join(","),
                        prefixes[10..15].join(","),
                        peer % 200,
                    )
                })
                .collect();
            let json = format!(
                r#"{{"apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "FRRConfiguration",
                    "metadata": {{"name": "cfg-{i:03}", "namespace": "frr-k8s-system"}},
                    "spec": {{"bgp": {{"routers": [{{"asn": 64512, "prefixes": [{}], "neighbors": [{}]}}]}}}}}}"#,
                prefixes.join(","),
                neighbors.join(",")
            );
            serde_json::from_str(&json).expect("valid FRRConfiguration")
        })
        .collect()
}

/// MetalLB's per-node object: `n` /32s, two neighbors each allowed all of them by name.
fn metallb_object(n: usize) -> FRRConfiguration {
    let prefixes: Vec<String> = (0..n)
        .map(|k| format!("\"198.18.{}.{}/32\"", k / 256, k % 256))
        .collect();
    let list = prefixes.join(",");
    let neighbor = |addr: &str| {
        format!(
            r#"{{"asn": 64513, "address": "{addr}", "toAdvertise": {{"allowed": {{"mode": "filtered", "prefixes": [{list}]}}}}}}"#
        )
    };
    let json = format!(
        r#"{{"apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "FRRConfiguration",
            "metadata": {{"name": "metallb-node1", "namespace": "frr-k8s-system"}},
            "spec": {{"bgp": {{"routers": [{{"asn": 64512, "prefixes": [{list}], "neighbors": [{}, {}]}}]}}}}}}"#,
        neighbor("192.0.2.1"),
        neighbor("192.0.2.2"),
    );
    serde_json::from_str(&json).expect("valid FRRConfiguration")
}

fn bench(c: &mut Criterion) {
    let metallb = metallb_object(10_000);
    metallb.validate().expect("MetalLB's object is valid");
    c.bench_function(
        "MetalLB's object, 10000 prefixes x 2 neighbors: validate",
        |b| b.iter(|| metallb.validate()),
    );
    c.bench_function(
        "MetalLB's object, 10000 prefixes x 2 neighbors: merge",
        |b| b.iter(|| merge(&[&metallb], &NoSecrets, "frr-k8s-system")),
    );

    let cfgs = configs();
    let refs: Vec<&FRRConfiguration> = cfgs.iter().collect();
    let opts = RenderOptions::default();
    // Sanity: everything merges.
    let outcome = merge(&refs, &NoSecrets, "frr-k8s-system");
    assert!(outcome.errors.is_empty(), "{}", outcome.errors);
    let text = render(&outcome.config, &opts);
    eprintln!(
        "rendered {} bytes, {} lines, {} neighbors",
        text.len(),
        text.lines().count(),
        outcome
            .config
            .routers
            .values()
            .map(|r| r.neighbors.len())
            .sum::<usize>()
    );

    c.bench_function("merge 200 configs / 1000 neighbors / 10000 prefixes", |b| {
        b.iter(|| merge(&refs, &NoSecrets, "frr-k8s-system"))
    });
    c.bench_function("render merged config", |b| {
        b.iter(|| render(&outcome.config, &opts))
    });
    c.bench_function("merge + render", |b| {
        b.iter(|| {
            let o = merge(&refs, &NoSecrets, "frr-k8s-system");
            render(&o.config, &opts)
        })
    });

    // The driver's own CPU share of an apply: parse the rendered text and diff it against
    // what was applied before (here: the same config, so a no-op).
    let applied = frr_k8s::frr::FrrConfig::parse(&text);
    c.bench_function("driver: parse rendered config", |b| {
        b.iter(|| frr_k8s::frr::FrrConfig::parse(&text))
    });
    c.bench_function("driver: diff no-op", |b| {
        b.iter(|| frr_k8s::frr::diff(&applied, &applied))
    });

    // Every apply also works out which prefixes it withdraws (for the adj-out audit): here
    // one `network` line of the 10,000 removed. "both sets" is how it was done before, kept
    // as the reference.
    use frr_k8s::frr::originated::{originated, withdrawn};
    let mut lines: Vec<&str> = text.lines().collect();
    let gone = lines
        .iter()
        .position(|l| l.trim_start().starts_with("network "))
        .expect("a network line");
    lines.remove(gone);
    let after = frr_k8s::frr::FrrConfig::parse(&lines.join("\n"));
    assert_eq!(withdrawn(&applied, &after).len(), 1);
    c.bench_function("driver: withdrawn prefixes of an apply", |b| {
        b.iter(|| withdrawn(&applied, &after))
    });
    c.bench_function(
        "driver: withdrawn prefixes of an apply, via both sets (before)",
        |b| {
            b.iter(|| {
                let kept = originated(&after);
                (originated(&applied).into_iter())
                    .filter(|o| !kept.contains(o))
                    .count()
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
