//! Which version of each FRRConfiguration is in effect on this node.
//!
//! The merge ([`crate::merge()`]) folds objects oldest first and skips an object that is
//! invalid or conflicts with what came before. On its own that punishes what already works:
//! an object in effect that is edited into an invalid state would drop all its sessions,
//! and an *older* object edited into a conflict would push a newer, working one (the
//! speaker's `metallb-<node>`, say) out. The same rules as for MetalLB's own objects
//! ([`metallb_api::metallb::effective`]) hold here:
//!
//! * **Invalid is not deleted.** An object whose current version cannot be merged keeps the
//!   version that was in effect, until it is fixed or deleted;
//! * **The established object wins.** A version not in effect yet (a new object or an
//!   edit) is taken only if the merge then reports nothing, for any object; otherwise it is
//!   refused (the object keeps its previous version, or stays out), and reported;
//! * **The same choice after a restart**, from the record of refused versions (the same
//!   [`KeptVersion`] record the speaker keeps), persisted by the caller.
//!
//! The engine is [`metallb_api::versions`], shared with MetalLB's own kinds.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use metallb_api::frrk8s::FRRConfiguration;
use metallb_api::versions::{Engine, KeptVersion};

/// The kind name in records and messages.
const KIND: &str = "FRRConfiguration";

/// Problems of one trial merge: object (`namespace/name`) → why it was skipped.
pub type Skipped = BTreeMap<String, String>;

/// What is remembered from one resolution to the next.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    engine: Engine<Arc<FRRConfiguration>>,
}

/// The outcome of [`Versions::resolve`].
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The versions to merge, valid together.
    pub chosen: Vec<Arc<FRRConfiguration>>,
    /// One line per object whose current version is not in effect, sorted.
    pub problems: Vec<String>,
}

impl Versions {
    /// Continue from a persisted record (a restart); records of other kinds are ignored.
    pub fn seeded(record: &[KeptVersion]) -> Self {
        Versions {
            engine: Engine::seeded(record, &[KIND]),
        }
    }

    /// Decide which version of each `selected` object is in effect. `check` merges a set
    /// and returns what it skipped. The first resolution must see every selected object.
    pub fn resolve(
        &mut self,
        selected: &[Arc<FRRConfiguration>],
        now: Timestamp,
        check: impl Fn(&[Arc<FRRConfiguration>]) -> Skipped,
    ) -> Resolved {
        let out = self.engine.resolve(selected, now, |set| {
            (check(set).into_iter())
                .map(|(name, why)| ((KIND, name), why))
                .collect()
        });
        Resolved {
            chosen: out.chosen,
            problems: out.problems.iter().map(ToString::to_string).collect(),
        }
    }

    /// What to persist: every object whose current version is refused, sorted.
    pub fn record(&self) -> Vec<KeptVersion> {
        self.engine.record()
    }
}

#[cfg(test)]
mod tests;
