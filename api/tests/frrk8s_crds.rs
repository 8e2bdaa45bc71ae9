//! The frrk8s.metallb.io CRDs: structural schemas, scopes, ranges and CEL rules as upstream.

use metallb_api::frrk8s::{self, FRRConfiguration};
use serde_json::Value;

fn crd_json(name: &str) -> Value {
    let crd = frrk8s::crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no CRD {name}"));
    serde_json::to_value(crd).unwrap()
}

fn assert_num(v: &Value, n: u64) {
    assert_eq!(v.as_f64(), Some(n as f64), "{v} != {n}");
}

fn enum_values(v: &Value) -> Vec<Value> {
    v["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| !x.is_null())
        .cloned()
        .collect()
}

fn schema_of(name: &str) -> Value {
    crd_json(name)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Walk a schema and report every violation of the structural-schema rules we care about.
fn structural_problems(path: &str, s: &Value, out: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    for forbidden in [
        "$ref",
        "definitions",
        "$defs",
        "oneOf",
        "anyOf",
        "allOf",
        "not",
    ] {
        if obj.contains_key(forbidden) {
            out.push(format!("{path}: has {forbidden}"));
        }
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    match obj.get("type").and_then(Value::as_str) {
        Some("array") => match obj.get("items") {
            Some(items) => structural_problems(&format!("{path}[]"), items, out),
            None => out.push(format!("{path}: array without items")),
        },
        Some("object") => {}
        Some("string" | "integer" | "number" | "boolean") => {}
        Some(other) => out.push(format!("{path}: unexpected type {other}")),
        None if preserve || int_or_string => {}
        None => out.push(format!("{path}: no type")),
    }
    if obj.get("type").is_some_and(|t| !t.is_string()) {
        out.push(format!("{path}: type is not a single string"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            structural_problems(&format!("{path}.{k}"), v, out);
        }
    }
    if let Some(ap) = obj.get("additionalProperties") {
        if ap.is_object() {
            structural_problems(&format!("{path}{{*}}"), ap, out);
        }
    }
    if let Some(Value::Array(e)) = obj.get("enum") {
        if e.iter().any(Value::is_null) && obj.get("nullable") != Some(&Value::Bool(true)) {
            out.push(format!("{path}: null in enum without nullable"));
        }
    }
}

#[test]
fn print_crds_for_review() {
    if std::env::var("PRINT_CRDS").is_ok() {
        for c in frrk8s::crds() {
            println!("---\n{}", serde_yaml::to_string(&c).unwrap());
        }
    }
}

#[test]
fn every_crd_is_structural() {
    let crds = frrk8s::crds();
    assert_eq!(crds.len(), 4);
    let mut problems = Vec::new();
    for c in &crds {
        let v = serde_json::to_value(c).unwrap();
        let name = c.metadata.name.clone().unwrap();
        for (i, ver) in v["spec"]["versions"].as_array().unwrap().iter().enumerate() {
            let s = &ver["schema"]["openAPIV3Schema"];
            assert!(s.is_object(), "{name}: version {i} has no schema");
            structural_problems(&format!("{name}/{i}"), s, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn names_scopes_and_subresources() {
    let expect = [
        (
            "bgpsessionstates.frrk8s.metallb.io",
            "BGPSessionState",
            "Namespaced",
        ),
        (
            "frrconfigurations.frrk8s.metallb.io",
            "FRRConfiguration",
            "Namespaced",
        ),
        (
            "frrk8sconfigurations.frrk8s.metallb.io",
            "FRRK8sConfiguration",
            "Namespaced",
        ),
        ("frrnodestates.frrk8s.metallb.io", "FRRNodeState", "Cluster"),
    ];
    let crds = frrk8s::crds();
    for (c, (name, kind, scope)) in crds.iter().zip(expect) {
        assert_eq!(c.metadata.name.as_deref(), Some(name));
        assert_eq!(c.spec.names.kind, kind);
        assert_eq!(c.spec.scope, scope);
        assert_eq!(c.spec.group, "frrk8s.metallb.io");
        let v = &c.spec.versions[0];
        assert_eq!(v.name, "v1beta1");
        assert!(v.served && v.storage);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name} has a status subresource"
        );
    }
    let cols: Vec<_> = crds[0].spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Node", ".status.node"),
            ("Peer", ".status.peer"),
            ("VRF", ".status.vrf"),
            ("BGP", ".status.bgpStatus"),
            ("BFD", ".status.bfdStatus"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[test]
fn frrconfiguration_schema_matches_upstream_constraints() {
    let s = schema_of("frrconfigurations.frrk8s.metallb.io");
    let spec = &s["properties"]["spec"]["properties"];
    let routers = &spec["bgp"]["properties"]["routers"];
    assert_num(&routers["maxItems"], 50);
    let router = &routers["items"];
    assert_eq!(router["required"], serde_json::json!(["asn"]));
    assert_eq!(router["properties"]["asn"]["format"], "int64");
    assert_num(&router["properties"]["asn"]["maximum"], 4294967295);
    let n = &router["properties"]["neighbors"]["items"]["properties"];
    for key in [
        "asn",
        "dynamicASN",
        "localASN",
        "sourceaddress",
        "address",
        "interface",
        "port",
        "password",
        "passwordSecret",
        "holdTime",
        "keepaliveTime",
        "connectTime",
        "ebgpMultiHop",
        "bfdProfile",
        "enableGracefulRestart",
        "toAdvertise",
        "toReceive",
        "disableMP",
        "dualStackAddressFamily",
        "addressFamilies",
    ] {
        assert!(n.get(key).is_some(), "neighbor schema lacks {key}");
        assert!(
            n[key]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "neighbor.{key} has no description"
        );
    }
    assert_num(&n["port"]["maximum"], 65535);
    assert_num(&n["localASN"]["minimum"], 1);
    assert_eq!(
        enum_values(&n["dynamicASN"]),
        serde_json::json!(["internal", "external"])
            .as_array()
            .unwrap()
            .clone()
    );
    assert_eq!(n["disableMP"]["default"], false);
    assert_eq!(n["dualStackAddressFamily"]["default"], false);
    assert_eq!(
        n["addressFamilies"]["default"],
        serde_json::json!(["unicast"])
    );
    assert_num(&n["addressFamilies"]["maxItems"], 2);
    assert_eq!(n["passwordSecret"]["x-kubernetes-map-type"], "atomic");
    let cel = &n["connectTime"]["x-kubernetes-validations"];
    assert_eq!(
        cel[0]["message"],
        "connect time should be between 1 seconds to 65535"
    );
    assert_eq!(
        cel[1]["message"],
        "connect time should contain a whole number of seconds"
    );
    let adv = &n["toAdvertise"]["properties"];
    assert_eq!(adv["allowed"]["properties"]["mode"]["default"], "filtered");
    assert_eq!(
        enum_values(&adv["allowed"]["properties"]["mode"]),
        serde_json::json!(["all", "filtered"])
            .as_array()
            .unwrap()
            .clone()
    );
    assert!(adv.get("withLocalPref").is_some() && adv.get("withCommunity").is_some());
    assert!(adv["nextHop"]["properties"].get("ipv4").is_some());
    let sel =
        &n["toReceive"]["properties"]["allowed"]["properties"]["prefixes"]["items"]["properties"];
    for k in ["le", "ge"] {
        assert_num(&sel[k]["minimum"], 1);
        assert_num(&sel[k]["maximum"], 128);
    }
    let bfd = &spec["bgp"]["properties"]["bfdProfiles"]["items"];
    assert_eq!(bfd["required"], serde_json::json!(["name"]));
    assert_num(&bfd["properties"]["receiveInterval"]["minimum"], 10);
    assert_num(&bfd["properties"]["receiveInterval"]["maximum"], 60000);
    assert_num(&bfd["properties"]["detectMultiplier"]["maximum"], 255);
    assert_num(&bfd["properties"]["minimumTtl"]["maximum"], 254);
    let raw = &spec["raw"]["properties"];
    assert!(raw.get("rawConfig").is_some() && raw.get("priority").is_some());
    let evpn = &router["properties"]["evpn"]["properties"];
    assert_eq!(
        enum_values(&evpn["advertiseVNIs"]),
        serde_json::json!(["Disabled", "All"])
            .as_array()
            .unwrap()
            .clone()
    );
    assert_num(&evpn["l2vnis"]["maxItems"], 10);
    assert_num(
        &evpn["l2vnis"]["items"]["properties"]["vni"]["maximum"],
        16777215,
    );
    assert!(spec["nodeSelector"]["properties"]
        .get("matchLabels")
        .is_some());
    assert_eq!(s["properties"]["status"]["type"], "object");
}

#[test]
fn frrk8sconfiguration_log_levels() {
    let s = schema_of("frrk8sconfigurations.frrk8s.metallb.io");
    assert_eq!(
        enum_values(&s["properties"]["spec"]["properties"]["logLevel"]),
        serde_json::json!(["all", "debug", "info", "warn", "error", "none"])
            .as_array()
            .unwrap()
            .clone()
    );
}

#[test]
fn status_fields() {
    let s = schema_of("frrnodestates.frrk8s.metallb.io");
    let st = &s["properties"]["status"]["properties"];
    for k in ["runningConfig", "lastReloadResult", "lastConversionResult"] {
        assert_eq!(st[k]["type"], "string", "{k}");
    }
    let s = schema_of("bgpsessionstates.frrk8s.metallb.io");
    let st = &s["properties"]["status"]["properties"];
    for k in ["node", "peer", "vrf", "bgpStatus", "bfdStatus"] {
        assert_eq!(st[k]["type"], "string", "{k}");
    }
    let _ = std::marker::PhantomData::<FRRConfiguration>;
}
