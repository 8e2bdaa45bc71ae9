//! Graceful shutdown, pure part: the node's `FRRConfiguration` with nothing advertised,
//! and whether graceful restart asks to leave the announcements in place instead.
//!
//! Choice (documented in the README): when any BGP session of this node has
//! `enableGracefulRestart`, the speaker leaves `metallb-<node>` untouched on SIGTERM: the
//! peers keep the routes as stale for the restart time, which is what graceful restart is
//! configured for (a rolling update of the speaker then moves no traffic). Otherwise it
//! writes the object with every session kept and no prefix advertised, so the peers
//! withdraw the routes while the sessions stay up, and the traffic moves to the other
//! nodes before this node's FRR goes away.

use std::collections::BTreeSet;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use metallb_api::frrk8s::{Advertise, AllowedOutPrefixes, FRRConfiguration, FRRConfigurationSpec};

use crate::bgp::NodeConfig;

/// BGPPeers of this node with graceful restart enabled, sorted.
pub fn graceful_restart_peers(cfg: &NodeConfig) -> Vec<String> {
    cfg.sessions
        .iter()
        .filter(|s| s.peer.spec.enable_graceful_restart())
        .map(|s| s.name.to_string())
        .collect()
}

/// `desired` with the same routers, neighbors and BFD profiles, and no prefix advertised.
pub fn withdrawn(desired: &FRRConfiguration) -> FRRConfiguration {
    let mut spec = desired.spec.clone();
    for r in spec.bgp.iter_mut().flat_map(|b| b.routers.iter_mut()) {
        r.prefixes.clear();
        for n in r.neighbors.iter_mut() {
            n.to_advertise = Some(Advertise {
                allowed: Some(AllowedOutPrefixes {
                    prefixes: Vec::new(),
                    mode: None,
                }),
                ..Default::default()
            });
        }
    }
    FRRConfiguration {
        metadata: ObjectMeta {
            name: desired.metadata.name.clone(),
            namespace: desired.metadata.namespace.clone(),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// Prefixes the objects make FRR originate (`routers[].prefixes`), parsed; unparsable
/// entries are skipped (frr-k8s rejects them anyway).
pub fn originated_prefixes<'a>(
    specs: impl IntoIterator<Item = &'a FRRConfigurationSpec>,
) -> BTreeSet<IpNet> {
    specs
        .into_iter()
        .filter_map(|c| c.bgp.as_ref())
        .flat_map(|b| b.routers.iter())
        .flat_map(|r| r.prefixes.iter())
        .filter_map(|p| p.parse::<IpNet>().ok())
        .map(|p| p.trunc())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::spec_changed;
    use serde_json::json;

    #[test]
    fn withdrawn_keeps_sessions_and_drops_prefixes() {
        let cfg: FRRConfiguration = serde_json::from_value(json!({
            "metadata": {"name": "metallb-n1", "namespace": "ns", "resourceVersion": "7"},
            "spec": {"bgp": {"routers": [{"asn": 64512, "prefixes": ["10.0.0.1/32"],
                "neighbors": [{"address": "192.0.2.1", "asn": 65000,
                    "toAdvertise": {"allowed": {"prefixes": ["10.0.0.1/32"]},
                                    "withLocalPref": [{"localPref": 100, "prefixes": ["10.0.0.1/32"]}]}}]}]}}
        }))
        .expect("config");
        let w = withdrawn(&cfg);
        assert!(spec_changed(&cfg.spec, &w.spec));
        let bgp = w.spec.bgp.as_ref().expect("bgp");
        assert!(bgp.routers[0].prefixes.is_empty());
        assert_eq!(bgp.routers[0].neighbors.len(), 1);
        assert!(originated_prefixes([&w.spec]).is_empty());
        assert_eq!(
            originated_prefixes([&cfg.spec])
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["10.0.0.1/32".parse::<IpNet>().expect("net")]
        );
        // idempotent: withdrawing again changes nothing
        assert!(!spec_changed(&w.spec, &withdrawn(&w).spec));
    }
}
