//! The node component against the test API server over HTTP, with a fake FRR.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metallb_api::frrk8s::{BGPSessionState, FRRConfiguration, FRRNodeState};
use metallb_runtime::Readiness;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::frr::control::ControlError;

const NS: &str = "frr-k8s-system";

#[derive(Clone, Default)]
struct FakeFrr {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    batches: Vec<String>,
    /// Every call, in order: `apply: BATCH`, `show: COMMAND`, `token`.
    calls: Vec<String>,
    neighbors: Value,
    reject: bool,
    /// Answers to other show commands, by command.
    shows: std::collections::HashMap<String, Value>,
    /// The instance token (`fake` when unset); changing it is an FRR restart.
    token: Option<String>,
    /// Show commands block while this is set (a busy vtysh).
    hold_shows: bool,
    /// Show commands begun (`calls` records them when they end).
    shows_started: usize,
}

impl FakeFrr {
    fn batches(&self) -> Vec<String> {
        self.inner.lock().unwrap().batches.clone()
    }
    fn applied_text(&self) -> String {
        self.batches().join("\n")
    }
    fn set_neighbors(&self, v: Value) {
        self.inner.lock().unwrap().neighbors = v;
    }
    fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }
}

const NEIGHBORS: &str = "show bgp vrf all neighbors json";

impl FrrControl for FakeFrr {
    fn apply(&self, batch: &str) -> Result<(), ControlError> {
        let mut st = self.inner.lock().unwrap();
        st.calls.push(format!("apply: {batch}"));
        if st.reject {
            return Err(ControlError::Rejected("% Unknown command: bogus".into()));
        }
        st.batches.push(batch.to_string());
        Ok(())
    }
    fn apply_direct(&self, _batch: &str) -> Option<Result<(), ControlError>> {
        None
    }

    fn check(&self, _batch: &str) -> Result<(), ControlError> {
        Ok(())
    }
    fn running_config(&self) -> Result<String, ControlError> {
        Ok(self.applied_text())
    }
    fn show_json(&self, command: &str) -> Result<Value, ControlError> {
        self.inner.lock().unwrap().shows_started += 1;
        while self.inner.lock().unwrap().hold_shows {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut st = self.inner.lock().unwrap();
        st.calls.push(format!("show: {command}"));
        if let Some(v) = st.shows.get(command) {
            Ok(v.clone())
        } else if command == NEIGHBORS {
            Ok(st.neighbors.clone())
        } else if command.contains("bgp") {
            Ok(json!({}))
        } else {
            Ok(json!([]))
        }
    }
    fn instance_token(&self) -> Option<String> {
        let mut st = self.inner.lock().unwrap();
        st.calls.push("token".into());
        Some(st.token.clone().unwrap_or_else(|| "fake".into()))
    }
}

/// Generous: what is awaited takes milliseconds, but a busy machine can stall for seconds.
const TIMEOUT: Duration = Duration::from_secs(30);

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The namespace `NS` and Node `node-1` with `labels`.
async fn namespace_and_node(client: &kube::Client, labels: Value) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .unwrap();
    Api::<Node>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "node-1", "labels": labels}}))
                .unwrap(),
        )
        .await
        .unwrap();
}

fn config(name: &str, asn: u32, neighbor_asn: u32, prefixes: &[&str]) -> FRRConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "frrk8s.metallb.io/v1beta1",
        "kind": "FRRConfiguration",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"bgp": {"routers": [{
            "asn": asn,
            "prefixes": prefixes,
            "neighbors": [{
                "address": "192.0.2.1",
                "asn": neighbor_asn,
                "passwordSecret": {"name": "bgp-pass"},
                "toAdvertise": {"allowed": {"prefixes": prefixes}}
            }]
        }]}}
    }))
    .unwrap()
}

#[tokio::test]
async fn merges_applies_and_reports_status() {
    let api = metallb_testkit::start().await.unwrap();
    let client = api.client();
    namespace_and_node(&client, json!({"kubernetes.io/hostname": "node-1"})).await;
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "bgp-pass"},
                "type": "kubernetes.io/basic-auth",
                "stringData": {"password": "s3cr3t-value"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let configs: Api<FRRConfiguration> = Api::namespaced(client.clone(), NS);
    configs
        .create(
            &PostParams::default(),
            &config("metallb-node-1", 64512, 64513, &["198.18.0.1/32"]),
        )
        .await
        .unwrap();

    let frr = FakeFrr::default();
    frr.set_neighbors(json!({"default": {"vrfName": "default", "192.0.2.1": {"bgpState": "Established", "remoteAs": 64513}}}));
    let settings = NodeSettings {
        node_name: "node-1".into(),
        namespace: NS.into(),
        render: RenderOptions::default(),
        poll_interval: Duration::from_millis(50),
        write_status: true,
        persist_versions: true,
        apply: ApplyOptions {
            verify: false,
            dry_run: false,
            ..ApplyOptions::default()
        },
    };
    let mut registry = Registry::default();
    let metrics = FrrMetrics::register(&mut registry);
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        client.clone(),
        settings,
        frr.clone(),
        readiness.clone(),
        metrics,
        shutdown.clone(),
    ));

    eventually("first apply", || async {
        frr.applied_text()
            .contains("neighbor 192.0.2.1 remote-as 64513")
    })
    .await;
    assert!(
        readiness.is_ready(),
        "ready after every watch synced: pending {:?}",
        readiness.pending()
    );
    assert!(
        frr.applied_text().contains("s3cr3t-value"),
        "the password from the Secret reaches FRR"
    );
    let states: Api<FRRNodeState> = Api::all(client.clone());
    eventually("FRRNodeState success", || async {
        let s = states
            .get_opt("node-1")
            .await
            .unwrap()
            .and_then(|o| o.status);
        s.is_some_and(|s| {
            s.last_conversion_result.as_deref() == Some("success")
                && s.last_reload_result.as_deref() == Some("success")
        })
    })
    .await;
    let running = states
        .get("node-1")
        .await
        .unwrap()
        .status
        .unwrap()
        .running_config
        .unwrap();
    assert!(running.contains("password <retracted>"), "{running}");
    assert!(
        !running.contains("s3cr3t-value"),
        "passwords never reach FRRNodeState"
    );
    // The writer watches its object: deleted by someone, it comes back at once (no FRR
    // change needed to notice).
    states
        .delete("node-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("FRRNodeState recreated", || async {
        states
            .get_opt("node-1")
            .await
            .unwrap()
            .and_then(|o| o.status)
            .is_some_and(|s| s.last_reload_result.as_deref() == Some("success"))
    })
    .await;

    // BGPSessionState mirrors FRR's sessions.
    let sessions: Api<BGPSessionState> = Api::namespaced(client.clone(), NS);
    eventually("BGPSessionState created", || async {
        let l = sessions.list(&Default::default()).await.unwrap();
        l.items.len() == 1
            && l.items[0]
                .status
                .as_ref()
                .and_then(|s| s.bgp_status.as_deref())
                == Some("Established")
    })
    .await;
    // Someone else's edit is undone from the watch, with FRR's sessions unchanged.
    let name = sessions.list(&Default::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    sessions
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"bgpStatus": "Idle"}})),
        )
        .await
        .unwrap();
    eventually("BGPSessionState restored", || async {
        sessions
            .get(&name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.bgp_status)
            == Some("Established".to_string())
    })
    .await;
    frr.set_neighbors(json!({"default": {"vrfName": "default", "192.0.2.1": {"bgpState": "Active", "remoteAs": 64513}}}));
    eventually("BGPSessionState updated", || async {
        let l = sessions.list(&Default::default()).await.unwrap();
        l.items.len() == 1
            && l.items[0]
                .status
                .as_ref()
                .and_then(|s| s.bgp_status.as_deref())
                == Some("Active")
    })
    .await;
    frr.set_neighbors(json!({}));
    eventually("BGPSessionState deleted", || async {
        sessions
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;

    // A conflicting object is reported with both names; the first object's config stays.
    let applies_before = frr.batches().len();
    configs
        .create(
            &PostParams::default(),
            &config("user-1", 64512, 64999, &["198.18.0.2/32"]),
        )
        .await
        .unwrap();
    eventually("conflict reported", || async {
        let s = states
            .get("node-1")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        s.last_conversion_result.as_deref().is_some_and(|r| {
            r.starts_with("failed:")
                && r.contains("frr-k8s-system/user-1")
                && r.contains("frr-k8s-system/metallb-node-1")
        })
    })
    .await;
    assert_eq!(
        frr.batches().len(),
        applies_before,
        "a skipped object changes nothing in FRR"
    );

    // Removing the conflict and adding a compatible object extends the configuration.
    configs
        .delete("user-1", &DeleteParams::default())
        .await
        .unwrap();
    configs
        .create(
            &PostParams::default(),
            &config("user-2", 64512, 64513, &["198.18.0.2/32"]),
        )
        .await
        .unwrap();
    eventually("extension applied", || async {
        frr.applied_text().contains("198.18.0.2/32")
    })
    .await;
    eventually("conversion success again", || async {
        states
            .get("node-1")
            .await
            .unwrap()
            .status
            .unwrap_or_default()
            .last_conversion_result
            .as_deref()
            == Some("success")
    })
    .await;

    // A rejected configuration is reported; nothing else breaks.
    frr.inner.lock().unwrap().reject = true;
    configs
        .create(
            &PostParams::default(),
            &config("user-3", 64512, 64513, &["198.18.0.3/32"]),
        )
        .await
        .unwrap();
    eventually("reload failure reported", || async {
        states
            .get("node-1")
            .await
            .unwrap()
            .status
            .unwrap_or_default()
            .last_reload_result
            .as_deref()
            .is_some_and(|r| r.starts_with("failed:"))
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
}

#[test]
fn compute_is_pure_and_reports_skips() {
    let settings = NodeSettings {
        node_name: "n".into(),
        namespace: NS.into(),
        render: RenderOptions::default(),
        poll_interval: Duration::from_secs(1),
        write_status: false,
        persist_versions: false,
        apply: ApplyOptions::default(),
    };
    let mut a = config("a", 64512, 64513, &["198.18.0.1/32"]);
    a.spec.bgp.as_mut().unwrap().routers[0].neighbors[0].password_secret = None;
    let mut b = config("b", 64512, 64514, &["198.18.0.2/32"]);
    b.spec.bgp.as_mut().unwrap().routers[0].neighbors[0].password_secret = None;
    let labels = Default::default();
    let d1 = compute(
        &[Arc::new(a.clone()), Arc::new(b.clone())],
        &labels,
        &crate::NoSecrets,
        &settings,
    );
    let d2 = compute(
        &[Arc::new(b), Arc::new(a)],
        &labels,
        &crate::NoSecrets,
        &settings,
    );
    assert_eq!(d1, d2, "input order does not matter");
    assert!(!d1.complete);
    assert!(
        d1.conversion_result.contains("asn"),
        "{}",
        d1.conversion_result
    );
}

/// An FRRConfiguration with one neighbor and no Secret, selecting nodes by `selector`.
fn selective(name: &str, neighbor: &str, neighbor_asn: u32, selector: Value) -> FRRConfiguration {
    let mut obj = json!({
        "apiVersion": "frrk8s.metallb.io/v1beta1",
        "kind": "FRRConfiguration",
        "metadata": {"name": name, "namespace": NS, "labels": {"owner": "test"}},
        "spec": {"bgp": {"routers": [{
            "asn": 64512,
            "neighbors": [{"address": neighbor, "asn": neighbor_asn}]
        }]}}
    });
    if !selector.is_null() {
        obj["spec"]["nodeSelector"] = selector;
    }
    serde_json::from_value(obj).unwrap()
}

#[tokio::test]
async fn stubs_configs_that_do_not_select_the_node_and_refetches_on_label_change() {
    let api = metallb_testkit::start().await.unwrap();
    let client = api.client();
    namespace_and_node(&client, json!({"kubernetes.io/hostname": "node-1"})).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let configs: Api<FRRConfiguration> = Api::namespaced(client.clone(), NS);
    for c in [
        selective("everywhere", "192.0.2.1", 64513, Value::Null),
        selective(
            "rack-a",
            "192.0.2.2",
            64514,
            json!({"matchLabels": {"rack": "a"}}),
        ),
        selective(
            "node-2",
            "192.0.2.3",
            64515,
            json!({"matchLabels": {"kubernetes.io/hostname": "node-2"}}),
        ),
        selective(
            "bad-selector",
            "192.0.2.4",
            64516,
            json!({"matchExpressions": [{"key": "rack", "operator": "Bogus"}]}),
        ),
    ] {
        configs.create(&PostParams::default(), &c).await.unwrap();
    }

    let frr = FakeFrr::default();
    let settings = NodeSettings {
        node_name: "node-1".into(),
        namespace: NS.into(),
        render: RenderOptions::default(),
        poll_interval: Duration::from_millis(50),
        write_status: false,
        persist_versions: false,
        apply: ApplyOptions {
            verify: false,
            dry_run: false,
            ..ApplyOptions::default()
        },
    };
    let mut registry = Registry::default();
    let metrics = FrrMetrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    let index = Arc::new(Mutex::new(NodeIndex::new(Arc::new(
        tokio::sync::Notify::new(),
    ))));
    let task = tokio::spawn(run_with_index(
        client.clone(),
        settings.clone(),
        frr.clone(),
        Readiness::default(),
        metrics,
        shutdown.clone(),
        index.clone(),
    ));
    let kept = |name: &str| {
        lock(&index)
            .config(NS, name)
            .unwrap_or_else(|| panic!("{name} is in the index"))
    };
    // What the component computes from its index equals what it would compute from the
    // full objects.
    let same_as_unstubbed = || async {
        let labels = nodes
            .get("node-1")
            .await
            .unwrap()
            .metadata
            .labels
            .unwrap_or_default();
        let full: Vec<Arc<FRRConfiguration>> = configs
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(Arc::new)
            .collect();
        let held = lock(&index).configs();
        let ours = compute(&held, &labels, &crate::NoSecrets, &settings);
        ours == compute(&full, &labels, &crate::NoSecrets, &settings)
    };

    eventually("first apply", || async {
        frr.applied_text()
            .contains("neighbor 192.0.2.1 remote-as 64513")
    })
    .await;
    for name in ["rack-a", "node-2", "bad-selector"] {
        let c = kept(name);
        assert!(crate::stub::is_stub(&c), "{name} is stubbed");
        assert!(
            c.spec.bgp.is_none() && c.metadata.labels.is_none(),
            "{name}"
        );
        assert!(c.spec.node_selector.is_some(), "{name} keeps its selector");
    }
    assert!(!crate::stub::is_stub(&kept("everywhere")));
    assert!(kept("everywhere").spec.bgp.is_some());
    assert!(!frr.applied_text().contains("192.0.2.2"));
    assert!(same_as_unstubbed().await);

    // The node gets the label: the stub is replaced by the full object, its neighbor is
    // applied.
    let applies_before = frr.batches().len();
    nodes
        .patch(
            "node-1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"rack": "a"}}})),
        )
        .await
        .unwrap();
    eventually("neighbor of rack-a applied", || async {
        frr.applied_text()
            .contains("neighbor 192.0.2.2 remote-as 64514")
    })
    .await;
    assert!(!crate::stub::is_stub(&kept("rack-a")));
    assert!(crate::stub::is_stub(&kept("node-2")));
    assert!(same_as_unstubbed().await);
    assert_eq!(
        frr.batches().len(),
        applies_before + 1,
        "one apply, never one without the newly selected object: {:?}",
        &frr.batches()[applies_before..]
    );

    // A stub that still does not select us stays a stub when it changes.
    let mut changed = selective(
        "node-2",
        "192.0.2.5",
        64517,
        json!({"matchLabels": {"kubernetes.io/hostname": "node-2"}}),
    );
    changed.metadata.resource_version = configs
        .get("node-2")
        .await
        .unwrap()
        .metadata
        .resource_version;
    configs
        .replace("node-2", &PostParams::default(), &changed)
        .await
        .unwrap();
    eventually("modified stub seen", || async {
        kept("node-2").metadata.resource_version == changed_rv(&configs, "node-2").await
    })
    .await;
    assert!(crate::stub::is_stub(&kept("node-2")));

    // The label goes away: the object's configuration goes with it.
    nodes
        .patch(
            "node-1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"rack": null}}})),
        )
        .await
        .unwrap();
    eventually("neighbor of rack-a removed", || async {
        frr.batches()
            .last()
            .is_some_and(|b| b.contains("no neighbor 192.0.2.2"))
    })
    .await;
    assert!(frr
        .applied_text()
        .contains("neighbor 192.0.2.1 remote-as 64513"));
    assert!(same_as_unstubbed().await);

    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
}

async fn changed_rv(configs: &Api<FRRConfiguration>, name: &str) -> Option<String> {
    configs.get(name).await.unwrap().metadata.resource_version
}

/// FRR 8.4 can keep a withdrawn prefix in a young session's adj-out (see
/// `crate::frr::audit`): after a removal the worker audits young sessions and repairs the
/// one whose adj-out lists a prefix the RIB no longer has, and leaves mature ones alone.
#[tokio::test]
async fn withdrawal_lost_by_frr_is_repaired_on_young_sessions_only() {
    let api = metallb_testkit::start().await.unwrap();
    let client = api.client();
    namespace_and_node(&client, json!({})).await;
    let configs: Api<FRRConfiguration> = Api::namespaced(client.clone(), NS);
    let mut obj = config(
        "metallb-node-1",
        64512,
        64513,
        &["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"],
    );
    obj.spec.bgp.as_mut().unwrap().routers[0].neighbors[0].password_secret = None;
    configs.create(&PostParams::default(), &obj).await.unwrap();
    // Keep only `prefixes`, originated and advertised.
    let keep = |configs: Api<FRRConfiguration>, prefixes: &'static [&'static str]| async move {
        let mut obj = configs.get("metallb-node-1").await.unwrap();
        let mut fresh = config("metallb-node-1", 64512, 64513, prefixes);
        fresh.spec.bgp.as_mut().unwrap().routers[0].neighbors[0].password_secret = None;
        obj.spec = fresh.spec;
        configs
            .replace("metallb-node-1", &PostParams::default(), &obj)
            .await
            .unwrap();
    };

    let frr = FakeFrr::default();
    // Up for 800 ms when the removal comes: inside FRR's race window.
    frr.set_neighbors(json!({"default": {"vrfName": "default", "192.0.2.1": {
        "bgpState": "Established", "remoteAs": 64513, "bgpTimerUpMsec": 800}}}));
    {
        let mut st = frr.inner.lock().unwrap();
        st.shows.insert(
            "show bgp ipv4 unicast neighbors 192.0.2.1 advertised-routes json".into(),
            json!({"advertisedRoutes": {"198.18.0.1/32": {}, "198.18.0.2/32": {}, "198.18.0.3/32": {}}}),
        );
        // 198.18.0.2/32 is withdrawn too, but another path still has it in the RIB
        // (learned from a peer, say): advertising it is legitimate.
        st.shows.insert(
            "show bgp ipv4 unicast 198.18.0.2/32 json".into(),
            json!({"prefix": "198.18.0.2/32", "paths": [{"valid": true}]}),
        );
    }
    let settings = NodeSettings {
        node_name: "node-1".into(),
        namespace: NS.into(),
        render: RenderOptions::default(),
        poll_interval: Duration::from_millis(50),
        write_status: false,
        persist_versions: false,
        apply: ApplyOptions {
            verify: false,
            dry_run: false,
            audit_rounds: vec![Duration::from_millis(100)],
            ..ApplyOptions::default()
        },
    };
    let mut registry = Registry::default();
    let metrics = FrrMetrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        client.clone(),
        settings,
        frr.clone(),
        Readiness::default(),
        metrics.clone(),
        shutdown.clone(),
    ));
    eventually("first apply", || async {
        frr.applied_text().contains("network 198.18.0.3/32")
    })
    .await;
    assert_eq!(metrics.stale_advertisement_repairs_total.get(), 0);

    // Withdrawn but still in the RIB: not stale.
    let since = frr.calls().len();
    let audits = metrics.withdrawal_audits_total.get();
    keep(configs.clone(), &["198.18.0.1/32", "198.18.0.3/32"]).await;
    eventually("198.18.0.2/32 withdrawn", || async {
        frr.applied_text().contains("no network 198.18.0.2/32")
    })
    .await;
    eventually("the audit after the withdrawal", || async {
        metrics.withdrawal_audits_total.get() > audits
    })
    .await;
    assert!(
        frr.calls()[since..]
            .iter()
            .any(|c| c == "show: show bgp ipv4 unicast 198.18.0.2/32 json"),
        "the audit looked at the withdrawn prefix: {:?}",
        &frr.calls()[since..]
    );
    assert_eq!(metrics.stale_advertisement_repairs_total.get(), 0);

    // Withdrawn, gone from the RIB, still in the adj-out: repaired.
    keep(configs.clone(), &["198.18.0.3/32"]).await;
    eventually("the stale neighbor repaired", || async {
        metrics.stale_advertisement_repairs_total.get() == 1
    })
    .await;
    assert!(frr.applied_text().contains("no network 198.18.0.1/32"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metrics.stale_advertisement_repairs_total.get(), 1);
    let batches = frr.batches();
    let n = batches.len();
    assert_eq!(
        batches[n - 2..],
        [
            "router bgp 64512\n address-family ipv4 unicast\n  network 198.18.0.1/32\n exit-address-family\nexit\n",
            "router bgp 64512\n address-family ipv4 unicast\n  no network 198.18.0.1/32\n exit-address-family\nexit\n",
        ],
        "the stale prefix (only) originated again and withdrawn"
    );
    assert_eq!(metrics.stale_advertisement_repairs_total.get(), 1);

    // A mature session is never audited, whatever its adj-out says (the audit reads the
    // sessions itself).
    frr.set_neighbors(json!({"default": {"vrfName": "default", "192.0.2.1": {
        "bgpState": "Established", "remoteAs": 64513, "bgpTimerUpMsec": 600000}}}));
    let batches = frr.batches().len();
    let since = frr.calls().len();
    let audits = metrics.withdrawal_audits_total.get();
    keep(configs.clone(), &[]).await;
    eventually("the last prefix removed", || async {
        frr.batches().len() > batches && frr.batches().last().unwrap().contains("198.18.0.3/32")
    })
    .await;
    eventually("the audit after the removal", || async {
        metrics.withdrawal_audits_total.get() > audits
    })
    .await;
    assert!(
        !frr.calls()[since..]
            .iter()
            .any(|c| c.contains("advertised-routes")),
        "a mature session was audited: {:?}",
        &frr.calls()[since..]
    );
    assert_eq!(metrics.stale_advertisement_repairs_total.get(), 1);
    assert!(!frr.batches().last().unwrap().contains("198.18.0.1/32"));

    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
}

/// The FRR worker on `frr` (applying without checks or verification), with its channels.
struct WorkerHarness {
    desired_tx: watch::Sender<Option<Desired>>,
    status_rx: watch::Receiver<NodeStatus>,
    metrics: Arc<FrrMetrics>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl WorkerHarness {
    fn start(frr: &FakeFrr, poll: Duration) -> Self {
        let (desired_tx, desired_rx) = watch::channel(None);
        let (status_tx, status_rx) = watch::channel(NodeStatus::default());
        let metrics = FrrMetrics::register(&mut Registry::default());
        let stop = CancellationToken::new();
        let options = ApplyOptions {
            verify: false,
            dry_run: false,
            ..ApplyOptions::default()
        };
        let task = tokio::spawn(frr_worker(
            frr.clone(),
            options,
            desired_rx,
            status_tx,
            metrics.clone(),
            poll,
            stop.clone(),
        ));
        WorkerHarness {
            desired_tx,
            status_rx,
            metrics,
            stop,
            task,
        }
    }

    /// Stops the worker; it must end without error.
    async fn stop(self) {
        self.stop.cancel();
        drop(self.desired_tx);
        self.task.await.unwrap().unwrap();
    }
}

/// The desired configuration of one router with one neighbor originating 198.18.0.1/32.
fn one_peer_one_prefix(poll: Duration) -> Desired {
    let settings = NodeSettings {
        node_name: "node-1".into(),
        namespace: NS.into(),
        render: RenderOptions::default(),
        poll_interval: poll,
        write_status: false,
        persist_versions: false,
        apply: ApplyOptions::default(),
    };
    let mut cfg = config("a", 64512, 64513, &["198.18.0.1/32"]);
    cfg.spec.bgp.as_mut().unwrap().routers[0].neighbors[0].password_secret = None;
    compute(
        &[Arc::new(cfg)],
        &BTreeMap::new(),
        &crate::NoSecrets,
        &settings,
    )
}

/// On a paused clock: an FRR restart is found by the next status poll, not before, and the
/// last good configuration is sent again in full.
#[tokio::test(start_paused = true)]
async fn an_frr_restart_is_found_at_the_next_poll_and_the_last_good_configuration_reapplied() {
    let frr = FakeFrr::default();
    let poll = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    let worker = WorkerHarness::start(&frr, poll);
    let desired = one_peer_one_prefix(poll);
    assert!(desired.complete, "{}", desired.conversion_result);
    worker.desired_tx.send_replace(Some(desired));
    eventually("first apply", || async { !frr.batches().is_empty() }).await;
    let applies = frr.batches().len();

    frr.inner.lock().unwrap().token = Some("restarted".into());
    tokio::time::sleep_until(started + poll - Duration::from_millis(100)).await;
    assert_eq!(frr.batches().len(), applies, "nothing before the next poll");
    eventually("re-applied after the restart", || async {
        frr.batches().len() > applies
    })
    .await;
    let found_after = started.elapsed();
    assert!(
        found_after >= poll && found_after < poll + Duration::from_secs(1),
        "found at the next poll: {found_after:?}"
    );
    let again = frr.batches()[applies].clone();
    assert!(
        again.contains("neighbor 192.0.2.1 remote-as 64513") && again.contains("198.18.0.1/32"),
        "the whole configuration is sent again: {again}"
    );
    worker.stop().await;
}

/// On a paused clock: a rejected apply is tried again after a second, then after two, with
/// no change of the desired configuration, until FRR takes it.
#[tokio::test(start_paused = true)]
async fn a_rejected_apply_is_tried_again_with_backoff_until_frr_takes_it() {
    let frr = FakeFrr::default();
    frr.inner.lock().unwrap().reject = true;
    // no restart poll in the test's time
    let poll = Duration::from_secs(3600);
    let attempts = || {
        frr.calls()
            .iter()
            .filter(|c| c.starts_with("apply: "))
            .count()
    };
    let worker = WorkerHarness::start(&frr, poll);
    let started = tokio::time::Instant::now();
    worker
        .desired_tx
        .send_replace(Some(one_peer_one_prefix(poll)));
    eventually("the first attempt", || async { attempts() == 1 }).await;
    tokio::time::sleep_until(started + Duration::from_millis(900)).await;
    assert_eq!(attempts(), 1, "no second attempt before a second");
    eventually("the second attempt", || async { attempts() == 2 }).await;
    let second = started.elapsed();
    assert!(second >= RETRY_FIRST, "{second:?}");
    tokio::time::sleep_until(started + second + Duration::from_millis(1900)).await;
    assert_eq!(attempts(), 2, "the wait doubled");
    frr.inner.lock().unwrap().reject = false;
    eventually("the third attempt, taken", || async {
        !frr.batches().is_empty()
    })
    .await;
    assert!(frr.applied_text().contains("198.18.0.1/32"));
    let result = worker.status_rx.borrow().clone();
    assert_eq!(result.last_reload_result.as_deref(), Some("success"));
    // taken: no more attempts
    let n = attempts();
    tokio::time::sleep(RETRY_MAX * 2).await;
    assert_eq!(attempts(), n);
    worker.stop().await;
}

/// A status poll that takes long (vtysh on a busy node) does not hold a configuration
/// change back: the poller reads FRR apart from the worker that applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_status_poll_does_not_delay_an_apply() {
    let frr = FakeFrr::default();
    frr.inner.lock().unwrap().hold_shows = true;
    let (sessions_tx, _sessions_rx) = watch::channel(None);
    let poll = Duration::from_millis(50);
    let worker = WorkerHarness::start(&frr, poll);
    let poller = tokio::spawn(poll_status(
        frr.clone(),
        sessions_tx,
        worker.metrics.clone(),
        poll,
        worker.stop.clone(),
    ));
    // the first poll is under way (its first tick is immediate) and blocks until released
    let show_in_progress = || {
        let st = frr.inner.lock().unwrap();
        st.shows_started > 0 && !st.calls.iter().any(|c| c.starts_with("show: "))
    };
    eventually("a status poll under way", || async { show_in_progress() }).await;
    let desired = one_peer_one_prefix(poll);
    worker.desired_tx.send_replace(Some(desired));
    // (with the poll in the worker, this waits until the timeout: the apply never comes)
    eventually("the apply, during the poll", || async {
        !frr.batches().is_empty()
    })
    .await;
    assert!(
        show_in_progress(),
        "applied while the poll was still reading"
    );
    frr.inner.lock().unwrap().hold_shows = false;
    worker.stop().await;
    poller.await.unwrap().unwrap();
}

/// The FRRNodeState writer of node-1, through a client served in process (so that the
/// clock can be paused), with every status PATCH attempt timed; the PATCHes fail while
/// `failing` is set.
struct NodeStateHarness {
    _api: metallb_testkit::TestApi,
    tx: watch::Sender<NodeStatus>,
    attempts: Arc<Mutex<Vec<tokio::time::Instant>>>,
    client: kube::Client,
    stop: CancellationToken,
    tasks: metallb_runtime::Tasks,
}

impl NodeStateHarness {
    async fn start(failing: Arc<std::sync::atomic::AtomicBool>) -> Self {
        use http::{Method, StatusCode};
        use std::sync::atomic::Ordering::SeqCst;
        let api = metallb_testkit::start().await.unwrap();
        let attempts = Arc::new(Mutex::new(Vec::<tokio::time::Instant>::new()));
        let fault: metallb_testkit::Fault = {
            let attempts = attempts.clone();
            Arc::new(move |method: &Method, path: &str| {
                if method == Method::PATCH && path.ends_with("/frrnodestates/node-1/status") {
                    attempts.lock().unwrap().push(tokio::time::Instant::now());
                    if failing.load(SeqCst) {
                        return Some(StatusCode::INTERNAL_SERVER_ERROR);
                    }
                }
                None
            })
        };
        let client = api.in_process_client(fault);
        let (tx, rx) = watch::channel(NodeStatus::default());
        let mut registry = Registry::default();
        let metrics = FrrMetrics::register(&mut registry);
        let mut tasks = metallb_runtime::Tasks::new();
        let stop = CancellationToken::new();
        status::spawn_node_state_writer(
            &mut tasks,
            &Readiness::default(),
            client.clone(),
            "node-1".into(),
            rx,
            metrics,
            stop.clone(),
        );
        NodeStateHarness {
            _api: api,
            tx,
            attempts,
            client,
            stop,
            tasks,
        }
    }

    /// Waits until `n` status writes were attempted.
    async fn attempted(&self, what: &str, n: usize) {
        let attempts = self.attempts.clone();
        eventually(what, move || {
            let attempts = attempts.clone();
            async move { attempts.lock().unwrap().len() >= n }
        })
        .await;
    }

    /// Waits until the stored status shows `result`.
    async fn shows(&self, result: &str) {
        let states: Api<FRRNodeState> = Api::all(self.client.clone());
        eventually("the latest status written", || async {
            states
                .get_opt("node-1")
                .await
                .unwrap()
                .and_then(|o| o.status)
                .and_then(|s| s.last_conversion_result)
                .as_deref()
                == Some(result)
        })
        .await;
    }

    /// Milliseconds between consecutive attempts.
    fn gaps(&self) -> Vec<u128> {
        let at = self.attempts.lock().unwrap().clone();
        at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect()
    }

    async fn stop(mut self) {
        self.stop.cancel();
        self.tasks.shutdown(TIMEOUT).await.unwrap();
    }
}

/// On a paused clock: a failed status write waits out its whole backoff (500 ms,
/// doubling), even when the status changes meanwhile, then writes the latest status.
#[tokio::test(start_paused = true)]
async fn a_failed_status_write_waits_out_its_backoff() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let failing = Arc::new(AtomicBool::new(true));
    let h = NodeStateHarness::start(failing.clone()).await;
    h.tx.send_modify(|s| {
        s.set_conversion("success");
    });
    h.attempted("two failed attempts", 2).await;
    // news meanwhile: no attempt before the backoff ends
    h.tx.send_modify(|s| {
        s.set_conversion("failed: something");
    });
    h.attempted("four failed attempts", 4).await;
    failing.store(false, SeqCst);
    h.shows("failed: something").await;
    let gaps = h.gaps();
    assert_eq!(&gaps[..4], [500, 1000, 2000, 4000], "attempts at {gaps:?}");
    h.stop().await;
}

/// On a paused clock: while the status keeps changing (a burst of FRR applies), it is
/// written at most once per NODE_STATE_INTERVAL, the latest each time; a change after a
/// calm is written at once.
#[tokio::test(start_paused = true)]
async fn the_node_state_is_written_at_its_pace_during_a_burst() {
    use std::sync::atomic::AtomicBool;
    let h = NodeStateHarness::start(Arc::new(AtomicBool::new(false))).await;
    h.tx.send_modify(|s| {
        s.set_conversion("first");
    });
    h.shows("first").await;
    // 20 changes 100 ms apart: 2 s of changes
    for i in 0..20 {
        h.tx.send_modify(|s| {
            s.set_conversion(&format!("burst {i}"));
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.shows("burst 19").await;
    let burst = h.gaps();
    assert!(
        burst
            .iter()
            .all(|g| *g >= status::NODE_STATE_INTERVAL.as_millis()),
        "writes closer than the interval: {burst:?}"
    );
    assert!(
        burst.len() <= 3,
        "{} writes for 20 changes in 2 s",
        burst.len()
    );
    // a calm, then one change: written at once
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = h.attempts.lock().unwrap().len();
    let t = tokio::time::Instant::now();
    h.tx.send_modify(|s| {
        s.set_conversion("after a calm");
    });
    h.shows("after a calm").await;
    let at = h.attempts.lock().unwrap()[before];
    assert!(at - t < Duration::from_millis(50), "{:?}", at - t);
    h.stop().await;
}
