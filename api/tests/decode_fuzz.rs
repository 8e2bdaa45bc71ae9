//! Arbitrary input to decode + validate never panics, for every kind.

use metallb_api::decode::{decode_value, decode_yaml};
use proptest::prelude::*;
use serde_json::{json, Value};

const KINDS: &[(&str, &str)] = &[
    ("metallb.io/v1beta1", "IPAddressPool"),
    ("metallb.io/v1beta2", "BGPPeer"),
    ("metallb.io/v1beta1", "BGPPeer"),
    ("metallb.io/v1beta1", "BGPAdvertisement"),
    ("metallb.io/v1beta1", "L2Advertisement"),
    ("metallb.io/v1beta1", "BFDProfile"),
    ("metallb.io/v1beta1", "Community"),
    ("metallb.io/v1beta1", "ServiceL2Status"),
    ("metallb.io/v1beta1", "ServiceBGPStatus"),
    ("metallb.io/v1beta1", "ConfigurationState"),
    ("frrk8s.metallb.io/v1beta1", "FRRConfiguration"),
    ("frrk8s.metallb.io/v1beta1", "FRRNodeState"),
    ("frrk8s.metallb.io/v1beta1", "BGPSessionState"),
    ("frrk8s.metallb.io/v1beta1", "FRRK8sConfiguration"),
];

/// JSON values biased towards the shapes our specs use, with field names from the real API so
/// that decoding gets deep before failing.
fn arb_value() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(vec![
        "addresses",
        "autoAssign",
        "avoidBuggyIPs",
        "serviceAllocation",
        "priority",
        "namespaces",
        "myASN",
        "peerASN",
        "peerAddress",
        "peerPort",
        "holdTime",
        "keepaliveTime",
        "connectTime",
        "password",
        "passwordSecret",
        "nodeSelectors",
        "matchLabels",
        "matchExpressions",
        "key",
        "operator",
        "values",
        "communities",
        "aggregationLength",
        "localPref",
        "ipAddressPools",
        "bgp",
        "routers",
        "neighbors",
        "asn",
        "address",
        "toAdvertise",
        "allowed",
        "mode",
        "prefixes",
        "toReceive",
        "le",
        "ge",
        "raw",
        "rawConfig",
        "bfdProfiles",
        "name",
        "value",
        "receiveInterval",
        "detectMultiplier",
        "vrf",
        "interface",
        "dynamicASN",
        "withLocalPref",
        "withCommunity",
        "sourceaddress",
        "ebgpMultiHop",
        "logLevel",
        "nodeSelector",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "192.0.2.0/24",
            "all",
            "10s",
            "64512",
            "1:2",
            "large:1:2:3",
            "",
            "a-b",
            "2001:db8::/64",
            "filtered",
            "In"
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(names.clone(), inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_specs_never_panic(kind in prop::sample::select(KINDS), spec in arb_value(), status in arb_value()) {
        let obj = json!({
            "apiVersion": kind.0,
            "kind": kind.1,
            "metadata": {"name": "fuzz", "namespace": "metallb-system"},
            "spec": spec,
            "status": status,
        });
        if let Ok(o) = decode_value(obj) {
            let _ = o.validate();
            let _ = o.to_value();
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        if let Ok(o) = decode_yaml(&text) {
            let _ = o.validate();
        }
    }
}

/// Valid objects of the richest kinds; the mutation test below breaks them one field at a time
/// so decoding and validation get deep before anything fails.
const SEEDS: &[&str] = &[
    r#"{"apiVersion":"metallb.io/v1beta1","kind":"IPAddressPool","metadata":{"name":"p","namespace":"metallb-system"},
        "spec":{"addresses":["192.0.2.0/24","198.18.0.1-198.18.0.9"],"autoAssign":false,"avoidBuggyIPs":true,
        "serviceAllocation":{"priority":1,"namespaces":["a"],"namespaceSelectors":[{"matchLabels":{"k":"v"}}],
        "serviceSelectors":[{"matchExpressions":[{"key":"app","operator":"In","values":["x"]}]}]}}}"#,
    r#"{"apiVersion":"metallb.io/v1beta2","kind":"BGPPeer","metadata":{"name":"p","namespace":"metallb-system"},
        "spec":{"myASN":64512,"peerASN":64513,"peerAddress":"192.0.2.1","peerPort":1179,"holdTime":"90s",
        "keepaliveTime":"30s","connectTime":"5s","routerID":"192.0.2.10","password":"x","bfdProfile":"b",
        "ebgpMultiHop":true,"vrf":"red","nodeSelectors":[{"matchLabels":{"k":"v"}}]}}"#,
    r#"{"apiVersion":"metallb.io/v1beta1","kind":"BGPAdvertisement","metadata":{"name":"a","namespace":"metallb-system"},
        "spec":{"aggregationLength":24,"aggregationLengthV6":64,"localPref":100,"communities":["1:2","large:1:2:3","alias"],
        "ipAddressPools":["p"],"peers":["x"],"nodeSelectors":[{"matchLabels":{"k":"v"}}]}}"#,
    r#"{"apiVersion":"frrk8s.metallb.io/v1beta1","kind":"FRRConfiguration","metadata":{"name":"f","namespace":"frr-k8s-system"},
        "spec":{"nodeSelector":{"matchLabels":{"kubernetes.io/hostname":"n"}},"raw":{"priority":5,"rawConfig":"!"},
        "bgp":{"bfdProfiles":[{"name":"b","receiveInterval":300,"detectMultiplier":3}],
        "routers":[{"asn":64512,"id":"192.0.2.10","vrf":"","prefixes":["192.0.2.0/24","2001:db8::/64"],
        "neighbors":[{"address":"192.0.2.1","asn":64513,"port":179,"holdTime":"90s","keepaliveTime":"30s",
        "bfdProfile":"b","dualStackAddressFamily":true,
        "toAdvertise":{"allowed":{"mode":"filtered","prefixes":["192.0.2.0/24"]},
        "withLocalPref":[{"localPref":200,"prefixes":["192.0.2.0/24"]}],
        "withCommunity":[{"community":"10:100","prefixes":["192.0.2.0/24"]}]},
        "toReceive":{"allowed":{"prefixes":[{"prefix":"198.18.0.0/15","le":32}]}}}]}]}}}"#,
];

fn mutate(v: &mut Value, choice: u64, leaf: Value) {
    // Random walk down the tree (recursively, one step per call), then replace the node reached.
    let next_choice = choice.rotate_right(7) ^ 0x9e37_79b9_7f4a_7c15;
    let stop = choice % 5 == 0;
    match v {
        Value::Object(m) if !m.is_empty() && !stop => {
            let idx = (choice as usize / 5) % m.len();
            if let Some((_, child)) = m.iter_mut().nth(idx) {
                return mutate(child, next_choice, leaf);
            }
        }
        Value::Array(a) if !a.is_empty() && !stop => {
            let idx = (choice as usize / 5) % a.len();
            return mutate(&mut a[idx], next_choice, leaf);
        }
        _ => {}
    }
    *v = leaf;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_objects_never_panic(seed in prop::sample::select(SEEDS), choice in any::<u64>(), leaf in arb_value()) {
        let mut v: Value = serde_json::from_str(seed).expect("seed is JSON");
        prop_assert!(decode_value(v.clone()).expect("seed decodes").validate().is_ok(), "seed must be valid: {}", seed);
        mutate(&mut v, choice, leaf);
        match decode_value(v) {
            Ok(o) => { let _ = o.validate(); }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
