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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use metallb_api::frrk8s::FRRConfiguration;
use metallb_api::metallb::effective::KeptVersion;
use metallb_api::validation::object_ref;

/// The kind name in records and messages.
const KIND: &str = "FRRConfiguration";

/// Problems of one trial merge: object (`namespace/name`) → why it was skipped.
pub type Skipped = BTreeMap<String, String>;

#[derive(Clone, Debug)]
struct Refused {
    generation: i64,
    since: Timestamp,
    name: String,
}

/// What is remembered from one resolution to the next.
#[derive(Clone, Debug)]
pub struct Versions {
    /// uid → the version in effect.
    in_effect: BTreeMap<String, Arc<FRRConfiguration>>,
    /// uid → the refused current version.
    refused: BTreeMap<String, Refused>,
    /// uid → kept version from a persisted record, materialised on first sight.
    seeded: BTreeMap<String, (i64, serde_json::Value)>,
    /// No resolution yet: objects without a record are taken as in effect as they are.
    first: bool,
}

impl Default for Versions {
    fn default() -> Self {
        Versions {
            in_effect: BTreeMap::new(),
            refused: BTreeMap::new(),
            seeded: BTreeMap::new(),
            first: true,
        }
    }
}

/// The outcome of [`Versions::resolve`].
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The versions to merge, valid together.
    pub chosen: Vec<Arc<FRRConfiguration>>,
    /// One line per object whose current version is not in effect, sorted.
    pub problems: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Current,
    Fallback,
    Dropped,
}

struct Slot {
    current: Arc<FRRConfiguration>,
    fallback: Option<Arc<FRRConfiguration>>,
    newcomer: bool,
    state: State,
    why: Vec<String>,
}

impl Slot {
    fn chosen(&self) -> Option<&Arc<FRRConfiguration>> {
        match self.state {
            State::Current => Some(&self.current),
            State::Fallback => self.fallback.as_ref(),
            State::Dropped => None,
        }
    }

    fn name(&self) -> String {
        object_ref(&self.current.metadata)
    }
}

fn generation(c: &FRRConfiguration) -> i64 {
    c.metadata.generation.unwrap_or(0)
}

fn uid(c: &FRRConfiguration) -> String {
    c.metadata
        .uid
        .clone()
        .unwrap_or_else(|| format!("name:{}", object_ref(&c.metadata)))
}

/// `obj` with a kept version's spec and generation.
fn with_spec(
    obj: &FRRConfiguration,
    generation: i64,
    spec: &serde_json::Value,
) -> Option<FRRConfiguration> {
    let mut c = obj.clone();
    c.spec = serde_json::from_value(spec.clone()).ok()?;
    c.metadata.generation = Some(generation);
    Some(c)
}

fn set(slots: &[Slot], trial: Option<usize>) -> Vec<Arc<FRRConfiguration>> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            if trial == Some(i) {
                Some(&s.current)
            } else {
                s.chosen()
            }
        })
        .cloned()
        .collect()
}

impl Versions {
    /// Continue from a persisted record (a restart); records of other kinds are ignored.
    pub fn seeded(record: &[KeptVersion]) -> Self {
        let mut v = Versions::default();
        for k in record.iter().filter(|k| k.kind == KIND) {
            v.refused.insert(
                k.uid.clone(),
                Refused {
                    generation: k.refused_generation,
                    since: k.since.0,
                    name: k.name.clone(),
                },
            );
            if let (Some(g), Some(s)) = (k.kept_generation, &k.kept_spec) {
                v.seeded.insert(k.uid.clone(), (g, s.clone()));
            }
        }
        v
    }

    /// Decide which version of each `selected` object is in effect. `check` merges a set
    /// and returns what it skipped. The first resolution must see every selected object.
    pub fn resolve(
        &mut self,
        selected: &[Arc<FRRConfiguration>],
        now: Timestamp,
        check: impl Fn(&[Arc<FRRConfiguration>]) -> Skipped,
    ) -> Resolved {
        let first = std::mem::replace(&mut self.first, false);
        let mut slots: Vec<Slot> = selected
            .iter()
            .map(|c| {
                let id = uid(c);
                if let Some((g, spec)) = self.seeded.remove(&id) {
                    if let Some(k) = with_spec(c, g, &spec) {
                        self.in_effect.insert(id.clone(), Arc::new(k));
                    }
                }
                if first && !self.in_effect.contains_key(&id) && !self.refused.contains_key(&id) {
                    self.in_effect.insert(id.clone(), c.clone());
                }
                let prev = self.in_effect.get(&id);
                let newcomer = prev.is_none_or(|p| generation(p) != generation(c));
                let fallback = prev.filter(|p| generation(p) != generation(c)).cloned();
                let state = match (newcomer, &fallback) {
                    (false, _) => State::Current,
                    (true, Some(_)) => State::Fallback,
                    (true, None) => State::Dropped,
                };
                Slot {
                    current: c.clone(),
                    fallback,
                    newcomer,
                    state,
                    why: Vec::new(),
                }
            })
            .collect();

        // 1. What was in effect must merge cleanly on its own (it does, unless a Secret it
        //    needs went away or the node changed): step failing objects down, a round at a
        //    time.
        loop {
            let skipped = check(&set(&slots, None));
            let mut changed = false;
            for s in slots.iter_mut().filter(|s| s.state != State::Dropped) {
                if let Some(why) = skipped.get(&s.name()) {
                    s.why.push(why.clone());
                    s.state = match (s.state, s.fallback.is_some()) {
                        (State::Current, true) => State::Fallback,
                        _ => State::Dropped,
                    };
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }

        // 2. Newcomers on top: all at once, else one by one in precedence order, in passes
        //    until one accepts nothing (so the outcome does not depend on the order in
        //    which edits were seen).
        let mut newcomers: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].newcomer).collect();
        newcomers.sort_by_cached_key(|&i| {
            let m = &slots[i].current.metadata;
            let t = m.creation_timestamp.as_ref().map(|t| t.0);
            (t.is_none(), t, object_ref(m))
        });
        if !newcomers.is_empty() {
            let mut all = set(&slots, None);
            for &i in &newcomers {
                let name = slots[i].name();
                all.retain(|c| object_ref(&c.metadata) != name);
                all.push(slots[i].current.clone());
            }
            if check(&all).is_empty() {
                for i in newcomers.drain(..) {
                    slots[i].state = State::Current;
                }
            }
        }
        let mut why: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        loop {
            why.clear();
            let before = newcomers.len();
            newcomers.retain(|&i| {
                let skipped = check(&set(&slots, Some(i)));
                if skipped.is_empty() {
                    slots[i].state = State::Current;
                    return false;
                }
                let name = slots[i].name();
                let reasons = skipped
                    .iter()
                    .map(|(o, w)| {
                        if *o == name {
                            w.clone()
                        } else {
                            format!("would make {KIND} {o} invalid: {w}")
                        }
                    })
                    .collect();
                why.insert(i, reasons);
                true
            });
            if newcomers.len() == before {
                break;
            }
        }
        for (i, reasons) in why {
            slots[i].why.extend(reasons);
        }

        // 3. Remember and report.
        let mut present = BTreeSet::new();
        let mut chosen = Vec::new();
        let mut problems = Vec::new();
        for s in slots {
            let id = uid(&s.current);
            present.insert(id.clone());
            if s.state == State::Current {
                self.refused.remove(&id);
                self.in_effect.insert(id, s.current.clone());
                chosen.push(s.current);
                continue;
            }
            let name = s.name();
            let since = self.refused.get(&id).map_or(now, |r| r.since);
            self.refused.insert(
                id.clone(),
                Refused {
                    generation: generation(&s.current),
                    since,
                    name: name.clone(),
                },
            );
            let why = s.why.join("; ");
            match (s.state, &s.fallback) {
                (State::Fallback, Some(k)) => {
                    problems.push(format!(
                        "{KIND} {name}: keeping the last valid version (generation {}) since {since}: {why}",
                        generation(k)
                    ));
                    chosen.push(k.clone());
                }
                _ => {
                    self.in_effect.remove(&id);
                    problems.push(format!("{KIND} {name}: skipped: {why}"));
                }
            }
        }
        self.in_effect.retain(|k, _| present.contains(k));
        self.refused.retain(|k, _| present.contains(k));
        self.seeded.retain(|k, _| present.contains(k));
        problems.sort();
        Resolved { chosen, problems }
    }

    /// What to persist: every object whose current version is refused, sorted.
    pub fn record(&self) -> Vec<KeptVersion> {
        let mut out: Vec<KeptVersion> = self
            .refused
            .iter()
            .map(|(id, r)| {
                let kept = self.in_effect.get(id);
                KeptVersion {
                    kind: KIND.to_string(),
                    name: r.name.clone(),
                    uid: id.clone(),
                    refused_generation: r.generation,
                    kept_generation: kept.map(|k| generation(k)),
                    kept_spec: kept.and_then(|k| serde_json::to_value(&k.spec).ok()),
                    since: Time(r.since),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.uid).cmp(&(&b.name, &b.uid)));
        out
    }
}

#[cfg(test)]
mod tests;
