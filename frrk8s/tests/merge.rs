//! Merge semantics, error reporting and the rendering fixes of upstream quirks.

use std::collections::BTreeMap;

use frr_k8s::{
    merge, render, select, MergeError, NoSecrets, Password, ReceiveConfig, RenderOptions,
};
use k8s_openapi::api::core::v1::Secret;
use metallb_api::frrk8s::FRRConfiguration;

const NS: &str = "frr-k8s-system";

fn cfg(name: &str, spec: &str) -> FRRConfiguration {
    let yaml = format!(
        "apiVersion: frrk8s.metallb.io/v1beta1\nkind: FRRConfiguration\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n{}",
        spec.lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"))
}

fn neighbor_cfg(name: &str, neighbor: &str) -> FRRConfiguration {
    cfg(
        name,
        &format!("bgp:\n  routers:\n  - asn: 64512\n    prefixes: [192.0.2.0/24, 198.51.100.0/24]\n    neighbors:\n    - {neighbor}\n"),
    )
}

fn run(cfgs: &[&FRRConfiguration]) -> frr_k8s::MergeOutcome {
    merge(cfgs, &NoSecrets, NS)
}

fn rendered(cfgs: &[&FRRConfiguration]) -> String {
    let o = run(cfgs);
    assert!(o.errors.is_empty(), "{}", o.errors);
    render(&o.config, &RenderOptions::default())
}

#[test]
fn conflicting_asn_names_both_objects_and_keeps_the_first() {
    let a = neighbor_cfg("test-0", "{asn: 64512, address: 172.18.0.5}");
    let b = neighbor_cfg("test-1", "{asn: 64513, address: 172.18.0.5}");
    for order in [[&a, &b], [&b, &a]] {
        let o = run(&order);
        assert_eq!(o.errors.skipped_objects(), ["frr-k8s-system/test-1"]);
        let msg = o.errors.to_string();
        assert!(
            msg.contains("neighbor 172.18.0.5 (vrf default): asn 64512 in frr-k8s-system/test-0 vs 64513 in frr-k8s-system/test-1"),
            "{msg}"
        );
        let n = &o.config.routers[""].neighbors["172.18.0.5"];
        assert_eq!(n.remote_asn.to_string(), "64512");
    }
}

#[test]
fn the_oldest_object_wins_a_conflict() {
    let mut a = neighbor_cfg("test-0", "{asn: 64512, address: 172.18.0.5}");
    let mut b = neighbor_cfg("test-1", "{asn: 64513, address: 172.18.0.5}");
    a.metadata.creation_timestamp = Some(serde_json::from_str("\"2026-01-02T00:00:00Z\"").unwrap());
    b.metadata.creation_timestamp = Some(serde_json::from_str("\"2026-01-01T00:00:00Z\"").unwrap());
    let o = run(&[&a, &b]);
    assert_eq!(o.errors.skipped_objects(), ["frr-k8s-system/test-0"]);
    assert_eq!(
        o.config.routers[""].neighbors["172.18.0.5"]
            .remote_asn
            .to_string(),
        "64513"
    );
}

#[test]
fn a_bad_object_is_skipped_and_the_rest_merged() {
    let bad = neighbor_cfg(
        "bad",
        "{asn: 64600, address: 172.18.0.7, holdTime: 2s, keepaliveTime: 1s}",
    );
    let good = neighbor_cfg("good", "{asn: 64600, address: 172.18.0.5}");
    let o = run(&[&bad, &good]);
    assert_eq!(o.errors.skipped_objects(), ["frr-k8s-system/bad"]);
    assert!(o.errors.to_string().contains("holdTime"), "{}", o.errors);
    assert!(o.config.routers[""].neighbors.contains_key("172.18.0.5"));
    assert!(!o.config.routers[""].neighbors.contains_key("172.18.0.7"));
    // A conflicting object is dropped as a whole: none of its other neighbors appear.
    let c = cfg(
        "zz-conflicting",
        "bgp:\n  routers:\n  - asn: 64512\n    neighbors:\n    - {asn: 1, address: 172.18.0.5}\n    - {asn: 2, address: 172.18.0.6}\n",
    );
    let o = run(&[&good, &c]);
    assert_eq!(
        o.errors.skipped_objects(),
        ["frr-k8s-system/zz-conflicting"]
    );
    assert!(!o.config.routers[""].neighbors.contains_key("172.18.0.6"));
}

#[test]
fn router_asn_and_id_conflicts() {
    let a = cfg("a", "bgp:\n  routers:\n  - {asn: 64512, id: 10.0.0.1}\n");
    let b = cfg("b", "bgp:\n  routers:\n  - {asn: 64513, id: 10.0.0.2}\n");
    let c = cfg("c", "bgp:\n  routers:\n  - {asn: 64512}\n");
    let o = run(&[&c, &b, &a]);
    assert_eq!(o.errors.skipped_objects(), ["frr-k8s-system/b"]);
    let msg = o.errors.to_string();
    assert!(
        msg.contains(
            "router (vrf default): asn 64512 in frr-k8s-system/a vs 64513 in frr-k8s-system/b"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(
            "router (vrf default): id 10.0.0.1 in frr-k8s-system/a vs 10.0.0.2 in frr-k8s-system/b"
        ),
        "{msg}"
    );
    assert_eq!(
        o.config.routers[""].router_id,
        Some("10.0.0.1".parse().unwrap())
    );
}

#[test]
fn mode_all_expands_to_the_objects_own_prefixes() {
    let a = cfg("a", "bgp:\n  routers:\n  - asn: 64512\n    prefixes: [192.0.2.0/24]\n    neighbors:\n    - {asn: 64600, address: 172.18.0.5, toAdvertise: {allowed: {mode: all}}}\n");
    let b = cfg(
        "b",
        "bgp:\n  routers:\n  - asn: 64512\n    prefixes: [198.51.100.0/24]\n",
    );
    let o = run(&[&a, &b]);
    let r = &o.config.routers[""];
    assert_eq!(r.prefixes.len(), 2);
    let adv: Vec<String> = r.neighbors["172.18.0.5"]
        .advertise
        .prefixes
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(adv, ["192.0.2.0/24"]);
}

#[test]
fn receive_all_beats_filters_and_filters_union() {
    let f1 = neighbor_cfg("f1", "{asn: 64600, address: 172.18.0.5, toReceive: {allowed: {prefixes: [{prefix: 192.0.100.0/24, le: 28}, {prefix: 10.0.0.0/8}]}}}");
    let f2 = neighbor_cfg("f2", "{asn: 64600, address: 172.18.0.5, toReceive: {allowed: {prefixes: [{prefix: 192.0.100.0/24, le: 32}, {prefix: 10.0.0.0/8}]}}}");
    let all = neighbor_cfg(
        "all",
        "{asn: 64600, address: 172.18.0.5, toReceive: {allowed: {mode: all}}}",
    );
    let o = run(&[&f1, &f2]);
    match &o.config.routers[""].neighbors["172.18.0.5"].receive {
        ReceiveConfig::Filtered(f) => assert_eq!(f.len(), 3, "{f:?}"),
        other => panic!("{other:?}"),
    }
    for order in [[&f1, &all], [&all, &f1]] {
        let o = run(&order);
        assert_eq!(
            o.config.routers[""].neighbors["172.18.0.5"].receive,
            ReceiveConfig::All
        );
    }
}

#[test]
fn graceful_restart_true_wins_in_any_order() {
    let on = neighbor_cfg(
        "on",
        "{asn: 64600, address: 172.18.0.5, enableGracefulRestart: true}",
    );
    let off = neighbor_cfg(
        "off",
        "{asn: 64600, address: 172.18.0.5, enableGracefulRestart: false}",
    );
    for order in [[&on, &off], [&off, &on]] {
        let o = run(&order);
        assert!(o.errors.is_empty());
        assert!(o.config.routers[""].neighbors["172.18.0.5"].graceful_restart);
    }
}

#[test]
fn local_pref_conflict_and_communities_are_additive() {
    let a = neighbor_cfg("a", "{asn: 64600, address: 172.18.0.5, toAdvertise: {allowed: {mode: all}, withLocalPref: [{localPref: 100, prefixes: [192.0.2.0/24]}], withCommunity: [{community: '1:1', prefixes: [192.0.2.0/24]}]}}");
    let b = neighbor_cfg("b", "{asn: 64600, address: 172.18.0.5, toAdvertise: {allowed: {mode: all}, withCommunity: [{community: '1:2', prefixes: [192.0.2.0/24]}]}}");
    let c = neighbor_cfg("c", "{asn: 64600, address: 172.18.0.5, toAdvertise: {allowed: {mode: all}, withLocalPref: [{localPref: 200, prefixes: [192.0.2.0/24]}]}}");
    let o = run(&[&a, &b, &c]);
    assert_eq!(o.errors.skipped_objects(), ["frr-k8s-system/c"]);
    assert!(
        o.errors.to_string().contains(
            "local preference of 192.0.2.0/24 100 in frr-k8s-system/a vs 200 in frr-k8s-system/c"
        ),
        "{}",
        o.errors
    );
    let n = &o.config.routers[""].neighbors["172.18.0.5"];
    assert_eq!(
        n.advertise.communities.values().next().map(|s| s.len()),
        Some(2)
    );
}

#[test]
fn bfd_profile_one_empty_is_compatible_and_definitions_must_agree() {
    let with = |name: &str, rx: u32| {
        cfg(name, &format!("bgp:\n  bfdProfiles:\n  - {{name: fast, receiveInterval: {rx}}}\n  routers:\n  - asn: 64512\n    neighbors:\n    - {{asn: 64600, address: 172.18.0.5, bfdProfile: fast}}\n"))
    };
    let without = neighbor_cfg("without", "{asn: 64600, address: 172.18.0.5}");
    let a = with("a", 100);
    for order in [[&a, &without], [&without, &a]] {
        let o = run(&order);
        assert!(o.errors.is_empty(), "{}", o.errors);
        assert_eq!(
            o.config.routers[""].neighbors["172.18.0.5"]
                .bfd_profile
                .as_deref(),
            Some("fast")
        );
    }
    let same = with("same", 100);
    assert!(run(&[&a, &same]).errors.is_empty());
    let other = with("other", 200);
    let o = run(&[&a, &other]);
    assert_eq!(o.errors.skipped_objects(), ["frr-k8s-system/other"]);
    assert!(
        o.errors.to_string().contains("bfd profile fast"),
        "{}",
        o.errors
    );
}

fn secret(ns: &str, name: &str, ty: &str, key: &str, value: &str) -> Secret {
    serde_yaml::from_str(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: {ty}\nstringData: {{{key}: {value}}}\n"
    ))
    .unwrap()
}

#[test]
fn password_secrets_are_resolved_and_checked() {
    let c = neighbor_cfg(
        "pw",
        "{asn: 64600, address: 172.18.0.5, passwordSecret: {name: pass}}",
    );
    let good = vec![secret(
        NS,
        "pass",
        "kubernetes.io/basic-auth",
        "password",
        "topsecret",
    )];
    let o = merge(&[&c], &good, NS);
    assert!(o.errors.is_empty(), "{}", o.errors);
    let n = &o.config.routers[""].neighbors["172.18.0.5"];
    assert_eq!(n.password.as_ref().map(Password::expose), Some("topsecret"));
    // Redacted everywhere but the renderer.
    let dbg = format!("{:?}", o.config);
    assert!(!dbg.contains("topsecret"), "{dbg}");
    assert!(render(&o.config, &RenderOptions::default())
        .contains(" neighbor 172.18.0.5 password topsecret\n"));

    for (secrets, want) in [
        (vec![], "neighbor 172.18.0.5 (vrf default): spec.bgp.routers[0].neighbors[0].passwordSecret: secret frr-k8s-system/pass not found"),
        (vec![secret(NS, "pass", "Opaque", "password", "x")], "has type \"Opaque\""),
        (vec![secret(NS, "pass", "kubernetes.io/basic-auth", "username", "x")], "has no \"password\" key"),
        // The namespace of the reference is honoured: a same-named Secret elsewhere is not used.
        (vec![secret("other", "pass", "kubernetes.io/basic-auth", "password", "x")], "not found"),
    ] {
        let o = merge(&[&c], &secrets, NS);
        assert_eq!(o.errors.skipped_objects(), ["frr-k8s-system/pw"]);
        assert!(o.errors.to_string().contains(want), "{}", o.errors);
    }
    let other_ns = neighbor_cfg(
        "pw2",
        "{asn: 64600, address: 172.18.0.5, passwordSecret: {name: pass, namespace: other}}",
    );
    let o = merge(
        &[&other_ns],
        &vec![secret(
            "other",
            "pass",
            "kubernetes.io/basic-auth",
            "password",
            "x",
        )],
        NS,
    );
    assert!(o.errors.is_empty(), "{}", o.errors);
}

#[test]
fn password_conflicts_never_print_values_and_injection_is_rejected() {
    let a = neighbor_cfg("a", "{asn: 64600, address: 172.18.0.5, password: alpha}");
    let b = neighbor_cfg("b", "{asn: 64600, address: 172.18.0.5, password: bravo}");
    let o = run(&[&a, &b]);
    let msg = o.errors.to_string();
    assert!(
        msg.contains("password") && !msg.contains("alpha") && !msg.contains("bravo"),
        "{msg}"
    );
    let none = neighbor_cfg("none", "{asn: 64600, address: 172.18.0.5}");
    assert!(run(&[&a, &none]).errors.is_empty());

    let inj = neighbor_cfg(
        "inj",
        "{asn: 64600, address: 172.18.0.5, password: \"x\\nrouter bgp 1\"}",
    );
    let o = run(&[&inj]);
    assert_eq!(o.errors.skipped_objects(), ["frr-k8s-system/inj"]);
    assert!(!o.errors.to_string().contains("router bgp 1"));
    assert!(matches!(o.errors.0[0].errors[0], MergeError::Invalid(_)));
}

#[test]
fn evpn_is_reported_unsupported() {
    let e = cfg("evpn", "bgp:\n  routers:\n  - asn: 64512\n    neighbors:\n    - {asn: 64600, address: 172.18.0.5, addressFamilies: [unicast, evpn]}\n");
    let o = run(&[&e]);
    assert!(
        o.errors.to_string().contains("not supported yet"),
        "{}",
        o.errors
    );
}

#[test]
fn select_skips_only_the_object_with_a_bad_selector() {
    let good = cfg(
        "good",
        "nodeSelector: {matchLabels: {rack: r1}}\nbgp:\n  routers:\n  - asn: 64512\n",
    );
    let bad = cfg(
        "bad",
        "nodeSelector: {matchExpressions: [{key: rack, operator: Bogus}]}\n",
    );
    let all = cfg("all", "bgp:\n  routers:\n  - asn: 64512\n");
    let other = cfg("other", "nodeSelector: {matchLabels: {rack: r2}}\n");
    let mut foreign = cfg("foreign", "bgp:\n  routers:\n  - asn: 1\n");
    foreign.metadata.namespace = Some("default".into());
    let labels: BTreeMap<String, String> = [("rack".to_string(), "r1".to_string())].into();
    let cfgs = [good, bad, all, other, foreign];
    let sel = select(&cfgs, NS, &labels);
    let names: Vec<&str> = sel
        .selected
        .iter()
        .map(|c| c.metadata.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(names, ["all", "good"]);
    assert_eq!(sel.errors.len(), 1);
    assert_eq!(sel.errors[0].object, "frr-k8s-system/bad");
}

// --- Rendering fixes of upstream quirks -------------------------------------------------

#[test]
fn quirk1_one_non_default_timer_is_rendered() {
    let c = neighbor_cfg(
        "t",
        "{asn: 64600, address: 172.18.0.5, holdTime: 90s, keepaliveTime: 60s}",
    );
    assert!(rendered(&[&c]).contains(" neighbor 172.18.0.5 timers 60 90\n"));
    let c = neighbor_cfg(
        "t",
        "{asn: 64600, address: 172.18.0.5, holdTime: 180s, keepaliveTime: 20s}",
    );
    assert!(rendered(&[&c]).contains(" neighbor 172.18.0.5 timers 20 180\n"));
    let c = neighbor_cfg(
        "t",
        "{asn: 64600, address: 172.18.0.5, holdTime: 180s, keepaliveTime: 60s}",
    );
    assert!(!rendered(&[&c]).contains("timers"));
}

#[test]
fn quirk3_incoming_lists_are_per_family_with_their_own_sequence() {
    let c = neighbor_cfg("r", "{asn: 64600, address: 172.18.0.5, dualStackAddressFamily: true, toReceive: {allowed: {prefixes: [{prefix: 10.0.0.0/8, le: 24}, {prefix: '2001:db8::/32', le: 64}]}}}");
    let text = rendered(&[&c]);
    assert!(
        text.contains("ip prefix-list 172.18.0.5-inpl-ipv4 seq 1 permit 10.0.0.0/8 le 24\n"),
        "{text}"
    );
    assert!(
        text.contains("ipv6 prefix-list 172.18.0.5-inpl-ipv6 seq 1 permit 2001:db8::/32 le 64\n"),
        "{text}"
    );
    assert!(!text.contains("-inpl-dual"));
}

#[test]
fn quirk4_disable_connected_check_only_for_ipv6_address_single_hop_ebgp() {
    let c = cfg("d", "bgp:\n  routers:\n  - asn: 64512\n    neighbors:\n    - {asn: 64600, interface: eth0}\n    - {asn: 64600, address: 'fc00::5'}\n    - {asn: 64600, address: 'fc00::6', ebgpMultiHop: true}\n    - {asn: 64512, address: 'fc00::7'}\n    - {dynamicASN: external, address: 'fc00::8'}\n");
    let text = rendered(&[&c]);
    let dcc: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("disable-connected-check"))
        .collect();
    assert_eq!(
        dcc,
        [
            " neighbor fc00::5 disable-connected-check",
            " neighbor fc00::8 disable-connected-check"
        ]
    );
}

#[test]
fn explicit_connect_time_is_rendered_even_at_60s() {
    let c = neighbor_cfg("c", "{asn: 64600, address: 172.18.0.5, connectTime: 60s}");
    assert!(rendered(&[&c]).contains(" neighbor 172.18.0.5 timers connect 60\n"));
    let unset = neighbor_cfg("u", "{asn: 64600, address: 172.18.0.5}");
    assert!(!rendered(&[&unset]).contains("timers connect"));
    // Unset and 60s agree (60s is the documented default), the explicit value is kept.
    assert!(rendered(&[&c, &unset]).contains("timers connect 60"));
}

#[test]
fn every_neighbor_is_allowed_exactly_its_prefixes() {
    // Two neighbors with different advertised sets: no cross-talk through shared lists.
    let c = cfg("x", "bgp:\n  routers:\n  - asn: 64512\n    prefixes: [192.0.2.0/24, 198.51.100.0/24]\n    neighbors:\n    - {asn: 64600, address: 172.18.0.5, toAdvertise: {allowed: {prefixes: [192.0.2.0/24]}}}\n    - {asn: 64600, address: 172.18.0.6, toAdvertise: {allowed: {prefixes: [198.51.100.0/24]}}}\n");
    let text = rendered(&[&c]);
    let lists: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ip prefix-list"))
        .collect();
    assert_eq!(
        lists,
        [
            "ip prefix-list 172.18.0.5-allowed-ipv4 seq 1 permit 192.0.2.0/24",
            "ip prefix-list 172.18.0.6-allowed-ipv4 seq 1 permit 198.51.100.0/24",
        ]
    );
}
