//! Which version of each MetalLB configuration object is in effect.
//!
//! A configuration mistake must never move a Service's IP or withdraw a route, and the
//! webhooks are not always in the path (install, upgrade, restore from backup,
//! `failurePolicy: Ignore`). So invalid objects are not treated as deleted:
//!
//! * **Invalid is not deleted.** An object whose current version fails validation (its own
//!   rules or a rule spanning objects) keeps its last version that was in effect, until it
//!   is fixed or deleted. Only an object that was never valid is skipped.
//! * **The established object wins.** In a conflict (overlapping pools, a duplicated
//!   community alias, incompatible peers, ...) the version already in effect ranks first;
//!   a version not in effect yet (a new object, or an edit) is accepted only if it adds no
//!   problem to anything, whichever object a rule reports the problem on. Among equals
//!   (after a restart without a record) the older object wins (creationTimestamp, then
//!   `namespace/name`, see [`super::config`]). The loser keeps its last valid version if
//!   it has one, else it is skipped.
//! * **The same choice after a restart.** What is in effect can only be derived from the
//!   objects for those that are in effect as they are. The exceptions (objects whose
//!   current version is refused, with the version kept instead) are the [`KeptVersion`]
//!   record, which each component persists in its ConfigurationState status and seeds
//!   itself from on start ([`Resolver::seeded`]). The record is empty when the
//!   configuration is valid, so it costs nothing in the normal case.
//!
//! [`Resolver::resolve`] is pure apart from the memory it carries from one call to the next.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::config::{precedence_key, ConfigObjects};
use super::{BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};
use crate::validation::{object_ref, FieldErrors, ObjectError};

/// One object whose current version is not in effect: what a component persists so that a
/// restart makes the same choices (see the module documentation).
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

/// A MetalLB configuration kind the resolver handles.
pub trait Versioned:
    Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + fmt::Debug
{
    const KIND: &'static str;
}

macro_rules! versioned {
    ($($t:ty => $k:literal),* $(,)?) => {
        $(impl Versioned for $t { const KIND: &'static str = $k; })*
    };
}
versioned!(
    IPAddressPool => "IPAddressPool",
    BGPPeer => "BGPPeer",
    BGPAdvertisement => "BGPAdvertisement",
    L2Advertisement => "L2Advertisement",
    BFDProfile => "BFDProfile",
    Community => "Community",
);

fn generation<K: Resource>(o: &K) -> i64 {
    o.meta().generation.unwrap_or(0)
}

fn uid<K: Resource>(o: &K) -> String {
    // Objects without a UID (tests, dry runs) are identified by name.
    o.meta()
        .uid
        .clone()
        .unwrap_or_else(|| format!("name:{}", object_ref(o.meta())))
}

/// `obj` with its spec (and generation) replaced by a kept version's.
fn with_spec<K: Versioned>(obj: &K, generation: i64, spec: &serde_json::Value) -> Option<K> {
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

/// What the resolver remembers of one kind between calls.
#[derive(Clone, Debug)]
struct Memory<K> {
    /// uid → the version in effect.
    in_effect: BTreeMap<String, K>,
    /// uid → the refused current version.
    refused: BTreeMap<String, Refused>,
    /// uid → kept version from a persisted record, materialised on the first resolve
    /// (the spec needs the object's current metadata around it).
    seeded: BTreeMap<String, (i64, serde_json::Value)>,
}

#[derive(Clone, Debug)]
struct Refused {
    generation: i64,
    since: Timestamp,
    name: String,
}

impl<K> Default for Memory<K> {
    fn default() -> Self {
        Memory {
            in_effect: BTreeMap::new(),
            refused: BTreeMap::new(),
            seeded: BTreeMap::new(),
        }
    }
}

impl<K: Versioned> Memory<K> {
    fn seed(&mut self, k: &KeptVersion) {
        self.refused.insert(
            k.uid.clone(),
            Refused {
                generation: k.refused_generation,
                since: k.since.0,
                name: k.name.clone(),
            },
        );
        if let (Some(g), Some(s)) = (k.kept_generation, &k.kept_spec) {
            self.seeded.insert(k.uid.clone(), (g, s.clone()));
        }
    }

    /// Open the slot of one current object.
    fn open(&mut self, o: &K, first: bool) -> Slot<K> {
        let id = uid(o);
        let gen = generation(o);
        if let Some((g, spec)) = self.seeded.remove(&id) {
            if let Some(k) = with_spec(o, g, &spec) {
                self.in_effect.insert(id.clone(), k);
            }
        }
        if first && !self.in_effect.contains_key(&id) && !self.refused.contains_key(&id) {
            // Restart: what is not recorded as refused was in effect as it is.
            self.in_effect.insert(id.clone(), o.clone());
        }
        let prev = self.in_effect.get(&id);
        Slot::new(
            o.clone(),
            prev.filter(|p| generation(*p) != gen).cloned(),
            prev.is_none_or(|p| generation(p) != gen),
        )
    }

    /// Remember the outcome of the slots; return the versions in effect and report the rest.
    fn close(
        &mut self,
        slots: Vec<Slot<K>>,
        now: Timestamp,
        problems: &mut Vec<Problem>,
    ) -> Vec<K> {
        let mut present = BTreeSet::new();
        let mut out = Vec::new();
        for s in slots {
            let id = uid(&s.current);
            let name = object_ref(s.current.meta());
            present.insert(id.clone());
            if s.state == State::Current {
                self.refused.remove(&id);
                self.in_effect.insert(id, s.current.clone());
                out.push(s.current);
                continue;
            }
            let since = match self.refused.get(&id) {
                Some(r) => r.since,
                None => now,
            };
            self.refused.insert(
                id.clone(),
                Refused {
                    generation: generation(&s.current),
                    since,
                    name: name.clone(),
                },
            );
            let kept = if s.state == State::Dropped {
                self.in_effect.remove(&id);
                None
            } else {
                let k = s.fallback.clone().expect("use_fallback implies a fallback");
                let g = generation(&k);
                out.push(k);
                Some((g, since))
            };
            problems.push(Problem {
                kind: K::KIND,
                name,
                generation: generation(&s.current),
                kept,
                errors: s.refused,
            });
        }
        self.in_effect.retain(|k, _| present.contains(k));
        self.refused.retain(|k, _| present.contains(k));
        self.seeded.retain(|k, _| present.contains(k));
        out
    }

    fn record(&self, out: &mut Vec<KeptVersion>) {
        for (id, r) in &self.refused {
            let kept = self.in_effect.get(id);
            out.push(KeptVersion {
                kind: K::KIND.to_string(),
                name: r.name.clone(),
                uid: id.clone(),
                refused_generation: r.generation,
                kept_generation: kept.map(generation),
                kept_spec: kept.map(spec_of),
                since: Time(r.since),
            });
        }
    }
}

/// One object during a resolution.
#[derive(Clone, Debug)]
struct Slot<K> {
    current: K,
    /// The earlier version that was in effect, when it differs from `current`.
    fallback: Option<K>,
    /// The current version has not been in effect yet: it is tried on top of the rest.
    newcomer: bool,
    state: State,
    /// Why the current version is refused.
    refused: FieldErrors,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Current,
    Fallback,
    Dropped,
}

impl<K: Versioned> Slot<K> {
    fn new(current: K, fallback: Option<K>, newcomer: bool) -> Self {
        // A newcomer starts from what was in effect before it (if anything).
        let state = match (newcomer, &fallback) {
            (false, _) => State::Current,
            (true, Some(_)) => State::Fallback,
            (true, None) => State::Dropped,
        };
        Slot {
            current,
            fallback,
            newcomer,
            state,
            refused: FieldErrors::new(),
        }
    }

    fn chosen(&self) -> Option<&K> {
        match self.state {
            State::Current => Some(&self.current),
            State::Fallback => self.fallback.as_ref(),
            State::Dropped => None,
        }
    }

    fn name(&self) -> String {
        object_ref(self.current.meta())
    }
}

/// The slots of every kind.
#[derive(Default)]
struct Slots {
    pools: Vec<Slot<IPAddressPool>>,
    peers: Vec<Slot<BGPPeer>>,
    bgp_ads: Vec<Slot<BGPAdvertisement>>,
    l2_ads: Vec<Slot<L2Advertisement>>,
    bfd: Vec<Slot<BFDProfile>>,
    communities: Vec<Slot<Community>>,
}

/// Identifies one slot: kind and index.
type SlotId = (&'static str, usize);

/// Applies `$body` to each kind's slot vector, bound to `$v`.
macro_rules! each {
    ($slots:expr, $v:ident => $body:expr) => {{
        {
            let $v = &mut $slots.pools;
            $body;
        }
        {
            let $v = &mut $slots.peers;
            $body;
        }
        {
            let $v = &mut $slots.bgp_ads;
            $body;
        }
        {
            let $v = &mut $slots.l2_ads;
            $body;
        }
        {
            let $v = &mut $slots.bfd;
            $body;
        }
        {
            let $v = &mut $slots.communities;
            $body;
        }
    }};
}

fn chosen_all<K: Versioned>(slots: &[Slot<K>], trial: &[SlotId]) -> Vec<K> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            if trial.contains(&(K::KIND, i)) {
                Some(&s.current)
            } else {
                s.chosen()
            }
        })
        .cloned()
        .collect()
}

/// The slot named by an error, if any.
fn find<K: Versioned>(slots: &[Slot<K>], e: &ObjectError) -> Option<usize> {
    if e.kind != K::KIND {
        return None;
    }
    slots.iter().position(|s| s.name() == e.name)
}

impl Slots {
    /// The chosen versions, with the current version of the `trial` slots instead.
    fn set(&self, trial: &[SlotId], nodes: &[super::config::NodeLabels]) -> ConfigObjects {
        ConfigObjects {
            pools: chosen_all(&self.pools, trial),
            peers: chosen_all(&self.peers, trial),
            bgp_advertisements: chosen_all(&self.bgp_ads, trial),
            l2_advertisements: chosen_all(&self.l2_ads, trial),
            bfd_profiles: chosen_all(&self.bfd, trial),
            communities: chosen_all(&self.communities, trial),
            nodes: nodes.to_vec(),
        }
    }

    fn locate(&self, e: &ObjectError) -> Option<SlotId> {
        let kind = e.kind;
        find(&self.pools, e)
            .or_else(|| find(&self.peers, e))
            .or_else(|| find(&self.bgp_ads, e))
            .or_else(|| find(&self.l2_ads, e))
            .or_else(|| find(&self.bfd, e))
            .or_else(|| find(&self.communities, e))
            .map(|i| (kind, i))
    }

    /// Newcomers in precedence order (creationTimestamp, then name).
    fn newcomers(&self) -> Vec<SlotId> {
        let mut out: Vec<(_, SlotId)> = Vec::new();
        fn add<K: Versioned>(v: &[Slot<K>], out: &mut Vec<(super::config::Key, SlotId)>) {
            for (i, s) in v.iter().enumerate().filter(|(_, s)| s.newcomer) {
                out.push((precedence_key(s.current.meta()), (K::KIND, i)));
            }
        }
        add(&self.pools, &mut out);
        add(&self.peers, &mut out);
        add(&self.bgp_ads, &mut out);
        add(&self.l2_ads, &mut out);
        add(&self.bfd, &mut out);
        add(&self.communities, &mut out);
        out.sort();
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// Step a slot down (current → kept version → dropped) because of `errors`.
    fn demote(&mut self, id: SlotId, errors: &FieldErrors) {
        each!(self, v => {
            if let Some(s) = v.get_mut(id.1).filter(|s| s.current_kind() == id.0) {
                s.refused.0.extend(errors.iter().cloned());
                s.state = match (s.state, s.fallback.is_some()) {
                    (State::Current, true) => State::Fallback,
                    _ => State::Dropped,
                };
            }
        });
    }

    /// Whether [`Slots::demote`] would change the slot.
    fn demotable(&self, id: SlotId) -> bool {
        let mut out = false;
        let slots = self;
        macro_rules! check {
            ($v:expr) => {
                if let Some(s) = $v.get(id.1).filter(|s| s.current_kind() == id.0) {
                    out |= s.state != State::Dropped;
                }
            };
        }
        check!(slots.pools);
        check!(slots.peers);
        check!(slots.bgp_ads);
        check!(slots.l2_ads);
        check!(slots.bfd);
        check!(slots.communities);
        out
    }

    /// Take the current version of a newcomer.
    fn accept(&mut self, id: SlotId) {
        each!(self, v => {
            if let Some(s) = v.get_mut(id.1).filter(|s| s.current_kind() == id.0) {
                s.state = State::Current;
            }
        });
    }

    /// Why a newcomer is refused, from the errors of the set it was tried in: its own, and
    /// what it would break elsewhere.
    fn explain(&self, id: SlotId, errors: Vec<ObjectError>) -> FieldErrors {
        let mut why = FieldErrors::new();
        for e in errors {
            if self.locate(&e) == Some(id) {
                why.0.extend(e.errors.iter().cloned());
            } else {
                for f in e.errors.iter() {
                    why.problem(
                        &crate::validation::FieldPath::new("spec"),
                        format!("would make {} {} invalid: {f}", e.kind, e.name),
                    );
                }
            }
        }
        why
    }

    /// Record why a newcomer is refused (its state stays what was in effect before).
    fn refuse(&mut self, id: SlotId, errors: FieldErrors) {
        each!(self, v => {
            if let Some(s) = v.get_mut(id.1).filter(|s| s.current_kind() == id.0) {
                s.refused.0.extend(errors.iter().cloned());
            }
        });
    }
}

impl<K: Versioned> Slot<K> {
    fn current_kind(&self) -> &'static str {
        K::KIND
    }
}

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
    pub errors: FieldErrors,
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

/// Decides which version of every object is in effect, remembering the previous decision.
#[derive(Clone, Debug)]
pub struct Resolver {
    pools: Memory<IPAddressPool>,
    peers: Memory<BGPPeer>,
    bgp_ads: Memory<BGPAdvertisement>,
    l2_ads: Memory<L2Advertisement>,
    bfd: Memory<BFDProfile>,
    communities: Memory<Community>,
    /// No resolution yet: every object without a record is taken as in effect as it is
    /// (what a restart finds is what was running, except for the recorded objects).
    first: bool,
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new()
    }
}

impl Resolver {
    /// A resolver for a component starting with no record.
    pub fn new() -> Self {
        Resolver {
            pools: Memory::default(),
            peers: Memory::default(),
            bgp_ads: Memory::default(),
            l2_ads: Memory::default(),
            bfd: Memory::default(),
            communities: Memory::default(),
            first: true,
        }
    }

    /// A resolver continuing from a persisted record (a restart).
    pub fn seeded(record: &[KeptVersion]) -> Self {
        let mut r = Resolver::new();
        for k in record {
            match k.kind.as_str() {
                IPAddressPool::KIND => r.pools.seed(k),
                BGPPeer::KIND => r.peers.seed(k),
                BGPAdvertisement::KIND => r.bgp_ads.seed(k),
                L2Advertisement::KIND => r.l2_ads.seed(k),
                BFDProfile::KIND => r.bfd.seed(k),
                Community::KIND => r.communities.seed(k),
                _ => {}
            }
        }
        r
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
        let first = std::mem::replace(&mut self.first, false);
        let mut slots = Slots {
            pools: current
                .pools
                .iter()
                .map(|o| self.pools.open(o, first))
                .collect(),
            peers: current
                .peers
                .iter()
                .map(|o| self.peers.open(o, first))
                .collect(),
            bgp_ads: (current.bgp_advertisements.iter())
                .map(|o| self.bgp_ads.open(o, first))
                .collect(),
            l2_ads: (current.l2_advertisements.iter())
                .map(|o| self.l2_ads.open(o, first))
                .collect(),
            bfd: (current.bfd_profiles.iter())
                .map(|o| self.bfd.open(o, first))
                .collect(),
            communities: (current.communities.iter())
                .map(|o| self.communities.open(o, first))
                .collect(),
        };

        // 1. What was in effect (established versions, and the kept versions of edited
        //    objects) must be valid on its own. It is, unless objects it relied on were
        //    deleted or the node changed; then the later object in precedence order steps
        //    down, a round at a time (each round moves a slot one step, so this ends).
        loop {
            let errors = validate(&slots.set(&[], &current.nodes));
            let ids: Vec<(SlotId, &FieldErrors)> = errors
                .iter()
                .filter_map(|e| slots.locate(e).map(|id| (id, &e.errors)))
                .collect();
            // An error naming a slot that is already dropped cannot be fixed by another
            // round (a rule reporting on an object it was not given): stop there rather
            // than loop.
            if !ids.iter().any(|(id, _)| slots.demotable(*id)) {
                break;
            }
            for (id, errs) in ids {
                slots.demote(id, errs);
            }
        }

        // 2. Newcomers (new objects and edits) are tried on top, all at once and, if that
        //    fails, one by one in precedence order: a newcomer is accepted only if it adds
        //    no problem to anything, whichever object a rule reports the problem on. So an
        //    established object never loses to a newcomer.
        let mut newcomers = slots.newcomers();
        if !newcomers.is_empty() {
            if validate(&slots.set(&newcomers, &current.nodes)).is_empty() {
                for id in newcomers {
                    slots.accept(id);
                }
            } else {
                // Passes until one accepts nothing: a newcomer refused because of a
                // version that another newcomer then replaces gets another chance, so the
                // outcome does not depend on the order in which edits were seen (a
                // restart, which sees them all at once, decides the same).
                let mut why: BTreeMap<SlotId, FieldErrors> = BTreeMap::new();
                loop {
                    why.clear();
                    let before = newcomers.len();
                    newcomers.retain(|&id| {
                        let errors = validate(&slots.set(&[id], &current.nodes));
                        if errors.is_empty() {
                            slots.accept(id);
                            return false;
                        }
                        why.insert(id, slots.explain(id, errors));
                        true
                    });
                    if newcomers.len() == before {
                        break;
                    }
                }
                for (id, errors) in why {
                    slots.refuse(id, errors);
                }
            }
        }

        let mut problems = Vec::new();
        let effective = ConfigObjects {
            pools: self.pools.close(slots.pools, now, &mut problems),
            peers: self.peers.close(slots.peers, now, &mut problems),
            bgp_advertisements: self.bgp_ads.close(slots.bgp_ads, now, &mut problems),
            l2_advertisements: self.l2_ads.close(slots.l2_ads, now, &mut problems),
            bfd_profiles: self.bfd.close(slots.bfd, now, &mut problems),
            communities: self
                .communities
                .close(slots.communities, now, &mut problems),
            nodes: current.nodes.clone(),
        };
        problems.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        Resolution {
            effective,
            problems,
        }
    }

    /// What to persist: every object whose current version is refused, sorted.
    pub fn record(&self) -> Vec<KeptVersion> {
        let mut out = Vec::new();
        self.pools.record(&mut out);
        self.peers.record(&mut out);
        self.bgp_ads.record(&mut out);
        self.l2_ads.record(&mut out);
        self.bfd.record(&mut out);
        self.communities.record(&mut out);
        out.sort_by(|a, b| (&a.kind, &a.name, &a.uid).cmp(&(&b.kind, &b.name, &b.uid)));
        out
    }
}

#[cfg(test)]
mod tests;
