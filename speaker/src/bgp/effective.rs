//! Which version of each configuration object this node uses: the speaker's side of
//! [`metallb_api::metallb::effective`]. Every rule MetalLB checks across objects is checked
//! here with this node's labels, so that a mistake never withdraws what the node announces:
//! an invalid edit keeps the version in effect, a newcomer that conflicts is the one
//! skipped. [`crate::bgp::NodeConfig::compile`] then sees only valid objects.

use k8s_openapi::jiff::Timestamp;
use metallb_api::metallb::config::ConfigObjects;
use metallb_api::metallb::effective::Resolver;

use super::{ConfigIssue, MetalLbConfig, NodeInfo};

/// Decide what is in effect on `node` (remembering it in `resolver`); the problems come
/// back as configuration issues ("keeping the last valid version ...", "skipped: ...").
pub fn resolve(
    resolver: &mut Resolver,
    config: &MetalLbConfig,
    node: &NodeInfo,
    now: Timestamp,
) -> (MetalLbConfig, Vec<ConfigIssue>) {
    // Peers and advertisements for other nodes are not this node's concern: their
    // mistakes are reported by the speakers that run them.
    let current = ConfigObjects {
        pools: config.pools.clone(),
        peers: (config.peers.iter())
            .filter(|p| p.selects_node(&node.labels))
            .cloned()
            .collect(),
        bgp_advertisements: (config.advertisements.iter())
            .filter(|a| a.selects_node(&node.labels))
            .cloned()
            .collect(),
        // L2Advertisements are not filtered: their nodeSelectors choose among candidates
        // for an election every speaker must compute alike.
        l2_advertisements: config.l2_advertisements.clone(),
        bfd_profiles: config.bfd_profiles.clone(),
        communities: config.communities.clone(),
        nodes: vec![node.labels.clone()],
    };
    let r = resolver.resolve(&current, now, ConfigObjects::validate);
    let issues = (r.problems.iter())
        .map(|p| ConfigIssue {
            kind: p.kind,
            name: p.name.clone(),
            message: p.message(),
        })
        .collect();
    let e = r.effective;
    let effective = MetalLbConfig {
        pools: e.pools,
        peers: e.peers,
        advertisements: e.bgp_advertisements,
        communities: e.communities,
        bfd_profiles: e.bfd_profiles,
        l2_advertisements: e.l2_advertisements,
    };
    (effective, issues)
}
