//! Which version of each configuration object is in effect: the engine behind
//! [`crate::metallb::effective`] (MetalLB's kinds) and frr-k8s's FRRConfiguration versions.
//!
//! A configuration mistake must never move a Service's IP or withdraw a route, and the
//! webhooks are not always in the path (install, upgrade, restore from backup,
//! `failurePolicy: Ignore`). So invalid objects are not treated as deleted:
//!
//! * **Invalid is not deleted.** An object whose current version fails the caller's check
//!   (its own rules or a rule spanning objects) keeps the last version that was in effect,
//!   until it is fixed or deleted. Only an object that was never in effect is skipped.
//! * **The established object wins.** A version not in effect yet (a new object, or an
//!   edit) is accepted only if the check then reports nothing, on any object. Among objects
//!   that are all in effect (after a restart without a record) the check's own order
//!   decides (it reports a conflict on the later object in precedence order:
//!   `creationTimestamp`, then `namespace/name`).
//! * **The same choice after a restart.** What is in effect can be derived from the objects
//!   for those in effect as they are; the exceptions (objects whose current version is
//!   refused, and the version kept instead) are the [`KeptVersion`] record, which each
//!   component persists and seeds itself from on start ([`Engine::seeded`]). The record is
//!   empty while the configuration is valid.
//!
//! [`Engine::resolve`] is pure apart from the memory it carries from one call to the next.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::frrk8s::FRRConfiguration;
use crate::validation::object_ref;

/// One object whose current version is not in effect: what a component persists so that a
/// restart makes the same choices.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptVersion {
    /// Kind of the object, e.g. `IPAddressPool`.
    pub kind: String,
    /// `namespace/name` of the object.
    pub name: String,
    /// UID of the object (a deleted and recreated object starts afresh).
    pub uid: String,
    /// `metadata.generation` of the current version, which is refused.
    pub refused_generation: i64,
    /// `metadata.generation` of the version in effect instead; absent when nothing of this
    /// object is in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_generation: Option<i64>,
    /// `spec` of the version in effect instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub kept_spec: Option<serde_json::Value>,
    /// Since when the object's current version is not the one in effect.
    pub since: Time,
}

fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Sort key of [`precedence_key`].
pub type Key = (bool, Option<Timestamp>, String);

/// The precedence key: creation time (absent = newest), then `namespace/name`.
pub fn precedence_key(meta: &ObjectMeta) -> Key {
    let created = meta.creation_timestamp.as_ref().map(|t| t.0);
    (created.is_none(), created, object_ref(meta))
}

/// An object the engine decides versions of.
pub trait Versioned: Clone {
    /// Its kind, e.g. `IPAddressPool`.
    fn kind(&self) -> &'static str;
    fn meta(&self) -> &ObjectMeta;
    /// Its `spec`, to persist a kept version.
    fn spec(&self) -> serde_json::Value;
    /// This object with a kept version's spec and generation.
    fn with_spec(&self, generation: i64, spec: &serde_json::Value) -> Option<Self>;
}

impl Versioned for Arc<FRRConfiguration> {
    fn kind(&self) -> &'static str {
        "FRRConfiguration"
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn spec(&self) -> serde_json::Value {
        serde_json::to_value(&self.spec).unwrap_or(serde_json::Value::Null)
    }

    fn with_spec(&self, generation: i64, spec: &serde_json::Value) -> Option<Self> {
        let mut c = FRRConfiguration::clone(self);
        c.spec = serde_json::from_value(spec.clone()).ok()?;
        c.metadata.generation = Some(generation);
        Some(Arc::new(c))
    }
}

fn generation<T: Versioned>(o: &T) -> i64 {
    o.meta().generation.unwrap_or(0)
}

/// The memory key: kind and UID (objects without a UID, in tests and dry runs, by name).
fn key<T: Versioned>(o: &T) -> (&'static str, String) {
    let id = (o.meta().uid.clone()).unwrap_or_else(|| format!("name:{}", object_ref(o.meta())));
    (o.kind(), id)
}

/// What a check found: `(kind, namespace/name)` → why the object fails.
pub type Findings = BTreeMap<(&'static str, String), String>;

/// An object whose current version is not in effect.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub kind: &'static str,
    /// `namespace/name`.
    pub name: String,
    /// Generation of the refused current version.
    pub generation: i64,
    /// The generation kept in effect instead and since when; `None`: the object is skipped.
    pub kept: Option<(i64, Timestamp)>,
    /// Why the current version is refused.
    pub errors: String,
}

impl Problem {
    /// What happens to the object and why, without the object's name.
    pub fn message(&self) -> String {
        match self.kept {
            Some((g, since)) => format!(
                "keeping the last valid version (generation {g}) since {since}: {}",
                self.errors
            ),
            None => format!("skipped: {}", self.errors),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.name, self.message())
    }
}

#[derive(Clone, Debug)]
struct Refused {
    generation: i64,
    since: Timestamp,
    name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Current,
    Fallback,
    Dropped,
}

/// One object during a resolution.
struct Slot<T> {
    current: T,
    /// The earlier version that was in effect, when it differs from `current`.
    fallback: Option<T>,
    /// The current version has not been in effect yet: it is tried on top of the rest.
    newcomer: bool,
    state: State,
    why: Vec<String>,
}

impl<T: Versioned> Slot<T> {
    fn chosen(&self) -> Option<&T> {
        match self.state {
            State::Current => Some(&self.current),
            State::Fallback => self.fallback.as_ref(),
            State::Dropped => None,
        }
    }

    fn id(&self) -> (&'static str, String) {
        (self.current.kind(), object_ref(self.current.meta()))
    }
}

/// The chosen versions, with the current version of slot `trial` instead.
fn set<T: Versioned>(slots: &[Slot<T>], trial: &[usize]) -> Vec<T> {
    (slots.iter().enumerate())
        .filter_map(|(i, s)| {
            if trial.contains(&i) {
                Some(&s.current)
            } else {
                s.chosen()
            }
        })
        .cloned()
        .collect()
}

/// Decides which version of every object is in effect, remembering the previous decision.
#[derive(Clone, Debug)]
pub struct Engine<T> {
    /// (kind, uid) → the version in effect.
    in_effect: BTreeMap<(&'static str, String), T>,
    /// (kind, uid) → the refused current version.
    refused: BTreeMap<(&'static str, String), Refused>,
    /// (kind, uid) → kept version from a persisted record, materialised on first sight
    /// (the spec needs the object's current metadata around it).
    seeded: BTreeMap<(&'static str, String), (i64, serde_json::Value)>,
    /// No resolution yet: every object without a record is taken as in effect as it is
    /// (what a restart finds is what was running, except for the recorded objects).
    first: bool,
}

impl<T> Default for Engine<T> {
    fn default() -> Self {
        Engine {
            in_effect: BTreeMap::new(),
            refused: BTreeMap::new(),
            seeded: BTreeMap::new(),
            first: true,
        }
    }
}

/// What is in effect after a resolution, and what is reported about the rest.
#[derive(Clone, Debug)]
pub struct Outcome<T> {
    /// The versions in effect, in the order of the objects given.
    pub chosen: Vec<T>,
    /// One entry per object whose current version is not in effect, sorted by kind and name.
    pub problems: Vec<Problem>,
}

impl<T: Versioned> Engine<T> {
    /// An engine continuing from a persisted record (a restart), for the given kinds.
    pub fn seeded(record: &[KeptVersion], kinds: &[&'static str]) -> Self {
        let mut e = Engine::default();
        for k in record {
            let Some(kind) = kinds.iter().find(|&&x| x == k.kind) else {
                continue;
            };
            e.refused.insert(
                (kind, k.uid.clone()),
                Refused {
                    generation: k.refused_generation,
                    since: k.since.0,
                    name: k.name.clone(),
                },
            );
            if let (Some(g), Some(s)) = (k.kept_generation, &k.kept_spec) {
                e.seeded.insert((kind, k.uid.clone()), (g, s.clone()));
            }
        }
        e
    }

    /// Decide what is in effect for `current` (every object of the kinds the caller uses),
    /// given `check`: the caller's rules over a set of objects. The first resolution must
    /// see every object (an object it does not see loses its record).
    pub fn resolve(
        &mut self,
        current: &[T],
        now: Timestamp,
        check: impl Fn(&[T]) -> Findings,
    ) -> Outcome<T> {
        let first = std::mem::replace(&mut self.first, false);
        let mut slots: Vec<Slot<T>> = current.iter().map(|o| self.open(o, first)).collect();

        // 1. What was in effect (established versions, and the kept versions of edited
        //    objects) must pass on its own. It does, unless objects it relied on were
        //    deleted or the node changed; then the objects the check names step down
        //    (current → kept version → dropped), a round at a time, so this ends.
        loop {
            let found = check(&set(&slots, &[]));
            let mut changed = false;
            for s in slots.iter_mut().filter(|s| s.state != State::Dropped) {
                if let Some(why) = found.get(&s.id()) {
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

        // 2. Newcomers (new objects and edits) on top: all at once, else one by one in
        //    precedence order, in passes until one accepts nothing. A newcomer refused
        //    because of a version another newcomer then replaces gets another chance, so
        //    the outcome does not depend on the order in which edits were seen (a restart
        //    sees them all at once and decides the same).
        let mut newcomers: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].newcomer).collect();
        newcomers.sort_by_cached_key(|&i| precedence_key(slots[i].current.meta()));
        if !newcomers.is_empty() && check(&set(&slots, &newcomers)).is_empty() {
            for i in newcomers.drain(..) {
                slots[i].state = State::Current;
            }
        }
        let mut why: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        loop {
            why.clear();
            let before = newcomers.len();
            newcomers.retain(|&i| {
                let found = check(&set(&slots, &[i]));
                if found.is_empty() {
                    slots[i].state = State::Current;
                    return false;
                }
                let me = slots[i].id();
                let reasons = (found.into_iter())
                    .map(|((kind, name), w)| {
                        if (kind, &name) == (me.0, &me.1) {
                            w
                        } else {
                            format!("would make {kind} {name} invalid: {w}")
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
        self.close(slots, now)
    }

    /// Open the slot of one current object.
    fn open(&mut self, o: &T, first: bool) -> Slot<T> {
        let k = key(o);
        if let Some((g, spec)) = self.seeded.remove(&k) {
            if let Some(kept) = o.with_spec(g, &spec) {
                self.in_effect.insert(k.clone(), kept);
            }
        }
        if first && !self.in_effect.contains_key(&k) && !self.refused.contains_key(&k) {
            self.in_effect.insert(k.clone(), o.clone());
        }
        let prev = self.in_effect.get(&k);
        let newcomer = prev.is_none_or(|p| generation(p) != generation(o));
        let fallback = prev.filter(|p| generation(*p) != generation(o)).cloned();
        let state = match (newcomer, &fallback) {
            (false, _) => State::Current,
            (true, Some(_)) => State::Fallback,
            (true, None) => State::Dropped,
        };
        Slot {
            current: o.clone(),
            fallback,
            newcomer,
            state,
            why: Vec::new(),
        }
    }

    /// Remember the outcome of the slots; return the versions in effect and report the rest.
    fn close(&mut self, slots: Vec<Slot<T>>, now: Timestamp) -> Outcome<T> {
        let mut present = BTreeSet::new();
        let mut chosen = Vec::new();
        let mut problems = Vec::new();
        for s in slots {
            let k = key(&s.current);
            present.insert(k.clone());
            if s.state == State::Current {
                self.refused.remove(&k);
                self.in_effect.insert(k, s.current.clone());
                chosen.push(s.current);
                continue;
            }
            let name = object_ref(s.current.meta());
            let since = self.refused.get(&k).map_or(now, |r| r.since);
            self.refused.insert(
                k.clone(),
                Refused {
                    generation: generation(&s.current),
                    since,
                    name: name.clone(),
                },
            );
            let kept = match (s.state, &s.fallback) {
                (State::Fallback, Some(f)) => {
                    chosen.push(f.clone());
                    Some((generation(f), since))
                }
                _ => {
                    self.in_effect.remove(&k);
                    None
                }
            };
            problems.push(Problem {
                kind: s.current.kind(),
                name,
                generation: generation(&s.current),
                kept,
                errors: s.why.join("; "),
            });
        }
        self.in_effect.retain(|k, _| present.contains(k));
        self.refused.retain(|k, _| present.contains(k));
        self.seeded.retain(|k, _| present.contains(k));
        problems.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        Outcome { chosen, problems }
    }

    /// What to persist: every object whose current version is refused, sorted.
    pub fn record(&self) -> Vec<KeptVersion> {
        let mut out: Vec<KeptVersion> = (self.refused.iter())
            .map(|(k, r)| {
                let kept = self.in_effect.get(k);
                KeptVersion {
                    kind: k.0.to_string(),
                    name: r.name.clone(),
                    uid: k.1.clone(),
                    refused_generation: r.generation,
                    kept_generation: kept.map(generation),
                    kept_spec: kept.map(Versioned::spec),
                    since: Time(r.since),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.kind, &a.name, &a.uid).cmp(&(&b.kind, &b.name, &b.uid)));
        out
    }
}
