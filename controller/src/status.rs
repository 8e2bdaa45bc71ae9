//! What to write: pure comparisons of desired against observed state, producing merge-patch
//! bodies only when something differs.

use metallb_api::metallb::annotations;
use metallb_api::metallb::status::CONDITION_POOL_RECONCILER_VALID;
use metallb_api::metallb::{ConfigurationResult, ConfigurationStateStatus, IPAddressPoolStatus};
use serde_json::{json, Value};

use crate::allocator::PoolStats;
use crate::converge::Desired;
use crate::pools::PoolConfig;

/// What a Service shows of MetalLB's state (or what this controller last wrote to it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `status.loadBalancer.ingress[].ip`, in order.
    pub ingress: Vec<String>,
    /// Ingress entries with a hostname or without an IP (never written by MetalLB).
    pub foreign: bool,
    /// `metallb.io/ip-allocated-from-pool`.
    pub pool: Option<String>,
    /// `metallb.universe.tf/ip-allocated-from-pool` is present.
    pub legacy_pool: bool,
}

/// The changes to make to one Service: `None` fields are left alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePatch {
    /// New value of the pool annotation (`Some(None)` removes it); also drops the legacy
    /// twin when present.
    pub annotation: Option<Option<String>>,
    /// New `status.loadBalancer.ingress` IPs (empty clears it).
    pub ingress: Option<Vec<String>>,
}

impl ServicePatch {
    /// Merge patch for the main resource (metadata), if any.
    pub fn metadata_patch(&self, observed: &Observed) -> Option<Value> {
        let value = self.annotation.as_ref()?;
        let mut ann = serde_json::Map::new();
        ann.insert(
            annotations::IP_ALLOCATED_FROM_POOL.into(),
            value.clone().map(Value::String).unwrap_or(Value::Null),
        );
        if observed.legacy_pool {
            ann.insert(
                annotations::LEGACY_IP_ALLOCATED_FROM_POOL.into(),
                Value::Null,
            );
        }
        Some(json!({ "metadata": { "annotations": ann } }))
    }

    /// Merge patch for the status subresource, if any.
    pub fn status_patch(&self) -> Option<Value> {
        let ips = self.ingress.as_ref()?;
        let ingress = if ips.is_empty() {
            Value::Null
        } else {
            Value::Array(ips.iter().map(|ip| json!({ "ip": ip })).collect())
        };
        Some(json!({ "status": { "loadBalancer": { "ingress": ingress } } }))
    }
}

/// Compare desired with observed; `None` when the Service already shows the desired state.
pub fn desired_service_patch(observed: &Observed, desired: &Desired) -> Option<ServicePatch> {
    let want_ingress: Vec<String> = desired.ips.iter().map(ToString::to_string).collect();
    let mut patch = ServicePatch::default();
    if observed.ingress != want_ingress || observed.foreign {
        patch.ingress = Some(want_ingress);
    }
    if observed.pool != desired.pool || (observed.legacy_pool && desired.pool.is_some()) {
        patch.annotation = Some(desired.pool.clone());
    }
    (patch != ServicePatch::default()).then_some(patch)
}

/// `IPAddressPool.status` from allocator counts.
pub fn pool_status(stats: PoolStats) -> IPAddressPoolStatus {
    IPAddressPoolStatus {
        assigned_ipv4: stats.assigned_ipv4,
        assigned_ipv6: stats.assigned_ipv6,
        available_ipv4: stats.available_ipv4,
        available_ipv6: stats.available_ipv6,
    }
}

/// The controller's `ConfigurationState` status for a pool configuration: Valid, or Invalid
/// with one summary line per skipped pool. `previous` keeps the condition's
/// lastTransitionTime when the condition did not change.
pub fn configuration_state(
    config: &PoolConfig,
    previous: Option<&ConfigurationStateStatus>,
    now: k8s_openapi::jiff::Timestamp,
) -> ConfigurationStateStatus {
    ConfigurationStateStatus::single_condition(
        CONDITION_POOL_RECONCILER_VALID,
        config.error_summary(),
        previous,
        now,
    )
}

/// True for an Invalid result.
pub fn is_invalid(s: &ConfigurationStateStatus) -> bool {
    s.result == Some(ConfigurationResult::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_patch_when_unchanged() {
        let desired = Desired {
            ips: vec!["192.0.2.1".parse().unwrap()],
            pool: Some("p".into()),
        };
        let observed = Observed {
            ingress: vec!["192.0.2.1".into()],
            pool: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(desired_service_patch(&observed, &desired), None);
        let fresh = Observed::default();
        let patch = desired_service_patch(&fresh, &desired).unwrap();
        assert_eq!(
            patch.status_patch().unwrap(),
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
        );
        assert_eq!(
            patch.metadata_patch(&fresh).unwrap(),
            json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "p"}}})
        );
        let clear = desired_service_patch(&observed, &Desired::cleared()).unwrap();
        assert_eq!(
            clear.status_patch().unwrap(),
            json!({"status": {"loadBalancer": {"ingress": null}}})
        );
        assert_eq!(clear.annotation, Some(None));
        assert_eq!(
            desired_service_patch(&Observed::default(), &Desired::cleared()),
            None
        );
    }

    #[test]
    fn configuration_state_valid_and_invalid() {
        let now = k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
        let ok = configuration_state(&PoolConfig::default(), None, now);
        assert_eq!(ok.result, Some(ConfigurationResult::Valid));
        assert_eq!(ok.error_summary, None);
        let bad = PoolConfig {
            pools: vec![],
            problems: vec![metallb_api::metallb::effective::Problem {
                kind: "IPAddressPool",
                name: "ns/p".into(),
                generation: 1,
                kept: None,
                errors: Default::default(),
            }],
        };
        let st = configuration_state(&bad, Some(&ok), now);
        assert!(is_invalid(&st));
        assert!(!ok.same_as(&st));
        assert!(st.same_as(&configuration_state(
            &bad,
            Some(&st),
            k8s_openapi::jiff::Timestamp::MAX
        )));
    }
}
