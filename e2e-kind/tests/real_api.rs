//! What only the real API server proves about the running stack: the objects the product
//! writes are owned by the pod of the process that wrote them, and the real garbage
//! collector (kube-controller-manager) removes them when that pod goes, as in a cluster:
//! the speakers' ServiceBGPStatus and ConfigurationState, the controller's
//! ConfigurationState, frr-k8s's BGPSessionState.
//!
//! Needs root, FRR and the control-plane assets (`METALLB_K8S_ASSETS`); skips loudly
//! without them outside CI.

use std::time::Duration;

use metallb_e2e::lab::CONTROLLER_POD;
use metallb_e2e::objects::{frr_configuration, host_prefix, FRRK8S_NS, METALLB_NS};
use metallb_e2e::{require_full_stack, require_lab, ApiKind, Lab, LabOptions, Stack};
use metallb_netlab::{wait_until, wait_until_some};
use metallb_testkit::envtest;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

fn real_lab(test: &str, name: &str, stack: Stack) -> Option<Lab> {
    if let Err(why) = envtest::assets().expect("control-plane assets") {
        envtest::skip_or_fail(test, &why);
        return None;
    }
    let mut o = LabOptions::new(name);
    o.stack = stack;
    o.api = ApiKind::Real;
    Some(Lab::start(o).expect("lab"))
}

/// The uids of `obj`'s owners.
fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["uid"].as_str().map(str::to_string))
        .collect()
}

/// The objects of `kind` (all namespaces) whose `label` is `value`.
fn labelled(lab: &Lab, api_version: &str, kind: &str, label: &str, value: &str) -> Vec<Value> {
    lab.list(api_version, kind, None)
        .unwrap()
        .into_iter()
        .filter(|o| o["metadata"]["labels"][label].as_str() == Some(value))
        .collect()
}

fn uid_of_pod(lab: &Lab, ns: &str, name: &str) -> String {
    let pod = lab
        .get("v1", "Pod", Some(ns), name)
        .unwrap()
        .expect("stand-in pod");
    pod["metadata"]["uid"].as_str().unwrap().to_string()
}

/// (kind, namespace, name) of an object, for messages and look-ups.
fn ident(o: &Value) -> (String, Option<String>, String) {
    (
        o["kind"].as_str().unwrap().to_string(),
        o["metadata"]["namespace"].as_str().map(str::to_string),
        o["metadata"]["name"].as_str().unwrap().to_string(),
    )
}

/// Deletes the pod (its process already killed, so nothing re-creates the objects) and
/// waits until the garbage collector has removed every object in `owned`.
fn delete_pod_and_wait_for_gc(lab: &Lab, ns: &str, pod: &str, owned: &[Value]) {
    lab.delete_pod(ns, pod).unwrap();
    let took = wait_until(
        &format!("the garbage collector to remove what {pod} owned"),
        T,
        || {
            owned.iter().all(|o| {
                let (kind, ns, name) = ident(o);
                lab.get(
                    o["apiVersion"].as_str().unwrap(),
                    &kind,
                    ns.as_deref(),
                    &name,
                )
                .unwrap()
                .is_none()
            })
        },
    )
    .unwrap();
    println!(
        "{pod} deleted: {} owned object(s) garbage-collected after {took:?}",
        owned.len()
    );
}

#[test]
fn metallb_objects_are_garbage_collected_with_their_pods() {
    let test = "metallb_objects_are_garbage_collected_with_their_pods";
    if !require_full_stack(test) {
        return;
    }
    let Some(mut lab) = real_lab(test, "gc", Stack::Full) else {
        return;
    };
    lab.apply_seed_config("198.18.0.0/24").unwrap();
    lab.create_service("web", false, &lab.endpoints_everywhere(1))
        .unwrap();
    let ip = lab.wait_service_ips("web", 1, T).unwrap()[0].clone();
    lab.wait_ext_nexthops(&host_prefix(&ip), &lab.all_node_v4(), T)
        .unwrap();

    // speaker1: its ServiceBGPStatus and its ConfigurationState, owned by its pod
    let (pod, pod_ns) = lab.pod_of(lab.node(1));
    let pod_uid = uid_of_pod(&lab, pod_ns, &pod);
    let node = lab.node(1).name.clone();
    let (owned, _) = wait_until_some("speaker1's objects, owned by its pod", T, || {
        let statuses = labelled(
            &lab,
            "metallb.io/v1beta1",
            "ServiceBGPStatus",
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
        (all.len() >= 2 && all.iter().all(|o| owner_uids(o) == [pod_uid.clone()])).then_some(all)
    })
    .unwrap();
    println!(
        "owned by {pod}: {:?}",
        owned.iter().map(ident).collect::<Vec<_>>()
    );

    // the controller's ConfigurationState, owned by the controller's pod
    let controller_uid = uid_of_pod(&lab, METALLB_NS, CONTROLLER_POD);
    let (state, _) = wait_until_some(
        "the controller's ConfigurationState, owned by its pod",
        T,
        || {
            lab.get(
                "metallb.io/v1beta1",
                "ConfigurationState",
                Some(METALLB_NS),
                "controller",
            )
            .unwrap()
            .filter(|o| owner_uids(o) == [controller_uid.clone()])
        },
    )
    .unwrap();

    // A process dies without cleaning up and its pod is deleted (a rollout or a drain
    // does that): the garbage collector removes what the pod owned, nothing else.
    lab.crash_speaker(1).unwrap();
    delete_pod_and_wait_for_gc(&lab, pod_ns, &pod, &owned);
    lab.crash_controller().unwrap();
    delete_pod_and_wait_for_gc(&lab, METALLB_NS, CONTROLLER_POD, &[state]);
    let node2 = lab.node(2).name.clone();
    assert!(
        lab.get(
            "metallb.io/v1beta1",
            "ConfigurationState",
            Some(METALLB_NS),
            &format!("speaker-{node2}")
        )
        .unwrap()
        .is_some(),
        "speaker2's ConfigurationState went too"
    );
    assert!(!labelled(
        &lab,
        "metallb.io/v1beta1",
        "ServiceBGPStatus",
        "metallb.io/node",
        &node2
    )
    .is_empty());
}

#[test]
fn bgp_session_states_are_garbage_collected_with_the_frrk8s_pod() {
    let test = "bgp_session_states_are_garbage_collected_with_the_frrk8s_pod";
    if !require_lab(test) {
        return;
    }
    let Some(mut lab) = real_lab(test, "gc-frrk8s", Stack::FrrK8s) else {
        return;
    };
    for n in &lab.nodes {
        lab.apply(frr_configuration(
            &format!("peer-{}", n.name),
            json!({
                "nodeSelector": {"matchLabels": {"kubernetes.io/hostname": n.name}},
                "bgp": {"routers": [{"asn": 64512, "neighbors": [
                    {"address": "192.0.2.1", "asn": 64513, "connectTime": "1s"}
                ]}]},
            }),
        ))
        .unwrap();
    }
    let (pod, pod_ns) = lab.pod_of(lab.node(1));
    assert_eq!(pod_ns, FRRK8S_NS);
    let pod_uid = uid_of_pod(&lab, pod_ns, &pod);
    let node = lab.node(1).name.clone();
    let (owned, _) = wait_until_some(
        "node1's BGPSessionState, Established and owned by its pod",
        T,
        || {
            let states = labelled(
                &lab,
                "frrk8s.metallb.io/v1beta1",
                "BGPSessionState",
                "frrk8s.metallb.io/node",
                &node,
            );
            let ok = !states.is_empty()
                && states.iter().all(|o| owner_uids(o) == [pod_uid.clone()])
                && states
                    .iter()
                    .any(|o| o["status"]["bgpStatus"] == "Established");
            ok.then_some(states)
        },
    )
    .unwrap();
    println!(
        "owned by {pod}: {:?}",
        owned.iter().map(ident).collect::<Vec<_>>()
    );
    lab.crash_speaker(1).unwrap();
    delete_pod_and_wait_for_gc(&lab, pod_ns, &pod, &owned);
    let node2 = lab.node(2).name.clone();
    assert!(
        !labelled(
            &lab,
            "frrk8s.metallb.io/v1beta1",
            "BGPSessionState",
            "frrk8s.metallb.io/node",
            &node2
        )
        .is_empty(),
        "node2's BGPSessionState went too"
    );
}
