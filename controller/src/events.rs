//! Service events: de-duplication (pure) and the `core/v1` Event object.
//!
//! A warning is emitted once per (service, reason, message): a resync that reaches the same
//! failure again stays silent; a reason that goes away and comes back is reported again.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use metallb_runtime::events::Reporter;

use crate::slim::Service;
use kube::ResourceExt;

use crate::allocator::ServiceKey;
use crate::converge::Note;

/// Component name in events (`source.component`, `reportingComponent`).
pub const COMPONENT: &str = "metallb-controller";

/// The last notes reported per service.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    last: HashMap<ServiceKey, BTreeMap<&'static str, String>>,
}

impl EventLog {
    /// Keep only the notes not already reported for `key`, and remember this set as the
    /// current one (reasons absent from `notes` are forgotten).
    pub fn filter(&mut self, key: &str, notes: Vec<Note>) -> Vec<Note> {
        let prev = self.last.remove(key).unwrap_or_default();
        let mut now = BTreeMap::new();
        let mut out = Vec::new();
        for n in notes {
            if prev.get(n.reason) != Some(&n.message) {
                out.push(n.clone());
            }
            now.insert(n.reason, n.message);
        }
        if !now.is_empty() {
            self.last.insert(key.to_string(), now);
        }
        out
    }

    pub fn forget(&mut self, key: &str) {
        self.last.remove(key);
    }
}

/// A reference to the Service for `involvedObject`.
pub fn service_ref(svc: &Service) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some(svc.name_any()),
        namespace: svc.namespace(),
        uid: svc.uid(),
        resource_version: svc.resource_version(),
        field_path: None,
    }
}

/// A `core/v1` Event for a note about an object.
pub fn core_event(
    regarding: &ObjectReference,
    note: &Note,
    instance: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> Event {
    let reporter = Reporter {
        component: COMPONENT.into(),
        instance: instance.to_string(),
    };
    metallb_runtime::events::core_event(
        regarding,
        note.type_,
        note.reason,
        &note.message,
        &reporter,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converge::REASON_ALLOCATION_FAILED;

    #[test]
    fn dedupe_per_reason_and_message() {
        let mut log = EventLog::default();
        let fail = |m: &str| vec![Note::warning(REASON_ALLOCATION_FAILED, m)];
        assert_eq!(log.filter("ns/a", fail("x")).len(), 1);
        assert_eq!(
            log.filter("ns/a", fail("x")).len(),
            0,
            "same reason: silent"
        );
        assert_eq!(log.filter("ns/a", fail("y")).len(), 1, "new message");
        assert_eq!(log.filter("ns/a", vec![]).len(), 0);
        assert_eq!(log.filter("ns/a", fail("y")).len(), 1, "came back");
    }
}
