//! Service annotation keys. Every key exists with the current `metallb.io/` prefix and the
//! deprecated `metallb.universe.tf/` prefix; the current one wins when both are present.

use std::collections::BTreeMap;

/// Current annotation prefix.
pub const PREFIX: &str = "metallb.io/";
/// Deprecated annotation prefix.
pub const LEGACY_PREFIX: &str = "metallb.universe.tf/";

/// Allocate from this pool (user).
pub const ADDRESS_POOL: &str = "metallb.io/address-pool";
/// Comma-separated list of one or two requested IPs (user).
pub const LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
/// Sharing key (user).
pub const ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// Pool the IP was allocated from (written by the controller).
pub const IP_ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";

pub const LEGACY_ADDRESS_POOL: &str = "metallb.universe.tf/address-pool";
pub const LEGACY_LOAD_BALANCER_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
pub const LEGACY_ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";
pub const LEGACY_IP_ALLOCATED_FROM_POOL: &str = "metallb.universe.tf/ip-allocated-from-pool";

/// Where a looked-up annotation value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Current,
    Legacy,
}

/// Look up an annotation by its suffix (`"address-pool"`), preferring the current prefix.
/// Returns the value and which prefix provided it (callers emit a `deprecatedAnnotation`
/// event for [`Source::Legacy`]).
pub fn get<'a>(
    annotations: &'a BTreeMap<String, String>,
    suffix: &str,
) -> Option<(&'a str, Source)> {
    if let Some(v) = annotations.get(&format!("{PREFIX}{suffix}")) {
        return Some((v.as_str(), Source::Current));
    }
    annotations
        .get(&format!("{LEGACY_PREFIX}{suffix}"))
        .map(|v| (v.as_str(), Source::Legacy))
}

/// Annotation keys present with the deprecated prefix, sorted.
pub fn legacy_keys(annotations: &BTreeMap<String, String>) -> Vec<&str> {
    annotations
        .keys()
        .filter(|k| k.starts_with(LEGACY_PREFIX))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_prefix_wins() {
        let mut a = BTreeMap::new();
        a.insert(LEGACY_ADDRESS_POOL.to_string(), "old".to_string());
        assert_eq!(get(&a, "address-pool"), Some(("old", Source::Legacy)));
        a.insert(ADDRESS_POOL.to_string(), "new".to_string());
        assert_eq!(get(&a, "address-pool"), Some(("new", Source::Current)));
        assert_eq!(legacy_keys(&a), vec![LEGACY_ADDRESS_POOL]);
        assert_eq!(get(&a, "allow-shared-ip"), None);
        assert_eq!(
            ADDRESS_POOL.strip_prefix(PREFIX),
            LEGACY_ADDRESS_POOL.strip_prefix(LEGACY_PREFIX)
        );
    }
}
