//! Stubs: how the node component keeps FRRConfigurations that do not select its node.
//!
//! The daemon's namespace can hold thousands of FRRConfigurations (one per node written by
//! MetalLB's speaker, plus the users'), and each node only uses the few whose
//! `spec.nodeSelector` selects it. Before an object enters the store, one that does not
//! select this node (or whose selector is invalid) is replaced by a *stub*: its name,
//! namespace, resourceVersion, uid, creationTimestamp and `spec.nodeSelector`, nothing else.
//! That is enough to re-evaluate the selection when the node's labels change, and for
//! [`select`](crate::select()) to report an invalid selector with the object's name, exactly
//! as it would for the full object.
//!
//! A stub carries [`STUB_MARKER`] so it can never be mistaken for a real (empty)
//! configuration: `select` never selects one, and the node component does not compute while
//! the current labels would select one ([`selected_stub`]) — it re-lists the objects first.
//! An object with no or an empty `nodeSelector` selects every node and is never stubbed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use metallb_api::frrk8s::{FRRConfiguration, FRRConfigurationSpec};
use metallb_api::selector::Selector;
use metallb_api::validation::FieldPath;

/// The annotation that marks a stub. Its key is not a valid qualified name (it contains a
/// space), so the API server refuses it on every object: only [`stub_unless_selected`]
/// can set it, and a user's object can never pass for a stub.
pub const STUB_MARKER: &str = "frrk8s.metallb.io/stub (not selected)";

/// Whether `cfg`'s `nodeSelector` selects a node with `labels`: `None` when it is invalid.
/// An unset or empty selector selects every node (as [`select`](crate::select())).
pub fn selects(cfg: &FRRConfiguration, labels: &BTreeMap<String, String>) -> Option<bool> {
    match &cfg.spec.node_selector {
        None => Some(true),
        Some(sel) => Selector::parse(sel, &FieldPath::new("spec").child("nodeSelector"))
            .ok()
            .map(|s| s.matches(labels)),
    }
}

/// The stub decision: replace `cfg` by a stub when the node's labels are known and its
/// selector does not select them or is invalid. Unknown labels (`None`) keep everything.
pub fn should_stub(cfg: &FRRConfiguration, node_labels: Option<&BTreeMap<String, String>>) -> bool {
    match node_labels {
        None => false,
        Some(labels) => !is_stub(cfg) && selects(cfg, labels) != Some(true),
    }
}

/// Whether `cfg` is a stub made by [`stub_unless_selected`].
pub fn is_stub(cfg: &FRRConfiguration) -> bool {
    cfg.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(STUB_MARKER))
}

/// Replaces `cfg` by its stub when [`should_stub`] says so (the `.modify` step of the
/// FRRConfiguration watch). Returns whether it did.
pub fn stub_unless_selected(
    cfg: &mut FRRConfiguration,
    node_labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if !should_stub(cfg, node_labels) {
        return false;
    }
    let meta = std::mem::take(&mut cfg.metadata);
    let node_selector = cfg.spec.node_selector.take();
    *cfg = FRRConfiguration {
        metadata: ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            resource_version: meta.resource_version,
            uid: meta.uid,
            creation_timestamp: meta.creation_timestamp,
            annotations: Some(BTreeMap::from([(STUB_MARKER.to_string(), String::new())])),
            ..ObjectMeta::default()
        },
        spec: FRRConfigurationSpec {
            node_selector,
            ..FRRConfigurationSpec::default()
        },
        status: None,
    };
    true
}

/// The first stub (by position) that a node with `labels` selects: when there is one, the
/// objects were stubbed under other labels and the full ones must be fetched again before
/// anything is computed from them.
pub fn selected_stub<'a, I>(
    configs: I,
    labels: &BTreeMap<String, String>,
) -> Option<&'a FRRConfiguration>
where
    I: IntoIterator<Item = &'a FRRConfiguration>,
{
    configs
        .into_iter()
        .find(|c| is_stub(c) && selects(c, labels) == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metallb_api::selector::is_qualified_name;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cfg(selector: serde_json::Value) -> FRRConfiguration {
        let mut obj = json!({
            "apiVersion": "frrk8s.metallb.io/v1beta1",
            "kind": "FRRConfiguration",
            "metadata": {
                "name": "c", "namespace": "ns", "resourceVersion": "42", "uid": "u-1",
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "labels": {"app": "x"},
                "annotations": {"note": "big"},
                "finalizers": ["f"]
            },
            "spec": {
                "bgp": {"routers": [{"asn": 64512, "neighbors": [{"address": "192.0.2.1", "asn": 64513}]}]},
                "raw": {"config": "ip nht resolve-via-default"}
            }
        });
        if !selector.is_null() {
            obj["spec"]["nodeSelector"] = selector;
        }
        serde_json::from_value(obj).unwrap()
    }

    #[test]
    fn stub_decision() {
        let node = labels(&[("kubernetes.io/hostname", "n1"), ("rack", "a")]);
        let cases = [
            ("no selector", json!(null), false),
            ("empty selector", json!({}), false),
            ("empty matchLabels", json!({"matchLabels": {}}), false),
            (
                "matching label",
                json!({"matchLabels": {"rack": "a"}}),
                false,
            ),
            (
                "matching expression",
                json!({"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a", "b"]}]}),
                false,
            ),
            (
                "other node",
                json!({"matchLabels": {"kubernetes.io/hostname": "n2"}}),
                true,
            ),
            ("missing label", json!({"matchLabels": {"zone": "z"}}), true),
            (
                "NotIn excludes us",
                json!({"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a"]}]}),
                true,
            ),
            (
                "invalid operator",
                json!({"matchExpressions": [{"key": "rack", "operator": "Bogus"}]}),
                true,
            ),
            ("invalid key", json!({"matchLabels": {"-bad-": "a"}}), true),
        ];
        for (name, sel, want) in cases {
            let c = cfg(sel);
            assert_eq!(should_stub(&c, Some(&node)), want, "{name}");
            // labels unknown: never stub
            assert!(!should_stub(&c, None), "{name}: unknown labels");
        }
        // a stub is never stubbed again
        let mut s = cfg(json!({"matchLabels": {"zone": "z"}}));
        assert!(stub_unless_selected(&mut s, Some(&node)));
        assert!(!should_stub(&s, Some(&node)));
    }

    #[test]
    fn stub_keeps_only_what_selection_needs() {
        let node = labels(&[("rack", "a")]);
        let sel = json!({"matchLabels": {"rack": "b"}});
        let mut c = cfg(sel.clone());
        assert!(stub_unless_selected(&mut c, Some(&node)));
        assert!(is_stub(&c));
        assert_eq!(c.metadata.name.as_deref(), Some("c"));
        assert_eq!(c.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(c.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(c.metadata.uid.as_deref(), Some("u-1"));
        assert!(c.metadata.creation_timestamp.is_some());
        assert!(c.metadata.labels.is_none());
        assert!(c.metadata.finalizers.is_none());
        assert_eq!(
            c.metadata
                .annotations
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec![STUB_MARKER]
        );
        assert!(c.spec.bgp.is_none() && c.spec.raw.is_none());
        assert_eq!(
            serde_json::to_value(&c.spec.node_selector).unwrap(),
            sel,
            "the selector is kept verbatim"
        );

        // a selected object is left alone
        let mut full = cfg(json!({"matchLabels": {"rack": "a"}}));
        let before = full.clone();
        assert!(!stub_unless_selected(&mut full, Some(&node)));
        assert_eq!(full, before);
        assert!(!is_stub(&full));
    }

    #[test]
    fn marker_cannot_come_from_the_api() {
        assert!(!is_qualified_name(STUB_MARKER));
        // a user's object with a look-alike annotation is not a stub
        let mut c = cfg(json!(null));
        c.metadata.annotations = Some(BTreeMap::from([(
            "frrk8s.metallb.io/stub".to_string(),
            String::new(),
        )]));
        assert!(!is_stub(&c));
    }

    #[test]
    fn selected_stub_finds_stubs_the_labels_now_select() {
        let old = labels(&[("rack", "a")]);
        let new = labels(&[("rack", "b")]);
        let mut to_b = cfg(json!({"matchLabels": {"rack": "b"}}));
        let mut invalid = cfg(json!({"matchLabels": {"-bad-": "b"}}));
        assert!(stub_unless_selected(&mut to_b, Some(&old)));
        assert!(stub_unless_selected(&mut invalid, Some(&old)));
        let full = cfg(json!(null));
        let all = [full, invalid, to_b.clone()];
        assert!(
            selected_stub(&all, &old).is_none(),
            "stubs made under these labels"
        );
        assert_eq!(selected_stub(&all, &new), Some(&to_b));
    }
}
