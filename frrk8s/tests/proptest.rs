//! Properties: the merge result (configuration and errors) does not depend on the order of
//! the input objects, and rendering is deterministic.

use frr_k8s::{merge, render, NoSecrets, RenderOptions};
use metallb_api::frrk8s::FRRConfiguration;
use proptest::prelude::*;

const NS: &str = "frr-k8s-system";
const PEERS: &[&str] = &["172.18.0.5", "172.18.0.6", "fc00::5", "eth0"];
const PREFIXES: &[&str] = &[
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.1/32",
    "2001:db8::/64",
];

#[derive(Clone, Debug)]
struct N {
    peer: usize,
    asn: u32,
    gr: bool,
    bfd: bool,
    hold: Option<u32>,
    adv: u8,
    all: bool,
    recv: u8,
    recv_all: bool,
    lp: Option<u32>,
    comm: Option<u16>,
    password: Option<u8>,
}

fn neighbor() -> impl Strategy<Value = N> {
    (
        0..PEERS.len(),
        64600u32..64602,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop_oneof![Just(90u32), Just(180)]),
        any::<u8>(),
        any::<bool>(),
        any::<u8>(),
        prop::bool::weighted(0.2),
        prop::option::of(prop_oneof![Just(100u32), Just(200)]),
        prop::option::of(1u16..3),
        prop::option::of(0u8..2),
    )
        .prop_map(
            |(peer, asn, gr, bfd, hold, adv, all, recv, recv_all, lp, comm, password)| N {
                peer,
                asn,
                gr,
                bfd,
                hold,
                adv,
                all,
                recv,
                recv_all,
                lp,
                comm,
                password,
            },
        )
}

fn to_yaml(n: &N, own: &[&str]) -> String {
    let peer = PEERS[n.peer];
    let v6 = peer.contains(':');
    let carried: Vec<&str> = own
        .iter()
        .copied()
        .filter(|p| peer == "eth0" || p.contains(':') == v6)
        .collect();
    let adv: Vec<&str> = carried
        .iter()
        .enumerate()
        .filter(|(i, _)| n.adv & (1 << i) != 0)
        .map(|(_, p)| *p)
        .collect();
    let mut s = format!("{{asn: {}, ", n.asn);
    if peer == "eth0" {
        s.push_str("interface: eth0, ");
    } else {
        s.push_str(&format!("address: '{peer}', "));
    }
    if n.gr {
        s.push_str("enableGracefulRestart: true, ");
    }
    if n.bfd {
        s.push_str("bfdProfile: p, ");
    }
    if let Some(h) = n.hold {
        s.push_str(&format!("holdTime: {h}s, keepaliveTime: 30s, "));
    }
    if let Some(p) = n.password {
        s.push_str(&format!("password: pw{p}, "));
    }
    let mode = if n.all { "mode: all, " } else { "" };
    let list = adv
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut extras = String::new();
    let targets = if n.all { carried.clone() } else { adv.clone() };
    if let (Some(lp), Some(first)) = (n.lp, targets.first()) {
        extras.push_str(&format!(
            ", withLocalPref: [{{localPref: {lp}, prefixes: ['{first}']}}]"
        ));
    }
    if let (Some(c), Some(last)) = (n.comm, targets.last()) {
        extras.push_str(&format!(
            ", withCommunity: [{{community: '64512:{c}', prefixes: ['{last}']}}]"
        ));
    }
    s.push_str(&format!(
        "toAdvertise: {{allowed: {{{mode}prefixes: [{list}]}}{extras}}}, "
    ));
    if n.recv_all {
        s.push_str("toReceive: {allowed: {mode: all}}");
    } else {
        let filters: Vec<String> = [
            ("10.0.0.0/8", "le: 24"),
            ("10.0.0.0/8", "le: 32"),
            ("2001:db8:f::/48", "le: 64"),
        ]
        .iter()
        .enumerate()
        .filter(|(i, _)| n.recv & (1 << i) != 0)
        .map(|(_, (p, le))| format!("{{prefix: '{p}', {le}}}"))
        .collect();
        s.push_str(&format!(
            "toReceive: {{allowed: {{prefixes: [{}]}}}}",
            filters.join(", ")
        ));
    }
    s.push('}');
    s
}

fn config() -> impl Strategy<Value = (u8, u32, Vec<N>, Option<i64>, bool)> {
    (
        any::<u8>(),
        prop_oneof![Just(64512u32), Just(64512), Just(64513)],
        prop::collection::vec(neighbor(), 0..3),
        prop::option::of(-1i64..2),
        prop::bool::weighted(0.15),
    )
}

fn build(
    i: usize,
    (pfx, asn, ns, raw, bfd_rx): &(u8, u32, Vec<N>, Option<i64>, bool),
) -> FRRConfiguration {
    let own: Vec<&str> = PREFIXES
        .iter()
        .enumerate()
        .filter(|(k, _)| pfx & (1 << k) != 0)
        .map(|(_, p)| *p)
        .collect();
    let neighbors: Vec<String> = ns
        .iter()
        .map(|n| format!("    - {}\n", to_yaml(n, &own)))
        .collect();
    let mut y = format!(
        "apiVersion: frrk8s.metallb.io/v1beta1\nkind: FRRConfiguration\nmetadata: {{name: cfg-{i}, namespace: {NS}}}\nspec:\n  bgp:\n    bfdProfiles:\n    - {{name: p, receiveInterval: {}}}\n    routers:\n    - asn: {asn}\n      prefixes: [{}]\n      neighbors:\n",
        if *bfd_rx { 200 } else { 100 },
        own.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ")
    );
    for n in &neighbors {
        y.push_str("  ");
        y.push_str(n);
    }
    if neighbors.is_empty() {
        y = y.replace("      neighbors:\n", "");
    }
    if let Some(p) = raw {
        y.push_str(&format!(
            "  raw:\n    priority: {p}\n    rawConfig: '! raw {i}'\n"
        ));
    }
    serde_yaml::from_str(&y).unwrap_or_else(|e| panic!("{e}\n{y}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn merge_is_independent_of_input_order(
        specs in prop::collection::vec(config(), 1..6),
        seed in any::<u64>(),
    ) {
        let cfgs: Vec<FRRConfiguration> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
        let refs: Vec<&FRRConfiguration> = cfgs.iter().collect();
        let base = merge(&refs, &NoSecrets, NS);
        let text = render(&base.config, &RenderOptions::default());
        prop_assert_eq!(&text, &render(&base.config, &RenderOptions::default()));

        // A few permutations: reversed and seeded rotations/swaps.
        let mut perms: Vec<Vec<&FRRConfiguration>> = vec![refs.iter().rev().copied().collect()];
        let mut s = seed;
        for _ in 0..4 {
            let mut p = refs.clone();
            for i in (1..p.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = (s >> 33) as usize % (i + 1);
                p.swap(i, j);
            }
            perms.push(p);
        }
        for p in perms {
            let o = merge(&p, &NoSecrets, NS);
            prop_assert_eq!(&o.config, &base.config);
            prop_assert_eq!(&o.errors, &base.errors);
            prop_assert_eq!(render(&o.config, &RenderOptions::default()), text.clone());
        }
    }
}

/// The generator is not vacuous: a typical generated object merges cleanly.
#[test]
fn generated_objects_are_mostly_valid() {
    let n = N {
        peer: 3,
        asn: 64600,
        gr: true,
        bfd: true,
        hold: Some(90),
        adv: 0b11,
        all: false,
        recv: 0b101,
        recv_all: false,
        lp: Some(100),
        comm: Some(1),
        password: Some(1),
    };
    let c = build(0, &(0b1111, 64512, vec![n], Some(1), false));
    let o = merge(&[&c], &NoSecrets, NS);
    assert!(o.errors.is_empty(), "{}", o.errors);
    let r = &o.config.routers[""];
    assert_eq!(r.neighbors["eth0"].advertise.prefixes.len(), 2);
}
