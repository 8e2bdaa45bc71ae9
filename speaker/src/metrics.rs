//! The speaker's Prometheus metrics, under upstream's `metallb_` names
//! (`speaker/main.go`, `internal/k8s/controllers/stats.go`).

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::bgp::ServiceKey;
use crate::l2::responder::Counters;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `metallb_speaker_announced`. One set per announced IP (10,000 on a big
/// cluster), so only the IP is a string of its own: the node name is shared, the protocol
/// static and the Service is its shared key, written as `namespace/name` when scraped.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AnnouncedLabels {
    pub ip: String,
    pub node: Arc<str>,
    pub protocol: &'static str,
    pub service: ServiceKey,
}

impl EncodeLabelValue for ServiceKey {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        write!(encoder, "{}/{}", self.namespace, self.name)
    }
}

/// Every metric the speaker shell exports.
#[derive(Debug, Default)]
pub struct SpeakerMetrics {
    /// `metallb_speaker_announced{ip,node,protocol,service}`: 1 while announced.
    pub announced: Family<AnnouncedLabels, Gauge>,
    /// `metallb_k8s_client_updates_total`: watch events processed.
    pub k8s_client_updates_total: Counter,
    /// `metallb_k8s_client_update_errors_total`: watch errors and failed writes.
    pub k8s_client_update_errors_total: Counter,
    /// `metallb_k8s_client_config_loaded_bool`: 1 once the configuration was compiled.
    pub k8s_client_config_loaded_bool: Gauge,
    /// `metallb_k8s_client_config_stale_bool`: 1 while some configuration objects are
    /// skipped (invalid or incompatible), so the running configuration does not reflect
    /// them.
    pub k8s_client_config_stale_bool: Gauge,
    /// `metallb_speaker_frrconfiguration_writes_total`: creates and updates of
    /// `metallb-<node>`.
    pub frrconfiguration_writes_total: Counter,
    /// `metallb_speaker_bgp_status_writes_total`: ServiceBGPStatus creates, status
    /// updates and deletes.
    pub bgp_status_writes_total: Counter,
    /// `metallb_speaker_configuration_state_writes_total`: creates and patches of this
    /// node's ConfigurationState `speaker-<node>`.
    pub configuration_state_writes_total: Counter,
    /// `metallb_speaker_l2_status_writes_total`: ServiceL2Status creates, status updates
    /// and deletes.
    pub l2_status_writes_total: Counter,
    /// The L2 responder's `metallb_layer2_*` counters.
    pub l2: Arc<Counters>,
    /// The membership agent's `metallb_speaker_members_*`.
    pub members: Arc<crate::members::agent::Counters>,
}

impl SpeakerMetrics {
    /// Create the metrics and register them under `metallb_`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = SpeakerMetrics::default();
        let r = registry.sub_registry_with_prefix("metallb");
        r.register(
            "speaker_announced",
            "Services being announced from this node",
            m.announced.clone(),
        );
        r.register(
            "k8s_client_updates",
            "Number of k8s object updates that have been processed",
            m.k8s_client_updates_total.clone(),
        );
        r.register(
            "k8s_client_update_errors",
            "Number of k8s object updates that failed for some reason",
            m.k8s_client_update_errors_total.clone(),
        );
        r.register(
            "k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was loaded at least once",
            m.k8s_client_config_loaded_bool.clone(),
        );
        r.register(
            "k8s_client_config_stale_bool",
            "1 if some configuration objects are skipped, so the running configuration is stale",
            m.k8s_client_config_stale_bool.clone(),
        );
        r.register(
            "speaker_frrconfiguration_writes",
            "Creates and updates of this node's FRRConfiguration",
            m.frrconfiguration_writes_total.clone(),
        );
        r.register(
            "speaker_bgp_status_writes",
            "ServiceBGPStatus creates, status updates and deletes",
            m.bgp_status_writes_total.clone(),
        );
        r.register(
            "speaker_configuration_state_writes",
            "Creates and patches of this node's ConfigurationState",
            m.configuration_state_writes_total.clone(),
        );
        r.register(
            "speaker_l2_status_writes",
            "ServiceL2Status creates, status updates and deletes",
            m.l2_status_writes_total.clone(),
        );
        let l2 = r.sub_registry_with_prefix("layer2");
        l2.register(
            "requests_received",
            "Number of layer2 requests received for owned IPs",
            m.l2.requests_received.clone(),
        );
        l2.register(
            "responses_sent",
            "Number of layer2 responses sent for owned IPs",
            m.l2.responses_sent.clone(),
        );
        l2.register(
            "gratuitous_sent",
            "Number of gratuitous layer2 packets sent for owned IPs",
            m.l2.gratuitous_sent.clone(),
        );
        l2.register(
            "send_errors",
            "Number of layer2 packets that could not be sent",
            m.l2.send_errors.clone(),
        );
        let members = r.sub_registry_with_prefix("speaker_members");
        members.register(
            "alive",
            "Other speakers the membership sees alive",
            m.members.alive.clone(),
        );
        members.register(
            "down",
            "Other speakers the membership declared down (their nodes are no L2 candidates)",
            m.members.down.clone(),
        );
        members.register(
            "rejected_packets",
            "Membership packets dropped for a missing or wrong authentication tag",
            m.members.rejected_packets.clone(),
        );
        Arc::new(m)
    }
}

/// The watch runner's counters: object updates and watch errors of every watch.
impl metallb_runtime::watch::WatchMetrics for SpeakerMetrics {
    fn update(&self, _what: &'static str) {
        self.k8s_client_updates_total.inc();
    }

    fn error(&self, _what: &'static str) {
        self.k8s_client_update_errors_total.inc();
    }
}
