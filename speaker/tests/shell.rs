//! The speaker shell against the test API server over HTTP (frr-k8s runs elsewhere: only
//! the FRRConfiguration, the ServiceBGPStatus and the ConfigurationState objects are
//! checked).

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use metallb_api::frrk8s::FRRConfiguration;
use metallb_api::metallb::{BGPPeer, ConfigurationResult, ConfigurationState, ServiceBGPStatus};
use metallb_speaker::shell::{Settings, ShutdownOutcome};
use serde_json::json;

/// Wait until the speaker has processed `n` more watch events, then a little for its
/// writer, so "nothing was written" is meaningful.
async fn settle(s: &Speaker, before: u64, n: u64) {
    let m = s.metrics.clone();
    eventually("events processed", || {
        let m = m.clone();
        async move { m.k8s_client_updates_total.get() >= before + n }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn announces_withdraws_and_writes_only_on_change() {
    let api = metallb_testkit::start().await.expect("api");
    let client = api.client();
    base_config(&client).await;
    // a user's FRRConfiguration alongside: never touched
    let user: FRRConfiguration = create(&Api::namespaced(client.clone(), NS),
        json!({"metadata": {"name": "user-extra", "namespace": NS},
               "spec": {"bgp": {"routers": [{"asn": 64512, "neighbors": [{"address": "172.18.0.9", "asn": 65009}]}]}}}),
    )
    .await;
    lb_service(&client, "web", "192.168.10.1", true, None).await;
    slice(&client, "web", &[NODE]).await;

    let s = Speaker::start(&client, false);
    let c = client.clone();
    eventually("/32 advertised to the peer", || {
        let c = c.clone();
        async move { advertised_now(&c).await == vec!["192.168.10.1/32"] }
    })
    .await;
    assert!(s.readiness.is_ready(), "{:?}", s.readiness.pending());
    let cfg = frr_config(&client).await.expect("object");
    let router = &cfg.spec.bgp.as_ref().expect("bgp").routers[0];
    assert_eq!(router.prefixes, vec!["192.168.10.1/32"]);
    assert_eq!(router.neighbors[0].address.as_deref(), Some("172.18.0.1"));
    count_reaches("writes (one create)", || s.writes(), 1).await;

    // ETP Local: the endpoint moves to another node → withdrawn from this node
    move_slice(&client, "web", &["node-2"]).await;
    eventually("withdrawn after the endpoint moved", || {
        let c = c.clone();
        async move { advertised_now(&c).await.is_empty() }
    })
    .await;
    move_slice(&client, "web", &[NODE, "node-2"]).await;
    eventually("announced again", || {
        let c = c.clone();
        async move { advertised_now(&c).await == vec!["192.168.10.1/32"] }
    })
    .await;
    count_reaches("writes", || s.writes(), 3).await;

    // unrelated changes: another node's labels, a Service of another class, a ClusterIP
    // Service and its slice, a pod-only update of our own slice → no write
    let rv_before = rv(&frr_config(&client).await);
    let updates = s.metrics.k8s_client_updates_total.get();
    Api::<Node>::all(client.clone())
        .patch(
            "node-2",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"rack": "z"}}})),
        )
        .await
        .expect("label other node");
    lb_service(
        &client,
        "other-class",
        "192.168.10.2",
        false,
        Some("someone-else"),
    )
    .await;
    slice(&client, "other-class", &[NODE]).await;
    let _: Service = create(
        &Api::namespaced(client.clone(), "default"),
        json!({"metadata": {"name": "internal", "namespace": "default"},
               "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    slice(&client, "internal", &[NODE]).await;
    settle(&s, updates, 5).await;
    assert_eq!(
        rv(&frr_config(&client).await),
        rv_before,
        "unrelated changes wrote"
    );
    assert_eq!(s.writes(), 3);

    // the Service goes away → withdrawn
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("withdrawn after delete", || {
        let c = c.clone();
        async move { advertised_now(&c).await.is_empty() }
    })
    .await;
    let after = frr_config(&client).await.expect("object");
    assert!(after.spec.bgp.as_ref().expect("bgp").routers[0]
        .prefixes
        .is_empty());
    count_reaches("writes", || s.writes(), 4).await;

    let user_now = Api::<FRRConfiguration>::namespaced(client.clone(), NS)
        .get("user-extra")
        .await
        .expect("user object");
    assert_eq!(
        user_now.metadata.resource_version, user.metadata.resource_version,
        "the user's FRRConfiguration was modified"
    );
    assert_eq!(s.stop().await, ShutdownOutcome::Disabled);
}

#[tokio::test]
async fn restart_writes_nothing() {
    let api = metallb_testkit::start().await.expect("api");
    let client = api.client();
    base_config(&client).await;
    for i in 1..=20 {
        let name = format!("svc-{i}");
        lb_service(&client, &name, &format!("192.168.10.{i}"), false, None).await;
        slice(&client, &name, &["node-2"]).await;
    }
    let s = Speaker::start(&client, false);
    let c = client.clone();
    eventually("all 20 advertised", || {
        let c = c.clone();
        async move { advertised_now(&c).await.len() == 20 }
    })
    .await;
    let before = frr_config(&client).await;
    s.stop().await;

    // the new process lists everything, compares, and writes nothing
    let s2 = Speaker::start(&client, false);
    let r = s2.readiness.clone();
    eventually("restarted speaker synced", || {
        let r = r.clone();
        async move { r.is_ready() }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s2.writes(), 0);
    assert_eq!(rv(&frr_config(&client).await), rv(&before));
    // and still reacts
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("svc-7", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("19 advertised", || {
        let c = c.clone();
        async move { advertised_now(&c).await.len() == 19 }
    })
    .await;
    count_reaches("writes after the restart", || s2.writes(), 1).await;
    s2.stop().await;
}

#[tokio::test]
async fn bgp_status_follows_the_announcement() {
    let api = metallb_testkit::start().await.expect("api");
    let client = api.client();
    base_config(&client).await;
    lb_service(&client, "web", "192.168.10.1", true, None).await;
    slice(&client, "web", &[NODE]).await;
    let s = Speaker::start(&client, false);
    let statuses = Api::<ServiceBGPStatus>::namespaced(client.clone(), NS);
    let st = statuses.clone();
    eventually("ServiceBGPStatus created", || {
        let st = st.clone();
        async move {
            let l = st.list(&Default::default()).await.expect("list");
            l.items.len() == 1
                && l.items[0].status.as_ref().is_some_and(|s| {
                    s.peers == vec!["tor".to_string()] && s.node.as_deref() == Some(NODE)
                })
        }
    })
    .await;
    let obj = statuses
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .remove(0);
    assert!(obj
        .metadata
        .name
        .as_deref()
        .unwrap_or("")
        .starts_with("bgp-"));
    assert_eq!(
        obj.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("metallb.io/service-name"))
            .map(String::as_str),
        Some("web")
    );

    // a second peer → the same object is updated in place
    let _: BGPPeer = create(
        &Api::namespaced(client.clone(), NS),
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "tor-b", "namespace": NS},
               "spec": {"myASN": 64512, "peerASN": 65001, "peerAddress": "172.18.0.2"}}),
    )
    .await;
    let st = statuses.clone();
    let name = obj.metadata.name.clone();
    eventually("peers updated", || {
        let st = st.clone();
        let name = name.clone();
        async move {
            let l = st.list(&Default::default()).await.expect("list");
            l.items.len() == 1
                && l.items[0].metadata.name == name
                && l.items[0].status.as_ref().map(|s| s.peers.clone())
                    == Some(vec!["tor".to_string(), "tor-b".to_string()])
        }
    })
    .await;

    // no local endpoint any more → deleted
    move_slice(&client, "web", &["node-2"]).await;
    let st = statuses.clone();
    eventually("ServiceBGPStatus deleted", || {
        let st = st.clone();
        async move {
            st.list(&Default::default())
                .await
                .expect("list")
                .items
                .is_empty()
        }
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn shutdown_withdraws_unless_graceful_restart() {
    let api = metallb_testkit::start().await.expect("api");
    let client = api.client();
    base_config(&client).await;
    lb_service(&client, "web", "192.168.10.1", false, None).await;
    slice(&client, "web", &["node-2"]).await;
    let s = Speaker::start(&client, true);
    let c = client.clone();
    eventually("advertised", || {
        let c = c.clone();
        async move { advertised_now(&c).await == vec!["192.168.10.1/32"] }
    })
    .await;
    match s.stop().await {
        ShutdownOutcome::Withdrawn { prefixes, .. } => {
            assert_eq!(prefixes.len(), 1)
        }
        other => panic!("unexpected outcome {other:?}"),
    }
    let cfg = frr_config(&client).await.expect("object kept, not deleted");
    assert!(advertised(&cfg).is_empty());
    assert_eq!(
        cfg.spec.bgp.as_ref().expect("bgp").routers[0]
            .neighbors
            .len(),
        1,
        "sessions stay"
    );

    // restart: announced again (one update, same object)
    let uid = cfg.metadata.uid.clone();
    let s = Speaker::start(&client, true);
    eventually("announced after restart", || {
        let c = c.clone();
        async move { advertised_now(&c).await == vec!["192.168.10.1/32"] }
    })
    .await;
    assert_eq!(frr_config(&client).await.expect("object").metadata.uid, uid);

    // graceful restart on the peer: announcements are left to it
    Api::<BGPPeer>::namespaced(client.clone(), NS)
        .patch(
            "tor",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"enableGracefulRestart": true}})),
        )
        .await
        .expect("enable GR");
    eventually("GR in the object", || {
        let c = c.clone();
        async move {
            frr_config(&c).await.is_some_and(|o| {
                o.spec.bgp.as_ref().expect("bgp").routers[0].neighbors[0].enable_graceful_restart
                    == Some(true)
            })
        }
    })
    .await;
    let outcome = s.stop().await;
    assert_eq!(
        outcome,
        ShutdownOutcome::KeptForGracefulRestart {
            peers: vec!["tor".into()]
        }
    );
    assert_eq!(advertised_now(&client).await, vec!["192.168.10.1/32"]);
}

/// `speaker-node-1` as the API server holds it.
async fn config_state(client: &kube::Client) -> Option<ConfigurationState> {
    Api::<ConfigurationState>::namespaced(client.clone(), NS)
        .get_opt("speaker-node-1")
        .await
        .expect("get ConfigurationState")
}

/// Wait until `speaker-node-1` satisfies `f`; returns it.
async fn config_state_when(
    client: &kube::Client,
    what: &str,
    f: impl Fn(&ConfigurationState) -> bool,
) -> ConfigurationState {
    let c = client.clone();
    let f = &f;
    eventually(what, || {
        let c = c.clone();
        async move { config_state(&c).await.is_some_and(|o| f(&o)) }
    })
    .await;
    config_state(client).await.expect("ConfigurationState")
}

fn result_of(o: &ConfigurationState) -> Option<ConfigurationResult> {
    o.status.as_ref().and_then(|s| s.result)
}

#[tokio::test]
async fn configuration_state_reports_this_nodes_issues_and_heals() {
    let api = metallb_testkit::start().await.expect("api");
    let client = api.client();
    base_config(&client).await;
    let pod: Pod = create(
        &Api::namespaced(client.clone(), NS),
        json!({"metadata": {"name": "speaker-abc", "namespace": NS},
               "spec": {"nodeName": NODE, "containers": [{"name": "speaker", "image": "metallb"}]}}),
    )
    .await;
    let mut settings = Settings::new(NODE, NS, NS);
    settings.withdraw_on_shutdown = false;
    settings.pod_name = Some("speaker-abc".into());
    let s = Speaker::start_with(&client, settings);

    // A valid configuration: Valid, labelled, owned by the speaker's pod.
    let valid = config_state_when(&client, "Valid", |o| {
        result_of(o) == Some(ConfigurationResult::Valid)
    })
    .await;
    let labels = valid.metadata.labels.clone().expect("labels");
    assert_eq!(labels["metallb.io/component-type"], "speaker");
    assert_eq!(labels["metallb.io/node-name"], NODE);
    let owners = valid.metadata.owner_references.clone().expect("owner");
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("Pod", "speaker-abc")
    );
    assert_eq!(Some(&owners[0].uid), pod.metadata.uid.as_ref());
    let status = valid.status.clone().expect("status");
    assert_eq!(status.error_summary, None);
    assert_eq!(status.conditions.len(), 1);
    assert_eq!(status.conditions[0].type_, "configReconcilerValid");
    assert_eq!(status.conditions[0].status, "True");
    assert_eq!(status.conditions[0].reason, "Reconciled");
    count_reaches(
        "ConfigurationState writes (create + status)",
        || s.metrics.configuration_state_writes_total.get(),
        2,
    )
    .await;

    // A broken peer for another node only: this speaker does not run it, stays Valid and
    // writes nothing.
    let peers = Api::<BGPPeer>::namespaced(client.clone(), NS);
    let updates = s.metrics.k8s_client_updates_total.get();
    let _: BGPPeer = create(
        &peers,
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "remote-bad", "namespace": NS},
               "spec": {"myASN": 64512, "peerASN": 65002, "peerAddress": "172.18.0.3",
                        "holdTime": "3500ms",
                        "nodeSelectors": [{"matchLabels": {"rack": "b"}}]}}),
    )
    .await;
    settle(&s, updates, 1).await;
    assert_eq!(
        config_state(&client)
            .await
            .expect("object")
            .metadata
            .resource_version,
        valid.metadata.resource_version,
        "another node's peer rewrote this node's ConfigurationState"
    );
    assert_eq!(s.metrics.configuration_state_writes_total.get(), 2);

    // A broken peer for this node: Invalid, with the problem in the summary.
    let _: BGPPeer = create(
        &peers,
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "bad", "namespace": NS},
               "spec": {"myASN": 64512, "peerASN": 65003, "peerAddress": "172.18.0.4",
                        "holdTime": "3500ms"}}),
    )
    .await;
    let invalid = config_state_when(&client, "Invalid", |o| {
        result_of(o) == Some(ConfigurationResult::Invalid)
    })
    .await;
    let status = invalid.status.clone().expect("status");
    let summary = status.error_summary.clone().expect("errorSummary");
    assert!(
        summary.contains("BGPPeer metallb-system/bad:") && summary.contains("spec.holdTime"),
        "{summary}"
    );
    assert!(!summary.contains("remote-bad"), "{summary}");
    assert_eq!(status.conditions[0].status, "False");
    assert_eq!(status.conditions[0].reason, "ConfigurationError");
    assert_eq!(status.conditions[0].message, summary);
    assert_eq!(invalid.metadata.uid, valid.metadata.uid, "updated in place");

    // Fixed: Valid again, the stale summary gone.
    peers
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holdTime": "3s"}})),
        )
        .await
        .expect("fix the peer");
    let fixed = config_state_when(&client, "Valid again", |o| {
        result_of(o) == Some(ConfigurationResult::Valid)
    })
    .await;
    assert_eq!(fixed.status.expect("status").error_summary, None);

    // Deleted by someone: it comes back.
    Api::<ConfigurationState>::namespaced(client.clone(), NS)
        .delete("speaker-node-1", &DeleteParams::default())
        .await
        .expect("delete");
    let back = config_state_when(&client, "re-created", |o| {
        o.metadata.uid != fixed.metadata.uid && result_of(o) == Some(ConfigurationResult::Valid)
    })
    .await;
    assert_eq!(
        back.metadata.owner_references.expect("owner")[0].uid,
        owners[0].uid
    );
    assert_eq!(
        back.metadata.labels.expect("labels")["metallb.io/node-name"],
        NODE
    );
    s.stop().await;
}

/// Issue 13: an invalid edit of the peer in use keeps its last valid version (the session
/// and the announcements stay), before and after a restart; the record lives in the node's
/// kept-versions Secret, owned by the Node.
#[tokio::test]
async fn an_invalid_edit_keeps_the_session_and_a_restart_writes_nothing() {
    let api = metallb_testkit::start().await.expect("api");
    let client = api.client();
    base_config(&client).await;
    lb_service(&client, "web", "192.168.10.1", false, None).await;
    slice(&client, "web", &[NODE]).await;
    let s = Speaker::start(&client, false);
    let c = client.clone();
    eventually("/32 advertised to the peer", || {
        let c = c.clone();
        async move { advertised_now(&c).await == vec!["192.168.10.1/32"] }
    })
    .await;
    count_reaches("writes (one create)", || s.writes(), 1).await;
    let before = frr_config(&client).await;

    // holdTime below 3s is invalid; the webhook is not in the path here.
    Api::<BGPPeer>::namespaced(client.clone(), NS)
        .patch(
            "tor",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holdTime": "2500ms", "peerASN": 65099}})),
        )
        .await
        .expect("break the peer");
    let invalid = config_state_when(&client, "Invalid, keeping tor", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.error_summary.as_deref())
            .is_some_and(|t| {
                t.contains("BGPPeer metallb-system/tor: keeping the last valid version (generation 1) since")
            })
    })
    .await;
    assert_eq!(result_of(&invalid), Some(ConfigurationResult::Invalid));
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), NS);
    let c2 = secrets.clone();
    eventually("kept versions persisted", || {
        let c2 = c2.clone();
        async move {
            c2.get_opt("metallb-speaker-kept-node-1")
                .await
                .ok()
                .flatten()
                .and_then(|s| s.data)
                .and_then(|d| d.get("memo.json").cloned())
                .is_some_and(|b| String::from_utf8_lossy(&b.0).contains("\"peerASN\":65000"))
        }
    })
    .await;
    let secret = secrets.get("metallb-speaker-kept-node-1").await.unwrap();
    let owner = &secret.metadata.owner_references.expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", NODE));
    // Nothing was withdrawn or rewritten.
    assert_eq!(rv(&frr_config(&client).await), rv(&before));
    assert_eq!(s.writes(), 1);
    s.stop().await;

    // A restart with the peer still invalid: same choice, zero writes.
    let s2 = Speaker::start(&client, false);
    let r = s2.readiness.clone();
    eventually("restarted speaker synced", || {
        let r = r.clone();
        async move { r.is_ready() }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s2.writes(), 0);
    assert_eq!(rv(&frr_config(&client).await), rv(&before));
    let neighbors = frr_config(&client).await.unwrap().spec.bgp.unwrap().routers[0]
        .neighbors
        .clone();
    assert_eq!(neighbors[0].asn, Some(65000), "{neighbors:?}");

    // Fixed: the new version takes effect, Valid, the record empties.
    Api::<BGPPeer>::namespaced(client.clone(), NS)
        .patch(
            "tor",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holdTime": "3s"}})),
        )
        .await
        .expect("fix the peer");
    config_state_when(&client, "Valid again", |o| {
        result_of(o) == Some(ConfigurationResult::Valid)
    })
    .await;
    eventually("the new peer ASN in effect", || {
        let c = c.clone();
        async move {
            frr_config(&c).await.is_some_and(|f| {
                f.spec
                    .bgp
                    .is_some_and(|b| b.routers[0].neighbors[0].asn == Some(65099))
            })
        }
    })
    .await;
    eventually("the record empties", || {
        let c2 = secrets.clone();
        async move {
            c2.get_opt("metallb-speaker-kept-node-1")
                .await
                .ok()
                .flatten()
                .and_then(|s| s.data)
                .and_then(|d| d.get("memo.json").cloned())
                .is_some_and(|b| b.0 == b"[]")
        }
    })
    .await;
    s2.stop().await;
}
