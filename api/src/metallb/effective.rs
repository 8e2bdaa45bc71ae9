//! Which version of each MetalLB configuration object is in effect: the rules of
//! [`crate::versions`] (the established object wins, invalid is not deleted, the same
//! choice after a restart) over MetalLB's six kinds, checked by the caller's validation of a
//! [`ConfigObjects`] set (all of [`ConfigObjects::validate`] for a speaker, the pool rules
//! for the controller).

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::config::ConfigObjects;
use super::{BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};
use crate::validation::ObjectError;
use crate::versions::{Engine, Findings, Versioned};

pub use crate::versions::{precedence_key, KeptVersion, Key, Problem};

/// One MetalLB configuration object of any kind.
#[derive(Clone, Debug)]
enum Any {
    Pool(IPAddressPool),
    Peer(BGPPeer),
    BgpAd(BGPAdvertisement),
    L2Ad(L2Advertisement),
    Bfd(BFDProfile),
    Community(Community),
}

/// Applies `$body` to the object inside `$any`, bound to `$o`.
macro_rules! with {
    ($any:expr, $o:ident => $body:expr) => {
        match $any {
            Any::Pool($o) => $body,
            Any::Peer($o) => $body,
            Any::BgpAd($o) => $body,
            Any::L2Ad($o) => $body,
            Any::Bfd($o) => $body,
            Any::Community($o) => $body,
        }
    };
}

fn replace_spec<K: Resource + Serialize + DeserializeOwned>(
    obj: &K,
    generation: i64,
    spec: &serde_json::Value,
) -> Option<K> {
    let mut v = serde_json::to_value(obj).ok()?;
    let map = v.as_object_mut()?;
    map.insert("spec".into(), spec.clone());
    let meta = map.get_mut("metadata")?.as_object_mut()?;
    meta.insert("generation".into(), generation.into());
    serde_json::from_value(v).ok()
}

fn spec_of<K: Serialize>(obj: &K) -> serde_json::Value {
    serde_json::to_value(obj)
        .ok()
        .and_then(|mut v| v.get_mut("spec").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null)
}

/// The kinds a record can hold.
const KINDS: &[&str] = &[
    "IPAddressPool",
    "BGPPeer",
    "BGPAdvertisement",
    "L2Advertisement",
    "BFDProfile",
    "Community",
];

impl Versioned for Any {
    fn kind(&self) -> &'static str {
        match self {
            Any::Pool(_) => KINDS[0],
            Any::Peer(_) => KINDS[1],
            Any::BgpAd(_) => KINDS[2],
            Any::L2Ad(_) => KINDS[3],
            Any::Bfd(_) => KINDS[4],
            Any::Community(_) => KINDS[5],
        }
    }

    fn meta(&self) -> &ObjectMeta {
        with!(self, o => o.meta())
    }

    fn spec(&self) -> serde_json::Value {
        with!(self, o => spec_of(o))
    }

    fn with_spec(&self, generation: i64, spec: &serde_json::Value) -> Option<Self> {
        Some(match self {
            Any::Pool(o) => Any::Pool(replace_spec(o, generation, spec)?),
            Any::Peer(o) => Any::Peer(replace_spec(o, generation, spec)?),
            Any::BgpAd(o) => Any::BgpAd(replace_spec(o, generation, spec)?),
            Any::L2Ad(o) => Any::L2Ad(replace_spec(o, generation, spec)?),
            Any::Bfd(o) => Any::Bfd(replace_spec(o, generation, spec)?),
            Any::Community(o) => Any::Community(replace_spec(o, generation, spec)?),
        })
    }
}

fn flatten(c: &ConfigObjects) -> Vec<Any> {
    let mut v = Vec::new();
    v.extend(c.pools.iter().cloned().map(Any::Pool));
    v.extend(c.peers.iter().cloned().map(Any::Peer));
    v.extend(c.bgp_advertisements.iter().cloned().map(Any::BgpAd));
    v.extend(c.l2_advertisements.iter().cloned().map(Any::L2Ad));
    v.extend(c.bfd_profiles.iter().cloned().map(Any::Bfd));
    v.extend(c.communities.iter().cloned().map(Any::Community));
    v
}

fn gather(items: &[Any], nodes: &[super::config::NodeLabels]) -> ConfigObjects {
    let mut c = ConfigObjects {
        nodes: nodes.to_vec(),
        ..Default::default()
    };
    for a in items.iter().cloned() {
        match a {
            Any::Pool(o) => c.pools.push(o),
            Any::Peer(o) => c.peers.push(o),
            Any::BgpAd(o) => c.bgp_advertisements.push(o),
            Any::L2Ad(o) => c.l2_advertisements.push(o),
            Any::Bfd(o) => c.bfd_profiles.push(o),
            Any::Community(o) => c.communities.push(o),
        }
    }
    c
}

/// What is in effect after a resolution, and what is reported about the rest.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    /// The versions in effect: valid together under every rule the caller checks.
    pub effective: ConfigObjects,
    /// One entry per object whose current version is not in effect, sorted by kind and name.
    pub problems: Vec<Problem>,
}

impl Resolution {
    /// One line per problem (for `ConfigurationState.status.errorSummary`).
    pub fn summary(&self) -> Option<String> {
        (!self.problems.is_empty()).then(|| {
            self.problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }
}

/// Decides which version of every MetalLB object is in effect, remembering the previous
/// decision.
#[derive(Clone, Default)]
pub struct Resolver {
    engine: Engine<Any>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("record", &self.engine.record())
            .finish()
    }
}

impl Resolver {
    /// A resolver for a component starting with no record.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver continuing from a persisted record (a restart).
    pub fn seeded(record: &[KeptVersion]) -> Self {
        Resolver {
            engine: Engine::seeded(record, KINDS),
        }
    }

    /// Decide what is in effect for `current` (every object of the kinds the caller uses),
    /// given `validate`: the caller's rules over a set of objects, reporting a conflict on
    /// the later object in precedence order ([`ConfigObjects::validate`] or a subset).
    pub fn resolve(
        &mut self,
        current: &ConfigObjects,
        now: Timestamp,
        validate: impl Fn(&ConfigObjects) -> Vec<ObjectError>,
    ) -> Resolution {
        let out = self.engine.resolve(&flatten(current), now, |set| {
            (validate(&gather(set, &current.nodes)).into_iter())
                .map(|e| ((e.kind, e.name), e.errors.to_string()))
                .collect::<Findings>()
        });
        Resolution {
            effective: gather(&out.chosen, &current.nodes),
            problems: out.problems,
        }
    }

    /// What to persist: every object whose current version is refused, sorted.
    pub fn record(&self) -> Vec<KeptVersion> {
        self.engine.record()
    }
}

#[cfg(test)]
mod tests;
