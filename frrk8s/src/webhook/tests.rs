//! The webhook's pure decision.

use serde_json::{json, Value};

use super::*;

const NS: &str = "frr-k8s-system";

fn obj(v: Value) -> FRRConfiguration {
    serde_json::from_value(v).expect("an FRRConfiguration")
}

/// One router 64512 with neighbor `address` of AS `peer_asn`, selecting `selector`.
fn cfg(name: &str, address: &str, peer_asn: u32, selector: Value) -> FRRConfiguration {
    obj(json!({
        "apiVersion": "frrk8s.metallb.io/v1beta1",
        "kind": "FRRConfiguration",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {
            "nodeSelector": selector,
            "bgp": {"routers": [{"asn": 64512, "neighbors": [{"address": address, "asn": peer_asn}]}]}
        }
    }))
}

fn nodes() -> Vec<NodeLabels> {
    vec![
        NodeLabels::new("node-a", &[("rack", "a")]),
        NodeLabels::new("node-b", &[("rack", "b")]),
    ]
}

fn rack(r: &str) -> Value {
    json!({"matchLabels": {"rack": r}})
}

#[test]
fn conflicting_neighbor_on_a_shared_node_is_denied_naming_both_and_the_node() {
    let existing = vec![cfg("first", "192.0.2.1", 64600, json!({}))];
    let candidate = cfg("second", "192.0.2.1", 64601, rack("b"));
    let err = check(&candidate, None, &existing, &nodes()).unwrap_err();
    assert!(err.contains("frr-k8s-system/first"), "{err}");
    assert!(err.contains("frr-k8s-system/second"), "{err}");
    assert!(err.contains("neighbor 192.0.2.1"), "{err}");
    assert!(err.contains("asn 64600"), "{err}");
    assert!(
        err.ends_with("\nresource is invalid for node node-b"),
        "{err}"
    );
}

#[test]
fn the_same_conflict_on_disjoint_nodes_is_admitted() {
    let existing = vec![cfg("first", "192.0.2.1", 64600, rack("a"))];
    let candidate = cfg("second", "192.0.2.1", 64601, rack("b"));
    assert_eq!(check(&candidate, None, &existing, &nodes()), Ok(vec![]));
    // ... and denied as soon as it also selects node-a, naming that node
    let everywhere = cfg("second", "192.0.2.1", 64601, json!({}));
    let err = check(&everywhere, None, &existing, &nodes()).unwrap_err();
    assert!(
        err.ends_with("resource is invalid for node node-a"),
        "{err}"
    );
}

#[test]
fn a_compatible_second_object_is_admitted() {
    let existing = vec![cfg("first", "192.0.2.1", 64600, json!({}))];
    // same neighbor, same settings: merged into one
    let same = cfg("second", "192.0.2.1", 64600, json!({}));
    assert_eq!(check(&same, None, &existing, &nodes()), Ok(vec![]));
    let other = cfg("third", "192.0.2.2", 64601, json!({}));
    assert_eq!(check(&other, None, &existing, &nodes()), Ok(vec![]));
}

#[test]
fn an_invalid_node_selector_is_denied() {
    let candidate = cfg(
        "bad",
        "192.0.2.1",
        64600,
        json!({"matchExpressions": [{"key": "rack", "operator": "Bogus"}]}),
    );
    let err = check(&candidate, None, &[], &nodes()).unwrap_err();
    assert!(err.contains(INVALID_NODE_SELECTOR), "{err}");
    assert!(err.contains("spec.nodeSelector"), "{err}");
}

#[test]
fn the_objects_own_problems_are_denied_with_field_paths_even_on_no_node() {
    let candidate = obj(json!({
        "metadata": {"name": "bad", "namespace": NS},
        "spec": {
            "nodeSelector": rack("nowhere"),
            "bgp": {"routers": [{"asn": 64512, "prefixes": ["192.0.2.0/24"],
                "neighbors": [{"address": "192.0.2.1", "asn": 64600,
                    "toAdvertise": {"allowed": {"prefixes": ["198.51.100.0/24"]}}}]}]}
        }
    }));
    let err = check(&candidate, None, &[], &nodes()).unwrap_err();
    assert!(
        err.starts_with("FRRConfiguration frr-k8s-system/bad: "),
        "{err}"
    );
    assert!(
        err.contains("spec.bgp.routers[0].neighbors[0].toAdvertise.allowed.prefixes[0]"),
        "{err}"
    );
    assert!(!err.contains("resource is invalid for node"), "{err}");
}

#[test]
fn without_a_matching_node_only_the_object_itself_is_checked() {
    let existing = vec![cfg("first", "192.0.2.1", 64600, json!({}))];
    let candidate = cfg("second", "192.0.2.1", 64601, rack("nowhere"));
    assert_eq!(check(&candidate, None, &existing, &nodes()), Ok(vec![]));
    // a conflict inside the object itself is still one
    let selfish = obj(json!({
        "metadata": {"name": "selfish", "namespace": NS},
        "spec": {"nodeSelector": rack("nowhere"), "bgp": {"routers": [
            {"asn": 64512, "neighbors": [{"address": "192.0.2.1", "asn": 64600}]},
            {"asn": 64513, "neighbors": [{"address": "192.0.2.2", "asn": 64600}]}
        ]}}
    }));
    let err = check(&selfish, None, &[], &nodes()).unwrap_err();
    assert!(err.contains("frr-k8s-system/selfish"), "{err}");
}

#[test]
fn an_update_is_not_compared_with_its_own_previous_version() {
    let existing = vec![cfg("first", "192.0.2.1", 64600, json!({}))];
    let update = cfg("first", "192.0.2.1", 64601, json!({}));
    assert_eq!(
        check(&update, existing.first(), &existing, &nodes()),
        Ok(vec![])
    );
}

#[test]
fn an_update_that_creates_a_conflict_is_denied() {
    let existing = vec![
        cfg("first", "192.0.2.1", 64600, rack("a")),
        cfg("second", "192.0.2.1", 64601, rack("b")),
    ];
    // "second" widens its selector onto node-a, where "first" disagrees; "second" is the
    // older object here, yet the request is denied
    let mut update = cfg("second", "192.0.2.1", 64601, json!({}));
    update.metadata.creation_timestamp = existing[0].metadata.creation_timestamp.clone();
    let err = check(&update, Some(&existing[1]), &existing, &nodes()).unwrap_err();
    assert!(err.contains("frr-k8s-system/first"), "{err}");
    assert!(err.contains("frr-k8s-system/second"), "{err}");
    assert!(
        err.ends_with("resource is invalid for node node-a"),
        "{err}"
    );
}

#[test]
fn problems_other_objects_already_had_do_not_block() {
    // "x" and "y" already conflict (created while the webhook was down)
    let existing = vec![
        cfg("x", "192.0.2.1", 64600, json!({})),
        cfg("y", "192.0.2.1", 64601, json!({})),
    ];
    let unrelated = cfg("z", "192.0.2.9", 64609, json!({}));
    assert_eq!(check(&unrelated, None, &existing, &nodes()), Ok(vec![]));
    let conflicting = cfg("w", "192.0.2.1", 64602, json!({}));
    let err = check(&conflicting, None, &existing, &nodes()).unwrap_err();
    assert!(err.contains("frr-k8s-system/w"), "{err}");
    assert!(
        !err.contains("frr-k8s-system/y:"),
        "y's old problem is not repeated: {err}"
    );
}

#[test]
fn objects_of_other_namespaces_are_not_merged_with_the_candidate() {
    let mut elsewhere = cfg("first", "192.0.2.1", 64600, json!({}));
    elsewhere.metadata.namespace = Some("elsewhere".into());
    let candidate = cfg("first", "192.0.2.1", 64601, json!({}));
    assert_eq!(check(&candidate, None, &[elsewhere], &nodes()), Ok(vec![]));
}

#[test]
fn a_missing_password_secret_never_blocks() {
    let existing = vec![cfg("first", "192.0.2.1", 64600, json!({}))];
    let candidate = obj(json!({
        "metadata": {"name": "secret-user", "namespace": NS},
        "spec": {"bgp": {"routers": [{"asn": 64512, "neighbors": [
            {"address": "192.0.2.1", "asn": 64600, "passwordSecret": {"name": "not-there"}}
        ]}]}}
    }));
    assert_eq!(check(&candidate, None, &existing, &nodes()), Ok(vec![]));
    // but a password together with a secret reference is the object's own problem
    let mut both = candidate.clone();
    both.spec.bgp.as_mut().unwrap().routers[0].neighbors[0].password = Some("x".into());
    let err = check(&both, None, &existing, &nodes()).unwrap_err();
    assert!(err.contains("spec.bgp.routers[0].neighbors[0]"), "{err}");
}

#[test]
fn disable_mp_warns() {
    let candidate = obj(json!({
        "metadata": {"name": "mp", "namespace": NS},
        "spec": {"bgp": {"routers": [{"asn": 64512, "neighbors": [
            {"address": "192.0.2.1", "asn": 64600, "disableMP": true}
        ]}]}}
    }));
    assert_eq!(
        check(&candidate, None, &[], &nodes()),
        Ok(vec![DISABLE_MP_WARNING.to_string()])
    );
    let off = cfg("plain", "192.0.2.1", 64600, json!({}));
    assert_eq!(warnings(&off, None), Vec::<String>::new());
}

#[test]
fn a_graceful_restart_change_warns_on_update() {
    let gr = |on: bool| {
        obj(json!({
            "metadata": {"name": "gr", "namespace": NS},
            "spec": {"bgp": {"routers": [{"asn": 64512, "neighbors": [
                {"address": "192.0.2.1", "asn": 64600, "enableGracefulRestart": on},
                {"address": "192.0.2.2", "asn": 64600}
            ]}]}}
        }))
    };
    let (before, after) = (gr(false), gr(true));
    assert_eq!(
        check(
            &after,
            Some(&before),
            std::slice::from_ref(&before),
            &nodes()
        ),
        Ok(vec![GRACEFUL_RESTART_WARNING.to_string()])
    );
    // unchanged: no warning; on create: no warning
    assert_eq!(warnings(&after, Some(&after)), Vec::<String>::new());
    assert_eq!(warnings(&after, None), Vec::<String>::new());
    // a neighbor that is new in the update is not a change
    let fresh = cfg("gr", "192.0.2.3", 64600, json!({}));
    assert_eq!(warnings(&after, Some(&fresh)), Vec::<String>::new());
}

#[test]
fn nodes_with_the_same_objects_are_merged_once_and_the_first_failing_node_is_named() {
    let mut many: Vec<NodeLabels> = (0..50)
        .map(|i| NodeLabels::new(&format!("node-{i:02}"), &[("rack", "a")]))
        .collect();
    many.push(NodeLabels::new("node-zz", &[("rack", "b")]));
    let existing = vec![cfg("first", "192.0.2.1", 64600, rack("b"))];
    let candidate = cfg("second", "192.0.2.1", 64601, json!({}));
    let err = check(&candidate, None, &existing, &many).unwrap_err();
    assert!(
        err.ends_with("resource is invalid for node node-zz"),
        "{err}"
    );
}
