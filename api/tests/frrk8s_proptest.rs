//! Decoding and validating arbitrary input never panics.

use metallb_api::frrk8s::FRRConfiguration;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Field names of the FRRConfiguration schema, so random objects reach deep validation.
const KEYS: &[&str] = &[
    "bgp",
    "routers",
    "bfdProfiles",
    "asn",
    "id",
    "vrf",
    "neighbors",
    "prefixes",
    "imports",
    "evpn",
    "address",
    "interface",
    "dynamicASN",
    "localASN",
    "sourceaddress",
    "port",
    "password",
    "passwordSecret",
    "name",
    "namespace",
    "holdTime",
    "keepaliveTime",
    "connectTime",
    "ebgpMultiHop",
    "bfdProfile",
    "enableGracefulRestart",
    "toAdvertise",
    "toReceive",
    "allowed",
    "mode",
    "nextHop",
    "ipv4",
    "ipv6",
    "withLocalPref",
    "localPref",
    "withCommunity",
    "community",
    "prefix",
    "le",
    "ge",
    "disableMP",
    "dualStackAddressFamily",
    "addressFamilies",
    "raw",
    "rawConfig",
    "priority",
    "nodeSelector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "l2vnis",
    "l3vni",
    "vni",
    "rd",
    "importRTs",
    "exportRTs",
    "advertisePrefixes",
    "advertiseVNIs",
    "advertiseSVI",
    "receiveInterval",
    "transmitInterval",
    "detectMultiplier",
    "echoInterval",
    "echoMode",
    "passiveMode",
    "minimumTtl",
];

const STRINGS: &[&str] = &[
    "",
    "10.0.0.1",
    "10.0.0.0/24",
    "192.0.2.0/33",
    "2001:db8::/64",
    "fc00::1",
    "eth0",
    "default",
    "red",
    "all",
    "filtered",
    "internal",
    "external",
    "unicast",
    "evpn",
    "90s",
    "3s",
    "0",
    "1500ms",
    "-1s",
    "99999999999h",
    "10:100",
    "large:1:2:3",
    "65536:1",
    "*:5",
    "1.2.3.4:5",
    "In",
    "Exists",
    "fast",
    "ünï¢ødé",
    "a:b:c:d",
    "/",
    "::",
    "0.0.0.0/0",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        (0u32..200).prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert(k.to_string(), v);
                }
                Value::Object(m)
            }),
        ]
    })
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "frrk8s.metallb.io/v1beta1",
        "kind": "FRRConfiguration",
        "metadata": {"name": "p", "namespace": "frr-k8s-system"},
        "spec": spec,
    })
}

/// A structurally plausible spec with arbitrary leaves, so most inputs decode.
fn plausible_spec() -> impl Strategy<Value = Value> {
    let s = || prop::sample::select(STRINGS).prop_map(String::from);
    let neighbor = (
        s(), s(), prop::option::of(0u32..70000), prop::option::of(s()), s(), s(), s(),
        prop::collection::vec(s(), 0..3),
        prop::collection::vec((s(), prop::option::of(0u32..140), prop::option::of(0u32..140)), 0..3),
        prop::option::of(s()), any::<bool>(),
    )
        .prop_map(|(addr, iface, asn, dynasn, hold, ka, conn, adv, rcv, comm, ds)| {
            let dynasn = dynasn.filter(|d| d == "internal" || d == "external");
            json!({
                "address": addr, "interface": iface, "asn": asn, "dynamicASN": dynasn,
                "holdTime": hold, "keepaliveTime": ka, "connectTime": conn,
                "dualStackAddressFamily": ds, "bfdProfile": "fast",
                "toAdvertise": {
                    "allowed": {"prefixes": adv.clone()},
                    "withCommunity": [{"community": comm, "prefixes": adv.clone()}],
                    "withLocalPref": [{"localPref": 100, "prefixes": adv}],
                    "nextHop": {"ipv4": "1.2.3.4", "ipv6": "fc00::1"},
                },
                "toReceive": {"allowed": {"prefixes": rcv.into_iter().map(|(p, le, ge)| json!({"prefix": p, "le": le, "ge": ge})).collect::<Vec<_>>()}},
            })
        });
    let router = (
        0u32..70000, prop::option::of(s()), prop::collection::vec(s(), 0..4),
        prop::collection::vec(s(), 0..2), prop::collection::vec(neighbor, 0..3),
        prop::option::of((0u32..20_000_000, s(), s())),
    )
        .prop_map(|(asn, vrf, prefixes, imports, neighbors, evpn)| {
            let mut r = json!({
                "asn": asn, "vrf": vrf, "prefixes": prefixes,
                "imports": imports.into_iter().map(|v| json!({"vrf": v})).collect::<Vec<_>>(),
                "neighbors": neighbors,
            });
            if let Some((vni, rd, rt)) = evpn {
                r["evpn"] = json!({"l2vnis": [{"vni": vni, "rd": rd, "importRTs": [rt.clone()], "exportRTs": [rt]}]});
            }
            r
        });
    (prop::collection::vec(router, 0..3), prop::option::of(s()))
        .prop_map(|(routers, key)| {
            json!({
                "bgp": {"routers": routers, "bfdProfiles": [{"name": "fast"}, {"name": "fast", "receiveInterval": 5}]},
                "nodeSelector": {"matchExpressions": [{"key": key.unwrap_or_default(), "operator": "In", "values": ["a"]}]},
            })
        })
}

fn null_free(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, null_free(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(null_free).collect()),
        v => v,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(spec in value()) {
        if let Ok(c) = serde_json::from_value::<FRRConfiguration>(object(spec)) {
            let _ = c.validate();
            let _ = serde_json::to_value(&c).unwrap();
        }
    }

    #[test]
    fn plausible_specs_never_panic_and_round_trip(spec in plausible_spec()) {
        let input = null_free(object(spec));
        let decoded = serde_json::from_value::<FRRConfiguration>(input.clone());
        prop_assert!(decoded.is_ok(), "{:?}", decoded.err());
        if let Ok(c) = decoded {
            let _ = c.validate();
            let mut d = c.clone();
            d.spec.apply_schema_defaults();
            let _ = d.validate();
            for r in c.routers() {
                let _ = c.spec.advertisable_prefixes(r);
                for n in &r.neighbors {
                    let _ = (n.id(r.vrf_name()), n.display_name(), n.ip_family());
                }
            }
            // Whatever decodes re-encodes to the same JSON, except empty lists and
            // empty strings we keep as given.
            let out = serde_json::to_value(&c).unwrap();
            prop_assert_eq!(strip_empty_lists(input), strip_empty_lists(out));
        }
    }

    #[test]
    fn arbitrary_yaml_text_never_panics(text in ".{0,300}") {
        if let Ok(c) = serde_yaml::from_str::<FRRConfiguration>(&text) {
            let _ = c.validate();
        }
        let prefixed = format!("apiVersion: frrk8s.metallb.io/v1beta1\nkind: FRRConfiguration\nmetadata: {{name: x}}\nspec: {text}");
        if let Ok(c) = serde_yaml::from_str::<FRRConfiguration>(&prefixed) {
            let _ = c.validate();
        }
    }
}

/// Empty lists are dropped on encode (Go's `omitempty` does the same).
fn strip_empty_lists(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, strip_empty_lists(v)))
                .filter(|(_, v)| !matches!(v, Value::Array(a) if a.is_empty()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_empty_lists).collect()),
        v => v,
    }
}
