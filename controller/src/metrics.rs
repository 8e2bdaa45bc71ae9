//! Prometheus metrics with upstream names: `metallb_allocator_*` (per pool) and
//! `metallb_k8s_client_*`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::allocator::{Family as IpFamily, Pool, PoolStats};

/// The `pool` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub pool: String,
}

/// Controller metrics. Cheap to clone (shared handles).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub addresses_in_use: Family<PoolLabel, Gauge>,
    pub addresses_total: Family<PoolLabel, Gauge>,
    pub ipv4_in_use: Family<PoolLabel, Gauge>,
    pub ipv4_total: Family<PoolLabel, Gauge>,
    pub ipv6_in_use: Family<PoolLabel, Gauge>,
    pub ipv6_total: Family<PoolLabel, Gauge>,
    pub services_allocated: Family<PoolLabel, Gauge>,
    pub updates: Counter,
    pub update_errors: Counter,
    pub config_loaded: Gauge,
    pub config_stale: Gauge,
}

impl Metrics {
    /// Create the metrics and register them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let gauges: [(&str, &str, &Family<PoolLabel, Gauge>); 7] = [
            (
                "metallb_allocator_addresses_in_use_total",
                "Number of IP addresses in use, per pool",
                &m.addresses_in_use,
            ),
            (
                "metallb_allocator_addresses_total",
                "Number of usable IP addresses, per pool",
                &m.addresses_total,
            ),
            (
                "metallb_allocator_ipv4_addresses_in_use_total",
                "Number of IPv4 addresses in use, per pool",
                &m.ipv4_in_use,
            ),
            (
                "metallb_allocator_ipv4_addresses_total",
                "Number of usable IPv4 addresses, per pool",
                &m.ipv4_total,
            ),
            (
                "metallb_allocator_ipv6_addresses_in_use_total",
                "Number of IPv6 addresses in use, per pool",
                &m.ipv6_in_use,
            ),
            (
                "metallb_allocator_ipv6_addresses_total",
                "Number of usable IPv6 addresses, per pool",
                &m.ipv6_total,
            ),
            (
                "metallb_allocator_services_allocated_total",
                "Number of services with addresses from the pool",
                &m.services_allocated,
            ),
        ];
        for (name, help, fam) in gauges {
            registry.register(name, help, fam.clone());
        }
        // Counters get the `_total` suffix from the encoder.
        registry.register(
            "metallb_k8s_client_updates",
            "Number of k8s object updates that have been processed.",
            m.updates.clone(),
        );
        registry.register(
            "metallb_k8s_client_update_errors",
            "Number of k8s object updates that failed for some reason.",
            m.update_errors.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once.",
            m.config_loaded.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load.",
            m.config_stale.clone(),
        );
        m
    }

    /// Set the gauges of one pool.
    pub fn set_pool(&self, pool: &Pool, stats: PoolStats, services: usize) {
        let l = PoolLabel {
            pool: pool.name.clone(),
        };
        let cap4 = pool.capacity(IpFamily::V4);
        let cap6 = pool.capacity(IpFamily::V6);
        self.ipv4_total.get_or_create(&l).set(cap4);
        self.ipv6_total.get_or_create(&l).set(cap6);
        self.addresses_total
            .get_or_create(&l)
            .set(cap4.saturating_add(cap6));
        self.ipv4_in_use.get_or_create(&l).set(stats.assigned_ipv4);
        self.ipv6_in_use.get_or_create(&l).set(stats.assigned_ipv6);
        self.addresses_in_use
            .get_or_create(&l)
            .set(stats.assigned_ipv4 + stats.assigned_ipv6);
        self.services_allocated
            .get_or_create(&l)
            .set(i64::try_from(services).unwrap_or(i64::MAX));
    }

    /// Drop the series of a pool that no longer exists.
    pub fn remove_pool(&self, name: &str) {
        let l = PoolLabel {
            pool: name.to_string(),
        };
        for f in [
            &self.addresses_in_use,
            &self.addresses_total,
            &self.ipv4_in_use,
            &self.ipv4_total,
            &self.ipv6_in_use,
            &self.ipv6_total,
            &self.services_allocated,
        ] {
            f.remove(&l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names_in_exposition() {
        let mut reg = Registry::default();
        let m = Metrics::register(&mut reg);
        m.set_pool(
            &Pool::new("p", &["192.0.2.0/30"]),
            PoolStats {
                assigned_ipv4: 1,
                available_ipv4: 3,
                ..Default::default()
            },
            1,
        );
        m.updates.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(out.contains("metallb_allocator_addresses_in_use_total{pool=\"p\"} 1"));
        assert!(out.contains("metallb_allocator_addresses_total{pool=\"p\"} 4"));
        assert!(out.contains("metallb_k8s_client_updates_total 1"));
        m.remove_pool("p");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(!out.contains("pool=\"p\""));
    }
}
