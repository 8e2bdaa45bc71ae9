//! Every FRRConfiguration example from the talks (slide text, extraction noise fixed: `le: 32g`
//! → `le: 32`, `nodeSelector.labelSelector` → `nodeSelector.matchLabels`) and a few
//! full-featured objects decode, validate, and re-encode to exactly the input.

use metallb_api::frrk8s::{
    AllowMode, BGPSessionState, FRRConfiguration, FRRK8sConfiguration, FRRNodeState, LogLevel,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decode `yaml`, re-encode, and compare both as JSON values.
fn round_trip<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
    let input: serde_json::Value = serde_yaml::from_str(yaml).expect("valid YAML");
    let obj: T = serde_json::from_value(input.clone()).expect("decodes");
    let output = serde_json::to_value(&obj).unwrap();
    assert_eq!(input, output, "round trip changed the object");
    // YAML decoding gives the same value as JSON decoding.
    let again: T = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(serde_json::to_value(&again).unwrap(), output);
    obj
}

fn valid(yaml: &str) -> FRRConfiguration {
    let c: FRRConfiguration = round_trip(yaml);
    if let Err(e) = c.validate() {
        panic!("expected valid, got: {e}\n{yaml}");
    }
    c
}

/// Talk: "Configuring BGP".
const CONFIGURING_BGP: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: test
  namespace: frr-k8s-system
spec:
  bgp:
    routers:
    - asn: 64512
      neighbors:
      - address: 172.30.0.3
        asn: 64512
        port: 180
        toAdvertise:
          allowed:
            mode: all
        toReceive:
          allowed:
            mode: all
"#;

/// Talk: "Advertising Prefixes".
const ADVERTISING_PREFIXES: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: advsome
  namespace: frr-k8s-system
spec:
  bgp:
    routers:
    - asn: 64512
      neighbors:
      - address: 172.18.0.5
        asn: 64512
        toAdvertise:
          allowed:
            prefixes:
            - 192.168.2.0/24
      prefixes:
      - 192.168.2.0/24
      - 192.169.2.0/24
"#;

/// Talk: "Receiving Prefixes" (`le: 32g` on the slide is extraction noise).
const RECEIVING_PREFIXES: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: recv
  namespace: frr-k8s-system
spec:
  bgp:
    routers:
    - asn: 64512
      neighbors:
      - address: 172.18.0.5
        asn: 64512
        toReceive:
          allowed:
            prefixes:
            - prefix: 192.169.1.0/24
              le: 32
"#;

/// Talk: "Receiving Prefixes", the two-neighbor fragment placed in a whole object.
const RECEIVING_PREFIXES_TWO_NEIGHBORS: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: recv
  namespace: frr-k8s-system
spec:
  bgp:
    routers:
    - asn: 64512
      neighbors:
      - address: 172.18.0.5
        asn: 64512
        toReceive:
          allowed:
            prefixes:
            - prefix: 192.169.1.0/24
              le: 32
      - address: 172.18.0.6
        asn: 64512
        toReceive:
          allowed:
            mode: all
"#;

/// Talk: "Node Selector" (`labelSelector` on the slide is wrong upstream too: `matchLabels`).
const NODE_SELECTOR: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: test
  namespace: frr-k8s-system
spec:
  bgp:
    routers:
    - asn: 64512
      neighbors:
      - address: 172.30.0.3
        asn: 64512
        port: 180
  nodeSelector:
    matchLabels:
      role: "worker"
"#;

/// Talk: "Raw Configuration".
const RAW_CONFIGURATION: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: test
  namespace: frr-k8s-system
spec:
  raw:
    rawConfig: |-
      router bgp 64512
        neighbor 172.18.0.5 remote-as 4200000000
        neighbor 172.18.0.5 timers 0 0
        neighbor 172.18.0.5 port 180

        address-family ipv4 unicast
          neighbor 172.18.0.5 activate
          neighbor 172.18.0.5 route-map 172.18.0.5-in in
          neighbor 172.18.0.5 route-map 172.18.0.5-out out
        exit-address-family
"#;

/// Talk: "Merging", first object.
const MERGING_TEST_1: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: test-1
  namespace: frr-k8s-system
spec:
  bgp:
    routers:
    - asn: 64512
      neighbors:
      - address: 172.18.0.5
        asn: 64512
        toAdvertise:
          allowed:
            mode: all
      - address: 172.30.0.3
        asn: 4200000000
      prefixes:
      - 192.168.2.0/24
      - 192.169.2.0/24
"#;

/// Talk: "Merging", second object. On its own it advertises a prefix its router does not
/// declare: upstream rejects it too ("a configuration must be self-contained"); the slide
/// shows only the part that matters for the merge.
const MERGING_TEST_0: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: test-0
  namespace: frr-k8s-system
spec:
  bgp:
    routers:
    - asn: 64512
      neighbors:
      - address: 172.18.0.5
        asn: 64512
        toAdvertise:
          allowed:
            prefixes:
            - 192.168.2.0/24
"#;

/// What MetalLB's speaker writes in frr-k8s mode (Appendix A), every neighbor field used.
const METALLB_WRITTEN: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: metallb-node-a
  namespace: metallb-system
spec:
  bgp:
    bfdProfiles:
    - detectMultiplier: 3
      echoInterval: 50
      echoMode: false
      minimumTtl: 254
      name: fast
      passiveMode: false
      receiveInterval: 100
      transmitInterval: 100
    routers:
    - asn: 64512
      id: 10.0.0.10
      neighbors:
      - address: 10.0.0.1
        asn: 64600
        bfdProfile: fast
        connectTime: 10s
        disableMP: false
        dualStackAddressFamily: false
        ebgpMultiHop: true
        enableGracefulRestart: true
        holdTime: 1m30s
        keepaliveTime: 30s
        passwordSecret:
          name: bgp-pass
          namespace: metallb-system
        port: 179
        sourceaddress: 10.0.0.10
        toAdvertise:
          allowed:
            mode: filtered
            prefixes:
            - 192.0.2.10/32
            - 192.0.2.11/32
          withCommunity:
          - community: "64512:7"
            prefixes:
            - 192.0.2.10/32
          - community: large:64512:1:2
            prefixes:
            - 192.0.2.10/32
            - 192.0.2.11/32
          withLocalPref:
          - localPref: 200
            prefixes:
            - 192.0.2.11/32
        toReceive:
          allowed:
            mode: filtered
      - address: fc00::1
        dynamicASN: external
        localASN: 64999
        password: secret
        port: 1790
        toAdvertise:
          allowed:
            prefixes:
            - 2001:db8::10/128
          nextHop:
            ipv6: fc00::10
        toReceive:
          allowed:
            prefixes:
            - prefix: 2001:db8:1::/48
              ge: 56
              le: 64
      prefixes:
      - 192.0.2.10/32
      - 192.0.2.11/32
      - 2001:db8::10/128
  nodeSelector:
    matchLabels:
      kubernetes.io/hostname: node-a
"#;

/// VRFs, imports, unnumbered, EVPN and a selector with expressions.
const VRFS_AND_EVPN: &str = r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata:
  name: evpn-example
  namespace: frr-k8s-system
spec:
  bgp:
    routers:
    - asn: 64512
      imports:
      - vrf: red
      neighbors:
      - address: 192.168.1.1
        asn: 64512
        addressFamilies: ["evpn"]
      - interface: eth1
        dynamicASN: internal
        addressFamilies: ["unicast", "evpn"]
        toAdvertise:
          allowed:
            mode: all
          nextHop:
            ipv4: 192.168.1.10
            ipv6: fd00::10
        toReceive:
          allowed:
            mode: all
      prefixes:
      - 100.64.0.1/32
      evpn:
        advertiseVNIs: All
        advertiseSVI: true
        l2vnis:
        - vni: 1000
          rd: "64512:1000"
          importRTs: ["64512:1000", "*:1000"]
          exportRTs: ["64512:1000"]
        - vni: 1001
          rd: "192.0.2.1:1001"
    - asn: 64512
      vrf: red
      prefixes:
      - 10.0.1.0/24
      evpn:
        l3vni:
          vni: 2000
          rd: "4200000000:20"
          importRTs: ["64512:2000", "*:999"]
          exportRTs: ["64512:2000"]
          advertisePrefixes: ["unicast"]
  raw:
    priority: 5
    rawConfig: "bgp log-neighbor-changes"
  nodeSelector:
    matchExpressions:
    - key: node-role.kubernetes.io/worker
      operator: Exists
"#;

#[test]
fn talk_examples_round_trip_and_validate() {
    let c = valid(CONFIGURING_BGP);
    let n = &c.routers()[0].neighbors[0];
    assert_eq!(n.effective_port(), 180);
    assert_eq!(
        n.advertise_allowed().unwrap().effective_mode(),
        AllowMode::All
    );
    assert_eq!(
        n.receive_allowed().unwrap().effective_mode(),
        AllowMode::All
    );

    let c = valid(ADVERTISING_PREFIXES);
    assert_eq!(c.routers()[0].prefixes.len(), 2);
    assert_eq!(
        c.routers()[0].neighbors[0]
            .advertise_allowed()
            .unwrap()
            .effective_mode(),
        AllowMode::Filtered
    );

    let c = valid(RECEIVING_PREFIXES);
    let sel = &c.routers()[0].neighbors[0]
        .receive_allowed()
        .unwrap()
        .prefixes[0];
    assert_eq!(sel.le, Some(32));
    valid(RECEIVING_PREFIXES_TWO_NEIGHBORS);

    let c = valid(NODE_SELECTOR);
    assert_eq!(
        c.spec.node_selector.unwrap().match_labels.unwrap()["role"],
        "worker"
    );

    let c = valid(RAW_CONFIGURATION);
    assert!(c
        .spec
        .raw_config()
        .unwrap()
        .starts_with("router bgp 64512\n"));
    assert_eq!(c.spec.raw_priority(), 0);
    assert!(c.routers().is_empty());

    valid(MERGING_TEST_1);
}

#[test]
fn talk_merge_second_object_is_not_self_contained() {
    let c: FRRConfiguration = round_trip(MERGING_TEST_0);
    let err = c.validate().unwrap_err();
    assert_eq!(err.len(), 1, "{err}");
    assert!(
        err.to_string().starts_with(
            "spec.bgp.routers[0].neighbors[0].toAdvertise.allowed.prefixes[0]: \"192.168.2.0/24\" is not a prefix of router 64512"
        ),
        "{err}"
    );
}

#[test]
fn full_objects_round_trip_and_validate() {
    let c = valid(METALLB_WRITTEN);
    let r = &c.routers()[0];
    let v6 = &r.neighbors[1];
    assert_eq!(v6.display_name(), "external@fc00::1");
    assert_eq!(v6.local_asn_value(), Some(64999));
    assert_eq!(r.neighbors[0].display_name(), "64600@10.0.0.1");
    assert_eq!(r.neighbors[0].effective_hold_time().unwrap().as_secs(), 90);
    assert_eq!(
        r.neighbors[0]
            .password_secret_ref()
            .unwrap()
            .namespace_value(),
        Some("metallb-system")
    );
    assert_eq!(c.bfd_profiles()[0].echo_mode, Some(false));

    let c = valid(VRFS_AND_EVPN);
    let r = &c.routers()[0];
    assert_eq!(r.neighbors[1].id("red"), "eth1-red");
    let evpn = r.evpn.as_ref().unwrap();
    assert_eq!(evpn.l2_vnis[0].import_rts[1], "*:1000");
    let adv: Vec<String> = c
        .spec
        .advertisable_prefixes(r)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(adv, ["100.64.0.1/32", "10.0.1.0/24"]);
}

#[test]
fn other_kinds_round_trip() {
    let s: FRRNodeState = round_trip(
        r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRNodeState
metadata:
  name: node-a
spec: {}
status:
  lastConversionResult: success
  lastReloadResult: success
  runningConfig: |
    frr version 10.4.3
"#,
    );
    assert_eq!(
        s.status.unwrap().last_conversion_result.as_deref(),
        Some("success")
    );
    let b: BGPSessionState = round_trip(
        r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: BGPSessionState
metadata:
  generateName: node-a-
  name: node-a-x7k2p
  namespace: frr-k8s-system
  labels:
    frrk8s.metallb.io/node: node-a
    frrk8s.metallb.io/peer: fc00--1
    frrk8s.metallb.io/vrf: ""
spec: {}
status:
  bfdStatus: N/A
  bgpStatus: Established
  node: node-a
  peer: fc00--1
  vrf: ""
"#,
    );
    assert_eq!(b.status.unwrap().bgp_status.as_deref(), Some("Established"));
    let f: FRRK8sConfiguration = round_trip(
        r#"
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRK8sConfiguration
metadata:
  name: config
  namespace: frr-k8s-system
spec:
  logLevel: debug
"#,
    );
    assert_eq!(f.spec.log_level, Some(LogLevel::Debug));
    assert_eq!(LogLevel::Debug.frr_level(), "debugging");
    assert_eq!(LogLevel::None.frr_level(), "emergencies");
}

#[test]
fn unknown_enum_values_and_out_of_range_numbers_do_not_decode() {
    for bad_spec in [
        "{bgp: {routers: [{asn: 1, neighbors: [{address: 10.0.0.1, asn: 2, port: 70000}]}]}}",
        "{bgp: {routers: [{asn: 1, neighbors: [{address: 10.0.0.1, dynamicASN: maybe}]}]}}",
        "{bgp: {routers: [{asn: 1, neighbors: [{address: 10.0.0.1, asn: 2, toAdvertise: {allowed: {mode: some}}}]}]}}",
        "{bgp: {routers: [{asn: -1}]}}",
        "{bgp: {routers: [{asn: 4294967296}]}}",
    ] {
        let yaml = format!(
            "apiVersion: frrk8s.metallb.io/v1beta1\nkind: FRRConfiguration\nmetadata: {{name: x}}\nspec: {bad_spec}"
        );
        let parsed: Result<FRRConfiguration, _> = serde_yaml::from_str(&yaml);
        assert!(parsed.is_err(), "{bad_spec} should not decode");
    }
}

#[test]
fn schema_defaults_mirror_the_apiserver() {
    let mut c: FRRConfiguration = serde_yaml::from_str(CONFIGURING_BGP).unwrap();
    c.spec.apply_schema_defaults();
    let n = &c.routers()[0].neighbors[0];
    assert_eq!(n.disable_mp, Some(false));
    assert_eq!(n.dual_stack_address_family, Some(false));
    assert_eq!(
        n.address_families,
        [metallb_api::frrk8s::AddressFamily::Unicast]
    );
    assert_eq!(n.advertise_allowed().unwrap().mode, Some(AllowMode::All));
    let mut again = c.clone();
    again.spec.apply_schema_defaults();
    assert_eq!(again, c, "idempotent");
}
