//! Golden files: recorded cluster states (`tests/golden/<case>/input.yaml`, a multi-document
//! YAML of Nodes, Services, EndpointSlices and MetalLB objects) and, for every Node in
//! them, the `FRRConfiguration` the speaker writes (`frrconfiguration.yaml`) and its
//! per-Service decisions (`announcements.yaml`).
//!
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p metallb-speaker --test golden`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use metallb_api::frrk8s::FRRConfiguration;
use metallb_speaker::bgp::{frrconfig, ClusterState, FrrTarget, NodeAnnouncer, SpeakerOptions};
use serde::Deserialize;
use serde_json::{json, Value};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn load(path: &Path) -> ClusterState {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut state = ClusterState::default();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let v =
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{} doc {i}: {e}", path.display()));
        if v.is_null() {
            continue;
        }
        state
            .push_json(i, v, false)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    state
}

/// A readable summary of one node's decisions.
fn summary(a: &NodeAnnouncer) -> Value {
    let ann = a.announcements();
    let services: BTreeMap<String, Value> = ann
        .services
        .iter()
        .map(|(k, s)| {
            let v = match &s.reason {
                Some(r) => json!({ "reason": r.to_string() }),
                None => {
                    let ips: BTreeMap<String, Value> = s
                        .ips
                        .iter()
                        .map(|ip| {
                            let adverts: Vec<Value> = ip
                                .adverts
                                .iter()
                                .map(|ad| {
                                    json!({
                                        "advertisement": &*ad.advertisement,
                                        "prefix": &*ad.prefix_text,
                                        "peers": ad.peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                                        "localPref": ad.local_pref,
                                        "communities": ad.communities.iter().map(frrconfig::community_text).collect::<Vec<_>>(),
                                    })
                                })
                                .collect();
                            (ip.ip.to_string(), json!({ "pool": &*ip.pool, "adverts": adverts }))
                        })
                        .collect();
                    json!({ "announced": true, "ips": ips, "statusPeers": s.peers() })
                }
            };
            (k.to_string(), v)
        })
        .collect();
    json!({
        "node": a.config().node.name,
        "sessions": a.config().sessions.iter().map(|s| s.name.to_string()).collect::<Vec<_>>(),
        "issues": a.config().issues.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "localPrefConflicts": ann.routes.local_pref_conflicts().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "services": services,
    })
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs (rerun with UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(e) => failures.push(format!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )),
    }
}

#[test]
fn golden_cases() {
    let target = FrrTarget {
        frr_namespace: "metallb-system".into(),
        secrets_namespace: "metallb-system".into(),
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "golden cases missing");
    let mut failures = Vec::new();
    for case in cases {
        let state = load(&case.join("input.yaml"));
        let mut nodes: Vec<String> = state
            .nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        nodes.sort();
        let mut configs = Vec::new();
        let mut summaries = Vec::new();
        for n in &nodes {
            let mut a = NodeAnnouncer::from_cluster(&state, n, &SpeakerOptions::default())
                .expect("node present");
            let c = a.frr_configuration(&target).clone();
            if let Err(e) = c.validate() {
                failures.push(format!(
                    "{}: {n}: invalid FRRConfiguration: {e}",
                    case.display()
                ));
            }
            let text = serde_yaml::to_string(&c).expect("serialisable");
            let back: FRRConfiguration = serde_yaml::from_str(&text).expect("round trip");
            assert_eq!(back, c, "{}: round trip", case.display());
            configs.push(text);
            summaries.push(serde_yaml::to_string(&summary(&a)).expect("serialisable"));
        }
        check(
            &case.join("frrconfiguration.yaml"),
            &configs.join("---\n"),
            &mut failures,
        );
        check(
            &case.join("announcements.yaml"),
            &summaries.join("---\n"),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
