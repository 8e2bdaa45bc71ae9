use super::*;
use crate::metallb::config::ConfigObjects;
use crate::metallb::IPAddressPoolSpec;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use proptest::prelude::*;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// A pool as the API server would hold it: uid, generation and creation time set.
fn pool(name: &str, addrs: &[&str], generation: i64, created: i64) -> IPAddressPool {
    let mut p = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
            auto_assign: None,
            avoid_buggy_ips: None,
            service_allocation: None,
        },
    );
    p.metadata.namespace = Some("metallb-system".into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.metadata.generation = Some(generation);
    p.metadata.creation_timestamp = Some(Time(ts(created)));
    p
}

fn pools(items: Vec<IPAddressPool>) -> ConfigObjects {
    ConfigObjects {
        pools: items,
        ..Default::default()
    }
}

fn effective(r: &Resolution) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<_> = r
        .effective
        .pools
        .iter()
        .map(|p| (p.name_any(), p.spec.addresses.clone()))
        .collect();
    v.sort();
    v
}

fn all(c: &ConfigObjects) -> Vec<ObjectError> {
    c.validate()
}

#[test]
fn a_new_overlapping_pool_is_refused_and_the_established_one_keeps_serving() {
    let mut r = Resolver::new();
    let seed = pool("seed", &["198.18.0.0/24"], 1, 0);
    let out = r.resolve(&pools(vec![seed.clone()]), ts(1), all);
    assert!(out.problems.is_empty());
    // The newcomer sorts *before* the established pool by name, and is older by
    // creationTimestamp (restored from a backup): it still loses.
    let overlap = pool("a-overlap", &["198.18.0.128/25"], 1, -100);
    let out = r.resolve(&pools(vec![seed.clone(), overlap.clone()]), ts(2), all);
    assert_eq!(
        effective(&out),
        [("seed".to_string(), vec!["198.18.0.0/24".to_string()])]
    );
    let msg = out.summary().unwrap();
    assert!(
        msg.starts_with("IPAddressPool metallb-system/a-overlap: skipped: ")
            && msg.contains("metallb-system/seed"),
        "{msg}"
    );
    // A restart from the record makes the same choice.
    let mut again = Resolver::seeded(&r.record());
    let out2 = again.resolve(&pools(vec![overlap, seed]), ts(3), all);
    assert_eq!(effective(&out2), effective(&out));
    assert_eq!(out2.summary(), out.summary());
}

#[test]
fn an_invalid_edit_keeps_the_last_valid_version_until_fixed_or_deleted() {
    let mut r = Resolver::new();
    r.resolve(
        &pools(vec![pool("p", &["198.18.0.0/24"], 1, 0)]),
        ts(1),
        all,
    );
    let broken = pool("p", &["198.18.0.0/33"], 2, 0);
    let out = r.resolve(&pools(vec![broken.clone()]), ts(2), all);
    assert_eq!(
        effective(&out),
        [("p".to_string(), vec!["198.18.0.0/24".to_string()])]
    );
    let msg = out.summary().unwrap();
    assert!(
        msg.contains("keeping the last valid version (generation 1) since"),
        "{msg}"
    );
    let record = r.record();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].refused_generation, 2);
    assert_eq!(record[0].kept_generation, Some(1));

    // Restarted with the object still broken: the kept version is still in effect, and
    // "since" is the original time.
    let mut again = Resolver::seeded(&record);
    let out2 = again.resolve(&pools(vec![broken.clone()]), ts(50), all);
    assert_eq!(effective(&out2), effective(&out));
    assert_eq!(out2.summary(), out.summary());
    assert_eq!(again.record(), record);

    // Broken again differently: still the generation-1 version, same since.
    let broken3 = pool("p", &["nonsense"], 3, 0);
    let out3 = again.resolve(&pools(vec![broken3]), ts(60), all);
    assert_eq!(effective(&out3), effective(&out));
    assert_eq!(again.record()[0].since, record[0].since);

    // Fixed: the new version is in effect, nothing recorded.
    let fixed = pool("p", &["198.18.1.0/24"], 4, 0);
    let out4 = again.resolve(&pools(vec![fixed]), ts(70), all);
    assert_eq!(
        effective(&out4),
        [("p".to_string(), vec!["198.18.1.0/24".to_string()])]
    );
    assert!(out4.problems.is_empty() && again.record().is_empty());

    // Deleted while broken: gone, nothing recorded.
    again.resolve(&pools(vec![pool("p", &["x"], 5, 0)]), ts(80), all);
    let out5 = again.resolve(&pools(vec![]), ts(90), all);
    assert!(out5.effective.pools.is_empty() && again.record().is_empty());
}

#[test]
fn an_older_object_edited_into_a_conflict_loses_to_the_newer_one_in_effect() {
    let mut r = Resolver::new();
    let old = pool("old", &["198.18.0.0/24"], 1, 0);
    let new = pool("new", &["198.18.1.0/24"], 1, 10);
    r.resolve(&pools(vec![old, new.clone()]), ts(20), all);
    let widened = pool("old", &["198.18.0.0/23"], 2, 0);
    let out = r.resolve(&pools(vec![widened.clone(), new.clone()]), ts(30), all);
    assert_eq!(
        effective(&out),
        [
            ("new".to_string(), vec!["198.18.1.0/24".to_string()]),
            ("old".to_string(), vec!["198.18.0.0/24".to_string()]),
        ]
    );
    let mut again = Resolver::seeded(&r.record());
    let out2 = again.resolve(&pools(vec![new, widened]), ts(40), all);
    assert_eq!(effective(&out2), effective(&out));
}

#[test]
fn a_never_valid_object_edited_into_a_conflict_stays_out_after_a_restart() {
    let mut r = Resolver::new();
    let old = pool("old", &["bad"], 1, 0);
    let new = pool("new", &["198.18.1.0/24"], 1, 10);
    r.resolve(&pools(vec![old, new.clone()]), ts(20), all);
    let conflicting = pool("old", &["198.18.1.0/25"], 2, 0);
    let out = r.resolve(&pools(vec![conflicting.clone(), new.clone()]), ts(30), all);
    assert_eq!(
        effective(&out),
        [("new".to_string(), vec!["198.18.1.0/24".to_string()])]
    );
    let mut again = Resolver::seeded(&r.record());
    let out2 = again.resolve(&pools(vec![conflicting, new]), ts(40), all);
    assert_eq!(effective(&out2), effective(&out));
}

#[test]
fn a_new_pool_that_would_break_an_established_advertisement_is_refused() {
    // The aggregation rule reports on the advertisement, yet the newcomer is the pool.
    let ad: BGPAdvertisement = serde_json::from_value(serde_json::json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": "agg", "namespace": "metallb-system", "uid": "uid-agg",
                     "generation": 1, "creationTimestamp": "2027-01-15T08:00:00Z"},
        "spec": {"aggregationLength": 24}
    }))
    .unwrap();
    let mut cfg = pools(vec![pool("a", &["198.18.0.0/24"], 1, 0)]);
    cfg.bgp_advertisements = vec![ad];
    let mut r = Resolver::new();
    assert!(r.resolve(&cfg, ts(1), all).problems.is_empty());
    // A /26 is more specific than the advertisement's aggregation length (24).
    cfg.pools.push(pool("narrow", &["198.18.8.0/26"], 1, 5));
    let out = r.resolve(&cfg, ts(2), all);
    assert_eq!(out.effective.bgp_advertisements.len(), 1);
    assert_eq!(
        effective(&out),
        [("a".to_string(), vec!["198.18.0.0/24".to_string()])]
    );
    let msg = out.summary().unwrap();
    assert!(
        msg.starts_with("IPAddressPool metallb-system/narrow: skipped: ")
            && msg.contains("would make BGPAdvertisement metallb-system/agg invalid"),
        "{msg}"
    );
}

// ===== property: random edit sequences =====

/// Pools p0..p3 over a few /24 and /25 blocks, some malformed.
const CHOICES: &[&str] = &[
    "198.18.0.0/24",
    "198.18.0.128/25",
    "198.18.1.0/24",
    "198.18.1.0/25",
    "198.18.2.0/24",
    "198.18.0.0/23",
    "not-a-cidr",
    "198.18.3.0/33",
];

#[derive(Clone, Debug)]
enum Step {
    /// Create or edit pool `i` to `CHOICES[c]`.
    Set(usize, usize),
    Delete(usize),
    /// Restart the component: a resolver seeded from the record.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..4usize, 0..CHOICES.len()).prop_map(|(i, c)| Step::Set(i, c)),
        1 => (0..4usize).prop_map(Step::Delete),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the sequence: the set in effect is valid; an object whose current version
    /// is in effect stays in effect (same spec) unless it is edited or deleted; and a
    /// restart changes nothing.
    #[test]
    fn established_versions_survive_any_sequence(steps in prop::collection::vec(step(), 1..40)) {
        let mut objects: BTreeMap<usize, IPAddressPool> = BTreeMap::new();
        let mut generation = [0i64; 4];
        let mut created = [0i64; 4];
        let mut r = Resolver::new();
        let mut last: Vec<(String, Vec<String>)> = Vec::new();
        // Objects with a refused edit pending: that edit may take effect when what it
        // conflicted with changes, so they are not "untouched".
        let mut pending: BTreeSet<String> = BTreeSet::new();
        for (t, s) in steps.into_iter().enumerate() {
            let t = t as i64;
            let mut touched = None;
            match s {
                Step::Set(i, c) => {
                    if !objects.contains_key(&i) {
                        created[i] = t;
                        generation[i] = 0;
                    }
                    generation[i] += 1;
                    objects.insert(i, pool(&format!("p{i}"), &[CHOICES[c]], generation[i], created[i]));
                    touched = Some(format!("p{i}"));
                }
                Step::Delete(i) => {
                    objects.remove(&i);
                    touched = Some(format!("p{i}"));
                }
                Step::Restart => {
                    r = Resolver::seeded(&r.record());
                }
            }
            let cfg = pools(objects.values().cloned().collect());
            let out = r.resolve(&cfg, ts(t), all);
            // Valid as a whole.
            prop_assert!(out.effective.validate().is_empty(), "{:?}", out.effective.validate());
            let now = effective(&out);
            // Untouched objects keep exactly what they had in effect (a pool only ever
            // loses to an edit of another pool if that edit is refused).
            for (name, spec) in &last {
                if Some(name) == touched.as_ref() || pending.contains(name) {
                    continue;
                }
                prop_assert!(now.contains(&(name.clone(), spec.clone())),
                    "{name} {spec:?} dropped after {s:?}: now {now:?}");
            }
            // An untouched refused object stays refused (nothing it did changed).
            // A restart is invisible: a fresh resolver from the record agrees.
            let mut shadow = Resolver::seeded(&r.record());
            let again = shadow.resolve(&cfg, ts(t), all);
            prop_assert_eq!(effective(&again), now.clone());
            last = now;
            pending = out
                .problems
                .iter()
                .map(|p| p.name.trim_start_matches("metallb-system/").to_string())
                .collect();
        }
    }
}
