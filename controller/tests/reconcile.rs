//! The reconciler against the in-memory API server over HTTP.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use metallb_api::metallb::{ConfigurationResult, ConfigurationState, IPAddressPool};
use serde_json::json;

#[tokio::test]
async fn assigns_ip_annotation_event_and_pool_status() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "pool-a", &["192.0.2.0/30"]).await;
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    create_svc(&c, lb("web", json!({}))).await;
    wait_ingress(&c, "web", &["192.0.2.0"]).await;
    let svc = services(&c).get("web").await.unwrap();
    assert_eq!(
        svc.annotations()
            .get("metallb.io/ip-allocated-from-pool")
            .map(String::as_str),
        Some("pool-a")
    );
    let evs = wait_event(&c, "web", "IPAllocated").await;
    assert!(
        evs.contains(&("IPAllocated".into(), "Assigned IP [\"192.0.2.0\"]".into())),
        "{evs:?}"
    );
    let pools: Api<IPAddressPool> = Api::namespaced(c.clone(), NS);
    let st = eventually("pool status", || {
        let pools = pools.clone();
        async move {
            pools
                .get("pool-a")
                .await
                .ok()?
                .status
                .filter(|s| s.assigned_ipv4 == 1)
        }
    })
    .await;
    assert_eq!(st.available_ipv4, 3);
    assert_eq!(st.assigned_ipv6, 0);
    ctl.stop().await;
}

#[tokio::test]
async fn freed_ip_goes_to_pending_service_and_failure_is_reported_once() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "one", &["192.0.2.7/32"]).await;
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    create_svc(&c, lb("a", json!({}))).await;
    wait_ingress(&c, "a", &["192.0.2.7"]).await;
    create_svc(&c, lb("b", json!({}))).await;
    let cc = c.clone();
    eventually("AllocationFailed on b", || {
        let cc = cc.clone();
        async move {
            events_of(&cc, "b")
                .await
                .iter()
                .any(|(r, _)| r == "AllocationFailed")
                .then_some(())
        }
    })
    .await;
    // Unrelated resyncs (a label change on b) do not repeat the event.
    services(&c)
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    // A probe Service created after the patch (an invalid request: it never takes an
    // address): once its event exists, the controller has processed the patch too
    // (Service events arrive in order).
    let mut probe = lb("probe", json!({"metallb.io/loadBalancerIPs": "192.0.2.1"}));
    probe.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.2".into());
    create_svc(&c, probe).await;
    wait_event(&c, "probe", "LoadBalancerFailed").await;
    let failures = events_of(&c, "b")
        .await
        .into_iter()
        .filter(|(r, _)| r == "AllocationFailed")
        .count();
    assert_eq!(failures, 1);
    services(&c)
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    wait_ingress(&c, "b", &["192.0.2.7"]).await;
    ctl.stop().await;
}

#[tokio::test]
async fn type_change_releases_and_clears() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "p", &["192.0.2.0/30"]).await;
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    create_svc(&c, lb("a", json!({}))).await;
    wait_ingress(&c, "a", &["192.0.2.0"]).await;
    services(&c)
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    wait_ingress(&c, "a", &[]).await;
    let cc = c.clone();
    eventually("annotation removed", || {
        let cc = cc.clone();
        async move {
            let s = services(&cc).get("a").await.ok()?;
            (!s.annotations()
                .contains_key("metallb.io/ip-allocated-from-pool"))
            .then_some(())
        }
    })
    .await;
    // The address is free again.
    create_svc(&c, lb("b", json!({}))).await;
    wait_ingress(&c, "b", &["192.0.2.0"]).await;
    ctl.stop().await;
}

#[tokio::test]
async fn shrinking_a_pool_moves_the_service() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "p", &["192.0.2.0/30"]).await;
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    create_svc(
        &c,
        lb("a", json!({"metallb.io/loadBalancerIPs": "192.0.2.3"})),
    )
    .await;
    wait_ingress(&c, "a", &["192.0.2.3"]).await;
    create_svc(&c, lb("b", json!({}))).await;
    wait_ingress(&c, "b", &["192.0.2.0"]).await;
    // Shrink so that b's address is gone: b moves to the remaining range; a's requested IP
    // is gone too and a reports failure.
    let pools: Api<IPAddressPool> = Api::namespaced(c.clone(), NS);
    pools
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"addresses": ["192.0.2.1-192.0.2.2"]}})),
        )
        .await
        .unwrap();
    wait_ingress(&c, "b", &["192.0.2.1"]).await;
    wait_ingress(&c, "a", &[]).await;
    wait_event(&c, "b", "ClearAssignment").await;
    // Deleting the pool empties every service.
    pools.delete("p", &DeleteParams::default()).await.unwrap();
    wait_ingress(&c, "b", &[]).await;
    ctl.stop().await;
}

#[tokio::test]
async fn requested_ips_and_sharing() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "p", &["192.0.2.0/29"]).await;
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    let shared =
        json!({"metallb.io/loadBalancerIPs": "192.0.2.5", "metallb.io/allow-shared-ip": "k"});
    create_svc(&c, lb("a", shared.clone())).await;
    let mut b = lb("b", shared.clone());
    b.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 443;
    create_svc(&c, b).await;
    wait_ingress(&c, "a", &["192.0.2.5"]).await;
    wait_ingress(&c, "b", &["192.0.2.5"]).await;
    // Same port: conflict, reported, no IP.
    create_svc(&c, lb("c", shared)).await;
    let cc = c.clone();
    let msg = eventually("AllocationFailed on c", || {
        let cc = cc.clone();
        async move {
            events_of(&cc, "c")
                .await
                .into_iter()
                .find(|(r, _)| r == "AllocationFailed")
                .map(|(_, m)| m)
        }
    })
    .await;
    assert!(
        msg.contains("port TCP/80 is already in use on 192.0.2.5"),
        "{msg}"
    );
    assert!(ingress_of(&c, "c").await.is_empty());
    // Changing the requested IP moves the service.
    services(&c)
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "192.0.2.6"}}}),
            ),
        )
        .await
        .unwrap();
    wait_ingress(&c, "a", &["192.0.2.6"]).await;
    // Both the annotation and spec.loadBalancerIP: LoadBalancerFailed.
    let mut d = lb("d", json!({"metallb.io/loadBalancerIPs": "192.0.2.1"}));
    d.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.2".into());
    create_svc(&c, d).await;
    let cc = c.clone();
    eventually("LoadBalancerFailed on d", || {
        let cc = cc.clone();
        async move {
            events_of(&cc, "d")
                .await
                .iter()
                .any(|(r, _)| r == "LoadBalancerFailed")
                .then_some(())
        }
    })
    .await;
    ctl.stop().await;
}

#[tokio::test]
async fn invalid_pool_is_skipped_and_reported_while_valid_pool_serves() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "bad", &["10.0.0.0/33"]).await;
    create_pool(&c, "good", &["198.18.0.0/31"]).await;
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    create_svc(&c, lb("a", json!({}))).await;
    wait_ingress(&c, "a", &["198.18.0.0"]).await;
    let states: Api<ConfigurationState> = Api::namespaced(c.clone(), NS);
    let st = eventually("ConfigurationState", || {
        let states = states.clone();
        async move { states.get("controller").await.ok()?.status }
    })
    .await;
    assert_eq!(st.result, Some(ConfigurationResult::Invalid));
    let summary = st.error_summary.unwrap_or_default();
    assert!(
        summary.contains("IPAddressPool metallb-system/bad"),
        "{summary}"
    );
    assert!(summary.contains("10.0.0.0/33"), "{summary}");
    // Fixing it turns the state Valid.
    let pools: Api<IPAddressPool> = Api::namespaced(c.clone(), NS);
    pools
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"addresses": ["10.0.0.0/32"]}})),
        )
        .await
        .unwrap();
    eventually("ConfigurationState valid", || {
        let states = states.clone();
        async move {
            let s = states.get("controller").await.ok()?.status?;
            (s.result == Some(ConfigurationResult::Valid)).then_some(())
        }
    })
    .await;
    // ... and clears the summary (a merge patch that omits it would keep the old text).
    let st = states.get("controller").await.unwrap().status.unwrap();
    assert_eq!(st.error_summary, None, "{st:?}");
    ctl.stop().await;
}

/// Issue 13: a new overlapping pool and an invalid edit of the pool in use move no IP,
/// before or after a restart; the record lives in the controller's kept-versions ConfigMap.
#[tokio::test]
async fn configuration_mistakes_move_no_ip_even_across_a_restart() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "seed", &["198.18.0.0/30"]).await;
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    create_svc(&c, lb("a", json!({}))).await;
    wait_ingress(&c, "a", &["198.18.0.0"]).await;
    let states: Api<ConfigurationState> = Api::namespaced(c.clone(), NS);
    let summary = |want: &'static str| {
        let states = states.clone();
        eventually(want, move || {
            let states = states.clone();
            async move {
                let s = states.get("controller").await.ok()?.status?;
                let text = s.error_summary.unwrap_or_default();
                text.contains(want).then_some(text)
            }
        })
    };
    // A newcomer that sorts first by name and overlaps: skipped, naming the pool it
    // conflicts with.
    create_pool(&c, "a-overlap", &["198.18.0.0/31"]).await;
    let text = summary("IPAddressPool metallb-system/a-overlap: skipped").await;
    assert!(text.contains("IPAddressPool metallb-system/seed"), "{text}");
    create_svc(&c, lb("b", json!({}))).await;
    wait_ingress(&c, "b", &["198.18.0.1"]).await;
    // An invalid edit of the pool in use keeps its last valid version.
    let pools: Api<IPAddressPool> = Api::namespaced(c.clone(), NS);
    pools
        .patch(
            "seed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"addresses": ["198.18.0.0/33"]}})),
        )
        .await
        .unwrap();
    summary(
        "IPAddressPool metallb-system/seed: keeping the last valid version (generation 1) since",
    )
    .await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(c.clone(), NS);
    let record = eventually("kept versions persisted", || {
        let cms = cms.clone();
        async move {
            let data = cms
                .get("metallb-controller-kept-versions")
                .await
                .ok()?
                .data?;
            let text = data.get("memo.json")?.clone();
            (text.contains("seed") && text.contains("a-overlap")).then_some(text)
        }
    })
    .await;
    assert!(record.contains("198.18.0.0/30"), "{record}");
    ctl.stop().await;

    // A restart with both mistakes still there makes the same choices.
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    create_svc(&c, lb("c", json!({}))).await;
    wait_ingress(&c, "c", &["198.18.0.2"]).await;
    assert_eq!(ingress_of(&c, "a").await, ["198.18.0.0"]);
    assert_eq!(ingress_of(&c, "b").await, ["198.18.0.1"]);
    let text = summary("IPAddressPool metallb-system/seed: keeping the last valid version").await;
    assert!(
        text.contains("IPAddressPool metallb-system/a-overlap: skipped"),
        "{text}"
    );

    // Fixing the edit and deleting the newcomer: Valid, nothing kept.
    pools
        .delete("a-overlap", &DeleteParams::default())
        .await
        .unwrap();
    pools
        .patch(
            "seed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"addresses": ["198.18.0.0/29"]}})),
        )
        .await
        .unwrap();
    eventually("ConfigurationState valid and the record empty", || {
        let (states, cms) = (states.clone(), cms.clone());
        async move {
            let s = states.get("controller").await.ok()?.status?;
            let data = cms
                .get("metallb-controller-kept-versions")
                .await
                .ok()?
                .data?;
            (s.result == Some(ConfigurationResult::Valid) && data.get("memo.json")? == "[]")
                .then_some(())
        }
    })
    .await;
    assert_eq!(ingress_of(&c, "a").await, ["198.18.0.0"]);
    assert_eq!(ingress_of(&c, "b").await, ["198.18.0.1"]);
    assert_eq!(ingress_of(&c, "c").await, ["198.18.0.2"]);
    ctl.stop().await;
}

#[tokio::test]
async fn other_load_balancer_class_is_left_alone() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "p", &["192.0.2.0/30"]).await;
    let mut ctl = spawn(c.clone());
    ctl.synced().await;
    let mut s = lb("other", json!({}));
    s.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    create_svc(&c, s).await;
    create_svc(&c, lb("mine", json!({}))).await;
    wait_ingress(&c, "mine", &["192.0.2.0"]).await;
    assert!(ingress_of(&c, "other").await.is_empty());
    assert!(events_of(&c, "other").await.is_empty());
    ctl.stop().await;
}

/// Restart in the middle of a burst of creates: no address that was published changes,
/// and a restart once everything settled writes nothing at all.
#[tokio::test]
async fn restart_mid_burst_changes_nothing_and_noop_resync_writes_nothing() {
    let api = server().await;
    let c = api.client();
    create_pool(&c, "p", &["198.18.0.0/24"]).await;
    let mut first = spawn(c.clone());
    first.synced().await;
    let n = 150;
    let creator = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..n {
                create_svc(&c, lb(&format!("s{i:03}"), json!({}))).await;
            }
        })
    };
    // Stop the first controller once some, but not all, services have addresses.
    first
        .progress
        .wait_for(|p| p.allocated >= 30)
        .await
        .unwrap();
    first.stop().await;
    let published: BTreeMap<String, Vec<String>> = services(&c)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| (s.name_any(), ingress(s)))
        .filter(|(_, i)| !i.is_empty())
        .collect();
    assert!(!published.is_empty());
    creator.await.unwrap();
    let mut second = spawn(c.clone());
    second.synced().await;
    let cc = c.clone();
    let after = eventually("every service allocated", || {
        let cc = cc.clone();
        async move {
            let all: BTreeMap<String, Vec<String>> = services(&cc)
                .list(&Default::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|s| (s.name_any(), ingress(s)))
                .collect();
            all.values().all(|i| i.len() == 1).then_some(all)
        }
    })
    .await;
    for (name, ips) in &published {
        assert_eq!(
            &after[name], ips,
            "{name} kept its address across the restart"
        );
    }
    let distinct: std::collections::BTreeSet<&Vec<String>> = after.values().collect();
    assert_eq!(distinct.len(), n, "no duplicates");
    // Let the second controller finish (pool status, ConfigurationState, the writes of
    // its last allocation batch), then restart on a quiet cluster.
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        second
            .progress
            .wait_for(|p| p.allocated == n && p.pending == 0),
    )
    .await
    .expect("the second controller's last batch in time")
    .unwrap();
    let pools: Api<IPAddressPool> = Api::namespaced(c.clone(), NS);
    let states: Api<ConfigurationState> = Api::namespaced(c.clone(), NS);
    eventually("pool status and ConfigurationState written", || {
        let (pools, states) = (pools.clone(), states.clone());
        async move {
            let pool = pools.get("p").await.ok()?.status?;
            let state = states.get("controller").await.ok()?.status?;
            (pool.assigned_ipv4 == n as i64 && state.result == Some(ConfigurationResult::Valid))
                .then_some(())
        }
    })
    .await;
    second.stop().await;
    let rv = api.resource_version();
    let mut third = spawn(c.clone());
    let p = third.synced().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(p.writes, 0, "no-op resync writes nothing: {p:?}");
    assert_eq!(third.progress.borrow().writes, 0);
    assert_eq!(api.resource_version(), rv, "no object changed");
    third.stop().await;
}

/// A burst of allocations writes a pool's status at most once per
/// `pool_status_interval` (a lone change at once), and the burst's final counts are shown
/// once the interval has passed. With a zero interval the same burst writes it once per
/// batch (the test's comparison, so that it shows the pacing is what makes the difference).
#[tokio::test]
async fn pool_status_is_written_at_most_once_per_interval_during_a_burst() {
    async fn burst(interval: Duration) -> (usize, i64) {
        let api = server().await;
        let c = api.client();
        create_pool(&c, "p", &["192.0.2.0/27"]).await;
        let mut s = settings();
        s.pool_status_interval = interval;
        let mut ctl = spawn_with(c.clone(), s);
        ctl.synced().await;
        let pools: Api<IPAddressPool> = Api::namespaced(c.clone(), NS);
        let assigned = |n: i64| {
            let pools = pools.clone();
            move || {
                let pools = pools.clone();
                async move {
                    let p = pools.get("p").await.ok()?;
                    let rv = p.resource_version();
                    (p.status?.assigned_ipv4 == n).then(|| rv.unwrap())
                }
            }
        };
        // a lone change after a calm (the status of the start was written): at once
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let t = tokio::time::Instant::now();
        create_svc(&c, lb("s-00", json!({}))).await;
        let rv = eventually("the status after a lone change", assigned(1)).await;
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "a lone change waited {:?}",
            t.elapsed()
        );
        // every status write from here on, from a watch of the pool
        let mut events = pools
            .watch(&kube::api::WatchParams::default(), &rv)
            .await
            .unwrap()
            .boxed();
        let seen = tokio::spawn(async move {
            let mut shown = Vec::new();
            while let Some(Ok(kube::api::WatchEvent::Modified(p))) = events.next().await {
                let n = p.status.map_or(0, |s| s.assigned_ipv4);
                if shown.last() != Some(&n) {
                    shown.push(n);
                }
                if n == 21 {
                    break;
                }
            }
            shown
        });
        // the burst: 20 Services 100 ms apart, each a batch of its own
        for i in 1..=20 {
            create_svc(&c, lb(&format!("s-{i:02}"), json!({}))).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eventually("the burst's final counts", assigned(21)).await;
        let shown = tokio::time::timeout(Duration::from_secs(5), seen)
            .await
            .expect("the watch saw the final counts")
            .unwrap();
        ctl.stop().await;
        (shown.len(), *shown.last().unwrap())
    }
    let (paced, last) = burst(Duration::from_secs(1)).await;
    assert_eq!(last, 21);
    // ~2 s of burst: one write per second at most, plus the one that ends it
    assert!(paced <= 4, "{paced} status writes during a 2 s burst");
    let (unpaced, _) = burst(Duration::ZERO).await;
    eprintln!(
        "pool status writes during a 2 s burst of 20 Services: {paced} paced, {unpaced} unpaced"
    );
    assert!(
        unpaced >= 10,
        "{unpaced} status writes without pacing: the burst did not come in batches of its own"
    );
}
