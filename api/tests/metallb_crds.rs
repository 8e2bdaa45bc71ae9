//! The generated `metallb.io` CRDs: structural schemas, subresources, printer columns,
//! versions and schema defaults.

use metallb_api::metallb::crds;
use serde_json::Value;

fn crds_json() -> Vec<Value> {
    crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect()
}

fn crd(name: &str) -> Value {
    crds_json()
        .into_iter()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

/// Walk a schema node and record every violation of the structural-schema rules.
fn check_structural(node: &Value, path: &str, errs: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errs.push(format!("{path}: schema is not an object"));
        return;
    };
    for forbidden in [
        "$ref",
        "definitions",
        "$defs",
        "$schema",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
    ] {
        if obj.contains_key(forbidden) {
            errs.push(format!("{path}: has {forbidden}"));
        }
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let ty = obj.get("type").and_then(Value::as_str);
    if ty.is_none() && !int_or_string && !preserve {
        errs.push(format!("{path}: no type"));
    }
    if let Some(t) = ty {
        if !["object", "array", "string", "integer", "number", "boolean"].contains(&t) {
            errs.push(format!("{path}: bad type {t}"));
        }
    }
    if obj.contains_key("nullable") && ty.is_none() {
        errs.push(format!("{path}: nullable without type"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        errs.push(format!(
            "{path}: properties together with additionalProperties"
        ));
    }
    if ty == Some("array") && !obj.contains_key("items") {
        errs.push(format!("{path}: array without items"));
    }
    if let Some(d) = obj.get("default") {
        let ok = match ty {
            Some("boolean") => d.is_boolean(),
            Some("integer") => d.is_i64() || d.is_u64(),
            Some("number") => d.is_number(),
            Some("string") => d.is_string(),
            Some("object") => d.is_object(),
            Some("array") => d.is_array(),
            _ => true,
        };
        if !ok {
            errs.push(format!("{path}: default {d} does not match type {ty:?}"));
        }
        if let (Some(min), Some(v)) = (obj.get("minimum").and_then(Value::as_f64), d.as_f64()) {
            if v < min {
                errs.push(format!("{path}: default below minimum"));
            }
        }
        if let (Some(max), Some(v)) = (obj.get("maximum").and_then(Value::as_f64), d.as_f64()) {
            if v > max {
                errs.push(format!("{path}: default above maximum"));
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_structural(v, &format!("{path}.{k}"), errs);
        }
        if let Some(req) = obj.get("required").and_then(Value::as_array) {
            for r in req {
                if !props.contains_key(r.as_str().unwrap_or_default()) {
                    errs.push(format!("{path}: required {r} is not a property"));
                }
            }
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{path}[]"), errs);
    }
    if let Some(ap) = obj.get("additionalProperties") {
        if ap.is_object() {
            check_structural(ap, &format!("{path}{{}}"), errs);
        }
    }
}

#[test]
fn every_schema_is_structural() {
    let all = crds_json();
    assert_eq!(all.len(), 9, "one CRD per kind, BGPPeer versions merged");
    let mut errs = Vec::new();
    for c in &all {
        let name = c["metadata"]["name"].as_str().unwrap().to_string();
        assert_eq!(c["spec"]["group"], "metallb.io");
        assert_eq!(c["spec"]["scope"], "Namespaced", "{name}");
        for v in c["spec"]["versions"].as_array().unwrap() {
            let schema = &v["schema"]["openAPIV3Schema"];
            let vname = v["name"].as_str().unwrap();
            assert_eq!(schema["type"], "object", "{name} {vname}");
            check_structural(schema, &format!("{name}/{vname}"), &mut errs);
            // metadata is implicit; a root metadata schema may only restrict name/generateName.
            assert!(schema["properties"].get("metadata").is_none(), "{name}");
            assert!(
                schema["properties"].get("status").is_some(),
                "{name} {vname}"
            );
        }
    }
    assert!(
        errs.is_empty(),
        "non-structural schema nodes:\n{}",
        errs.join("\n")
    );
}

#[test]
fn crds_are_sorted_and_deterministic() {
    let names: Vec<String> = crds_json()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(
        names,
        vec![
            "bfdprofiles.metallb.io",
            "bgpadvertisements.metallb.io",
            "bgppeers.metallb.io",
            "communities.metallb.io",
            "configurationstates.metallb.io",
            "ipaddresspools.metallb.io",
            "l2advertisements.metallb.io",
            "servicebgpstatuses.metallb.io",
            "servicel2statuses.metallb.io",
        ]
    );
    assert_eq!(
        serde_yaml::to_string(&crds()).unwrap(),
        serde_yaml::to_string(&crds()).unwrap()
    );
}

fn columns(c: &Value, version: &str) -> Vec<(String, String, Option<i64>)> {
    let v = c["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap();
    v["additionalPrinterColumns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|col| {
                    (
                        col["name"].as_str().unwrap().to_string(),
                        col["jsonPath"].as_str().unwrap().to_string(),
                        col["priority"].as_i64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn cols(v: &[(&str, &str)]) -> Vec<(String, String, Option<i64>)> {
    v.iter()
        .map(|(n, p)| (n.to_string(), p.to_string(), None))
        .collect()
}

#[test]
fn status_subresource_and_printer_columns() {
    for c in crds_json() {
        for v in c["spec"]["versions"].as_array().unwrap() {
            assert_eq!(
                v["subresources"]["status"],
                serde_json::json!({}),
                "{} {}",
                c["metadata"]["name"],
                v["name"]
            );
        }
    }
    assert_eq!(
        columns(&crd("ipaddresspools.metallb.io"), "v1beta1"),
        cols(&[
            ("Auto Assign", ".spec.autoAssign"),
            ("Avoid Buggy IPs", ".spec.avoidBuggyIPs"),
            ("Addresses", ".spec.addresses"),
        ])
    );
    assert_eq!(
        columns(&crd("bgppeers.metallb.io"), "v1beta2"),
        cols(&[
            ("Address", ".spec.peerAddress"),
            ("ASN", ".spec.myASN"),
            ("Peer ASN", ".spec.peerASN"),
            ("BFD Profile", ".spec.bfdProfile"),
            ("Multi Hops", ".spec.ebgpMultiHop"),
        ])
    );
    let mut bgpad = cols(&[
        ("IPAddressPools", ".spec.ipAddressPools"),
        ("IPAddressPool Selectors", ".spec.ipAddressPoolSelectors"),
        ("Peers", ".spec.peers"),
        ("Node Selectors", ".spec.nodeSelectors"),
    ]);
    bgpad[3].2 = Some(10);
    assert_eq!(
        columns(&crd("bgpadvertisements.metallb.io"), "v1beta1"),
        bgpad
    );
    let mut l2 = cols(&[
        ("IPAddressPools", ".spec.ipAddressPools"),
        ("IPAddressPool Selectors", ".spec.ipAddressPoolSelectors"),
        ("Interfaces", ".spec.interfaces"),
        ("Node Selectors", ".spec.nodeSelectors"),
    ]);
    l2[3].2 = Some(10);
    assert_eq!(columns(&crd("l2advertisements.metallb.io"), "v1beta1"), l2);
    assert_eq!(
        columns(&crd("bfdprofiles.metallb.io"), "v1beta1"),
        cols(&[
            ("Passive Mode", ".spec.passiveMode"),
            ("Transmit Interval", ".spec.transmitInterval"),
            ("Receive Interval", ".spec.receiveInterval"),
            ("Multiplier", ".spec.detectMultiplier"),
        ])
    );
    assert_eq!(
        columns(&crd("configurationstates.metallb.io"), "v1beta1"),
        cols(&[
            ("Result", ".status.result"),
            ("ErrorSummary", ".status.errorSummary"),
            ("Age", ".metadata.creationTimestamp"),
        ])
    );
    assert_eq!(
        columns(&crd("servicebgpstatuses.metallb.io"), "v1beta1"),
        cols(&[
            ("Node", ".status.node"),
            ("Service Name", ".status.serviceName"),
            ("Service Namespace", ".status.serviceNamespace"),
        ])
    );
    // Upstream names this column "Allocated Node" for L2.
    assert_eq!(
        columns(&crd("servicel2statuses.metallb.io"), "v1beta1"),
        cols(&[
            ("Allocated Node", ".status.node"),
            ("Service Name", ".status.serviceName"),
            ("Service Namespace", ".status.serviceNamespace"),
        ])
    );
}

#[test]
fn bgppeer_versions() {
    let c = crd("bgppeers.metallb.io");
    let versions = c["spec"]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let v2 = versions.iter().find(|v| v["name"] == "v1beta2").unwrap();
    let v1 = versions.iter().find(|v| v["name"] == "v1beta1").unwrap();
    assert_eq!(v2["storage"], true);
    assert_eq!(v2["served"], true);
    assert_eq!(v1["storage"], false);
    assert_eq!(v1["served"], true);
    assert_eq!(v1["deprecated"], true);
    assert_eq!(
        v1["deprecationWarning"],
        "v1beta1 is deprecated, please use v1beta2"
    );
    let spec2 = &v2["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec2["required"], serde_json::json!(["myASN"]));
    let port = &spec2["properties"]["peerPort"];
    assert_eq!(port["default"], 179);
    assert_eq!(port["maximum"].as_f64(), Some(65535.0));
    assert_eq!(
        spec2["properties"]["dynamicASN"]["enum"],
        serde_json::json!(["internal", "external"])
    );
    assert_eq!(spec2["properties"]["disableMP"]["default"], false);
    assert!(spec2["properties"]["connectTime"]["x-kubernetes-validations"].is_array());
    assert_eq!(
        spec2["properties"]["enableGracefulRestart"]["x-kubernetes-validations"][0]["rule"],
        "self == oldSelf"
    );
    for f in [
        "myASN",
        "peerASN",
        "dynamicASN",
        "localASN",
        "peerAddress",
        "interface",
        "sourceAddress",
        "peerPort",
        "holdTime",
        "keepaliveTime",
        "connectTime",
        "routerID",
        "nodeSelectors",
        "password",
        "passwordSecret",
        "bfdProfile",
        "enableGracefulRestart",
        "ebgpMultiHop",
        "vrf",
        "disableMP",
        "dualStackAddressFamily",
    ] {
        let p = &spec2["properties"][f];
        assert!(p.is_object(), "v1beta2 field {f}");
        assert!(
            p["description"].is_string(),
            "v1beta2 field {f} has no description"
        );
    }
    let spec1 = &v1["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec1["required"],
        serde_json::json!(["myASN", "peerASN", "peerAddress"])
    );
}

#[test]
fn schema_defaults_and_ranges() {
    let spec = |name: &str| {
        let c = crd(name);
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    };
    let pool = spec("ipaddresspools.metallb.io");
    assert_eq!(pool["required"], serde_json::json!(["addresses"]));
    assert_eq!(pool["properties"]["autoAssign"]["default"], true);
    assert_eq!(pool["properties"]["avoidBuggyIPs"]["default"], false);
    let ad = spec("bgpadvertisements.metallb.io");
    assert_eq!(ad["properties"]["aggregationLength"]["default"], 32);
    assert_eq!(
        ad["properties"]["aggregationLength"]["minimum"].as_f64(),
        Some(1.0)
    );
    assert_eq!(ad["properties"]["aggregationLengthV6"]["default"], 128);
    assert!(ad["x-kubernetes-validations"].is_array());
    let bfd = spec("bfdprofiles.metallb.io");
    for (f, min, max) in [
        ("receiveInterval", 10.0, 60000.0),
        ("transmitInterval", 10.0, 60000.0),
        ("echoInterval", 10.0, 60000.0),
        ("detectMultiplier", 2.0, 255.0),
        ("minimumTtl", 1.0, 254.0),
    ] {
        assert_eq!(bfd["properties"][f]["minimum"].as_f64(), Some(min), "{f}");
        assert_eq!(bfd["properties"][f]["maximum"].as_f64(), Some(max), "{f}");
    }
    let l2 = spec("l2advertisements.metallb.io");
    let w = &l2["properties"]["preferredNodeSelectors"]["items"]["properties"]["weight"];
    assert_eq!(w["minimum"].as_f64(), Some(1.0));
    assert_eq!(w["maximum"].as_f64(), Some(100.0));
    let cs = crd("configurationstates.metallb.io");
    let status = &cs["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(
        status["properties"]["result"]["enum"],
        serde_json::json!(["Valid", "Invalid", "Unknown"])
    );
    assert_eq!(
        status["properties"]["conditions"]["x-kubernetes-list-type"],
        "map"
    );
    let l2s = crd("servicel2statuses.metallb.io");
    let st = &l2s["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(
        st["properties"]["node"]["x-kubernetes-validations"][0]["message"],
        "Value is immutable"
    );
}
