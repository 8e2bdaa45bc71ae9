use std::collections::BTreeSet;

use super::*;
use crate::{merge, NoSecrets};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn generation(c: &FRRConfiguration) -> i64 {
    c.metadata.generation.unwrap_or(0)
}
use serde_json::json;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// An object as the API server holds it.
fn cfg(
    name: &str,
    generation: i64,
    created: i64,
    spec: serde_json::Value,
) -> Arc<FRRConfiguration> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "FRRConfiguration",
            "metadata": {"name": name, "namespace": "frr-k8s-system", "uid": format!("uid-{name}"),
                         "generation": generation,
                         "creationTimestamp": Time(ts(created))},
            "spec": spec,
        }))
        .unwrap(),
    )
}

fn router(asn: u32, neighbor: &str, prefixes: &[&str]) -> serde_json::Value {
    json!({"bgp": {"routers": [{"asn": asn, "prefixes": prefixes,
        "neighbors": [{"address": neighbor, "asn": 64513,
                       "toAdvertise": {"allowed": {"mode": "all"}}}]}]}})
}

fn check(set: &[Arc<FRRConfiguration>]) -> Skipped {
    let refs: Vec<&FRRConfiguration> = set.iter().map(|c| c.as_ref()).collect();
    merge(&refs, &NoSecrets, "frr-k8s-system")
        .errors
        .iter()
        .map(|e| {
            let why: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
            (e.object.clone(), why.join("; "))
        })
        .collect()
}

/// (name, generation) of the chosen versions, sorted.
fn chosen(r: &Resolved) -> Vec<(String, i64)> {
    let mut v: Vec<_> = r
        .chosen
        .iter()
        .map(|c| (c.metadata.name.clone().unwrap(), generation(c)))
        .collect();
    v.sort();
    v
}

#[test]
fn an_older_object_edited_into_a_conflict_does_not_push_the_newer_one_out() {
    // The user's object is older than MetalLB's; both use ASN 64512 in the default VRF.
    let user = cfg("user", 1, 0, router(64512, "192.0.2.9", &[]));
    let metallb = cfg(
        "metallb-node1",
        1,
        10,
        router(64512, "192.0.2.1", &["198.18.0.1/32"]),
    );
    let mut v = Versions::default();
    let out = v.resolve(&[user.clone(), metallb.clone()], ts(1), check);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    // The user changes the ASN: by age the edit would win and drop MetalLB's object.
    let edit = cfg("user", 2, 0, router(64999, "192.0.2.9", &[]));
    let out = v.resolve(&[edit.clone(), metallb.clone()], ts(2), check);
    assert_eq!(
        chosen(&out),
        [("metallb-node1".into(), 1), ("user".into(), 1)]
    );
    assert_eq!(out.problems.len(), 1);
    assert!(
        out.problems[0].starts_with(
            "FRRConfiguration frr-k8s-system/user: keeping the last valid version (generation 1) since"
        ) && out.problems[0].contains("would make FRRConfiguration frr-k8s-system/metallb-node1 invalid"),
        "{:?}",
        out.problems
    );
    // A restart from the record makes the same choice.
    let mut again = Versions::seeded(&v.record());
    let out2 = again.resolve(&[edit.clone(), metallb.clone()], ts(3), check);
    assert_eq!(chosen(&out2), chosen(&out));
    assert_eq!(out2.problems, out.problems);
    // Without the record, the older object's edit would win: the record is what keeps it.
    let mut blank = Versions::default();
    let out3 = blank.resolve(&[edit.clone(), metallb.clone()], ts(3), check);
    assert_eq!(chosen(&out3), [("user".into(), 2)]);
    // MetalLB's object goes away: the edit takes effect.
    let out = v.resolve(std::slice::from_ref(&edit), ts(4), check);
    assert_eq!(chosen(&out), [("user".into(), 2)]);
    assert!(out.problems.is_empty());
    assert!(v.record().is_empty());
}

#[test]
fn an_invalid_edit_keeps_the_sessions_until_fixed() {
    let user = cfg("user", 1, 0, router(64512, "192.0.2.9", &["198.18.1.0/24"]));
    let mut v = Versions::default();
    v.resolve(std::slice::from_ref(&user), ts(1), check);
    let typo = cfg("user", 2, 0, router(64512, "192.0.2.9", &["198.18.1.0/40"]));
    let out = v.resolve(std::slice::from_ref(&typo), ts(2), check);
    assert_eq!(chosen(&out), [("user".into(), 1)]);
    assert!(out.problems[0].contains("keeping the last valid version (generation 1)"));
    let since = out.problems[0].clone();
    // Still invalid later: same `since`; after a restart too.
    let out = v.resolve(std::slice::from_ref(&typo), ts(30), check);
    assert_eq!(out.problems[0], since);
    let mut again = Versions::seeded(&v.record());
    let out = again.resolve(std::slice::from_ref(&typo), ts(40), check);
    assert_eq!(chosen(&out), [("user".into(), 1)]);
    assert_eq!(out.problems[0], since);
    // Fixed.
    let fixed = cfg("user", 3, 0, router(64512, "192.0.2.9", &["198.18.2.0/24"]));
    let out = again.resolve(std::slice::from_ref(&fixed), ts(50), check);
    assert_eq!(chosen(&out), [("user".into(), 3)]);
    assert!(out.problems.is_empty());
}

#[test]
fn a_new_conflicting_object_is_skipped_naming_what_it_conflicts_with() {
    let metallb = cfg(
        "metallb-node1",
        1,
        10,
        router(64512, "192.0.2.1", &["198.18.0.1/32"]),
    );
    let mut v = Versions::default();
    v.resolve(std::slice::from_ref(&metallb), ts(1), check);
    // Older by creationTimestamp (restored from a backup) and sorting first: still refused.
    let newcomer = cfg("a-conflict", 1, -100, router(64999, "192.0.2.9", &[]));
    let out = v.resolve(&[newcomer, metallb], ts(2), check);
    assert_eq!(chosen(&out), [("metallb-node1".into(), 1)]);
    assert!(
        out.problems[0].starts_with("FRRConfiguration frr-k8s-system/a-conflict: skipped: "),
        "{:?}",
        out.problems
    );
}

// ===== property: random edit sequences =====

use proptest::prelude::*;

/// Specs an object can be edited to: compatible, conflicting ASN, invalid.
fn variant(i: usize, v: usize) -> serde_json::Value {
    let neighbor = format!("192.0.2.{}", 10 + i);
    match v {
        0 => router(64512, &neighbor, &[]),
        1 => router(64512, &neighbor, &["198.18.0.0/24"]),
        2 => router(64999, &neighbor, &[]),
        _ => router(64512, &neighbor, &["198.18.0.0/40"]),
    }
}

#[derive(Clone, Debug)]
enum Step {
    Set(usize, usize),
    Delete(usize),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 0..4usize).prop_map(|(i, v)| Step::Set(i, v)),
        1 => (0..3usize).prop_map(Step::Delete),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the sequence: what is merged merges cleanly; an object whose current
    /// version is in effect keeps it while only other objects change; a restart from the
    /// record changes nothing.
    #[test]
    fn versions_in_effect_survive_any_sequence(steps in prop::collection::vec(step(), 1..40)) {
        let mut objects: BTreeMap<usize, Arc<FRRConfiguration>> = BTreeMap::new();
        let mut gens = [0i64; 3];
        let mut created = [0i64; 3];
        let mut v = Versions::default();
        let mut last: Vec<(String, i64)> = Vec::new();
        let mut pending: BTreeSet<String> = BTreeSet::new();
        for (t, s) in steps.into_iter().enumerate() {
            let t = t as i64;
            let mut touched = None;
            match s {
                Step::Set(i, var) => {
                    if !objects.contains_key(&i) {
                        created[i] = t;
                        gens[i] = 0;
                    }
                    gens[i] += 1;
                    objects.insert(i, cfg(&format!("o{i}"), gens[i], created[i], variant(i, var)));
                    touched = Some(format!("o{i}"));
                }
                Step::Delete(i) => {
                    objects.remove(&i);
                    touched = Some(format!("o{i}"));
                }
                Step::Restart => v = Versions::seeded(&v.record()),
            }
            let current: Vec<_> = objects.values().cloned().collect();
            let out = v.resolve(&current, ts(t), check);
            prop_assert!(check(&out.chosen).is_empty(), "{:?}", check(&out.chosen));
            let now = chosen(&out);
            for (name, g) in &last {
                if Some(name) == touched.as_ref() || pending.contains(name) {
                    continue;
                }
                prop_assert!(now.contains(&(name.clone(), *g)),
                    "{name} generation {g} dropped after {s:?}: now {now:?}");
            }
            let mut shadow = Versions::seeded(&v.record());
            prop_assert_eq!(chosen(&shadow.resolve(&current, ts(t), check)), now.clone());
            last = now;
            pending = out
                .problems
                .iter()
                .filter_map(|p| p.split_whitespace().nth(1))
                .map(|n| n.trim_start_matches("frr-k8s-system/").trim_end_matches(':').to_string())
                .collect();
        }
    }
}
