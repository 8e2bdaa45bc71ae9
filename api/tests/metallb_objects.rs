//! `metallb.io` objects: decode → validate → re-encode round trips, per-object validation
//! tables and cross-object rules.

use std::collections::BTreeMap;

use metallb_api::community::BgpCommunity;
use metallb_api::metallb::config::{self, ConfigObjects, NodeLabels};
use metallb_api::metallb::*;
use metallb_api::FieldErrors;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Decode YAML, re-encode, and require the JSON to be identical (nothing lost, nothing added).
fn round_trip<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
    let input: Value = serde_yaml::from_str(yaml).unwrap();
    let obj: T = serde_yaml::from_str(yaml).unwrap();
    let output = serde_json::to_value(&obj).unwrap();
    assert_eq!(output, input, "re-encoding changed the object");
    obj
}

const POOL: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: addresspool-sample1
  namespace: metallb-system
spec:
  addresses:
    - 172.18.0.100-172.18.0.255
"#;

const POOL_FULL: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: full
  namespace: metallb-system
  labels: {zone: east}
spec:
  addresses:
  - 192.168.10.0/24
  - 192.168.9.1 - 192.168.9.5
  - fc00:f853:0ccd:e799::/124
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces: [namespace-a, namespace-b]
    namespaceSelectors:
    - matchLabels: {foo: bar}
    serviceSelectors:
    - matchExpressions:
      - {key: app, operator: In, values: [bar]}
status:
  assignedIPv4: 1
  assignedIPv6: 0
  availableIPv4: 260
  availableIPv6: 16
"#;

const PEER: &str = r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: peer-sample1
  namespace: metallb-system
spec:
  peerAddress: 10.0.0.1
  peerASN: 64501
  myASN: 64500
  peerPort: 179
  holdTime: "180s"
  keepaliveTime: "180s"
  password: "test"
"#;

const PEER_FULL: &str = r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: full
  namespace: metallb-system
spec:
  myASN: 64512
  dynamicASN: external
  localASN: 64999
  interface: eth1
  sourceAddress: 10.0.0.2
  peerPort: 1790
  holdTime: 90s
  keepaliveTime: 30s
  connectTime: 10s
  routerID: 10.10.10.10
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: kind-worker}
  passwordSecret: {name: bgp-secret, namespace: metallb-system}
  bfdProfile: fast
  enableGracefulRestart: true
  ebgpMultiHop: true
  vrf: red
  disableMP: false
  dualStackAddressFamily: true
"#;

const BGP_AD: &str = r#"
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: local
  namespace: metallb-system
spec:
  ipAddressPools: [bgp-pool]
  ipAddressPoolSelectors:
  - matchLabels: {zone: east}
  aggregationLength: 32
  aggregationLengthV6: 128
  localPref: 100
  communities: ["65535:65282", "large:123:456:789", "vpn-only"]
  peers: [peer-sample1]
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: NodeA}
"#;

const L2_AD: &str = r#"
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2adv
  namespace: metallb-system
spec:
  ipAddressPools: [first-pool]
  interfaces: [eth0, eth1]
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: NodeA}
  serviceSelectors:
  - matchLabels: {app: web}
  preferredNodeSelectors:
  - weight: 50
    preference:
      matchLabels: {rack: r1}
"#;

const BFD: &str = r#"
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata:
  name: fast
  namespace: metallb-system
spec:
  receiveInterval: 380
  transmitInterval: 270
  detectMultiplier: 3
  echoInterval: 62
  echoMode: true
  passiveMode: true
  minimumTtl: 254
"#;

const COMMUNITY: &str = r#"
apiVersion: metallb.io/v1beta1
kind: Community
metadata:
  name: communities
  namespace: metallb-system
spec:
  communities:
  - name: vpn-only
    value: "1234:1"
  - name: NO_ADVERTISE
    value: "65535:65282"
  - name: big
    value: "large:1:2:3"
"#;

#[test]
fn examples_round_trip_and_validate() {
    let p: IPAddressPool = round_trip(POOL);
    p.validate().unwrap();
    assert!(p.auto_assign());
    assert!(!p.avoid_buggy_ips());
    let p: IPAddressPool = round_trip(POOL_FULL);
    p.validate().unwrap();
    assert!(!p.auto_assign());
    assert!(p.avoid_buggy_ips());
    assert_eq!(p.spec.service_allocation.as_ref().unwrap().priority(), 50);

    let peer: BGPPeer = round_trip(PEER);
    peer.validate().unwrap();
    assert_eq!(peer.peer_port(), 179);
    let peer: BGPPeer = round_trip(PEER_FULL);
    peer.validate().unwrap();
    assert_eq!(peer.spec.dynamic_asn, Some(DynamicASNMode::External));
    assert_eq!(peer.spec.local_asn(), Some(64999));
    assert_eq!(peer.peer_port(), 1790);
    let t = peer.spec.timers().unwrap();
    assert_eq!((t.hold.as_secs(), t.keepalive.as_secs()), (90, 30));

    let ad: BGPAdvertisement = round_trip(BGP_AD);
    ad.validate().unwrap();
    let l2: L2Advertisement = round_trip(L2_AD);
    l2.validate().unwrap();
    let bfd: BFDProfile = round_trip(BFD);
    bfd.validate().unwrap();
    let c: Community = round_trip(COMMUNITY);
    c.validate().unwrap();
}

#[test]
fn minimal_objects_round_trip_without_added_defaults() {
    let ad: BGPAdvertisement = round_trip(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a, namespace: metallb-system}\nspec: {}\n",
    );
    assert_eq!(ad.aggregation_length(), 32);
    assert_eq!(ad.aggregation_length_v6(), 128);
    assert_eq!(ad.spec.local_pref(), 0);
    let _: L2Advertisement = round_trip(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a}\nspec: {}\n",
    );
    let _: BFDProfile =
        round_trip("apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: a}\nspec: {}\nstatus: {}\n");
    // Go always writes `passwordSecret: {}` (a non-pointer struct): keep it, treat it as unset.
    let p: BGPPeer = round_trip(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: a}\nspec: {myASN: 1, peerASN: 2, peerAddress: 1.2.3.4, passwordSecret: {}, password: x}\n",
    );
    assert!(p.spec.password_secret().is_none());
    p.validate().unwrap();
}

#[test]
fn status_kinds_round_trip() {
    let l2: ServiceL2Status = round_trip(
        r#"
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata:
  generateName: l2-
  name: l2-abcde
  namespace: metallb-system
  labels: {metallb.io/node: kind-worker, metallb.io/service-name: web, metallb.io/service-namespace: default}
spec: {}
status:
  node: kind-worker
  serviceName: web
  serviceNamespace: default
  interfaces: [{name: eth0}]
"#,
    );
    assert_eq!(
        l2.status.unwrap().interfaces[0].name.as_deref(),
        Some("eth0")
    );
    let bgp: ServiceBGPStatus = round_trip(
        "apiVersion: metallb.io/v1beta1\nkind: ServiceBGPStatus\nmetadata: {name: bgp-x, namespace: metallb-system}\nspec: {}\nstatus: {node: n1, serviceName: web, serviceNamespace: default, peers: [p1, p2]}\n",
    );
    assert_eq!(bgp.status.unwrap().peers, vec!["p1", "p2"]);
    let cs: ConfigurationState = round_trip(
        r#"
apiVersion: metallb.io/v1beta1
kind: ConfigurationState
metadata:
  name: speaker-kind-worker
  namespace: metallb-system
  labels: {metallb.io/component-type: speaker, metallb.io/node-name: kind-worker}
status:
  result: Invalid
  errorSummary: "bad pool"
  conditions:
  - type: configReconcilerValid
    status: "False"
    reason: ConfigurationError
    message: bad pool
    lastTransitionTime: "2026-01-01T00:00:00Z"
"#,
    );
    let st = cs.status.unwrap();
    assert_eq!(st.result, Some(ConfigurationResult::Invalid));
    assert_eq!(
        ConfigurationStateStatus::derived_result(&st.conditions),
        ConfigurationResult::Invalid
    );
    assert_eq!(
        ConfigurationStateStatus::derived_result(&[]),
        ConfigurationResult::Unknown
    );
}

fn errors_of(res: Result<(), FieldErrors>) -> String {
    match res {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    let mut p = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            auto_assign: None,
            avoid_buggy_ips: None,
            service_allocation: None,
        },
    );
    p.metadata.namespace = Some("metallb-system".into());
    p
}

#[test]
fn pool_validation_table() {
    let cases: &[(&[&str], &str)] = &[
        (&["10.0.0.0/24", "10.0.0.0/33"], "spec.addresses[1]: \"10.0.0.0/33\" is not a valid CIDR"),
        (&[], "spec.addresses: pool has no prefixes defined"),
        (&["10.0.0.9-10.0.0.1"], "spec.addresses[0]: \"10.0.0.9-10.0.0.1\" is not a valid IP range: start IP 10.0.0.9 is after the end IP 10.0.0.1"),
        (&["10.0.0.1-fc00::1"], "spec.addresses[0]: \"10.0.0.1-fc00::1\" is not a valid IP range: start 10.0.0.1 and end fc00::1 are not of the same IP family"),
        (&["10.0.0.0/24", "10.0.0.128-10.0.0.130"], "spec.addresses[1]: \"10.0.0.128-10.0.0.130\" overlaps with 10.0.0.0/24 of spec.addresses[0]"),
    ];
    for (addrs, want) in cases {
        let got = errors_of(pool("p", addrs).validate());
        assert!(got.contains(want), "{addrs:?}: got {got:?}, want {want:?}");
    }
    // All errors are reported, not only the first.
    let e = pool("p", &["bad", "10.0.0.0/33"]).validate().unwrap_err();
    assert_eq!(e.len(), 2);

    let mut p = pool("p", &["10.0.0.0/24"]);
    p.spec.service_allocation = Some(ServiceAllocation {
        priority: Some(-1),
        namespaces: vec!["a".into(), "a".into(), "Bad_NS".into()],
        namespace_selectors: vec![Default::default(), Default::default()],
        service_selectors: vec![serde_json::from_value(
            serde_json::json!({"matchExpressions": [{"key": "x", "operator": "Nope"}]}),
        )
        .unwrap()],
    });
    let got = errors_of(p.validate());
    for want in [
        "spec.serviceAllocation.priority: \"-1\" must not be negative",
        "spec.serviceAllocation.namespaces[1]: \"a\" is a duplicate of spec.serviceAllocation.namespaces[0]",
        "spec.serviceAllocation.namespaces[2]: \"Bad_NS\" is not a valid namespace name",
        "spec.serviceAllocation.namespaceSelectors[1]: duplicate selector",
        "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator: \"Nope\"",
    ] {
        assert!(got.contains(want), "got {got:?}, want {want:?}");
    }
}

#[test]
fn pool_cidrs_are_minimal() {
    let p = pool(
        "p",
        &[
            "172.18.0.100-172.18.0.255",
            "172.18.1.0/24",
            "fc00::/127",
            "fc00::2 - fc00::3",
        ],
    );
    let cidrs: Vec<String> = p.cidrs().unwrap().iter().map(|c| c.to_string()).collect();
    assert_eq!(
        cidrs,
        vec![
            "172.18.0.100/30",
            "172.18.0.104/29",
            "172.18.0.112/28",
            "172.18.0.128/25",
            "172.18.1.0/24",
            "fc00::/126",
        ]
    );
    assert!(pool("p", &["nope"]).cidrs().is_err());
}

fn peer(yaml_spec: &str) -> BGPPeer {
    serde_yaml::from_str(&format!(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: p, namespace: metallb-system}}\nspec: {yaml_spec}\n"
    ))
    .unwrap()
}

#[test]
fn peer_validation_table() {
    let ok = "myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1";
    peer(&format!("{{{ok}}}")).validate().unwrap();
    let cases: &[(&str, &str)] = &[
        ("{myASN: 0, peerASN: 1, peerAddress: 10.0.0.1}", "spec.myASN: \"0\" is not a valid local ASN"),
        ("{myASN: 1, peerAddress: 10.0.0.1}", "spec.peerASN: either peerASN or dynamicASN must be set"),
        ("{myASN: 1, peerASN: 2, dynamicASN: internal, peerAddress: 10.0.0.1}", "spec.dynamicASN: \"internal\" is not allowed: peerASN and dynamicASN are mutually exclusive"),
        ("{myASN: 1, peerASN: 2}", "spec.peerAddress: either peerAddress or interface must be set"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, interface: eth0}", "spec.interface: \"eth0\" is not allowed: peerAddress and interface are mutually exclusive"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.300}", "spec.peerAddress: \"10.0.0.300\" is not a valid IP address"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, sourceAddress: foo}", "spec.sourceAddress: \"foo\" is not a valid IP address"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, routerID: 'fc00::1'}", "spec.routerID: \"fc00::1\" is not a valid IPv4 address"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 2s}", "spec.holdTime: \"2s\" must be 0 or at least 3s"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 10x}", "spec.holdTime: \"10x\" is not a valid duration"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 3500ms}", "spec.holdTime: \"3500ms\" must be a whole number of seconds"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 30s, keepaliveTime: 40s}", "spec.keepaliveTime: \"40s\" must not be greater than holdTime 30s"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, keepaliveTime: 0.5s}", "spec.keepaliveTime: \"0.5s\" must be a whole number of seconds"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, connectTime: 0s}", "spec.connectTime: \"0s\" must be between 1s and 65535s"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, connectTime: 70000s}", "spec.connectTime: \"70000s\" must be between 1s and 65535s"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, connectTime: 1500ms}", "spec.connectTime: \"1500ms\" must be a whole number of seconds"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, password: a, passwordSecret: {name: s}}", "spec.passwordSecret: password and passwordSecret are mutually exclusive"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, passwordSecret: {namespace: x}}", "spec.passwordSecret.name: is required"),
        ("{myASN: 5, peerASN: 5, peerAddress: 10.0.0.1, ebgpMultiHop: true}", "spec.ebgpMultiHop: invalid ebgp-multihop parameter set for an ibgp peer"),
        ("{myASN: 5, dynamicASN: internal, peerAddress: 10.0.0.1, ebgpMultiHop: true}", "spec.ebgpMultiHop: invalid ebgp-multihop parameter set for an ibgp peer"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, localASN: 0}", "spec.localASN: \"0\" must be between 1 and 4294967295"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, peerPort: 0}", "spec.peerPort: \"0\" must be between 1 and 65535"),
        ("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}", "spec.nodeSelectors[1]: duplicate selector"),
    ];
    for (spec, want) in cases {
        let got = errors_of(peer(spec).validate());
        assert!(got.contains(want), "{spec}: got {got:?}, want {want:?}");
    }
    // Our fix: ports above upstream's 16384 cap are fine.
    peer("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, peerPort: 50000}")
        .validate()
        .unwrap();
    // Derived timers: hold = 3 × keepalive.
    let p = peer("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, keepaliveTime: 20s}");
    p.validate().unwrap();
    assert_eq!(p.spec.timers().unwrap().hold.as_secs(), 60);
    let p = peer("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 0s}");
    p.validate().unwrap();
    let got = errors_of(
        peer("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, keepaliveTime: 0.5s}").validate(),
    );
    assert!(!got.is_empty());
    let got = errors_of(
        peer("{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, keepaliveTime: 1s}").validate(),
    );
    assert!(
        got.contains("spec.keepaliveTime: \"1s\" implies a hold time of 3s") || got.is_empty(),
        "{got}"
    );
}

fn bgp_ad(name: &str, yaml_spec: &str) -> BGPAdvertisement {
    serde_yaml::from_str(&format!(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: {name}, namespace: metallb-system}}\nspec: {yaml_spec}\n"
    ))
    .unwrap()
}

#[test]
fn bgp_advertisement_validation_table() {
    let cases: &[(&str, &str)] = &[
        (
            "{aggregationLength: 33}",
            "spec.aggregationLength: \"33\" must be between 1 and 32",
        ),
        (
            "{aggregationLength: 0}",
            "spec.aggregationLength: \"0\" must be between 1 and 32",
        ),
        (
            "{aggregationLengthV6: 129}",
            "spec.aggregationLengthV6: \"129\" must be between 1 and 128",
        ),
        (
            "{aggregationLength: 24, serviceSelectors: [{matchLabels: {a: b}}]}",
            "spec.serviceSelectors: serviceSelectors and aggregationLength are mutually exclusive",
        ),
        (
            "{communities: ['65536:1']}",
            "spec.communities[0]: \"65536:1\" is not a valid community",
        ),
        (
            "{communities: ['large:1:2']}",
            "spec.communities[0]: \"large:1:2\" is not a valid community",
        ),
        (
            "{communities: ['1:1', '1:1']}",
            "spec.communities[1]: \"1:1\" is a duplicate of spec.communities[0]",
        ),
        (
            "{ipAddressPools: [a, a]}",
            "spec.ipAddressPools[1]: \"a\" is a duplicate of spec.ipAddressPools[0]",
        ),
        (
            "{peers: [p, p]}",
            "spec.peers[1]: \"p\" is a duplicate of spec.peers[0]",
        ),
        (
            "{ipAddressPoolSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}",
            "spec.ipAddressPoolSelectors[1]: duplicate selector",
        ),
        (
            "{nodeSelectors: [{matchLabels: {'bad key!': b}}]}",
            "spec.nodeSelectors[0].matchLabels[bad key!]: \"bad key!\" is not a valid label key",
        ),
    ];
    for (spec, want) in cases {
        let got = errors_of(bgp_ad("a", spec).validate());
        assert!(got.contains(want), "{spec}: got {got:?}, want {want:?}");
    }
    bgp_ad(
        "a",
        "{serviceSelectors: [{matchLabels: {a: b}}], aggregationLength: 32}",
    )
    .validate()
    .unwrap();
    // An alias name is fine per object (resolved across objects).
    bgp_ad("a", "{communities: [my-alias]}").validate().unwrap();
}

#[test]
fn resolved_communities() {
    let mut aliases = BTreeMap::new();
    aliases.insert("vpn-only".to_string(), BgpCommunity::Standard(1234, 1));
    let ad = bgp_ad(
        "a",
        "{communities: ['65535:65282', vpn-only, 'large:1:2:3', '1234:1']}",
    );
    assert_eq!(
        ad.resolved_communities(&aliases).unwrap(),
        vec![
            BgpCommunity::Standard(1234, 1),
            BgpCommunity::Standard(65535, 65282),
            BgpCommunity::Large(1, 2, 3),
        ]
    );
    let err = ad
        .resolved_communities(&BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.communities[1]: \"vpn-only\" is neither a valid community nor the name of a Community alias"),
        "{err}"
    );
}

#[test]
fn l2_bfd_community_validation_tables() {
    let l2 = |spec: &str| -> L2Advertisement {
        serde_yaml::from_str(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: a}}\nspec: {spec}\n"
        ))
        .unwrap()
    };
    for (spec, want) in [
        ("{ipAddressPools: [a, a]}", "spec.ipAddressPools[1]: \"a\" is a duplicate of spec.ipAddressPools[0]"),
        ("{interfaces: [eth0, eth0]}", "spec.interfaces[1]: \"eth0\" is a duplicate of spec.interfaces[0]"),
        ("{preferredNodeSelectors: [{weight: 0, preference: {}}]}", "spec.preferredNodeSelectors[0].weight: \"0\" must be between 1 and 100"),
        ("{preferredNodeSelectors: [{weight: 101, preference: {}}]}", "spec.preferredNodeSelectors[0].weight: \"101\" must be between 1 and 100"),
        ("{preferredNodeSelectors: [{weight: 1, preference: {matchExpressions: [{key: a, operator: In}]}}]}", "spec.preferredNodeSelectors[0].preference.matchExpressions[0].values: must be non-empty"),
        ("{serviceSelectors: [{}, {}]}", "spec.serviceSelectors[1]: duplicate selector"),
    ] {
        let got = errors_of(l2(spec).validate());
        assert!(got.contains(want), "{spec}: got {got:?}, want {want:?}");
    }
    let l: L2Advertisement = serde_yaml::from_str(L2_AD).unwrap();
    let mut labels = BTreeMap::new();
    labels.insert("rack".to_string(), "r1".to_string());
    assert_eq!(l.spec.preference_weight(&labels), 50);
    assert_eq!(l.spec.preference_weight(&BTreeMap::new()), 0);

    let bfd = |spec: &str| -> BFDProfile {
        serde_yaml::from_str(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: a}}\nspec: {spec}\n"
        ))
        .unwrap()
    };
    for (spec, want) in [
        (
            "{receiveInterval: 9}",
            "spec.receiveInterval: \"9\" must be between 10 and 60000",
        ),
        (
            "{transmitInterval: 60001}",
            "spec.transmitInterval: \"60001\" must be between 10 and 60000",
        ),
        (
            "{echoInterval: 5}",
            "spec.echoInterval: \"5\" must be between 10 and 60000",
        ),
        (
            "{detectMultiplier: 1}",
            "spec.detectMultiplier: \"1\" must be between 2 and 255",
        ),
        (
            "{minimumTtl: 255}",
            "spec.minimumTtl: \"255\" must be between 1 and 254",
        ),
    ] {
        let got = errors_of(bfd(spec).validate());
        assert!(got.contains(want), "{spec}: got {got:?}, want {want:?}");
    }

    let community = |spec: &str| -> Community {
        serde_yaml::from_str(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {{name: a}}\nspec: {spec}\n"
        ))
        .unwrap()
    };
    for (spec, want) in [
        (
            "{communities: [{name: a, value: '1:70000'}]}",
            "spec.communities[0].value: \"1:70000\" is not a valid community",
        ),
        (
            "{communities: [{name: a, value: '1:1'}, {name: a, value: '1:2'}]}",
            "spec.communities[1].name: \"a\" duplicate definition of community",
        ),
        (
            "{communities: [{value: '1:1'}]}",
            "spec.communities[0].name: is required",
        ),
        (
            "{communities: [{name: 'a:b', value: '1:1'}]}",
            "spec.communities[0].name: \"a:b\" is not a valid alias name",
        ),
    ] {
        let got = errors_of(community(spec).validate());
        assert!(got.contains(want), "{spec}: got {got:?}, want {want:?}");
    }
}

fn render(errs: &[metallb_api::ObjectError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn pools_must_not_overlap() {
    let a = pool("other", &["10.0.0.128/25"]);
    let b = pool("pool-b", &["192.168.0.0/24", "10.0.0.0/24"]);
    let c = pool("pool-c", &["10.1.0.0-10.1.0.10"]);
    // Order of the input does not matter.
    for pools in [
        vec![a.clone(), b.clone(), c.clone()],
        vec![c.clone(), b.clone(), a.clone()],
    ] {
        let errs = config::pool_overlaps(&pools);
        assert_eq!(errs.len(), 1, "{}", render(&errs));
        assert_eq!(
            errs[0].to_string(),
            "IPAddressPool metallb-system/pool-b: spec.addresses[1]: \"10.0.0.0/24\" overlaps with 10.0.0.128/25 in IPAddressPool metallb-system/other"
        );
    }
}

fn community_obj(name: &str, aliases: &[(&str, &str)]) -> Community {
    let mut c = Community::new(
        name,
        CommunitySpec {
            communities: aliases
                .iter()
                .map(|(n, v)| CommunityAlias {
                    name: Some(n.to_string()),
                    value: Some(v.to_string()),
                })
                .collect(),
        },
    );
    c.metadata.namespace = Some("metallb-system".into());
    c
}

#[test]
fn community_aliases_across_objects() {
    let c1 = community_obj("a", &[("vpn", "1:1"), ("big", "large:1:2:3")]);
    let c2 = community_obj("b", &[("vpn", "2:2")]);
    let errs = config::community_alias_conflicts(&[c2.clone(), c1.clone()]);
    assert_eq!(
        render(&errs),
        "Community metallb-system/b: spec.communities[0].name: \"vpn\" duplicate definition of community: already defined in Community metallb-system/a"
    );
    let aliases = config::community_aliases(&[c2, c1]);
    assert_eq!(aliases["vpn"], BgpCommunity::Standard(1, 1));
    assert_eq!(aliases["big"], BgpCommunity::Large(1, 2, 3));

    let ads = [bgp_ad("ad", "{communities: [vpn, missing, '1:1']}")];
    let errs = config::advertisement_communities(&ads, &aliases);
    assert_eq!(
        render(&errs),
        "BGPAdvertisement metallb-system/ad: spec.communities[1]: \"missing\" is neither a valid community nor the name of a Community alias"
    );
}

#[test]
fn aggregation_length_vs_pools() {
    let mut p = pool("p", &["10.0.0.0/24", "10.0.1.0-10.0.1.127", "fc00::/64"]);
    p.metadata.labels = Some([("zone".to_string(), "east".to_string())].into());
    let other = pool("other", &["192.168.0.0/16"]);
    let ads = [
        bgp_ad("ok", "{aggregationLength: 25, ipAddressPools: [p]}"),
        bgp_ad(
            "v4",
            "{aggregationLength: 16, ipAddressPoolSelectors: [{matchLabels: {zone: east}}]}",
        ),
        bgp_ad("v6", "{aggregationLengthV6: 48, ipAddressPools: [p]}"),
        bgp_ad(
            "unrelated",
            "{aggregationLength: 8, ipAddressPools: [nope]}",
        ),
    ];
    let errs = config::advertisement_aggregation(&ads, &[p, other]);
    let text = render(&errs);
    assert_eq!(errs.len(), 2, "{text}");
    assert!(text.contains("BGPAdvertisement metallb-system/v4: spec.aggregationLength: \"16\" is invalid: prefix length 24 of \"10.0.0.0/24\" (spec.addresses[0] of IPAddressPool metallb-system/p) is more specific than the aggregation length"), "{text}");
    assert!(text.contains("BGPAdvertisement metallb-system/v6: spec.aggregationLengthV6: \"48\" is invalid: prefix length 64"), "{text}");
}

fn labels(kv: &[(&str, &str)]) -> NodeLabels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn local_pref_conflicts() {
    let pools = [pool("p", &["10.0.0.0/24"])];
    let nodes = [labels(&[("n", "1")]), labels(&[("n", "2")])];
    let ads = [
        bgp_ad("a", "{localPref: 100, ipAddressPools: [p]}"),
        bgp_ad("b", "{localPref: 200, ipAddressPools: [p]}"),
        // Different aggregation lengths for both families: a different kind of update.
        bgp_ad(
            "c",
            "{localPref: 300, aggregationLength: 24, aggregationLengthV6: 120}",
        ),
        // Disjoint peers with a: fine with a, but conflicts with b? b has no peers = all.
        bgp_ad("d", "{localPref: 100, peers: [x]}"),
        // Disjoint nodes.
        bgp_ad(
            "e",
            "{localPref: 500, nodeSelectors: [{matchLabels: {n: '3'}}]}",
        ),
        // Service selectors: deferred to the speaker.
        bgp_ad(
            "f",
            "{localPref: 600, serviceSelectors: [{matchLabels: {a: b}}]}",
        ),
    ];
    let errs = config::local_pref_conflicts(&ads, &pools, &nodes);
    let text = render(&errs);
    assert!(text.contains("BGPAdvertisement metallb-system/b: spec.localPref: \"200\" conflicts with localPref 100 of BGPAdvertisement metallb-system/a for the same type of BGP update of IPAddressPool metallb-system/p"), "{text}");
    assert!(text.contains("BGPAdvertisement metallb-system/d: spec.localPref: \"100\" conflicts with localPref 200 of BGPAdvertisement metallb-system/b"), "{text}");
    assert!(!text.contains("metallb-system/c:"), "{text}");
    assert!(!text.contains("metallb-system/e:"), "{text}");
    assert!(!text.contains("metallb-system/f:"), "{text}");
}

#[test]
fn frr_peer_compatibility() {
    let nodes = [labels(&[("zone", "a")]), labels(&[("zone", "b")])];
    let mk = |name: &str, spec: &str| -> BGPPeer {
        let mut p = peer(spec);
        p.metadata.name = Some(name.into());
        p
    };
    let peers = [
        mk("p1", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, routerID: 1.1.1.1}"),
        mk("p2", "{myASN: 3, peerASN: 2, peerAddress: 10.0.0.1, routerID: 2.2.2.2}"),
        // Only zone b: disjoint from p4; shares nodes with p1/p2 (no selectors = all).
        mk("p3", "{myASN: 1, peerASN: 2, interface: eth0, routerID: 1.1.1.1, nodeSelectors: [{matchLabels: {zone: b}}]}"),
        mk("p4", "{myASN: 9, peerASN: 2, interface: eth0, routerID: 1.1.1.1, nodeSelectors: [{matchLabels: {zone: a}}], vrf: red}"),
    ];
    let errs = config::frr_peer_compatibility(&peers, &nodes);
    let text = render(&errs);
    assert!(text.contains("BGPPeer metallb-system/p2: spec.routerID: \"2.2.2.2\" differs from routerID \"1.1.1.1\" of BGPPeer metallb-system/p1"), "{text}");
    assert!(text.contains("BGPPeer metallb-system/p2: spec.routerID: \"2.2.2.2\" differs from routerID \"1.1.1.1\" of BGPPeer metallb-system/p1 on a common node: FRR mode requires all peers of a node to share the same routerID; spec.peerAddress: \"10.0.0.1\" duplicates BGPPeer metallb-system/p1 on a common node"), "{text}");
    assert!(text.contains("spec.myASN: \"3\" differs from myASN 1 of BGPPeer metallb-system/p1 in the same VRF on a common node"), "{text}");
    // p4 is in another VRF and shares nodes only with p1/p2 (different VRF: ASN differences fine).
    assert!(!text.contains("metallb-system/p4: spec.myASN"), "{text}");
    assert!(
        !text.contains("metallb-system/p3:") || !text.contains("p3: spec.interface"),
        "{text}"
    );

    let profiles: Vec<BFDProfile> = vec![serde_yaml::from_str(BFD).unwrap()];
    let errs = config::missing_bfd_profiles(
        &[
            mk(
                "x",
                "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, bfdProfile: fast}",
            ),
            mk(
                "y",
                "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.2, bfdProfile: slow}",
            ),
        ],
        &profiles,
    );
    assert_eq!(
        render(&errs),
        "BGPPeer metallb-system/y: spec.bfdProfile: \"slow\" names a BFDProfile that does not exist"
    );
}

#[test]
fn whole_config_validation_is_order_independent() {
    let mut cfg = ConfigObjects {
        pools: vec![
            pool("a", &["10.0.0.0/24"]),
            pool("b", &["10.0.0.0/25", "bad"]),
            pool("c", &["10.0.0.0/26"]),
        ],
        peers: vec![peer("{myASN: 0, peerASN: 1, peerAddress: 10.0.0.1}")],
        bgp_advertisements: vec![bgp_ad("ad", "{communities: [nope]}")],
        communities: vec![community_obj("c", &[("x", "1:1")])],
        ..Default::default()
    };
    let first = render(&cfg.validate());
    cfg.pools.reverse();
    assert_eq!(render(&cfg.validate()), first);
    assert!(
        first.contains(
            "IPAddressPool metallb-system/b: spec.addresses[1]: \"bad\" is not a valid CIDR"
        ),
        "{first}"
    );
    assert!(first.contains("IPAddressPool metallb-system/c: spec.addresses[0]: \"10.0.0.0/26\" overlaps with 10.0.0.0/24 in IPAddressPool metallb-system/a"), "{first}");
    assert!(
        first.contains("BGPPeer metallb-system/p: spec.myASN"),
        "{first}"
    );
    assert!(
        first.contains(
            "BGPAdvertisement metallb-system/ad: spec.communities[0]: \"nope\" is neither"
        ),
        "{first}"
    );
}
