//! `core/v1` Events about an object, as `kubectl describe` shows them: the controller's
//! allocation warnings and the speaker's `nodeAssigned`.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Who reports: `source.component` / `reportingComponent`, and the instance (pod or node).
#[derive(Clone, Debug)]
pub struct Reporter {
    pub component: String,
    pub instance: String,
}

/// A new Event about `regarding` (named after it and the time, as client-go does).
pub fn core_event(
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    message: &str,
    reporter: &Reporter,
    now: k8s_openapi::jiff::Timestamp,
) -> Event {
    let name = format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or("metallb"),
        now.as_nanosecond()
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        involved_object: regarding.clone(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(type_.as_str().to_string()),
        source: Some(EventSource {
            component: Some(reporter.component.clone()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        action: Some(reason.to_string()),
        reporting_component: Some(reporter.component.clone()),
        reporting_instance: Some(reporter.instance.clone()),
        ..Default::default()
    }
}
