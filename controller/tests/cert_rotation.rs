//! Self-managed webhook certificates against a real kube-apiserver (`METALLB_K8S_ASSETS`,
//! see `metallb_testkit::envtest`): two controller "replicas" in this process, each with
//! its certificate rotator and its webhook server. One holds the Lease and writes the
//! Secret and the caBundles; the API server then calls the webhooks of either replica
//! (registered by URL, as envtest does, so the certificate also names 127.0.0.1). Deleting
//! the Secret makes the holder write a new one and the caBundles follow; killing the holder
//! hands the Lease to the other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use metallb_api::webhooks::{self, Target};
use metallb_controller::webhook;
use metallb_runtime::certs::{CertRotator, CertSettings, CA_CERT, TLS_CERT};
use metallb_runtime::tls_server::{self, CertStore};
use metallb_testkit::envtest::{self, send};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const NS: &str = "metallb-system";
const SECRET: &str = "metallb-webhook-cert";
const VWC: &str = "metallb-webhook-configuration";
const CRD: &str = "bgppeers.metallb.io";
const LEASE: &str = "metallb-webhook-cert-writer";
const WAIT: Duration = Duration::from_secs(120);

/// One controller replica: webhook server (with a request counter) and rotator.
struct Replica {
    identity: String,
    addr: std::net::SocketAddr,
    store: CertStore,
    calls: Arc<AtomicUsize>,
    rotator: tokio::task::JoinHandle<()>,
    rotator_stop: CancellationToken,
    _server_stop: tokio_util::sync::DropGuard,
}

async fn count(
    axum::extract::State(n): axum::extract::State<Arc<AtomicUsize>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    n.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

fn settings(identity: &str) -> CertSettings {
    let mut s = CertSettings::new(NS, SECRET, "metallb-webhook-service", LEASE, identity);
    s.extra_sans = vec!["127.0.0.1".into()];
    s.webhook_configurations = vec![VWC.into()];
    s.conversion_crds = vec![CRD.into()];
    s.lease_duration = Duration::from_secs(6);
    s.lease_renew_period = Duration::from_secs(1);
    s.check_period = Duration::from_secs(3);
    s
}

async fn replica(c: &Client, identity: &str) -> Replica {
    let s = settings(identity);
    let store = CertStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let router = webhook::router(c.clone(), NS)
        .layer(axum::middleware::from_fn_with_state(calls.clone(), count));
    let server_stop = CancellationToken::new();
    let (addr, _) = tls_server::serve_store(
        "127.0.0.1:0".parse().unwrap(),
        router,
        store.clone(),
        server_stop.clone(),
    )
    .await
    .unwrap();
    let rotator_stop = CancellationToken::new();
    let rotator =
        tokio::spawn(CertRotator::new(c.clone(), s, store.clone()).run(rotator_stop.clone()));
    Replica {
        identity: identity.into(),
        addr,
        store,
        calls,
        rotator,
        rotator_stop,
        _server_stop: server_stop.drop_guard(),
    }
}

/// Poll `f` until it returns Some, or fail with `what`.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: never happened; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn holder(c: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(c.clone(), NS);
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

async fn secret(c: &Client) -> Option<(Vec<u8>, Vec<u8>)> {
    let secrets: Api<Secret> = Api::namespaced(c.clone(), NS);
    let s = secrets.get_opt(SECRET).await.ok()??;
    let d = s.data?;
    Some((d.get(CA_CERT)?.0.clone(), d.get(TLS_CERT)?.0.clone()))
}

/// The CA in the Secret, once the VWC's every webhook and the CRD's conversion hold it and
/// both replicas serve the Secret's certificate. `not`: a CA that must have been replaced.
async fn settled(c: &Client, replicas: &[&Replica], not: Option<&[u8]>) -> Vec<u8> {
    eventually(
        "Secret, caBundles and served certificates agree",
        || async {
            let (ca, leaf) = secret(c).await.ok_or("no Secret")?;
            if not == Some(ca.as_slice()) {
                return Err("the Secret still holds the old CA".into());
            }
            let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(c.clone());
            let vwc = vwcs.get(VWC).await.map_err(|e| e.to_string())?;
            for w in vwc.webhooks.iter().flatten() {
                if w.client_config.ca_bundle.as_ref().map(|b| &b.0) != Some(&ca) {
                    return Err(format!("{}: caBundle not (yet) the CA", w.name));
                }
            }
            let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
            let crd = crds.get(CRD).await.map_err(|e| e.to_string())?;
            let have = crd
                .spec
                .conversion
                .and_then(|cv| cv.webhook)
                .and_then(|w| w.client_config)
                .and_then(|cc| cc.ca_bundle)
                .map(|b| b.0);
            if have.as_ref() != Some(&ca) {
                return Err("CRD conversion caBundle not (yet) the CA".into());
            }
            let der = {
                use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
                CertificateDer::from_pem_slice(&leaf)
                    .map_err(|e| e.to_string())?
                    .to_vec()
            };
            for r in replicas {
                let served = r
                    .store
                    .current()
                    .ok_or(format!("{} serves nothing", r.identity))?;
                if served.cert[0].as_ref() != der.as_slice() {
                    return Err(format!(
                        "{} does not serve the Secret's certificate",
                        r.identity
                    ));
                }
            }
            Ok(ca)
        },
    )
    .await
}

/// Send every webhook (admission and conversion) to `r`.
async fn point_at(c: &Client, r: &Replica) {
    let base = format!("https://{}", r.addr);
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(c.clone());
    eventually("webhooks re-pointed", || async {
        let mut vwc = vwcs.get(VWC).await.map_err(|e| e.to_string())?;
        for w in vwc.webhooks.iter_mut().flatten() {
            let url = w.client_config.url.clone().unwrap_or_default();
            let path = url.splitn(4, '/').nth(3).unwrap_or_default();
            w.client_config.url = Some(format!("{base}/{path}"));
        }
        vwcs.replace(VWC, &PostParams::default(), &vwc)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    crds.patch(
        CRD,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"conversion": {"webhook": {"clientConfig": {
            "url": format!("{base}{}", webhooks::PATH_CONVERT)}}}}})),
    )
    .await
    .unwrap();
}

/// The API server calls `r`'s admission webhook (an invalid pool is denied with the
/// webhook's message, answered by `r`) and its conversion webhook (a v1beta1 BGPPeer named
/// `peer`, peering with `address`, reads back as v1beta2).
async fn webhooks_answer_through(c: &Client, r: &Replica, peer: &str, address: &str) {
    let pools = format!("/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools");
    let before = r.calls.load(Ordering::SeqCst);
    eventually(&format!("{} denies an invalid pool", r.identity), || async {
        let a = send(
            c,
            "POST",
            &pools,
            Some(&json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": "probe", "namespace": NS},
                "spec": {"addresses": ["not-an-address"]}})),
        )
        .await;
        if a.status == 201 {
            send(c, "DELETE", &format!("{pools}/probe"), None).await;
            return Err("admitted".into());
        }
        let m = a.message();
        if !m.contains("admission webhook \"ipaddresspoolvalidationwebhook.metallb.io\" denied the request") {
            return Err(format!("{}: {m}", a.status));
        }
        assert!(m.contains("not-an-address"), "{m}");
        if r.calls.load(Ordering::SeqCst) == before {
            return Err("denied, but not by this replica".into());
        }
        Ok(())
    })
    .await;
    let v1 = format!("/apis/metallb.io/v1beta1/namespaces/{NS}/bgppeers");
    let v2 = format!("/apis/metallb.io/v1beta2/namespaces/{NS}/bgppeers");
    let before = r.calls.load(Ordering::SeqCst);
    eventually(&format!("{} converts a BGPPeer", r.identity), || async {
        let a = send(
            c,
            "POST",
            &v1,
            Some(
                &json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
                "metadata": {"name": peer, "namespace": NS},
                "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": address,
                         "holdTime": "90s"}}),
            ),
        )
        .await;
        if a.status != 201 && a.status != 409 {
            return Err(format!("create: {} {}", a.status, a.body));
        }
        let got = send(c, "GET", &format!("{v2}/{peer}"), None).await;
        if got.status != 200 {
            return Err(format!("get v1beta2: {} {}", got.status, got.body));
        }
        assert_eq!(got.body["apiVersion"], "metallb.io/v1beta2");
        assert_eq!(got.body["spec"]["holdTime"], "90s", "{}", got.body);
        if r.calls.load(Ordering::SeqCst) == before {
            return Err("converted, but not by this replica".into());
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_self_managed_by_one_replica_and_served_by_all() {
    let test = "certificates_are_self_managed_by_one_replica_and_served_by_all";
    let Some(cp) = envtest::start_or_skip(test, envtest::Options::default()).await else {
        return;
    };
    let c = cp.client();
    let warnings = envtest::install_crds(&c, &metallb_api::crds::all())
        .await
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let a = send(
        &c,
        "POST",
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);

    // Two replicas, started before the webhook configuration exists (the chart creates it
    // alongside): the rotators wait for it.
    let a = replica(&c, "replica-a").await;
    let b = replica(&c, "replica-b").await;

    // Registered as the chart registers them, without a caBundle: the rotator injects it.
    let mut target = Target::url(&format!("https://{}", a.addr), b"");
    target.ca_bundle = None;
    let vwc = serde_json::to_value(webhooks::metallb_validating(&target)).unwrap();
    let r = send(
        &c,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some(&vwc),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut conversion = serde_json::to_value(webhooks::bgppeer_conversion(&target)).unwrap();
    conversion["webhook"]["clientConfig"]["service"] = Value::Null;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    crds.patch(
        CRD,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"conversion": conversion}})),
    )
    .await
    .unwrap();

    // One holder; the Secret, the caBundles and what both replicas serve agree.
    let first = eventually("a Lease holder", || async {
        holder(&c).await.ok_or_else(|| "no holder".to_string())
    })
    .await;
    assert!(first == a.identity || first == b.identity, "{first}");
    let ca1 = settled(&c, &[&a, &b], None).await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), NS);
    let s = secrets.get(SECRET).await.unwrap();
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    let keys: Vec<_> = s.data.unwrap().into_keys().collect();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    // Once settled, nobody rewrites: the Secret stays as it is over a few checks.
    let rv = s.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        secrets.get(SECRET).await.unwrap().metadata.resource_version,
        rv,
        "the Secret was rewritten although nothing changed"
    );

    // The API server calls each replica's server, both with the Secret's certificate.
    webhooks_answer_through(&c, &a, "peer-a", "192.0.2.1").await;
    point_at(&c, &b).await;
    webhooks_answer_through(&c, &b, "peer-b", "192.0.2.2").await;

    // A deleted Secret is written again by the holder; the caBundles follow and both
    // replicas serve the new certificate.
    secrets
        .delete(SECRET, &DeleteParams::default())
        .await
        .unwrap();
    let ca2 = settled(&c, &[&a, &b], Some(&ca1)).await;
    webhooks_answer_through(&c, &b, "peer-b2", "192.0.2.3").await;

    // The holder dies without giving the Lease up: the other takes it over once it
    // expires, and writes from then on.
    let holder_now = holder(&c).await.unwrap();
    let (dead, alive) = if holder_now == a.identity {
        (a, b)
    } else {
        (b, a)
    };
    dead.rotator.abort();
    let _ = dead.rotator.await;
    dead.rotator_stop.cancel();
    eventually("the other replica takes the Lease", || async {
        match holder(&c).await {
            Some(h) if h == alive.identity => Ok(()),
            h => Err(format!("holder {h:?}")),
        }
    })
    .await;
    secrets
        .delete(SECRET, &DeleteParams::default())
        .await
        .unwrap();
    settled(&c, &[&alive], Some(&ca2)).await;
    point_at(&c, &alive).await;
    webhooks_answer_through(&c, &alive, "peer-c", "192.0.2.4").await;

    // A clean stop gives the Lease up.
    alive.rotator_stop.cancel();
    let _ = alive.rotator.await;
    assert_eq!(holder(&c).await, None);

    // As the binaries wire it: the readiness gate `webhook-cert` opens once a certificate
    // is served, and the API server calls the new server.
    let readiness = metallb_runtime::Readiness::default();
    let stop = CancellationToken::new();
    let (addr, task) = metallb_runtime::certs::serve_webhook(
        "127.0.0.1:0".parse().unwrap(),
        webhook::router(c.clone(), NS),
        &c,
        metallb_runtime::WebhookTls::Rotate(Box::new(settings("replica-d"))),
        &readiness,
        stop.clone(),
    )
    .await
    .unwrap();
    eventually("webhook-cert ready", || async {
        if readiness.is_ready() {
            Ok(())
        } else {
            Err(format!("pending {:?}", readiness.pending()))
        }
    })
    .await;
    let d = Replica {
        identity: "replica-d".into(),
        addr,
        store: CertStore::new(),
        calls: Arc::new(AtomicUsize::new(0)),
        rotator: tokio::spawn(async {}),
        rotator_stop: stop.clone(),
        _server_stop: CancellationToken::new().drop_guard(),
    };
    point_at(&c, &d).await;
    let pools = format!("/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools");
    eventually("the wired server denies an invalid pool", || async {
        let a = send(
            &c,
            "POST",
            &pools,
            Some(
                &json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": "probe", "namespace": NS},
                "spec": {"addresses": ["not-an-address"]}}),
            ),
        )
        .await;
        if a.message().contains("denied the request") {
            Ok(())
        } else {
            Err(format!("{} {}", a.status, a.body))
        }
    })
    .await;
    assert_eq!(holder(&c).await.as_deref(), Some("replica-d"));
    stop.cancel();
    task.await.unwrap();
    assert_eq!(holder(&c).await, None, "the Lease is given up on shutdown");
}
