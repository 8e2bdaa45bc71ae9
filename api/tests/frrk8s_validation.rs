//! Table tests for `FRRConfiguration::validate`: each rule, with the field path it reports.

use metallb_api::frrk8s::validate::check_rd_rt;
use metallb_api::frrk8s::{FRRConfiguration, IpFamily, Neighbor, RemoteAsn};

fn config(spec: &str) -> FRRConfiguration {
    let yaml = format!(
        "apiVersion: frrk8s.metallb.io/v1beta1\nkind: FRRConfiguration\nmetadata: {{name: c, namespace: frr-k8s-system}}\nspec: {spec}"
    );
    serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{e}: {spec}"))
}

/// A one-router, one-neighbor spec with `neighbor` spliced into the neighbor's mapping.
fn one_neighbor(neighbor: &str, router_extra: &str) -> String {
    format!(
        "{{bgp: {{routers: [{{asn: 64512, prefixes: [192.0.2.0/24, 198.51.100.0/24, 2001:db8::/64]{router_extra}, neighbors: [{{{neighbor}}}]}}], bfdProfiles: [{{name: fast}}]}}}}"
    )
}

fn errors_of(spec: &str) -> String {
    match config(spec).validate() {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_ok(spec: &str) {
    let e = errors_of(spec);
    assert!(e.is_empty(), "expected valid: {e}\n{spec}");
}

#[track_caller]
fn assert_err(spec: &str, expected: &[&str]) {
    let e = errors_of(spec);
    assert!(!e.is_empty(), "expected errors {expected:?} for {spec}");
    for x in expected {
        assert!(e.contains(x), "missing {x:?} in:\n{e}\nspec: {spec}");
    }
}

const N0: &str = "spec.bgp.routers[0].neighbors[0]";

#[test]
fn baseline_is_valid() {
    assert_ok(&one_neighbor("address: 10.0.0.1, asn: 64600", ""));
    assert_ok("{}");
    assert_ok("{bgp: {}}");
}

#[test]
fn router_rules() {
    assert_err(
        "{bgp: {routers: [{asn: 64512, prefixes: [10.0.0.0/33, 10.0.0.1, 192.0.2.0/24]}]}}",
        &[
            "spec.bgp.routers[0].prefixes[0]: \"10.0.0.0/33\" is not a valid CIDR",
            "spec.bgp.routers[0].prefixes[1]: \"10.0.0.1\" is not a valid CIDR",
        ],
    );
    assert_err(
        "{bgp: {routers: [{asn: 64512, imports: [{vrf: red}, {}]}]}}",
        &[
            "spec.bgp.routers[0].imports[0].vrf: \"red\" is not the vrf of a router in this FRRConfiguration",
            "spec.bgp.routers[0].imports[1].vrf: an import needs a vrf name",
        ],
    );
    assert_ok("{bgp: {routers: [{asn: 64512, vrf: red, imports: [{vrf: default}]}, {asn: 64512, imports: [{vrf: red}]}]}}");
    assert_err(
        "{bgp: {routers: [{asn: 64512, vrf: red, imports: [{vrf: red}]}]}}",
        &["spec.bgp.routers[0].imports[0].vrf: \"red\" a router cannot import its own vrf"],
    );
    assert_err(
        "{bgp: {routers: [{asn: 0, id: not-an-ip}]}}",
        &[
            "spec.bgp.routers[0].asn: \"0\" must be between 1 and 4294967295",
            "spec.bgp.routers[0].id: \"not-an-ip\" is not a valid router id",
        ],
    );
    assert_err(
        "{bgp: {routers: [{asn: 64512, vrf: red, id: 10.0.0.1}, {asn: 64513, vrf: red, id: 10.0.0.2}]}}",
        &[
            "spec.bgp.routers[1].asn: \"64513\" differs from the ASN 64512 of spec.bgp.routers[0]",
            "spec.bgp.routers[1].id: \"10.0.0.2\" differs from the router id",
        ],
    );
    let many: Vec<String> = (0..51)
        .map(|i| format!("{{asn: 64512, vrf: v{i}}}"))
        .collect();
    assert_err(
        &format!("{{bgp: {{routers: [{}]}}}}", many.join(", ")),
        &["spec.bgp.routers: \"51 routers\" must have at most 50 items"],
    );
}

#[test]
fn neighbor_identity_rules() {
    assert_err(
        &one_neighbor("asn: 64600", ""),
        &[&format!("{N0}: neighbor has no address and no interface")],
    );
    assert_err(
        &one_neighbor("asn: 64600, address: 10.0.0.1, interface: eth0", ""),
        &[&format!(
            "{N0}.interface: address and interface are mutually exclusive"
        )],
    );
    assert_err(
        &one_neighbor("asn: 64600, address: 10.0.0.300", ""),
        &[&format!(
            "{N0}.address: \"10.0.0.300\" is not a valid IP address"
        )],
    );
    assert_err(
        &one_neighbor("address: 10.0.0.1", ""),
        &[&format!("{N0}: one of asn or dynamicASN must be set")],
    );
    assert_err(
        &one_neighbor("address: 10.0.0.1, asn: 0", ""),
        &[&format!("{N0}: one of asn or dynamicASN must be set")],
    );
    assert_err(
        &one_neighbor("address: 10.0.0.1, asn: 64600, dynamicASN: external", ""),
        &[&format!(
            "{N0}.dynamicASN: asn and dynamicASN are mutually exclusive"
        )],
    );
    assert_ok(&one_neighbor("interface: eth0, dynamicASN: internal", ""));
    assert_err(
        &one_neighbor("address: 10.0.0.1, asn: 64512, localASN: 65000", ""),
        &[&format!(
            "{N0}.localASN: \"65000\" is not supported for iBGP sessions"
        )],
    );
    assert_err(
        &one_neighbor(
            "address: 10.0.0.1, dynamicASN: internal, localASN: 65000",
            "",
        ),
        &[&format!(
            "{N0}.localASN: \"65000\" is not supported for iBGP"
        )],
    );
    assert_ok(&one_neighbor(
        "address: 10.0.0.1, asn: 64600, localASN: 65000",
        "",
    ));
    assert_err(
        &one_neighbor("address: 10.0.0.1, asn: 64600, port: 0", ""),
        &[&format!("{N0}.port: \"0\" must be between 1 and 65535")],
    );
    assert_ok(&one_neighbor(
        "address: 10.0.0.1, asn: 64600, port: 65535",
        "",
    ));
    assert_ok(&one_neighbor(
        "address: 10.0.0.1, asn: 64600, port: 16385",
        "",
    ));
}

#[test]
fn timer_rules() {
    let n = |t: &str| one_neighbor(&format!("address: 10.0.0.1, asn: 64600, {t}"), "");
    assert_err(
        &n("holdTime: 90s"),
        &[&format!("{N0}.keepaliveTime: holdTime is set")],
    );
    assert_err(
        &n("keepaliveTime: 30s"),
        &[&format!("{N0}.holdTime: keepaliveTime is set")],
    );
    assert_err(
        &n("holdTime: 2s, keepaliveTime: 1s"),
        &[&format!("{N0}.holdTime: \"2s\" must be 0 or at least 3s")],
    );
    assert_ok(&n("holdTime: 0s, keepaliveTime: 0s"));
    assert_ok(&n("holdTime: 3s, keepaliveTime: 1s"));
    assert_err(
        &n("holdTime: 60s, keepaliveTime: 90s"),
        &[&format!(
            "{N0}.keepaliveTime: \"90s\" must not be greater than holdTime 60s"
        )],
    );
    assert_err(
        &n("holdTime: abc, keepaliveTime: 10"),
        &[
            &format!("{N0}.holdTime: \"abc\" is not a valid duration"),
            &format!("{N0}.keepaliveTime: \"10\" is not a valid duration"),
        ],
    );
    assert_err(
        &n("holdTime: 20h, keepaliveTime: 1s"),
        &[&format!("{N0}.holdTime: \"20h\" must be at most 65535s")],
    );
    assert_err(
        &n("connectTime: 0s"),
        &[&format!(
            "{N0}.connectTime: \"0s\" connect time should be between 1 seconds to 65535"
        )],
    );
    assert_err(
        &n("connectTime: 70000s"),
        &[&format!(
            "{N0}.connectTime: \"70000s\" connect time should be between 1 seconds to 65535"
        )],
    );
    assert_err(
        &n("connectTime: 1500ms"),
        &[&format!(
            "{N0}.connectTime: \"1500ms\" connect time should contain a whole number of seconds"
        )],
    );
    assert_ok(&n("connectTime: 2m"));
}

#[test]
fn password_and_bfd_rules() {
    assert_err(
        &one_neighbor(
            "address: 10.0.0.1, asn: 64600, password: x, passwordSecret: {name: s}",
            "",
        ),
        &[&format!(
            "{N0}.passwordSecret: password and passwordSecret are mutually exclusive"
        )],
    );
    assert_err(
        &one_neighbor(
            "address: 10.0.0.1, asn: 64600, passwordSecret: {namespace: ns}",
            "",
        ),
        &[&format!(
            "{N0}.passwordSecret.name: a secret reference needs a name"
        )],
    );
    assert_ok(&one_neighbor(
        "address: 10.0.0.1, asn: 64600, passwordSecret: {name: s, namespace: other}",
        "",
    ));
    assert_err(
        &one_neighbor("address: 10.0.0.1, asn: 64600, bfdProfile: slow", ""),
        &[&format!(
            "{N0}.bfdProfile: \"slow\" does not name a BFD profile"
        )],
    );
    assert_ok(&one_neighbor(
        "address: 10.0.0.1, asn: 64600, bfdProfile: fast",
        "",
    ));
    assert_err(
        "{bgp: {bfdProfiles: [{name: fast}, {name: fast, receiveInterval: 5}, {name: '', detectMultiplier: 1, minimumTtl: 255, echoInterval: 60001, transmitInterval: 9}]}}",
        &[
            "spec.bgp.bfdProfiles[1].name: \"fast\" duplicate bfd profile name (also spec.bgp.bfdProfiles[0])",
            "spec.bgp.bfdProfiles[1].receiveInterval: \"5\" must be between 10 and 60000",
            "spec.bgp.bfdProfiles[2].name: a BFD profile needs a name",
            "spec.bgp.bfdProfiles[2].detectMultiplier: \"1\" must be between 2 and 255",
            "spec.bgp.bfdProfiles[2].minimumTtl: \"255\" must be between 1 and 254",
            "spec.bgp.bfdProfiles[2].echoInterval: \"60001\"",
            "spec.bgp.bfdProfiles[2].transmitInterval: \"9\"",
        ],
    );
}

#[test]
fn advertisement_rules() {
    let adv = |a: &str| {
        one_neighbor(
            &format!("address: 10.0.0.1, asn: 64600, toAdvertise: {{{a}}}"),
            "",
        )
    };
    assert_ok(&adv("allowed: {prefixes: [192.0.2.0/24]}"));
    assert_err(
        &adv("allowed: {prefixes: [10.1.0.0/24, bogus]}"),
        &[
            &format!("{N0}.toAdvertise.allowed.prefixes[0]: \"10.1.0.0/24\" is not a prefix of router 64512"),
            &format!("{N0}.toAdvertise.allowed.prefixes[1]: \"bogus\" is not a valid CIDR"),
        ],
    );
    assert_err(
        &adv("allowed: {prefixes: [2001:db8::/64]}"),
        &[&format!("{N0}.toAdvertise.allowed.prefixes[0]: \"2001:db8::/64\" is an ipv6 prefix but the neighbor's session is ipv4 only")],
    );
    // Dual stack and unnumbered neighbors carry both families.
    assert_ok(&one_neighbor(
        "address: 10.0.0.1, asn: 64600, dualStackAddressFamily: true, toAdvertise: {allowed: {prefixes: [2001:db8::/64]}}",
        "",
    ));
    assert_ok(&one_neighbor(
        "interface: eth0, asn: 64600, toAdvertise: {allowed: {prefixes: [2001:db8::/64, 192.0.2.0/24]}}",
        "",
    ));
    // A prefix of an imported VRF in the same object can be advertised.
    assert_ok("{bgp: {routers: [{asn: 64512, imports: [{vrf: red}], neighbors: [{address: 10.0.0.1, asn: 64600, toAdvertise: {allowed: {prefixes: [10.9.0.0/16]}}}]}, {asn: 64512, vrf: red, prefixes: [10.9.0.0/16]}]}}");

    // Communities.
    assert_ok(&adv("allowed: {prefixes: [192.0.2.0/24]}, withCommunity: [{community: '10:100', prefixes: [192.0.2.0/24]}, {community: 'large:1:2:3', prefixes: [192.0.2.0/24]}]"));
    assert_ok(&adv(
        "allowed: {mode: all}, withCommunity: [{community: '10:100', prefixes: [198.51.100.0/24]}]",
    ));
    assert_err(
        &adv("allowed: {prefixes: [192.0.2.0/24]}, withCommunity: [{community: '10:100', prefixes: [198.51.100.0/24]}]"),
        &[&format!("{N0}.toAdvertise.withCommunity[0].prefixes[0]: \"198.51.100.0/24\" is advertised for community 10:100 but it's not in the advertisement list of the neighbor")],
    );
    assert_err(
        &adv("allowed: {mode: all}, withCommunity: [{community: '65536:1', prefixes: [192.0.2.0/24]}, {community: no-export, prefixes: []}]"),
        &[
            &format!("{N0}.toAdvertise.withCommunity[0].community: \"65536:1\" is not a valid community"),
            &format!("{N0}.toAdvertise.withCommunity[1].community: \"no-export\" is not a valid community"),
            &format!("{N0}.toAdvertise.withCommunity[1].prefixes: must have at least 1 item"),
        ],
    );
    assert_err(
        &adv("allowed: {mode: all}, withCommunity: [{community: '10:100', prefixes: [192.0.2.0/24]}, {community: '10:100', prefixes: [198.51.100.0/24]}]"),
        &[&format!("{N0}.toAdvertise.withCommunity[1].community: \"10:100\" community is already defined in {N0}.toAdvertise.withCommunity[0]")],
    );
    // `mode: all` for a v4 neighbor does not make v6 router prefixes advertisable.
    assert_err(
        &adv("allowed: {mode: all}, withCommunity: [{community: '10:100', prefixes: [2001:db8::/64]}]"),
        &[&format!("{N0}.toAdvertise.withCommunity[0].prefixes[0]: \"2001:db8::/64\" is an ipv6 prefix")],
    );

    // Local preferences.
    assert_ok(&adv("allowed: {mode: all}, withLocalPref: [{localPref: 100, prefixes: [192.0.2.0/24]}, {localPref: 200, prefixes: [198.51.100.0/24]}]"));
    assert_err(
        &adv("allowed: {mode: all}, withLocalPref: [{localPref: 100, prefixes: [192.0.2.0/24]}, {localPref: 200, prefixes: [192.0.2.0/24]}]"),
        &[&format!("{N0}.toAdvertise.withLocalPref[1].prefixes[0]: \"192.0.2.0/24\" prefix is configured with both local preference 100 and 200")],
    );
    assert_err(
        &adv("allowed: {mode: all}, withLocalPref: [{localPref: 100, prefixes: [192.0.2.0/24]}, {localPref: 100, prefixes: [198.51.100.0/24]}]"),
        &[&format!("{N0}.toAdvertise.withLocalPref[1].localPref: \"100\" local preference is already defined in {N0}.toAdvertise.withLocalPref[0]")],
    );
    assert_err(
        &adv("allowed: {prefixes: [192.0.2.0/24]}, withLocalPref: [{localPref: 100, prefixes: [198.51.100.0/24, 192.0.2.0/24, 192.0.2.0/24]}]"),
        &[
            &format!("{N0}.toAdvertise.withLocalPref[0].prefixes[0]: \"198.51.100.0/24\" local preference 100 is associated to a prefix that is not advertised"),
            &format!("{N0}.toAdvertise.withLocalPref[0].prefixes[2]: \"192.0.2.0/24\" prefix is already defined for local preference 100"),
        ],
    );

    // Next hops.
    assert_ok(&adv("allowed: {mode: all}, nextHop: {ipv4: 10.0.0.10}"));
    assert_err(
        &adv("nextHop: {ipv4: 1.2.3, ipv6: 'fc00::1'}"),
        &[
            &format!("{N0}.toAdvertise.nextHop.ipv4: \"1.2.3\" is not a valid IPv4 address"),
            &format!("{N0}.toAdvertise.nextHop.ipv6: \"fc00::1\" is an IPv6 next hop for a neighbor without the IPv6 address family"),
        ],
    );
    assert_err(
        &adv("nextHop: {ipv6: 10.0.0.1}"),
        &[&format!(
            "{N0}.toAdvertise.nextHop.ipv6: \"10.0.0.1\" is not a valid IPv6 address"
        )],
    );
}

#[test]
fn receive_rules() {
    let rcv = |p: &str| {
        one_neighbor(
            &format!("address: 10.0.0.1, asn: 64600, toReceive: {{allowed: {{prefixes: [{p}]}}}}"),
            "",
        )
    };
    let p0 = format!("{N0}.toReceive.allowed.prefixes[0]");
    assert_ok(&rcv("{prefix: 192.0.2.0/24, le: 32, ge: 25}"));
    assert_ok(&rcv("{prefix: 192.0.2.0/24, le: 24}"));
    assert_ok(&rcv("{prefix: '2001:db8::/32', le: 128}"));
    assert_err(
        &rcv("{prefix: 192.0.2.0/33}"),
        &[&format!(
            "{p0}.prefix: \"192.0.2.0/33\" is not a valid CIDR"
        )],
    );
    assert_err(
        &rcv("{le: 32}"),
        &[&format!("{p0}.prefix: a prefix selector needs a prefix")],
    );
    assert_err(
        &rcv("{prefix: 192.0.2.0/24, le: 26, ge: 28}"),
        &[&format!(
            "{p0}.ge: \"28\" invalid selector lengths: ge 28 is bigger than le 26"
        )],
    );
    assert_err(
        &rcv("{prefix: 192.0.2.0/24, le: 20}"),
        &[&format!(
            "{p0}.le: \"20\" invalid selector lengths: cidr mask 24 is bigger than le 20"
        )],
    );
    assert_err(
        &rcv("{prefix: 192.0.2.0/24, ge: 16}"),
        &[&format!(
            "{p0}.ge: \"16\" invalid selector lengths: cidr mask 24 is bigger than ge 16"
        )],
    );
    assert_err(
        &rcv("{prefix: 192.0.2.0/24, le: 64}"),
        &[&format!(
            "{p0}.le: \"64\" must be at most 32 for the ipv4 prefix 192.0.2.0/24"
        )],
    );
}

#[test]
fn node_selector_rules() {
    assert_ok("{nodeSelector: {matchLabels: {kubernetes.io/hostname: node-a}}}");
    assert_err(
        "{nodeSelector: {matchExpressions: [{key: zone, operator: Near, values: [a]}], matchLabels: {'bad key!': x}}}",
        &[
            "spec.nodeSelector.matchExpressions[0].operator: \"Near\" is not a valid selector operator",
            "spec.nodeSelector.matchLabels[bad key!]: \"bad key!\" is not a valid label key",
        ],
    );
}

#[test]
fn duplicate_neighbors() {
    // Same neighbor twice, compatible (one adds a BFD profile): fine, as upstream's self-merge.
    assert_ok("{bgp: {bfdProfiles: [{name: fast}], routers: [{asn: 64512, neighbors: [{address: 10.0.0.1, asn: 64600}, {address: 10.0.0.1, asn: 64600, bfdProfile: fast, port: 179}]}]}}");
    assert_err(
        "{bgp: {routers: [{asn: 64512, neighbors: [{address: 10.0.0.1, asn: 64600}, {address: 10.0.0.1, asn: 64601, port: 180, holdTime: 90s, keepaliveTime: 30s}]}]}}",
        &["spec.bgp.routers[0].neighbors[1]: \"64601@10.0.0.1\" duplicates neighbor spec.bgp.routers[0].neighbors[0] with conflicting asn, port, holdTime, keepaliveTime"],
    );
    // Same interface in two routers of the same VRF.
    assert_err(
        "{bgp: {routers: [{asn: 64512, neighbors: [{interface: eth0, asn: 64600}]}, {asn: 64512, neighbors: [{interface: eth0, asn: 64600, ebgpMultiHop: true}]}]}}",
        &["spec.bgp.routers[1].neighbors[0]: \"64600@eth0\" duplicates neighbor spec.bgp.routers[0].neighbors[0] with conflicting ebgpMultiHop"],
    );
    // Same address in different VRFs: different neighbors.
    assert_ok("{bgp: {routers: [{asn: 64512, neighbors: [{address: 10.0.0.1, asn: 64600}]}, {asn: 64512, vrf: red, neighbors: [{address: 10.0.0.1, asn: 64601}]}]}}");
}

#[test]
fn evpn_rules() {
    assert_err(
        "{bgp: {routers: [{asn: 64512, evpn: {l2vnis: [{vni: 0}, {vni: 16777216}, {vni: 10, rd: '1:2:3', importRTs: ['*:5', '300.0.0.1:1'], exportRTs: ['*:5', '70000:70000']}, {vni: 10}]}}]}}",
        &[
            "spec.bgp.routers[0].evpn.l2vnis[0].vni: \"0\" must be between 1 and 16777215",
            "spec.bgp.routers[0].evpn.l2vnis[1].vni: \"16777216\" must be between 1 and 16777215",
            "spec.bgp.routers[0].evpn.l2vnis[2].rd: \"1:2:3\" is not a valid route distinguisher: must contain exactly one colon",
            "spec.bgp.routers[0].evpn.l2vnis[2].importRTs[1]: \"300.0.0.1:1\" is not a valid route target",
            "spec.bgp.routers[0].evpn.l2vnis[2].exportRTs[0]: \"*:5\" is not a valid route target: a wildcard administrator is only allowed for import route targets",
            "spec.bgp.routers[0].evpn.l2vnis[2].exportRTs[1]: \"70000:70000\" is not a valid route target",
            "spec.bgp.routers[0].evpn.l2vnis[3].vni: \"10\" duplicate VNI (also spec.bgp.routers[0].evpn.l2vnis[2].vni)",
        ],
    );
    assert_err(
        "{bgp: {routers: [{asn: 64512, vrf: red, neighbors: [{address: 10.0.0.1, asn: 64600}], evpn: {l3vni: {vni: 5, advertisePrefixes: [unicast, unicast]}}}]}}",
        &[
            "spec.bgp.routers[0].evpn.l3vni.advertisePrefixes:",
            "spec.bgp.routers[0].evpn.l3vni: l3vni can only be configured on routers with no neighbors",
        ],
    );
    assert_ok("{bgp: {routers: [{asn: 64512, vrf: red, evpn: {l3vni: {vni: 5, rd: '10.0.0.1:5', advertisePrefixes: [unicast]}}}]}}");
}

#[test]
fn all_errors_are_reported_together() {
    let c = config(&one_neighbor(
        "address: bogus, holdTime: 1s, keepaliveTime: 1s, bfdProfile: nope, toReceive: {allowed: {prefixes: [{prefix: x}]}}",
        ", imports: [{vrf: blue}]",
    ));
    let err = c.validate().unwrap_err();
    assert!(err.len() >= 6, "{err}");
    let obj = c.validate_object().unwrap_err();
    assert!(
        obj.to_string()
            .starts_with("FRRConfiguration frr-k8s-system/c: spec.bgp.routers[0]."),
        "{obj}"
    );
}

#[test]
fn rd_rt_formats() {
    for ok in [
        "65000:100",
        "192.0.2.1:100",
        "4200000000:100",
        "65535:4294967295",
        "0:0",
    ] {
        assert_eq!(check_rd_rt(ok, false), Ok(()), "{ok}");
    }
    assert_eq!(check_rd_rt("*:4294967295", true), Ok(()));
    for bad in [
        "",
        "1",
        "1:2:3",
        "a:1",
        "1:a",
        "192.0.2.1:65536",
        "4200000000:65536",
        "4294967296:1",
        "65535:4294967296",
        "*:1",
        ":1",
        "1:",
    ] {
        assert!(check_rd_rt(bad, false).is_err(), "{bad}");
    }
}

#[test]
fn neighbor_helpers() {
    let n: Neighbor = serde_yaml::from_str("{address: 'fc00::1', asn: 64600}").unwrap();
    assert_eq!(n.id(""), "fc00::1");
    assert_eq!(n.id("red"), "fc00::1-red");
    assert_eq!(n.display_name(), "64600@fc00::1");
    assert_eq!(n.remote_asn(), Some(RemoteAsn::Number(64600)));
    assert_eq!(n.ip_family(), Some(IpFamily::IPv6));
    assert_eq!(n.effective_port(), 179);
    assert_eq!(n.effective_hold_time().unwrap().as_secs(), 180);
    assert_eq!(n.effective_keepalive_time().unwrap().as_secs(), 60);
    assert_eq!(n.effective_connect_time().unwrap().as_secs(), 60);
    assert!(!n.is_ibgp(64512));
    assert!(n.is_ibgp(64600));
    let u: Neighbor =
        serde_yaml::from_str("{interface: eth0, dynamicASN: internal, address: ''}").unwrap();
    assert_eq!(u.peer(), "eth0");
    assert_eq!(u.display_name(), "internal@eth0");
    assert_eq!(u.ip_family(), Some(IpFamily::DualStack));
    assert_eq!(u.remote_asn().unwrap().to_string(), "internal");
    let d: Neighbor = serde_yaml::from_str(
        "{address: 10.0.0.1, dynamicASN: external, dualStackAddressFamily: true}",
    )
    .unwrap();
    assert_eq!(d.ip_family(), Some(IpFamily::DualStack));
    assert_eq!(d.display_name(), "external@10.0.0.1");
}
