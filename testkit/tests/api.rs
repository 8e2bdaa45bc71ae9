//! Pins each verb's behaviour against Kubernetes API conventions, through a real
//! `kube::Client`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::Status;
use kube::discovery::{verbs, Discovery, Scope};
use kube::Client;
use serde_json::{json, Value};

/// How long a test waits for a watch event it expects (delivered in milliseconds; the
/// margin is for a busy machine).
const EVENT_WAIT: Duration = Duration::from_secs(30);
/// `timeoutSeconds` of the tests' watches: longer than `EVENT_WAIT`, so a slow event is
/// not mistaken for the end of the watch.
const WATCH_SECS: u32 = 60;

fn opts() -> metallb_testkit::Options {
    metallb_testkit::Options {
        crds: vec![],
        ..Default::default()
    }
}

async fn server() -> metallb_testkit::TestApi {
    metallb_testkit::start_with(opts())
        .await
        .expect("server starts")
}

fn api_err(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({ "metadata": { "name": name, "labels": labels }, "data": { "k": name } }),
    )
    .unwrap()
}

fn svc(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "type": "LoadBalancer", "selector": { "app": name },
                  "ports": [{ "name": "http", "port": 80 }, { "name": "https", "port": 443 }] }
    }))
    .unwrap()
}

fn widget_crd(scope: &str, plural: &str, kind: &str) -> CustomResourceDefinition {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["addresses"],
                "properties": {
                    "addresses": { "type": "array", "minItems": 1, "maxItems": 3,
                                   "items": { "type": "string", "pattern": "^[0-9a-f.:/]+$" } },
                    "mode": { "type": "string", "enum": ["layer2", "bgp"], "default": "layer2" },
                    "port": { "type": "integer", "format": "int32", "minimum": 1, "maximum": 65535 },
                    "name": { "type": "string", "maxLength": 5 },
                    "extra": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                    "peers": { "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                               "items": { "type": "object", "required": ["name"], "properties": {
                                   "name": { "type": "string" }, "asn": { "type": "integer" } } } }
                }
            },
            "status": { "type": "object", "properties": { "ready": { "type": "boolean" }, "count": { "type": "integer" } } }
        }
    });
    let version = |name: &str, storage: bool| {
        json!({ "name": name, "served": true, "storage": storage,
                "schema": { "openAPIV3Schema": schema }, "subresources": { "status": {} } })
    };
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{plural}.example.com") },
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": { "plural": plural, "singular": kind.to_lowercase(), "kind": kind, "shortNames": [format!("{}x", &plural[..2])] },
            "versions": [version("v1", true), version("v1beta1", false)]
        }
    }))
    .unwrap()
}

async fn install_widgets(client: &Client) -> ApiResource {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &widget_crd("Namespaced", "widgets", "Widget"),
    )
    .await
    .unwrap();
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    )
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": { "name": name }, "spec": spec
    }))
    .unwrap()
}

#[tokio::test]
async fn version_and_discovery() {
    let api = server().await;
    let client = api.client();
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");
    assert!(api.url().starts_with("http://127.0.0.1:"));
    assert!(std::fs::read_to_string(api.kubeconfig_path())
        .unwrap()
        .contains(api.url()));

    install_widgets(&client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &widget_crd("Cluster", "gadgets", "Gadget"),
    )
    .await
    .unwrap();

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (svc_ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Service"))
        .expect("services discovered");
    assert_eq!(svc_ar.plural, "services");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.supports_operation(verbs::WATCH));
    assert!(
        caps.subresources
            .iter()
            .any(|(ar, _)| ar.plural == "services/status" || ar.plural == "status"),
        "{:?}",
        caps.subresources
    );
    for (g, v, k) in [
        ("discovery.k8s.io", "v1", "EndpointSlice"),
        ("coordination.k8s.io", "v1", "Lease"),
        ("events.k8s.io", "v1", "Event"),
        ("", "v1", "Node"),
        ("", "v1", "Namespace"),
        ("", "v1", "Secret"),
        ("", "v1", "ConfigMap"),
        ("", "v1", "Pod"),
        ("", "v1", "Event"),
        ("example.com", "v1", "Widget"),
        ("example.com", "v1beta1", "Widget"),
    ] {
        assert!(
            discovery
                .resolve_gvk(&GroupVersionKind::gvk(g, v, k))
                .is_some(),
            "{g}/{v} {k}"
        );
    }
    let (_, gcaps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Gadget"))
        .unwrap();
    assert_eq!(gcaps.scope, Scope::Cluster);
    let group = discovery.get("example.com").unwrap();
    assert_eq!(group.preferred_version_or_latest(), "v1");

    // Raw discovery documents, as kubectl reads them.
    let core = client.list_core_api_resources("v1").await.unwrap();
    let svc = core
        .resources
        .iter()
        .find(|r| r.name == "services")
        .unwrap();
    assert_eq!(svc.short_names.as_deref(), Some(&["svc".to_string()][..]));
    assert!(core.resources.iter().any(|r| r.name == "services/status"));
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "example.com"));

    // Aggregated discovery (what kubectl asks for first).
    let agg = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    for (g, v, k) in [
        ("", "v1", "Service"),
        ("example.com", "v1", "Widget"),
        ("example.com", "v1", "Gadget"),
    ] {
        assert!(
            agg.resolve_gvk(&GroupVersionKind::gvk(g, v, k)).is_some(),
            "aggregated {g}/{v} {k}"
        );
    }
    let (_, caps) = agg
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Service"))
        .unwrap();
    assert!(!caps.subresources.is_empty());

    // Deleting the CRD unregisters its kinds.
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Gadget"))
        .is_none());
}

#[tokio::test]
async fn create_get_generate_name_and_errors() {
    let api = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let pp = PostParams::default();
    let created = cms.create(&pp, &cm("a", json!({}))).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert!(
        meta.resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );

    let e = api_err(cms.create(&pp, &cm("a", json!({}))).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"a\" already exists");

    let mut gen = cm("", json!({}));
    gen.metadata.name = None;
    gen.metadata.generate_name = Some("gen-".into());
    let g1 = cms.create(&pp, &gen).await.unwrap();
    let g2 = cms.create(&pp, &gen).await.unwrap();
    let (n1, n2) = (g1.metadata.name.unwrap(), g2.metadata.name.unwrap());
    assert!(n1.starts_with("gen-") && n1.len() == 9, "{n1}");
    assert_ne!(n1, n2);

    let e = api_err(cms.get("missing").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert!(cms.get_opt("missing").await.unwrap().is_none());

    let mut nameless = cm("", json!({}));
    nameless.metadata.name = None;
    let e = api_err(cms.create(&pp, &nameless).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));

    let e = api_err(
        cms.create(&pp, &cm("Bad_Name", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);

    // Creating in a namespace that does not exist fails as in a real cluster.
    let other: Api<ConfigMap> = Api::namespaced(api.client(), "nope");
    let e = api_err(other.create(&pp, &cm("a", json!({}))).await.unwrap_err());
    assert_eq!(e.code, 404);
    assert!(e.message.contains("namespaces \"nope\""), "{}", e.message);

    // Unsupported patch type.
    let raw = http::Request::patch(format!("{}/api/v1/namespaces/default/configmaps/a", ""))
        .header("content-type", "text/plain")
        .body(b"x".to_vec())
        .unwrap();
    let e = api_err(api.client().request::<ConfigMap>(raw).await.unwrap_err());
    assert_eq!(e.code, 415);
}

#[tokio::test]
async fn list_with_selectors_and_pagination() {
    let api = server().await;
    let client = api.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": "other" } })).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    for (name, labels) in [
        ("a", json!({ "app": "web", "tier": "front" })),
        ("b", json!({ "app": "web", "tier": "back" })),
        ("c", json!({ "app": "db" })),
        ("d", json!({})),
        ("e", json!({ "app": "cache", "tier": "back" })),
    ] {
        cms.create(&pp, &cm(name, labels)).await.unwrap();
    }
    let others: Api<ConfigMap> = Api::namespaced(client.clone(), "other");
    others
        .create(&pp, &cm("z", json!({ "app": "web" })))
        .await
        .unwrap();

    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    for (sel, want) in [
        ("app=web", vec!["a", "b"]),
        ("app==web", vec!["a", "b"]),
        ("app!=web", vec!["c", "d", "e"]),
        ("app in (web,db)", vec!["a", "b", "c"]),
        ("app notin (web,db)", vec!["d", "e"]),
        ("tier", vec!["a", "b", "e"]),
        ("!tier", vec!["c", "d"]),
        ("app=web,tier=back", vec!["b"]),
    ] {
        let got = names(cms.list(&ListParams::default().labels(sel)).await.unwrap());
        assert_eq!(got, want, "selector {sel}");
    }
    let got = names(
        cms.list(&ListParams::default().fields("metadata.name=c"))
            .await
            .unwrap(),
    );
    assert_eq!(got, ["c"]);
    let got = names(
        cms.list(&ListParams::default().fields("metadata.name!=c,data.k!=a"))
            .await
            .unwrap(),
    );
    assert_eq!(got, ["b", "d", "e"]);

    // Cluster-wide list spans namespaces.
    let all: Api<ConfigMap> = Api::all(client.clone());
    let got = names(
        all.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap(),
    );
    assert_eq!(got, ["a", "b", "z"]);
    let got = names(
        all.list(&ListParams::default().fields("metadata.namespace=other"))
            .await
            .unwrap(),
    );
    assert_eq!(got, ["z"]);

    // Pagination.
    let mut lp = ListParams::default().limit(2);
    let mut pages = Vec::new();
    let mut rvs = Vec::new();
    loop {
        let page = cms.list(&lp).await.unwrap();
        rvs.push(page.metadata.resource_version.clone().unwrap());
        let token = page.metadata.continue_.clone();
        pages.push(names(page));
        match token {
            Some(t) if !t.is_empty() => lp = lp.continue_token(&t),
            _ => break,
        }
    }
    assert_eq!(pages, vec![vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
    assert!(rvs.windows(2).all(|w| w[0] == w[1]));

    // Services: spec.type field selector.
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    svcs.create(&pp, &svc("lb")).await.unwrap();
    let got: Vec<String> = svcs
        .list(&ListParams::default().fields("spec.type=LoadBalancer"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.metadata.name.unwrap())
        .collect();
    assert_eq!(got, ["lb"]);

    let e = api_err(
        cms.list(&ListParams::default().labels("a in b"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> WatchEvent<ConfigMap> {
    loop {
        let ev = tokio::time::timeout(EVENT_WAIT, stream.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("no error");
        if !matches!(ev, WatchEvent::Bookmark(_)) {
            return ev;
        }
    }
}

fn summary(ev: &WatchEvent<ConfigMap>) -> (String, String) {
    match ev {
        WatchEvent::Added(o) => ("ADDED".into(), o.metadata.name.clone().unwrap()),
        WatchEvent::Modified(o) => ("MODIFIED".into(), o.metadata.name.clone().unwrap()),
        WatchEvent::Deleted(o) => ("DELETED".into(), o.metadata.name.clone().unwrap()),
        WatchEvent::Bookmark(_) => ("BOOKMARK".into(), String::new()),
        WatchEvent::Error(e) => ("ERROR".into(), e.message.clone()),
    }
}

#[tokio::test]
async fn watch_from_resource_version_gets_exactly_later_events() {
    let api = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let pp = PostParams::default();
    let a = cms.create(&pp, &cm("a", json!({}))).await.unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    cms.create(&pp, &cm("b", json!({ "x": "y" })))
        .await
        .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "2" } })),
    )
    .await
    .unwrap();
    cms.delete("b", &DeleteParams::default()).await.unwrap();

    let wp = WatchParams::default().timeout(WATCH_SECS);
    let mut stream = cms.watch(&wp, &rv).await.unwrap().boxed();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(summary(&next_event(&mut stream).await));
    }
    assert_eq!(
        got,
        [
            ("ADDED".to_string(), "b".to_string()),
            ("MODIFIED".into(), "a".into()),
            ("DELETED".into(), "b".into())
        ]
    );
    // Live events follow, nothing else.
    cms.create(&pp, &cm("c", json!({}))).await.unwrap();
    assert_eq!(
        summary(&next_event(&mut stream).await),
        ("ADDED".into(), "c".into())
    );

    // A selector watch sees objects enter and leave the selection as ADDED / DELETED.
    let rv = api.resource_version().to_string();
    let mut sel = cms
        .watch(
            &WatchParams::default().labels("x=y").timeout(WATCH_SECS),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "x": "y" } } })),
    )
    .await
    .unwrap();
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "x": null } } })),
    )
    .await
    .unwrap();
    assert_eq!(
        summary(&next_event(&mut sel).await),
        ("ADDED".into(), "c".into())
    );
    assert_eq!(
        summary(&next_event(&mut sel).await),
        ("DELETED".into(), "c".into())
    );

    // Watch from "0": the current state first.
    let mut zero = cms
        .watch(&WatchParams::default().timeout(WATCH_SECS), "0")
        .await
        .unwrap()
        .boxed();
    let mut names = vec![
        summary(&next_event(&mut zero).await),
        summary(&next_event(&mut zero).await),
    ];
    names.sort();
    assert_eq!(
        names,
        [("ADDED".into(), "a".into()), ("ADDED".into(), "c".into())]
    );

    // Bookmarks carry a resourceVersion.
    let bm_api = metallb_testkit::start_with(metallb_testkit::Options {
        bookmark_interval: Duration::from_millis(50),
        ..opts()
    })
    .await
    .unwrap();
    let cms2: Api<ConfigMap> = Api::namespaced(bm_api.client(), "default");
    let rv = bm_api.resource_version().to_string();
    let mut bms = cms2
        .watch(&WatchParams::default().timeout(WATCH_SECS), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(EVENT_WAIT, bms.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_compacted_version_is_expired() {
    let api = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.unwrap();
    api.compact();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected 410, got {other:?}"),
    }
    // A list made after compaction hands out a resourceVersion that can be watched.
    let fresh = cms.list(&ListParams::default()).await.unwrap();
    let rv = fresh.metadata.resource_version.unwrap();
    let mut ok = cms
        .watch(&WatchParams::default().timeout(WATCH_SECS), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    assert_eq!(
        summary(&next_event(&mut ok).await),
        ("ADDED".into(), "b".into())
    );

    // An open watch ends with 410 on expire_watches().
    let rv = api.resource_version().to_string();
    let mut open = cms
        .watch(&WatchParams::default().timeout(WATCH_SECS), &rv)
        .await
        .unwrap()
        .boxed();
    tokio::time::sleep(Duration::from_millis(50)).await;
    api.expire_watches();
    match tokio::time::timeout(EVENT_WAIT, open.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    assert!(
        open.next().await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn update_with_stale_resource_version_conflicts() {
    let api = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let pp = PostParams::default();
    let a = cms.create(&pp, &cm("a", json!({}))).await.unwrap();
    let mut first = a.clone();
    first.data = Some([("k".to_string(), "1".to_string())].into());
    let updated = cms.replace("a", &pp, &first).await.unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        a.metadata.resource_version
    );
    let mut second = a.clone();
    second.data = Some([("k".to_string(), "2".to_string())].into());
    let e = api_err(cms.replace("a", &pp, &second).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("the object has been modified"),
        "{}",
        e.message
    );
    // A patch carrying a stale resourceVersion conflicts too.
    let e = api_err(
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "resourceVersion": a.metadata.resource_version }, "data": { "k": "3" } })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    // A no-op update does not bump the resourceVersion.
    let same = cms.replace("a", &pp, &updated).await.unwrap();
    assert_eq!(
        same.metadata.resource_version,
        updated.metadata.resource_version
    );
    // Name mismatch.
    let mut renamed = updated.clone();
    renamed.metadata.name = Some("b".into());
    let e = api_err(cms.replace("a", &pp, &renamed).await.unwrap_err());
    assert_eq!(e.code, 400);
}

#[tokio::test]
async fn service_defaults_and_status_subresource_isolation() {
    let api = server().await;
    let svcs: Api<Service> = Api::namespaced(api.client(), "default");
    let pp = PostParams::default();
    let mut with_status = svc("web");
    with_status.status =
        serde_json::from_value(json!({ "loadBalancer": { "ingress": [{ "ip": "1.2.3.4" }] } }))
            .unwrap();
    let created = svcs.create(&pp, &with_status).await.unwrap();
    let spec = created.spec.clone().unwrap();
    assert!(spec.cluster_ip.as_deref().unwrap().starts_with("10.96."));
    assert_eq!(spec.ip_families.as_deref(), Some(&["IPv4".to_string()][..]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    let ports = spec.ports.unwrap();
    assert!(ports
        .iter()
        .all(|p| (30000..=32767).contains(&p.node_port.unwrap())));
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    assert!(
        created
            .status
            .as_ref()
            .unwrap()
            .load_balancer
            .as_ref()
            .unwrap()
            .ingress
            .is_none(),
        "status is dropped on create"
    );

    // Status through the main endpoint is ignored.
    let mut main = created.clone();
    main.status = with_status.status.clone();
    main.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    let after = svcs.replace("web", &pp, &main).await.unwrap();
    assert!(after
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .is_none());
    assert_eq!(after.metadata.labels.unwrap()["a"], "b");

    // Status through /status changes only the status.
    let patched = svcs
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "type": "ClusterIP" }, "status": { "loadBalancer": { "ingress": [{ "ip": "192.0.2.1" }] } } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    let ingress = patched
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .unwrap();
    assert_eq!(ingress[0].ip.as_deref(), Some("192.0.2.1"));

    // replace_status.
    let mut cur = svcs.get("web").await.unwrap();
    cur.status =
        serde_json::from_value(json!({ "loadBalancer": { "ingress": [{ "ip": "192.0.2.2" }] } }))
            .unwrap();
    cur.spec.as_mut().unwrap().type_ = Some("NodePort".into());
    let replaced = svcs.replace_status("web", &pp, &cur).await.unwrap();
    assert_eq!(
        replaced.spec.unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
    assert_eq!(
        replaced
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()[0]
            .ip
            .as_deref(),
        Some("192.0.2.2")
    );

    // Secrets: stringData lands in data.
    let secrets: Api<Secret> = Api::namespaced(api.client(), "default");
    let s: Secret = serde_json::from_value(
        json!({ "metadata": { "name": "s" }, "stringData": { "password": "hunter2" } }),
    )
    .unwrap();
    let s = secrets.create(&pp, &s).await.unwrap();
    assert_eq!(s.data.unwrap()["password"].0, b"hunter2");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only() {
    let api = server().await;
    let ar = install_widgets(&api.client()).await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(api.client(), "default", &ar);
    let w = widgets
        .create(
            &PostParams::default(),
            &widget("w", json!({ "addresses": ["10.0.0.0/24"] })),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let pp = PatchParams::default();
    let w = widgets
        .patch_status(
            "w",
            &pp,
            &Patch::Merge(json!({ "status": { "ready": true } })),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    assert_eq!(w.data["status"]["ready"], true);
    let w = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } })),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let w = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({ "spec": { "port": 80 }, "status": { "ready": false } })),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));
    assert_eq!(
        w.data["status"]["ready"], true,
        "main endpoint ignores status"
    );
    let mut again = w.clone();
    again.data["spec"]["port"] = json!(81);
    let w = widgets
        .replace("w", &PostParams::default(), &again)
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(3));

    // Services track generation too (status subresource).
    let svcs: Api<Service> = Api::namespaced(api.client(), "default");
    let s = svcs
        .create(&PostParams::default(), &svc("g"))
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    let s = svcs
        .patch_status(
            "g",
            &pp,
            &Patch::Merge(
                json!({ "status": { "loadBalancer": { "ingress": [{ "ip": "192.0.2.9" }] } } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(1));
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let api = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let mut c = cm("f", json!({}));
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &c).await.unwrap();
    let rv = api.resource_version().to_string();
    let mut events = cms
        .watch(&WatchParams::default().timeout(WATCH_SECS), &rv)
        .await
        .unwrap()
        .boxed();

    let res = cms.delete("f", &DeleteParams::default()).await.unwrap();
    let held = res.left().expect("object returned while finalizers remain");
    assert!(held.metadata.deletion_timestamp.is_some());
    let still = cms.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    // No new finalizers once deleting.
    let e = api_err(
        cms.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": ["example.com/hold", "other"] } })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
                { "op": "remove", "path": "/metadata/finalizers" }
            ]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("f").await.unwrap().is_none());
    assert_eq!(
        summary(&next_event(&mut events).await),
        ("MODIFIED".into(), "f".into())
    );
    assert_eq!(
        summary(&next_event(&mut events).await),
        ("DELETED".into(), "f".into())
    );

    // Owner references: dependents go when the owner goes.
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut dep = cm("dep", json!({}));
    dep.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.unwrap()
    }))
    .unwrap()]);
    cms.create(&PostParams::default(), &dep).await.unwrap();
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("dep").await.unwrap().is_none());

    // Delete preconditions.
    let p = cms
        .create(&PostParams::default(), &cm("p", json!({})))
        .await
        .unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..Default::default()
    };
    assert_eq!(api_err(cms.delete("p", &dp).await.unwrap_err()).code, 409);
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: p.metadata.resource_version,
            uid: None,
        }),
        ..Default::default()
    };
    cms.delete("p", &dp).await.unwrap();
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let api = server().await;
    let svcs: Api<Service> = Api::namespaced(api.client(), "default");
    svcs.create(&PostParams::default(), &svc("p"))
        .await
        .unwrap();
    let pp = PatchParams::default();

    // Merge patch replaces lists.
    let s = svcs
        .patch("p", &pp, &Patch::Merge(json!({ "metadata": { "annotations": { "a": "1" } }, "spec": { "selector": { "app": null, "new": "x" } } })))
        .await
        .unwrap();
    assert_eq!(s.metadata.annotations.unwrap()["a"], "1");
    assert_eq!(s.spec.as_ref().unwrap().selector.as_ref().unwrap().len(), 1);

    // Strategic merge patch merges ports by port and keeps allocated node ports.
    let before = s.spec.unwrap().ports.unwrap();
    let s = svcs
        .patch("p", &pp, &Patch::Strategic(json!({ "spec": { "ports": [{ "port": 80, "name": "web" }, { "port": 8080, "name": "alt" }] } })))
        .await
        .unwrap();
    let ports = s.spec.unwrap().ports.unwrap();
    let names: Vec<(i32, String)> = ports
        .iter()
        .map(|p| (p.port, p.name.clone().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            (80, "web".into()),
            (443, "https".into()),
            (8080, "alt".into())
        ]
    );
    assert_eq!(ports[0].node_port, before[0].node_port);

    let s = svcs
        .patch(
            "p",
            &pp,
            &Patch::Strategic(
                json!({ "spec": { "ports": [{ "port": 443, "$patch": "delete" }] } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().ports.unwrap().len(), 2);

    // JSON patch, including a failing test op.
    let s = svcs
        .patch(
            "p",
            &pp,
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    { "op": "add", "path": "/metadata/labels", "value": { "x": "y" } },
                    { "op": "replace", "path": "/spec/ports/0/name", "value": "http" }
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.labels.unwrap()["x"], "y");
    assert_eq!(
        s.spec.unwrap().ports.unwrap()[0].name.as_deref(),
        Some("http")
    );
    let e = api_err(
        svcs.patch(
            "p",
            &pp,
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    { "op": "test", "path": "/metadata/labels/x", "value": "nope" }
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);

    // Strategic merge patch is not supported on custom resources (415, as a real server).
    let ar = install_widgets(&api.client()).await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(api.client(), "default", &ar);
    widgets
        .create(
            &PostParams::default(),
            &widget("w", json!({ "addresses": ["10.0.0.1"] })),
        )
        .await
        .unwrap();
    let e = api_err(
        widgets
            .patch(
                "w",
                &pp,
                &Patch::Strategic(json!({ "spec": { "port": 1 } })),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 415);

    // Patching something missing is a 404.
    let e = api_err(
        svcs.patch("missing", &pp, &Patch::Merge(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
}

#[tokio::test]
async fn server_side_apply_create_update_and_conflicts() {
    let api = server().await;
    let ar = install_widgets(&api.client()).await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(api.client(), "default", &ar);
    let ctrl = PatchParams::apply("ctrl");
    let cfg = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w", "labels": { "by": "ctrl" } },
        "spec": { "addresses": ["10.0.0.1"], "port": 80, "peers": [{ "name": "a", "asn": 1 }] } });
    let w = widgets
        .patch("w", &ctrl, &Patch::Apply(&cfg))
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["port"], 80);
    assert_eq!(
        w.data["spec"]["mode"], "layer2",
        "defaults apply on SSA create"
    );
    let mf = w.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("ctrl"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // Another manager adds a peer (list-type map merges by key) and owns it.
    let other = PatchParams::apply("other");
    let cfg2 = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" },
        "spec": { "peers": [{ "name": "b", "asn": 2 }] } });
    let w = widgets
        .patch("w", &other, &Patch::Apply(&cfg2))
        .await
        .unwrap();
    let peers: Vec<&str> = w.data["spec"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(peers, ["a", "b"]);

    // The first manager drops `port` and its label: they are removed; peer b stays.
    let cfg3 = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" },
        "spec": { "addresses": ["10.0.0.1"], "peers": [{ "name": "a", "asn": 1 }] } });
    let w = widgets
        .patch("w", &ctrl, &Patch::Apply(&cfg3))
        .await
        .unwrap();
    assert!(w.data["spec"].get("port").is_none(), "{}", w.data);
    assert!(!w.metadata.labels.unwrap_or_default().contains_key("by"));
    assert_eq!(w.data["spec"]["peers"].as_array().unwrap().len(), 2);

    // Conflict on a field owned by someone else with a different value, then force.
    let cfg4 = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" },
        "spec": { "addresses": ["10.0.0.2"] } });
    let e = api_err(
        widgets
            .patch("w", &other, &Patch::Apply(&cfg4))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("conflict with \"ctrl\""),
        "{}",
        e.message
    );
    let w = widgets
        .patch("w", &other.clone().force(), &Patch::Apply(&cfg4))
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["addresses"], json!(["10.0.0.2"]));

    // Apply on /status touches only status.
    let st = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" },
        "spec": { "port": 9 }, "status": { "count": 3 } });
    let w = widgets
        .patch_status("w", &ctrl, &Patch::Apply(&st))
        .await
        .unwrap();
    assert_eq!(w.data["status"]["count"], 3);
    assert!(w.data["spec"].get("port").is_none());

    // Apply on a built-in kind.
    let svcs: Api<Service> = Api::namespaced(api.client(), "default");
    let s = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "applied" },
        "spec": { "type": "LoadBalancer", "ports": [{ "port": 53, "protocol": "UDP" }] } });
    let created = svcs
        .patch("applied", &ctrl, &Patch::Apply(&s))
        .await
        .unwrap();
    assert!(created.spec.unwrap().cluster_ip.is_some());
    let again = svcs
        .patch("applied", &ctrl, &Patch::Apply(&s))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        svcs.get("applied").await.unwrap().metadata.resource_version
    );
}

#[tokio::test]
async fn schema_validation_pruning_and_defaults() {
    let api = server().await;
    let ar = install_widgets(&api.client()).await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(api.client(), "default", &ar);
    let pp = PostParams::default();

    let e = widgets
        .create(&pp, &widget("bad", json!({ "addresses": ["10.0.0.1", "not an ip!"], "mode": "carrier-pigeon", "port": 70000, "name": "toolong" })))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = e else {
        panic!("{e:?}")
    };
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert!(
        status
            .message
            .starts_with("Widget.example.com \"bad\" is invalid: ["),
        "{}",
        status.message
    );
    assert!(
        status
            .message
            .contains("spec.addresses[1]: Invalid value: \"not an ip!\""),
        "{}",
        status.message
    );
    let causes = status.details.unwrap().causes;
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.addresses[1]", "spec.mode", "spec.name", "spec.port"]
    );

    let e = api_err(
        widgets
            .create(&pp, &widget("bad", json!({ "port": 1 })))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("spec.addresses: Required value"),
        "{}",
        e.message
    );
    let e = api_err(
        widgets
            .create(&pp, &widget("bad", json!({ "addresses": [] })))
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.contains("should have at least 1 items"),
        "{}",
        e.message
    );
    let e = api_err(
        widgets
            .create(&pp, &widget("bad", json!({ "addresses": "x" })))
            .await
            .unwrap_err(),
    );
    assert!(e.message.contains("must be of type array"), "{}", e.message);

    // Pruning and defaults.
    let w = widgets
        .create(
            &pp,
            &widget(
                "ok",
                json!({ "addresses": ["10.0.0.1"], "unknown": 1, "extra": { "kept": true } }),
            ),
        )
        .await
        .unwrap();
    assert!(w.data["spec"].get("unknown").is_none());
    assert_eq!(w.data["spec"]["extra"]["kept"], true);
    assert_eq!(w.data["spec"]["mode"], "layer2");
    let strict = widget("strict", json!({ "addresses": ["10.0.0.1"], "unknown": 1 }));
    let raw = http::Request::post(
        "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&strict).unwrap())
    .unwrap();
    let e = api_err(
        api.client()
            .request::<DynamicObject>(raw)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
    assert!(
        e.message.contains("unknown field \"spec.unknown\""),
        "{}",
        e.message
    );

    // Updates are validated too.
    let e = api_err(
        widgets
            .patch(
                "ok",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "port": 0 } })),
            )
            .await
            .unwrap_err(),
    );
    assert!(e.message.contains("spec.port"), "{}", e.message);

    // Multi-version: the same object under v1beta1.
    let beta = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1beta1", "Widget"),
        "widgets",
    );
    let betas: Api<DynamicObject> = Api::namespaced_with(api.client(), "default", &beta);
    let b = betas.get("ok").await.unwrap();
    assert_eq!(b.types.unwrap().api_version, "example.com/v1beta1");
    let listed = betas.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    // Cluster-scoped CRD.
    let crds: Api<CustomResourceDefinition> = Api::all(api.client());
    let crd = crds
        .create(
            &PostParams::default(),
            &widget_crd("Cluster", "gadgets", "Gadget"),
        )
        .await
        .unwrap();
    let conds = crd.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True"));
    let gar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::all_with(api.client(), &gar);
    let mut g = widget("g", json!({ "addresses": ["::1"] }));
    g.types.as_mut().unwrap().kind = "Gadget".into();
    let g = gadgets.create(&pp, &g).await.unwrap();
    assert!(g.metadata.namespace.is_none());
    // A CRD whose name does not match is rejected.
    let mut wrong = widget_crd("Cluster", "things", "Thing");
    wrong.metadata.name = Some("wrong.example.com".into());
    assert_eq!(
        api_err(crds.create(&pp, &wrong).await.unwrap_err()).code,
        422
    );
    // Deleting the CRD deletes its objects.
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    crds.create(
        &PostParams::default(),
        &widget_crd("Cluster", "gadgets", "Gadget"),
    )
    .await
    .unwrap();
    assert!(gadgets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn metallb_crds_are_preregistered_and_kubeconfig_is_usable() {
    let api = metallb_testkit::start().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(api.client());
    let listed = crds.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), metallb_api::crds::all().len());
    // A client built from the kubeconfig file works like the built-in one.
    let text = std::fs::read_to_string(api.kubeconfig_path()).unwrap();
    let client = metallb_testkit::client_for(&text).await.unwrap();
    let nss: Api<Namespace> = Api::all(client);
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let _ = nss
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

#[tokio::test]
async fn builtin_kinds_round_trip_and_namespace_deletion() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::events::v1::Event;

    let api = server().await;
    let client = api.client();
    let pp = PostParams::default();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = nss
        .create(
            &pp,
            &serde_json::from_value(json!({ "metadata": { "name": "lab" } })).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    assert_eq!(
        ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "lab"
    );

    // Nodes keep the status they are created with (kubelets register that way).
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": { "name": "node-1", "labels": { "kubernetes.io/hostname": "node-1" } },
        "status": { "addresses": [{ "type": "InternalIP", "address": "172.18.0.2" }],
                    "conditions": [{ "type": "Ready", "status": "True" }] }
    }))
    .unwrap();
    let node = nodes.create(&pp, &node).await.unwrap();
    assert_eq!(
        node.status.unwrap().addresses.unwrap()[0].address,
        "172.18.0.2"
    );
    let node = nodes
        .patch_status(
            "node-1",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({ "status": { "conditions": [{ "type": "Ready", "status": "False" }] } }),
            ),
        )
        .await
        .unwrap();
    let conds = node.status.unwrap().conditions.unwrap();
    assert_eq!((conds.len(), conds[0].status.as_str()), (1, "False"));

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "lab");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": { "name": "web-abc", "labels": { "kubernetes.io/service-name": "web" } },
        "addressType": "IPv4",
        "endpoints": [{ "addresses": ["10.244.0.5"], "conditions": { "ready": true }, "nodeName": "node-1" }],
        "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }]
    }))
    .unwrap();
    slices.create(&pp, &slice).await.unwrap();
    let listed = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap();
    assert_eq!(
        listed.items[0].endpoints[0].node_name.as_deref(),
        Some("node-1")
    );

    let leases: Api<Lease> = Api::namespaced(client.clone(), "lab");
    let lease: Lease = serde_json::from_value(json!({ "metadata": { "name": "leader" }, "spec": { "holderIdentity": "a", "leaseDurationSeconds": 15 } })).unwrap();
    let lease = leases.create(&pp, &lease).await.unwrap();
    let mut taken = lease.clone();
    taken.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases.replace("leader", &pp, &taken).await.unwrap();
    let mut stale = lease;
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    assert_eq!(
        api_err(leases.replace("leader", &pp, &stale).await.unwrap_err()).code,
        409
    );

    let events: Api<Event> = Api::namespaced(client.clone(), "lab");
    let ev: Event = serde_json::from_value(json!({
        "metadata": { "generateName": "web." },
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reason": "IPAllocated", "note": "Assigned IP", "type": "Normal", "action": "Allocate",
        "reportingController": "metallb-controller", "reportingInstance": "c-1",
        "regarding": { "kind": "Service", "namespace": "lab", "name": "web", "apiVersion": "v1" }
    }))
    .unwrap();
    events.create(&pp, &ev).await.unwrap();
    let found = events
        .list(&ListParams::default().fields("regarding.name=web,reason=IPAllocated"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    let core_events: Api<CoreEvent> = Api::namespaced(client.clone(), "lab");
    let cev: CoreEvent = serde_json::from_value(json!({
        "metadata": { "name": "web.1" }, "reason": "X", "message": "m",
        "involvedObject": { "kind": "Service", "namespace": "lab", "name": "web" }
    }))
    .unwrap();
    core_events.create(&pp, &cev).await.unwrap();
    let found = core_events
        .list(&ListParams::default().fields("involvedObject.kind=Service,involvedObject.name=web"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "lab");
    let pod: Pod = serde_json::from_value(json!({ "metadata": { "name": "p" }, "spec": { "containers": [{ "name": "c", "image": "busybox" }] } })).unwrap();
    let pod = pods.create(&pp, &pod).await.unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));

    // Deleting the namespace deletes its content.
    nss.delete("lab", &DeleteParams::default()).await.unwrap();
    assert!(nss.get_opt("lab").await.unwrap().is_none());
    assert!(pods.get_opt("p").await.unwrap().is_none());
    assert!(leases.get_opt("leader").await.unwrap().is_none());
    let e = api_err(pods.create(&pp, &pod_named("q")).await.unwrap_err());
    assert_eq!(e.code, 404);
}

fn pod_named(name: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": { "containers": [{ "name": "c", "image": "busybox" }] } })).unwrap()
}

#[tokio::test]
async fn metallb_kinds_are_served_with_their_schemas() {
    let api = metallb_testkit::start().await.unwrap();
    let client = api.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": "metallb-system" } })).unwrap(),
    )
    .await
    .unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    );
    let pools: Api<DynamicObject> = Api::namespaced_with(client, "metallb-system", &ar);
    let pool: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": { "name": "pool" },
        "spec": { "addresses": ["192.0.2.0/24"], "bogus": 1 }
    }))
    .unwrap();
    let created = pools.create(&PostParams::default(), &pool).await.unwrap();
    assert_eq!(created.data["spec"]["autoAssign"], true, "schema default");
    assert!(created.data["spec"].get("bogus").is_none(), "pruned");
    let mut bad = pool.clone();
    bad.metadata.name = Some("bad".into());
    bad.data["spec"]["addresses"] = json!("192.0.2.0/24");
    let e = api_err(
        pools
            .create(&PostParams::default(), &bad)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(e.message.contains("spec.addresses"), "{}", e.message);
}

/// Cluster IPs stay unique through creates, deletes and re-creates (the allocation cache is
/// kept incrementally, so this pins its bookkeeping).
#[tokio::test]
async fn service_cluster_ips_stay_unique() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    let api = metallb_testkit::start().await.unwrap();
    let svcs: Api<Service> = Api::namespaced(api.client(), "default");
    let mk = |name: String| -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
        }))
        .unwrap()
    };
    for i in 0..30 {
        svcs.create(&PostParams::default(), &mk(format!("s{i}")))
            .await
            .unwrap();
    }
    for i in (0..30).step_by(3) {
        svcs.delete(&format!("s{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for i in 30..50 {
        svcs.create(&PostParams::default(), &mk(format!("s{i}")))
            .await
            .unwrap();
    }
    let list = svcs.list(&ListParams::default()).await.unwrap();
    let mut ips = std::collections::BTreeSet::new();
    let mut ports = std::collections::BTreeSet::new();
    for s in &list.items {
        let spec = s.spec.as_ref().unwrap();
        let ip = spec.cluster_ip.clone().unwrap();
        assert!(ips.insert(ip.clone()), "cluster IP {ip} handed out twice");
        // the built-in `kubernetes` service is ClusterIP: no node port
        if let Some(np) = spec.ports.as_ref().unwrap()[0].node_port {
            assert!(ports.insert(np), "node port {np} handed out twice");
        }
    }
    // the kubernetes service plus 30 - 10 + 20
    assert_eq!(list.items.len(), 41, "in namespace default");
}
