//! The generated CRDs against a real kube-apiserver (`METALLB_K8S_ASSETS`, see
//! `metallb_testkit::envtest`): every CRD is accepted without warnings and becomes
//! Established, and every CEL rule is enforced by the API server with its own message
//! (a bad object is rejected naming the rule's message, a good one is accepted).
//!
//! One control plane serves every test of this file (starting one takes ~7 s); each test
//! uses its own namespace.

use kube::Client;
use metallb_testkit::envtest::{self, send, Answer, ControlPlane};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

/// The control plane shared by this file's tests, with every CRD installed and
/// Established; `None` when the tests skip. The CRD installation is itself checked here
/// (no warnings, every CRD Established), so each test depends on it.
async fn control_plane(test: &str) -> Option<&'static (ControlPlane, Vec<String>)> {
    static CP: OnceCell<Option<(ControlPlane, Vec<String>)>> = OnceCell::const_new();
    CP.get_or_init(|| async {
        let cp = envtest::start_or_skip("real_api_crds", envtest::Options::default()).await?;
        let warnings = envtest::install_crds(&cp.client(), &metallb_api::crds::all())
            .await
            .expect("installing the CRDs");
        Some((cp, warnings))
    })
    .await
    .as_ref()
    .or_else(|| {
        eprintln!("SKIPPED: {test}: no real API server");
        None
    })
}

/// A client for this test's runtime (a client's connection pool lives on the runtime that
/// made it, and each test has its own).
async fn client(cp: &ControlPlane) -> Client {
    metallb_testkit::client_for(cp.kubeconfig_yaml())
        .await
        .unwrap()
}

/// A fresh namespace for one test.
async fn namespace(client: &Client, name: &str) -> String {
    let a = send(
        client,
        "POST",
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
    )
    .await;
    assert!(
        a.status == 201 || a.status == 409,
        "namespace {name}: {}",
        a.body
    );
    name.to_string()
}

fn path(group_version: &str, ns: &str, plural: &str) -> String {
    format!("/apis/{group_version}/namespaces/{ns}/{plural}")
}

/// Creates `obj`, expecting success.
async fn admit(client: &Client, collection: &str, obj: Value) -> Value {
    let a = send(client, "POST", collection, Some(&obj)).await;
    assert_eq!(
        a.status, 201,
        "expected {} to be admitted: {}",
        obj["metadata"]["name"], a.body
    );
    assert!(a.warnings.is_empty(), "warnings: {:?}", a.warnings);
    a.body
}

/// Creates `obj`, expecting a 422 whose message contains `message`.
async fn deny(client: &Client, collection: &str, obj: Value, message: &str) {
    let a = send(client, "POST", collection, Some(&obj)).await;
    let text = a.body["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        a.status, 422,
        "expected {} to be denied with {message:?}: {}",
        obj["metadata"]["name"], a.body
    );
    assert!(text.contains(message), "expected {message:?} in: {text}");
}

#[tokio::test]
async fn every_crd_is_accepted_without_warnings() {
    let Some((cp, warnings)) = control_plane("every_crd_is_accepted_without_warnings").await else {
        return;
    };
    assert!(
        warnings.is_empty(),
        "warnings on CRD creation: {warnings:#?}"
    );
    // The API server serves every kind (discovery agrees with the generated CRDs).
    let client = client(cp).await;
    for crd in metallb_api::crds::all() {
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            let gv = format!("{}/{}", crd.spec.group, v.name);
            let a = send(&client, "GET", &format!("/apis/{gv}"), None).await;
            assert_eq!(a.status, 200, "{gv}: {}", a.body);
            let kinds: Vec<&str> = a.body["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["kind"].as_str())
                .collect();
            assert!(
                kinds.contains(&crd.spec.names.kind.as_str()),
                "{gv} lacks {}: {kinds:?}",
                crd.spec.names.kind
            );
        }
    }
}

// ------------------------------------------------------------------------------ CEL rules

const MSG_COLON: &str = "must contain exactly one colon";
const MSG_V4: &str = "with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535";
const MSG_4B: &str =
    "with 4-byte ASN administrator must have format GHJK:MN where GHJK <= 4294967295 and MN <= 65535";
const MSG_2B: &str =
    "with 2-byte ASN administrator must have format EF:OPQR where EF <= 65535 and OPQR <= 4294967295";
const MSG_WILD: &str =
    "RT with wildcard administrator must have format *:OPQR where OPQR <= 4294967295";

/// An FRRConfiguration with one L2VNI (`vni == "l2"`) or the L3VNI carrying `rd`,
/// `import` and `export`: the rules stand at both places in the schema.
fn frr_evpn(ns: &str, name: &str, vni: &str, rd: &str, import: &str, export: &str) -> Value {
    let evpn = if vni == "l2" {
        json!({"l2vnis": [{"vni": 100, "rd": rd, "importRTs": [import], "exportRTs": [export]}]})
    } else {
        json!({"l3vni": {"vni": 100, "rd": rd, "importRTs": [import], "exportRTs": [export],
                         "advertisePrefixes": ["unicast"]}})
    };
    json!({
        "apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "FRRConfiguration",
        "metadata": {"name": format!("{vni}-{name}"), "namespace": ns},
        "spec": {"bgp": {"routers": [{"asn": 64512, "evpn": evpn}]}}
    })
}

/// Every RD/RT rule: a bad value denied with the rule's message, the good ones admitted.
#[tokio::test]
async fn evpn_rd_and_rt_rules_are_enforced() {
    let Some((cp, _)) = control_plane("evpn_rd_and_rt_rules_are_enforced").await else {
        return;
    };
    let c = client(cp).await;
    let ns = namespace(&c, "cel-evpn").await;
    let coll = path("frrk8s.metallb.io/v1beta1", &ns, "frrconfigurations");
    for vni in ["l2", "l3"] {
        // Good values of every administrator kind, in every position.
        for (i, (rd, import, export)) in [
            ("65000:100", "65000:4294967295", "65000:100"),
            ("192.0.2.1:65535", "192.0.2.1:100", "255.255.255.255:65535"),
            ("4200000000:65535", "*:4294967295", "4200000000:100"),
            ("0.0.0.0:1", "*:1", "10.0.0.1:1"),
        ]
        .into_iter()
        .enumerate()
        {
            admit(
                &c,
                &coll,
                frr_evpn(&ns, &format!("good-{i}"), vni, rd, import, export),
            )
            .await;
        }
        // (which field is bad, value, expected message fragment)
        let bad = [
            ("rd", "65000", format!("RD {MSG_COLON}")),
            ("rd", "1:2:3", format!("RD {MSG_COLON}")),
            ("rd", "192.0.2.1:65536", format!("RD {MSG_V4}")),
            ("rd", "192.0.2.256:1", format!("RD {MSG_V4}")),
            ("rd", "192.0.2.01:1", format!("RD {MSG_V4}")),
            ("rd", "192.0.2:1", format!("RD {MSG_V4}")),
            ("rd", "65536:65536", format!("RD {MSG_4B}")),
            ("rd", "65000:4294967296", format!("RD {MSG_2B}")),
            ("import", "65000", format!("RT {MSG_COLON}")),
            ("import", "*:4294967296", MSG_WILD.to_string()),
            ("import", "300.1.1.1:1", format!("RT {MSG_V4}")),
            ("import", "192.0.2.1:70000", format!("RT {MSG_V4}")),
            ("import", "4200000000:70000", format!("RT {MSG_4B}")),
            ("import", "100:4294967296", format!("RT {MSG_2B}")),
            ("export", "1:2:3", format!("RT {MSG_COLON}")),
            ("export", "999.0.0.1:1", format!("RT {MSG_V4}")),
            ("export", "192.0.2.1:65536", format!("RT {MSG_V4}")),
            ("export", "4200000000:65536", format!("RT {MSG_4B}")),
            ("export", "65000:4294967296", format!("RT {MSG_2B}")),
        ];
        for (i, (field, value, message)) in bad.iter().enumerate() {
            let (mut rd, mut import, mut export) = ("65000:1", "65000:1", "65000:1");
            match *field {
                "rd" => rd = value,
                "import" => import = value,
                _ => export = value,
            }
            deny(
                &c,
                &coll,
                frr_evpn(&ns, &format!("bad-{i}"), vni, rd, import, export),
                message,
            )
            .await;
        }
        // Longer than any valid value: refused by the schema before CEL.
        deny(
            &c,
            &coll,
            frr_evpn(
                &ns,
                "too-long",
                vni,
                "65000:1",
                "0000000065000:0000000001",
                "65000:1",
            ),
            "Too long",
        )
        .await;
    }
}

/// `connectTime` on an FRRConfiguration neighbor and on a BGPPeer.
#[tokio::test]
async fn connect_time_rules_are_enforced() {
    let Some((cp, _)) = control_plane("connect_time_rules_are_enforced").await else {
        return;
    };
    let c = client(cp).await;
    let ns = namespace(&c, "cel-connect-time").await;
    let frr = |name: &str, t: &str| {
        json!({
            "apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "FRRConfiguration",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"bgp": {"routers": [{"asn": 64512, "neighbors": [
                {"asn": 64513, "address": "192.0.2.1", "connectTime": t}
            ]}]}}
        })
    };
    let peer = |name: &str, t: &str| {
        json!({
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1", "connectTime": t}
        })
    };
    let frr_coll = path("frrk8s.metallb.io/v1beta1", &ns, "frrconfigurations");
    let peer_coll = path("metallb.io/v1beta2", &ns, "bgppeers");
    for (i, t) in ["1s", "10s", "65535s", "2m"].into_iter().enumerate() {
        admit(&c, &frr_coll, frr(&format!("good-{i}"), t)).await;
        admit(&c, &peer_coll, peer(&format!("good-{i}"), t)).await;
    }
    let range = "connect time should be between 1 seconds to 65535";
    let whole = "connect time should contain a whole number of seconds";
    for (i, (t, message)) in [("0s", range), ("65536s", range), ("1500ms", whole)]
        .into_iter()
        .enumerate()
    {
        deny(&c, &frr_coll, frr(&format!("bad-{i}"), t), message).await;
        deny(&c, &peer_coll, peer(&format!("bad-{i}"), t), message).await;
    }
}

/// BGPAdvertisement: `serviceSelectors` only with host-route aggregation.
#[tokio::test]
async fn advertisement_selector_rule_is_enforced() {
    let Some((cp, _)) = control_plane("advertisement_selector_rule_is_enforced").await else {
        return;
    };
    let c = client(cp).await;
    let ns = namespace(&c, "cel-adv").await;
    let coll = path("metallb.io/v1beta1", &ns, "bgpadvertisements");
    let adv = |name: &str, spec: Value| {
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": name, "namespace": ns}, "spec": spec})
    };
    let sel = json!([{"matchLabels": {"app": "web"}}]);
    admit(
        &c,
        &coll,
        adv("selectors", json!({"serviceSelectors": sel})),
    )
    .await;
    admit(
        &c,
        &coll,
        adv(
            "selectors-32",
            json!({"serviceSelectors": sel, "aggregationLength": 32, "aggregationLengthV6": 128}),
        ),
    )
    .await;
    admit(&c, &coll, adv("agg-only", json!({"aggregationLength": 24}))).await;
    let message = "serviceSelectors and aggregationLength are mutually exclusive";
    deny(
        &c,
        &coll,
        adv(
            "bad-v4",
            json!({"serviceSelectors": sel, "aggregationLength": 24}),
        ),
        message,
    )
    .await;
    deny(
        &c,
        &coll,
        adv(
            "bad-v6",
            json!({"serviceSelectors": sel, "aggregationLengthV6": 64}),
        ),
        message,
    )
    .await;
}

/// Replaces `obj` (read back first for its resourceVersion), at `subresource` if given;
/// returns the answer.
async fn replace(c: &Client, item: &str, edit: impl FnOnce(&mut Value)) -> Answer {
    let mut obj = send(c, "GET", item, None).await.body;
    edit(&mut obj);
    send(c, "PUT", item, Some(&obj)).await
}

/// The immutability rules: BGPPeer `enableGracefulRestart`, and the identity fields of
/// ServiceBGPStatus / ServiceL2Status.
#[tokio::test]
async fn immutable_fields_are_enforced() {
    let Some((cp, _)) = control_plane("immutable_fields_are_enforced").await else {
        return;
    };
    let c = client(cp).await;
    let ns = namespace(&c, "cel-immutable").await;
    let peers = path("metallb.io/v1beta2", &ns, "bgppeers");
    admit(&c, &peers, json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "gr", "namespace": ns},
        "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1", "enableGracefulRestart": true}})).await;
    let item = format!("{peers}/gr");
    let a = replace(&c, &item, |o| {
        o["spec"]["enableGracefulRestart"] = json!(false)
    })
    .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("EnableGracefulRestart cannot be changed after creation"),
        "{}",
        a.body
    );
    // other fields stay editable
    let a = replace(&c, &item, |o| o["spec"]["holdTime"] = json!("30s")).await;
    assert_eq!(a.status, 200, "{}", a.body);

    for (plural, kind) in [
        ("servicebgpstatuses", "ServiceBGPStatus"),
        ("servicel2statuses", "ServiceL2Status"),
    ] {
        let coll = path("metallb.io/v1beta1", &ns, plural);
        admit(
            &c,
            &coll,
            json!({"apiVersion": "metallb.io/v1beta1", "kind": kind,
            "metadata": {"name": "s", "namespace": ns}, "spec": {}}),
        )
        .await;
        let status = format!("{coll}/s/status");
        let a = replace(
            &c,
            &status,
            |o| {
                o["status"] =
                    json!({"node": "node1", "serviceName": "web", "serviceNamespace": "default"})
            },
        )
        .await;
        assert_eq!(a.status, 200, "{kind}: {}", a.body);
        for field in ["node", "serviceName", "serviceNamespace"] {
            let a = replace(&c, &status, |o| o["status"][field] = json!("other")).await;
            assert_eq!(a.status, 422, "{kind}.status.{field}: {}", a.body);
            let text = a.body["message"].as_str().unwrap();
            assert!(
                text.contains(&format!("status.{field}")) && text.contains("Value is immutable"),
                "{text}"
            );
        }
    }
}

/// Every MetalLB and frr-k8s object in the golden inputs (written as users write them, many
/// taken from upstream's documentation and tests) is accepted by the real API server's
/// schema and CEL rules, each golden in a namespace of its own.
#[tokio::test]
async fn golden_inputs_are_accepted() {
    let Some((cp, _)) = control_plane("golden_inputs_are_accepted").await else {
        return;
    };
    let c = client(cp).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for dir in ["frrk8s/tests/golden", "speaker/tests/golden"] {
        let mut goldens: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        goldens.sort();
        for golden in goldens {
            let Ok(text) = std::fs::read_to_string(golden.join("input.yaml")) else {
                continue;
            };
            let ns_name = format!("golden-{}", golden.file_name().unwrap().to_string_lossy())
                .to_lowercase()
                .replace('_', "-");
            let ns = namespace(&c, &ns_name).await;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let mut obj: Value = serde::Deserialize::deserialize(doc).unwrap();
                let Some(api_version) = obj["apiVersion"].as_str().map(str::to_string) else {
                    continue;
                };
                if !api_version.starts_with("metallb.io/")
                    && !api_version.starts_with("frrk8s.metallb.io/")
                {
                    continue;
                }
                let kind = obj["kind"].as_str().unwrap();
                let plural = metallb_api::crds::all()
                    .into_iter()
                    .find(|crd| crd.spec.names.kind == kind)
                    .unwrap_or_else(|| panic!("no CRD for kind {kind}"))
                    .spec
                    .names
                    .plural;
                obj["metadata"]["namespace"] = json!(ns);
                let a = send(&c, "POST", &path(&api_version, &ns, &plural), Some(&obj)).await;
                assert_eq!(
                    a.status,
                    201,
                    "{}: {} {} rejected: {}",
                    golden.display(),
                    obj["kind"],
                    obj["metadata"]["name"],
                    a.body["message"]
                );
                assert!(
                    a.warnings.is_empty(),
                    "{}: warnings {:?}",
                    golden.display(),
                    a.warnings
                );
                checked += 1;
            }
        }
    }
    println!("{checked} golden objects accepted");
    assert!(checked > 40, "only {checked} golden objects found");
}
