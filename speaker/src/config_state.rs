//! The speaker's `ConfigurationState` (`speaker-<node>`): whether the MetalLB configuration
//! that applies to this node compiled cleanly, as upstream's speaker reports it.
//!
//! Pure: from the node's [`ConfigIssue`]s, the object as observed and the current time,
//! [`next_step`] decides the one write (if any) that brings the object closer to what it
//! must be (the controller's object is written by the same `metallb_runtime::config_state`
//! planning). The shell runs it until it returns `None`.
//!
//! The issues are those of [`crate::bgp::NodeConfig::compile`], which only looks at the
//! BGPPeers and BGPAdvertisements whose `nodeSelectors` match this node (as upstream's
//! speaker does since v0.16): a bad peer makes only the speakers it targets Invalid.
//! Pools, BFD profiles and communities concern every node, so their problems show on
//! every speaker.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use metallb_api::metallb::status::{
    speaker_configuration_state_name, CONDITION_CONFIG_RECONCILER_VALID, LABEL_COMPONENT_TYPE,
    LABEL_NODE_NAME,
};
use metallb_api::metallb::{ConfigurationState, ConfigurationStateStatus};
use metallb_runtime::config_state;
pub use metallb_runtime::config_state::Step;

use crate::bgp::ConfigIssue;

/// `metallb.io/component-type` of a speaker's object.
pub const COMPONENT_TYPE: &str = "speaker";

/// The status for `issues`: condition `configReconcilerValid` True (`Reconciled`), or False
/// (`ConfigurationError`) with one issue per line as its message and as `errorSummary`.
/// `previous` keeps the condition's lastTransitionTime while its status does not change.
pub fn configuration_state(
    issues: &[ConfigIssue],
    previous: Option<&ConfigurationStateStatus>,
    now: Timestamp,
) -> ConfigurationStateStatus {
    let error = (!issues.is_empty()).then(|| {
        issues
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    });
    ConfigurationStateStatus::single_condition(
        CONDITION_CONFIG_RECONCILER_VALID,
        error,
        previous,
        now,
    )
}

/// The labels upstream puts on `speaker-<node>` (how `kubectl get configurationstates -l`
/// finds a node's object).
pub fn labels(node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_COMPONENT_TYPE.to_string(), COMPONENT_TYPE.to_string()),
        (LABEL_NODE_NAME.to_string(), node.to_string()),
    ])
}

/// What the object must be, apart from its status.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub node: String,
    /// MetalLB's namespace.
    pub namespace: String,
    /// The speaker Pod, so that the object is garbage-collected with it (as upstream);
    /// `None` when the pod is unknown: the object then has no owner.
    pub owner: Option<OwnerReference>,
}

impl Target {
    pub fn name(&self) -> String {
        speaker_configuration_state_name(&self.node)
    }

    /// The shared writer's target: our name, labels and owner.
    pub fn shared(&self) -> config_state::Target {
        config_state::Target {
            name: self.name(),
            namespace: self.namespace.clone(),
            labels: labels(&self.node),
            owner: self.owner.clone(),
        }
    }
}

/// The next write bringing `observed` to what `target` and `issues` call for, or `None`
/// when the object already says it (then nothing is written).
pub fn next_step(
    observed: Option<&ConfigurationState>,
    target: &Target,
    issues: &[ConfigIssue],
    now: Timestamp,
) -> Option<Step> {
    config_state::next_step(observed, &target.shared(), |previous| {
        configuration_state(issues, previous, now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use metallb_api::metallb::status::{REASON_CONFIGURATION_ERROR, REASON_RECONCILED};
    use metallb_api::metallb::ConfigurationResult;
    use serde_json::Value;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("timestamp")
    }

    fn target(owner_uid: Option<&str>) -> Target {
        Target {
            node: "n1".into(),
            namespace: "metallb-system".into(),
            owner: owner_uid.map(|uid| OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: "speaker-x".into(),
                uid: uid.into(),
                ..Default::default()
            }),
        }
    }

    fn issue(name: &str, message: &str) -> ConfigIssue {
        ConfigIssue {
            kind: "BGPPeer",
            name: format!("metallb-system/{name}"),
            message: message.into(),
        }
    }

    /// What the server holds after `step` (status writes keep the metadata, and so on).
    fn apply(observed: Option<ConfigurationState>, step: Step) -> ConfigurationState {
        match step {
            Step::Create(o) => *o,
            Step::Metadata(patch) => {
                let mut o = observed.expect("patching an existing object");
                let mut v = serde_json::to_value(&o).expect("json");
                json_patch_merge(&mut v, &patch);
                o = serde_json::from_value(v).expect("object");
                o
            }
            Step::Status(s) => {
                let mut o = observed.expect("patching an existing object");
                o.status = Some(s);
                o
            }
        }
    }

    /// RFC 7386 merge patch (enough for these tests).
    fn json_patch_merge(target: &mut Value, patch: &Value) {
        match (target.as_object_mut(), patch.as_object()) {
            (Some(t), Some(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        json_patch_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            _ => *target = patch.clone(),
        }
    }

    /// Run [`next_step`] until it has nothing left to do; returns the object and the writes.
    fn converge(
        mut observed: Option<ConfigurationState>,
        target: &Target,
        issues: &[ConfigIssue],
        now: Timestamp,
    ) -> (ConfigurationState, usize) {
        let mut writes = 0;
        while let Some(step) = next_step(observed.as_ref(), target, issues, now) {
            observed = Some(apply(observed, step));
            writes += 1;
            assert!(writes < 10, "does not converge");
        }
        (observed.expect("object"), writes)
    }

    #[test]
    fn valid_configuration_creates_the_labelled_owned_object() {
        let t = target(Some("pod-uid-1"));
        let (obj, writes) = converge(None, &t, &[], ts(1));
        assert_eq!(writes, 2, "create, then the status");
        assert_eq!(obj.metadata.name.as_deref(), Some("speaker-n1"));
        assert_eq!(obj.metadata.namespace.as_deref(), Some("metallb-system"));
        let labels = obj.metadata.labels.clone().expect("labels");
        assert_eq!(labels["metallb.io/component-type"], "speaker");
        assert_eq!(labels["metallb.io/node-name"], "n1");
        let owners = obj.metadata.owner_references.clone().expect("owner");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "pod-uid-1");
        let st = obj.status.expect("status");
        assert_eq!(st.result, Some(ConfigurationResult::Valid));
        assert_eq!(st.error_summary, None);
        assert_eq!(st.conditions.len(), 1);
        assert_eq!(st.conditions[0].type_, "configReconcilerValid");
        assert_eq!(st.conditions[0].reason, REASON_RECONCILED);
    }

    #[test]
    fn issues_make_it_invalid_and_a_fix_valid_again() {
        let t = target(None);
        let (valid, _) = converge(None, &t, &[], ts(1));
        assert!(valid.metadata.owner_references.is_none());
        let issues = [
            issue("a", "skipped: spec.peerAddress: \"x\" is not an IP"),
            issue("b", "skipped on node n1: duplicate peer"),
        ];
        let (invalid, writes) = converge(Some(valid.clone()), &t, &issues, ts(2));
        assert_eq!(writes, 1, "one status write");
        let st = invalid.status.clone().expect("status");
        assert_eq!(st.result, Some(ConfigurationResult::Invalid));
        assert_eq!(
            st.error_summary.as_deref(),
            Some(
                "BGPPeer metallb-system/a: skipped: spec.peerAddress: \"x\" is not an IP\n\
                 BGPPeer metallb-system/b: skipped on node n1: duplicate peer"
            )
        );
        assert_eq!(st.conditions[0].status, "False");
        assert_eq!(st.conditions[0].reason, REASON_CONFIGURATION_ERROR);
        assert_eq!(st.conditions[0].message, st.error_summary.clone().unwrap());

        // The same issues later: nothing to write (only the clock moved).
        assert_eq!(next_step(Some(&invalid), &t, &issues, ts(3)), None);

        let (fixed, writes) = converge(Some(invalid), &t, &[], ts(4));
        assert_eq!(writes, 1);
        let st = fixed.status.expect("status");
        assert_eq!(st.result, Some(ConfigurationResult::Valid));
        assert_eq!(st.error_summary, None);
        assert_eq!(
            st.conditions[0].last_transition_time.0,
            ts(4),
            "False → True is a transition"
        );
    }

    #[test]
    fn restores_labels_and_takes_over_ownership() {
        let old = target(Some("old-pod"));
        let (mut obj, _) = converge(None, &old, &[], ts(1));
        obj.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("team".into(), "net".into());
        obj.metadata
            .labels
            .as_mut()
            .expect("labels")
            .remove("metallb.io/node-name");
        let new = target(Some("new-pod"));
        let patch = new.shared().metadata_patch(&obj.metadata).expect("patch");
        assert_eq!(patch["metadata"]["labels"]["metallb.io/node-name"], "n1");
        assert_eq!(patch["metadata"]["ownerReferences"][0]["uid"], "new-pod");
        let (obj, writes) = converge(Some(obj), &new, &[], ts(2));
        assert_eq!(writes, 1, "metadata only: the status is unchanged");
        let labels = obj.metadata.labels.expect("labels");
        assert_eq!(labels["team"], "net", "foreign labels are kept");
        assert_eq!(labels["metallb.io/node-name"], "n1");
        assert_eq!(obj.metadata.owner_references.expect("owners").len(), 1);
        // Without a known pod, the owner is left as found.
        assert_eq!(
            target(None)
                .shared()
                .metadata_patch(&old.shared().new_object().metadata),
            None
        );
    }

    #[test]
    fn a_status_written_by_someone_else_is_rewritten() {
        let t = target(None);
        let (mut obj, _) = converge(None, &t, &[], ts(1));
        obj.status = None;
        assert!(matches!(
            next_step(Some(&obj), &t, &[], ts(2)),
            Some(Step::Status(_))
        ));
        let mut st = configuration_state(&[], None, ts(1));
        st.error_summary = Some("stale".into());
        obj.status = Some(st);
        assert!(matches!(
            next_step(Some(&obj), &t, &[], ts(2)),
            Some(Step::Status(_))
        ));
    }
}
