//! What only the real API server proves about the running stack: the objects the speakers
//! write are owned by their pods, and the real garbage collector (kube-controller-manager)
//! removes them when the pod goes, as in a cluster.
//!
//! Needs root, FRR and the control-plane assets (`METALLB_K8S_ASSETS`); skips loudly
//! without them outside CI.

use std::time::Duration;

use metallb_e2e::objects::{host_prefix, METALLB_NS};
use metallb_e2e::{require_full_stack, ApiKind, Lab, LabOptions, Stack};
use metallb_netlab::wait_until;
use metallb_testkit::envtest;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// The uids of `obj`'s owners.
fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["uid"].as_str().map(str::to_string))
        .collect()
}

/// The objects of `kind` in `ns` (or cluster-wide) whose `label` is `value`.
fn labelled(
    lab: &Lab,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
    label: &str,
    value: &str,
) -> Vec<Value> {
    lab.list(api_version, kind, ns)
        .unwrap()
        .into_iter()
        .filter(|o| o["metadata"]["labels"][label].as_str() == Some(value))
        .collect()
}

#[test]
fn speaker_objects_are_garbage_collected_with_the_pod() {
    let test = "speaker_objects_are_garbage_collected_with_the_pod";
    if !require_full_stack(test) {
        return;
    }
    if let Err(why) = envtest::assets().expect("control-plane assets") {
        envtest::skip_or_fail(test, &why);
        return;
    }
    let mut o = LabOptions::new("gc");
    o.stack = Stack::Full;
    o.api = ApiKind::Real;
    let mut lab = Lab::start(o).expect("lab");
    lab.apply_seed_config("198.18.0.0/24").unwrap();
    lab.create_service("web", false, &lab.endpoints_everywhere(1))
        .unwrap();
    let ip = lab.wait_service_ips("web", 1, T).unwrap()[0].clone();
    lab.wait_ext_nexthops(&host_prefix(&ip), &lab.all_node_v4(), T)
        .unwrap();

    let (pod_name, pod_ns) = lab.pod_of(lab.node(1));
    let pod = lab
        .get("v1", "Pod", Some(pod_ns), &pod_name)
        .unwrap()
        .expect("speaker pod");
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let node = lab.node(1).name.clone();

    // What speaker1 wrote, each owned by its pod.
    let mut owned = Vec::new();
    wait_until(
        "speaker1's ServiceBGPStatus and ConfigurationState, owned by its pod",
        T,
        || {
            let statuses = labelled(
                &lab,
                "metallb.io/v1beta1",
                "ServiceBGPStatus",
                None,
                "metallb.io/node",
                &node,
            );
            let state = lab
                .get(
                    "metallb.io/v1beta1",
                    "ConfigurationState",
                    Some(METALLB_NS),
                    &format!("speaker-{node}"),
                )
                .unwrap();
            let all: Vec<Value> = statuses.into_iter().chain(state).collect();
            let ok = all.len() >= 2 && all.iter().all(|o| owner_uids(o) == [pod_uid.clone()]);
            if ok {
                owned = all;
            }
            ok
        },
    )
    .unwrap();
    let names: Vec<(String, String)> = owned
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    println!("owned by {pod_name}: {names:?}");

    // The speaker dies without cleaning up; its pod is deleted (a DaemonSet rollout or a
    // node drain does that): the garbage collector removes what the pod owned.
    lab.crash_speaker(1).unwrap();
    lab.delete_pod(pod_ns, &pod_name).unwrap();
    wait_until(
        "the garbage collector to remove speaker1's objects",
        T,
        || {
            owned.iter().all(|o| {
                let ns = o["metadata"]["namespace"].as_str();
                lab.get(
                    o["apiVersion"].as_str().unwrap(),
                    o["kind"].as_str().unwrap(),
                    ns,
                    o["metadata"]["name"].as_str().unwrap(),
                )
                .unwrap()
                .is_none()
            })
        },
    )
    .unwrap();
    // speaker2's objects are untouched.
    let node2 = lab.node(2).name.clone();
    assert!(lab
        .get(
            "metallb.io/v1beta1",
            "ConfigurationState",
            Some(METALLB_NS),
            &format!("speaker-{node2}")
        )
        .unwrap()
        .is_some());
}
