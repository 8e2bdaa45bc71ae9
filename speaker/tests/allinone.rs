//! The all-in-one process in one test: the speaker shell and the embedded frr-k8s node
//! component against the test API server, with a fake FRR that records what it is told.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use frr_k8s::frr::apply::ApplyOptions;
use frr_k8s::frr::control::{ControlError, FrrControl};
use frr_k8s::metrics::FrrMetrics;
use frr_k8s::node::NodeSettings;
use frr_k8s::RenderOptions;
use kube::api::Api;
use metallb_api::frrk8s::{FRRConfiguration, FRRNodeState};
use metallb_runtime::Readiness;
use metallb_speaker::allinone::{self, FrrComponent};
use metallb_speaker::metrics::SpeakerMetrics;
use metallb_speaker::shell::{Settings, ShutdownOutcome};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// FRR that accepts everything; its running configuration is every batch in order.
#[derive(Clone, Default)]
struct FakeFrr {
    batches: Arc<Mutex<Vec<String>>>,
}

impl FakeFrr {
    fn text(&self) -> String {
        self.batches.lock().expect("lock").join("\n")
    }

    /// For [`eventually`]: FRR was told to originate `prefix`.
    fn originates(&self, prefix: &str) -> impl Fn() -> std::future::Ready<bool> {
        let (f, line) = (self.clone(), format!("network {prefix}"));
        move || std::future::ready(f.text().contains(&line))
    }
}

/// A LoadBalancer Service at `ip` served on node-2; returns once FRR was told to
/// originate it.
async fn service_reaches_frr(client: &kube::Client, fake: &FakeFrr, name: &str, ip: &str) {
    lb_service(client, name, ip, false, None).await;
    slice(client, name, &["node-2"]).await;
    let what = format!("{name} ({ip}) in FRR");
    eventually(&what, fake.originates(&format!("{ip}/32"))).await;
}

/// Whether the speaker's FRRConfiguration in the cluster carries `prefix`.
async fn object_has(api: &Api<FRRConfiguration>, prefix: &str) -> bool {
    let o = api.get(OBJ).await.expect("get");
    serde_json::to_string(&o.spec).unwrap().contains(prefix)
}

impl FrrControl for FakeFrr {
    fn apply(&self, batch: &str) -> Result<(), ControlError> {
        self.batches.lock().expect("lock").push(batch.to_string());
        Ok(())
    }
    fn apply_direct(&self, _batch: &str) -> Option<Result<(), ControlError>> {
        None
    }

    fn check(&self, _batch: &str) -> Result<(), ControlError> {
        Ok(())
    }
    fn running_config(&self) -> Result<String, ControlError> {
        Ok(self.text())
    }
    fn show_json(&self, _command: &str) -> Result<Value, ControlError> {
        Ok(json!({}))
    }
    fn instance_token(&self) -> Option<String> {
        Some("fake".into())
    }
}

/// The embedded component on `fake`, without verification.
fn frr_component(fake: &FakeFrr, metrics: Arc<FrrMetrics>) -> FrrComponent<FakeFrr> {
    FrrComponent {
        settings: NodeSettings {
            node_name: NODE.into(),
            namespace: NS.into(),
            render: RenderOptions::default(),
            poll_interval: Duration::from_millis(100),
            write_status: true,
            persist_versions: true,
            apply: ApplyOptions {
                verify: false,
                dry_run: false,
                ..ApplyOptions::default()
            },
        },
        control: fake.clone(),
        metrics,
    }
}

/// How long the process waits on SIGTERM for FRR to apply the withdrawal: generous, it
/// returns as soon as FRR has.
const WITHDRAW_WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn speaker_and_embedded_frr_k8s_share_frr_with_a_user() {
    let api = metallb_testkit::start().await.expect("api");
    let client = api.client();
    base_config(&client).await;
    let frr_api = Api::<FRRConfiguration>::namespaced(client.clone(), NS);
    // a user's extra neighbor on every node, merged with MetalLB's object
    let _: FRRConfiguration = create(
        &frr_api,
        json!({"metadata": {"name": "user-extra", "namespace": NS},
               "spec": {"bgp": {"routers": [{"asn": 64512,
                   "neighbors": [{"address": "172.18.0.9", "asn": 65009}]}]}}}),
    )
    .await;
    lb_service(&client, "web", "192.168.10.1", false, None).await;
    slice(&client, "web", &["node-2"]).await;

    let fake = FakeFrr::default();
    let stop = CancellationToken::new();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = SpeakerMetrics::register(&mut registry);
    let frr_metrics = FrrMetrics::register(&mut registry);
    let readiness = Readiness::default();
    // `--withdraw-on-shutdown`: this test follows the withdrawal into FRR.
    let mut settings = Settings::new(NODE, NS, NS);
    settings.withdraw_on_shutdown = true;
    let task = tokio::spawn(allinone::run(
        client.clone(),
        settings,
        Some(frr_component(&fake, frr_metrics)),
        readiness.clone(),
        metrics,
        stop.clone(),
        WITHDRAW_WAIT,
    ));

    let f = fake.clone();
    eventually(
        "MetalLB's and the user's neighbors and the prefix in FRR",
        || {
            let t = f.text();
            async move {
                t.contains("neighbor 172.18.0.1 remote-as 65000")
                    && t.contains("neighbor 172.18.0.9 remote-as 65009")
                    && t.contains("network 192.168.10.1/32")
            }
        },
    )
    .await;
    let r = readiness.clone();
    eventually("both components ready", || {
        let r = r.clone();
        async move { r.is_ready() }
    })
    .await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(text.contains("metallb_speaker_announced{ip=\"192.168.10.1\",node=\"node-1\",protocol=\"bgp\",service=\"default/web\"} 1"), "{text}");
    assert!(text.contains("frrk8s_reloads_total"), "{text}");

    // a conflicting user object (another ASN for the default VRF) is reported and
    // skipped; MetalLB's announcement stays
    let _: FRRConfiguration = create(
        &frr_api,
        json!({"metadata": {"name": "zz-conflict", "namespace": NS},
               "spec": {"bgp": {"routers": [{"asn": 64999, "prefixes": ["10.99.0.0/24"],
                   "neighbors": [{"address": "172.18.0.10", "asn": 65010}]}]}}}),
    )
    .await;
    let states = Api::<FRRNodeState>::all(client.clone());
    eventually("conflict in FRRNodeState", || {
        let states = states.clone();
        async move {
            states
                .get_opt(NODE)
                .await
                .ok()
                .flatten()
                .and_then(|s| s.status)
                .and_then(|s| s.last_conversion_result)
                .is_some_and(|r| r.starts_with("failed") && r.contains("zz-conflict"))
        }
    })
    .await;
    let t = fake.text();
    assert!(!t.contains("no network 192.168.10.1/32"), "{t}");
    assert!(
        !t.contains("172.18.0.10"),
        "the conflicting object was applied: {t}"
    );

    // SIGTERM (withdrawing): the withdrawal reaches FRR before the process ends
    let started = Instant::now();
    stop.cancel();
    let outcome = task.await.expect("join").expect("run");
    assert!(
        matches!(outcome, ShutdownOutcome::Withdrawn { .. }),
        "{outcome:?}"
    );
    // it returned because FRR applied the withdrawal, not because the wait ran out
    assert!(
        started.elapsed() < WITHDRAW_WAIT,
        "stopped after {:?}",
        started.elapsed()
    );
    let t = fake.text();
    let added = t.rfind("network 192.168.10.1/32").expect("announced");
    let removed = t
        .rfind("no network 192.168.10.1/32")
        .expect("withdrawn in FRR");
    assert!(removed + 3 == added || removed > added, "{t}");
    assert!(t.contains("172.18.0.1"), "the session stays");
}

/// The speaker hands its configuration to the embedded frr-k8s in process: a new Service
/// reaches FRR while every write of `metallb-node-1` fails, and the object catches up once
/// writes work again. During a burst the object is written at `frr_write_interval`, not
/// once per change.
#[tokio::test]
async fn the_embedded_frr_k8s_takes_the_speakers_configuration_in_process() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let api = metallb_testkit::start().await.expect("api");
    base_config(&api.client()).await;
    lb_service(&api.client(), "web", "192.168.10.1", false, None).await;
    slice(&api.client(), "web", &["node-2"]).await;
    // updates of metallb-node-1 fail while `broken` is set
    let broken = Arc::new(AtomicBool::new(false));
    let b = broken.clone();
    let own = format!("/apis/frrk8s.metallb.io/v1beta1/namespaces/{NS}/frrconfigurations/{OBJ}");
    let client = api.in_process_client(Arc::new(move |method, path| {
        (b.load(Ordering::SeqCst) && *method == http::Method::PUT && path == own)
            .then_some(http::StatusCode::INTERNAL_SERVER_ERROR)
    }));

    let fake = FakeFrr::default();
    let stop = CancellationToken::new();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = SpeakerMetrics::register(&mut registry);
    let writes = {
        let m = metrics.clone();
        move || m.frrconfiguration_writes_total.get()
    };
    let frr_metrics = FrrMetrics::register(&mut registry);
    let mut settings = Settings::new(NODE, NS, NS);
    const INTERVAL: Duration = Duration::from_secs(4);
    settings.frr_write_interval = INTERVAL;
    let task = tokio::spawn(allinone::run(
        client.clone(),
        settings,
        Some(frr_component(&fake, frr_metrics)),
        Readiness::default(),
        metrics,
        stop.clone(),
        WITHDRAW_WAIT,
    ));
    let frr_api = Api::<FRRConfiguration>::namespaced(client.clone(), NS);
    eventually(
        "the first Service in FRR",
        fake.originates("192.168.10.1/32"),
    )
    .await;
    eventually("the first Service in the object", || {
        object_has(&frr_api, "192.168.10.1/32")
    })
    .await;

    // every update of the object fails: the change reaches FRR all the same
    broken.store(true, Ordering::SeqCst);
    service_reaches_frr(&client, &fake, "api", "192.168.10.2").await;
    assert!(
        !object_has(&frr_api, "192.168.10.2/32").await,
        "the object was written although every update failed"
    );
    broken.store(false, Ordering::SeqCst);
    eventually("the object catches up", || {
        object_has(&frr_api, "192.168.10.2/32")
    })
    .await;

    // a burst, right after a write: FRR has every Service at once; the object follows
    // in one write when the interval is over
    let before = writes();
    let burst_started = Instant::now();
    for i in 3..8 {
        let name = format!("burst{i}");
        lb_service(&client, &name, &format!("192.168.10.{i}"), false, None).await;
        slice(&client, &name, &["node-2"]).await;
    }
    eventually(
        "every Service of the burst in FRR",
        fake.originates("192.168.10.7/32"),
    )
    .await;
    let burst_took = burst_started.elapsed();
    eventually("the object has the burst", || {
        object_has(&frr_api, "192.168.10.7/32")
    })
    .await;
    let burst_writes = writes() - before;
    if burst_took < INTERVAL {
        // the burst came within one interval of the catch-up write: one write, at its end
        assert_eq!(burst_writes, 1, "writes during a burst of 5 Services");
    }
    assert!(
        burst_writes <= 2,
        "{burst_writes} writes for a burst of 5 Services"
    );
    let t = fake.text();
    for i in 3..8 {
        assert!(t.contains(&format!("network 192.168.10.{i}/32")), "{t}");
    }

    stop.cancel();
    task.await.expect("join").expect("run");
}

/// A restart right after a change: the object in the cluster is older than what FRR has
/// (the write was held back by the interval, then failed, as if the process had died
/// first). The new process's frr-k8s component waits for the speaker's decision instead of
/// applying that older copy: it never withdraws the newest Service. A clean stop makes the
/// held-back write before it ends, so the next process finds the object current.
#[tokio::test]
async fn a_restart_right_after_a_change_starts_from_what_frr_has() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let api = metallb_testkit::start().await.expect("api");
    base_config(&api.client()).await;
    lb_service(&api.client(), "web", "192.168.10.1", false, None).await;
    slice(&api.client(), "web", &["node-2"]).await;
    // updates of metallb-node-1 fail while `broken` is set; the Service list (which only
    // the speaker reads) while `services_down` is
    let broken = Arc::new(AtomicBool::new(false));
    let services_down = Arc::new(AtomicBool::new(false));
    let (b, sd) = (broken.clone(), services_down.clone());
    let own = format!("/apis/frrk8s.metallb.io/v1beta1/namespaces/{NS}/frrconfigurations/{OBJ}");
    let client = api.in_process_client(Arc::new(move |method, path| {
        let fail = (b.load(Ordering::SeqCst) && *method == http::Method::PUT && path == own)
            || (sd.load(Ordering::SeqCst) && path == "/api/v1/services");
        fail.then_some(http::StatusCode::INTERNAL_SERVER_ERROR)
    }));
    let fake = FakeFrr::default();
    let start = || {
        let stop = CancellationToken::new();
        let mut registry = prometheus_client::registry::Registry::default();
        let mut settings = Settings::new(NODE, NS, NS);
        // every write after the first of a process is held back for the whole test
        settings.frr_write_interval = Duration::from_secs(600);
        let task = tokio::spawn(allinone::run(
            client.clone(),
            settings,
            Some(frr_component(&fake, FrrMetrics::register(&mut registry))),
            Readiness::default(),
            SpeakerMetrics::register(&mut registry),
            stop.clone(),
            WITHDRAW_WAIT,
        ));
        (stop, task)
    };
    let frr_api = Api::<FRRConfiguration>::namespaced(client.clone(), NS);

    let (stop, task) = start();
    eventually(
        "the first Service in FRR",
        fake.originates("192.168.10.1/32"),
    )
    .await;
    eventually("the first Service in the object", || {
        object_has(&frr_api, "192.168.10.1/32")
    })
    .await;
    // the second Service reaches FRR; its write is held back, and fails on the stop
    broken.store(true, Ordering::SeqCst);
    service_reaches_frr(&client, &fake, "api", "192.168.10.2").await;
    stop.cancel();
    task.await.expect("join").expect("run");
    assert!(
        !object_has(&frr_api, "192.168.10.2/32").await,
        "the object has the second Service although its write failed"
    );
    broken.store(false, Ordering::SeqCst);

    // the next process, its speaker slow to sync: its frr-k8s component waits for it
    // rather than applying the older object, and FRR keeps the Service
    let sent_before = fake.batches.lock().expect("lock").len();
    services_down.store(true, Ordering::SeqCst);
    let (stop, task) = start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    services_down.store(false, Ordering::SeqCst);
    eventually("the new process writes the object", || {
        object_has(&frr_api, "192.168.10.2/32")
    })
    .await;
    // the held-back write of a clean stop: a third Service, then the stop at once
    service_reaches_frr(&client, &fake, "db", "192.168.10.3").await;
    assert!(
        !object_has(&frr_api, "192.168.10.3/32").await,
        "the third Service's write was not held back"
    );
    stop.cancel();
    task.await.expect("join").expect("run");
    assert!(
        object_has(&frr_api, "192.168.10.3/32").await,
        "the clean stop did not make the held-back write"
    );
    let sent = fake.batches.lock().expect("lock")[sent_before..].join("\n");
    assert!(
        !sent.contains("no network 192.168.10.2/32"),
        "the new process withdrew the newest Service before taking it back:\n{sent}"
    );
}
