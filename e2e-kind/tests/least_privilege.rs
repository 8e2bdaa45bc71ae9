//! Least privilege, proven on the real API server: the lab runs every product process with
//! a token of the chart's ServiceAccount for it (not admin), a scenario walks the paths that
//! write (allocation, announcement, a configuration mistake that is recorded, a Service
//! deleted, restarts), and the API server's audit log is compared with the chart's grants:
//! no request of ours was refused, and every grant the chart makes is used by some request,
//! or is listed below with the test that exercises it and why this scenario cannot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use metallb_e2e::objects::{self, host_prefix, FRRK8S_NS, METALLB_NS};
use metallb_e2e::{chart, require_full_stack, ApiKind, Lab, LabOptions, Stack};
use metallb_netlab::wait_until_some;
use metallb_testkit::envtest;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

/// Grants the lab's scenario cannot use, and why. (ServiceAccount, apiGroup, resource, verb)
const NOT_EXERCISED_HERE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "metallb-controller",
        "",
        "nodes",
        "list",
        "the webhooks' node check; the lab runs the controller with --webhook-mode disabled \
         (controller/tests/real_api_webhooks.rs)",
    ),
    (
        "metallb-controller",
        "metallb.io",
        "*",
        "list",
        "the webhooks list the other configuration objects (controller/tests/real_api_webhooks.rs)",
    ),
    (
        "metallb-controller",
        "",
        "secrets",
        "create",
        "recreating the certificate's Secret after someone deleted it (the chart creates it; \
         controller/tests/cert_rotation.rs deletes it)",
    ),
    (
        "metallb-speaker",
        "metallb.io",
        "configurationstates",
        "get",
        "repair path: a create that meets an existing ConfigurationState reads it back",
    ),
    (
        "metallb-speaker",
        "metallb.io",
        "configurationstates",
        "patch",
        "repair path: an existing ConfigurationState whose labels or owner differ is patched",
    ),
    (
        "metallb-speaker",
        "frrk8s.metallb.io",
        "frrconfigurations",
        "get",
        "repair path: a write that meets a conflict reads the FRRConfiguration back",
    ),
    (
        "metallb-speaker",
        "frrk8s.metallb.io",
        "bgpsessionstates",
        "patch",
        "sets the Pod as owner; in the lab the speaker's Pod is in another namespace than the \
         BGPSessionStates (the chart's default puts both in one); frr-k8s's stack does it in \
         real_api.rs's garbage-collection test",
    ),
];

/// One request of a ServiceAccount, from the audit log.
#[derive(Debug)]
struct Request {
    user: String,
    verb: String,
    group: String,
    resource: String,
    namespace: String,
    name: String,
    code: u64,
}

fn read_audit(path: &std::path::Path) -> Vec<Request> {
    let text = std::fs::read_to_string(path).unwrap();
    // One event per request: its ResponseComplete, or for a watch still open when the log
    // is read its ResponseStarted (it was authorized and answered). A process whose first
    // watch was refused (429 "storage is (re)initializing" while a CRD's storage starts)
    // and that the test restarted before its retry ended has only the new process's
    // open watch to show for it.
    let mut order = Vec::new();
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let Some(id) = e["auditID"].as_str().map(str::to_string) else {
            continue;
        };
        match e["stage"].as_str() {
            Some("ResponseComplete") => {}
            Some("ResponseStarted") if e["verb"] == "watch" => {
                if by_id.contains_key(&id) {
                    continue;
                }
            }
            _ => continue,
        }
        if !by_id.contains_key(&id) {
            order.push(id.clone());
        }
        by_id.insert(id, e);
    }
    order
        .iter()
        .filter_map(|id| {
            let e = &by_id[id];
            let o = &e["objectRef"];
            let resource = o["resource"].as_str()?;
            let resource = match o["subresource"].as_str() {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.to_string(),
            };
            Some(Request {
                user: e["user"]["username"].as_str()?.to_string(),
                verb: e["verb"].as_str()?.to_string(),
                group: o["apiGroup"].as_str().unwrap_or("").to_string(),
                resource,
                namespace: o["namespace"].as_str().unwrap_or("").to_string(),
                name: o["name"].as_str().unwrap_or("").to_string(),
                code: e["responseStatus"]["code"].as_u64().unwrap_or(0),
            })
        })
        .collect()
}

/// A grant: one verb on one resource, in a namespace ("" for a ClusterRole), maybe
/// restricted to names.
#[derive(Clone, Debug)]
struct Grant {
    role: String,
    namespace: String,
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

fn grants_of(objs: &[Value], sa: &str, sa_ns: &str) -> Vec<Grant> {
    let mut out = Vec::new();
    for b in objs.iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some("RoleBinding" | "ClusterRoleBinding")
        ) && o["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == sa && s["namespace"] == sa_ns))
    }) {
        let role_kind = b["roleRef"]["kind"].as_str().unwrap();
        let role_name = b["roleRef"]["name"].as_str().unwrap();
        let ns = b["metadata"]["namespace"].as_str().unwrap_or("");
        let role = objs
            .iter()
            .find(|r| {
                r["kind"] == role_kind
                    && r["metadata"]["name"] == role_name
                    && r["metadata"]["namespace"].as_str().unwrap_or("") == ns
            })
            .unwrap_or_else(|| panic!("{role_kind} {ns}/{role_name} is bound but not rendered"));
        for rule in role["rules"].as_array().unwrap() {
            let strs = |k: &str| -> Vec<String> {
                rule[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            for group in strs("apiGroups") {
                for resource in strs("resources") {
                    for verb in strs("verbs") {
                        out.push(Grant {
                            role: format!("{role_kind} {ns}/{role_name}"),
                            namespace: ns.to_string(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                            names: strs("resourceNames"),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Whether `r` uses grant `g`. A server-side apply that creates its object is audited as a
/// `patch` answered 201, and is authorized as `create` as well.
fn uses(g: &Grant, r: &Request) -> bool {
    let verb_ok = r.verb == g.verb || (g.verb == "create" && r.verb == "patch" && r.code == 201);
    verb_ok
        && r.group == g.group
        && r.resource == g.resource
        && (g.namespace.is_empty() || r.namespace == g.namespace)
        && (g.names.is_empty() || g.names.contains(&r.name))
}

fn excused(sa: &str, g: &Grant) -> Option<&'static str> {
    NOT_EXERCISED_HERE
        .iter()
        .find(|(s, group, resource, verb, _)| {
            *s == sa
                && *group == g.group
                && (*resource == "*" || *resource == g.resource)
                && (*verb == "*" || *verb == g.verb)
        })
        .map(|e| e.4)
}

/// The controller's webhook side with its chart token: a second controller process in
/// `onlywebhook` mode (the lab's own runs with webhooks off) against the chart's
/// ValidatingWebhookConfiguration (failurePolicy Ignore here: no Service routes to it) and
/// certificate Secret: it takes the Lease, fills the Secret and injects the CA into the
/// webhook configuration and the BGPPeer CRD's conversion.
fn webhook_certificates_with_the_controller_token(lab: &Lab) {
    let objs = chart::render_release(
        &[json!({"frrk8s": {"namespace": FRRK8S_NS}, "crds": {"validationFailurePolicy": "Ignore"}})],
        "metallb",
        METALLB_NS,
    )
    .unwrap();
    for (kind, name) in [
        (
            "ValidatingWebhookConfiguration",
            "metallb-webhook-configuration",
        ),
        ("Secret", "metallb-webhook-cert"),
        ("Service", "metallb-webhook-service"),
    ] {
        let o = chart::find(&objs, kind, Some(name));
        assert_eq!(o.len(), 1, "{kind} {name}");
        lab.apply(o[0].clone()).unwrap();
    }
    let kc = lab
        .component_kubeconfig("controller")
        .expect("the controller runs with its chart token");
    let bin = metallb_e2e::bins::ensure("metallb-controller").unwrap();
    let mut webhook = metallb_e2e::process::Managed::start(
        "controller-webhook",
        &bin,
        [
            "--kubeconfig",
            &kc.display().to_string(),
            "--namespace",
            METALLB_NS,
            "--webhook-mode",
            "onlywebhook",
            "--webhook-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--pod-name",
            "controller-webhook",
        ]
        .map(String::from)
        .to_vec(),
        lab.log_path().join("controller-webhook.log"),
    )
    .unwrap();
    wait_until_some(
        "the caBundles injected by the controller's token",
        T,
        || {
            let vwc = lab
                .get(
                    "admissionregistration.k8s.io/v1",
                    "ValidatingWebhookConfiguration",
                    None,
                    "metallb-webhook-configuration",
                )
                .ok()??;
            let crd = lab
                .get(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    None,
                    "bgppeers.metallb.io",
                )
                .ok()??;
            let all_hooks = vwc["webhooks"].as_array()?.iter().all(|h| {
                h["clientConfig"]["caBundle"]
                    .as_str()
                    .is_some_and(|b| !b.is_empty())
            });
            let conversion = crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"]
                .as_str()
                .is_some_and(|b| !b.is_empty());
            (all_hooks && conversion).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", webhook.log_tail(40)));
    webhook.stop();
}

#[test]
fn each_binary_runs_with_its_chart_service_account_and_uses_every_grant() {
    const TEST: &str = "each_binary_runs_with_its_chart_service_account_and_uses_every_grant";
    if !require_full_stack(TEST) || !chart::require(TEST) {
        return;
    }
    if let Err(why) = envtest::assets().expect("control-plane assets") {
        envtest::skip_or_fail(TEST, &why);
        return;
    }
    const PW: &str = "e2e-rbac-md5";
    let mut o = LabOptions::new("rbac");
    o.stack = Stack::Full;
    o.api = ApiKind::Real;
    o.ext.password = Some(PW.into());
    let mut lab = Lab::start(o).expect("lab");

    // allocation and announcement, over a session keyed with a password from a Secret in
    // MetalLB's namespace (read by the speaker's embedded frr-k8s)
    lab.apply(objects::basic_auth_secret("bgp-auth", METALLB_NS, PW))
        .unwrap();
    lab.apply(objects::ip_pool("seed", &["198.18.0.0/24"]))
        .unwrap();
    lab.apply(objects::bgp_peer(
        "ext",
        64512,
        64513,
        "192.0.2.1",
        json!({"passwordSecret": {"name": "bgp-auth", "namespace": METALLB_NS}}),
    ))
    .unwrap();
    lab.apply(objects::bgp_advertisement("seed", json!({})))
        .unwrap();
    lab.create_service("svc", false, &lab.endpoints_everywhere(0))
        .unwrap();
    let ip = lab.wait_service_ips("svc", 1, T).unwrap()[0].clone();
    lab.wait_ext_nexthops(&host_prefix(&ip), &lab.all_node_v4(), T)
        .unwrap_or_else(|e| {
            lab.dump_logs(60);
            panic!("{e:#}")
        });
    // L2: an IP from a pool on the nodes' LAN; the elected speaker writes the Service's
    // ServiceL2Status (create, then its status)
    lab.apply(objects::ip_pool("lan", &["192.0.2.240-192.0.2.250"]))
        .unwrap();
    lab.apply(objects::l2_advertisement(
        "lan",
        json!({"ipAddressPools": ["lan"]}),
    ))
    .unwrap();
    lab.create_service("l2svc", false, &lab.endpoints_everywhere(2))
        .unwrap();
    let l2_status = |lab: &Lab| -> Vec<Value> {
        let all = lab
            .list("metallb.io/v1beta1", "ServiceL2Status", Some(METALLB_NS))
            .unwrap_or_default();
        all.into_iter()
            .filter(|o| o["status"]["serviceName"] == "l2svc")
            .collect()
    };
    wait_until_some("the ServiceL2Status of l2svc, with its node", T, || {
        l2_status(&lab)
            .iter()
            .any(|o| o["status"]["node"].is_string())
            .then_some(())
    })
    .expect("the elected speaker writes the ServiceL2Status");
    // a configuration mistake: recorded by the controller and each speaker
    lab.apply(objects::ip_pool("overlap", &["198.18.0.128/25"]))
        .unwrap();
    wait_until_some("the controller's kept-versions ConfigMap", T, || {
        lab.get(
            "v1",
            "ConfigMap",
            Some(METALLB_NS),
            "metallb-controller-kept-versions",
        )
        .ok()
        .flatten()
    })
    .expect("the controller records the kept version");
    // a user FRRConfiguration in conflict with MetalLB's (another ASN for the default VRF):
    // refused, and each node's embedded frr-k8s records that
    lab.apply(objects::frr_configuration(
        "conflicting",
        json!({"bgp": {"routers": [{"asn": 64999}]}}),
    ))
    .unwrap();
    for n in ["node1", "node2"] {
        let name = format!("frr-k8s-kept-{n}");
        wait_until_some(&name, T, || {
            lab.get("v1", "Secret", Some(FRRK8S_NS), &name)
                .ok()
                .flatten()
        })
        .expect("the embedded frr-k8s records the refused FRRConfiguration");
    }
    // restarts read the records back; a deleted Service withdraws and drops its status
    lab.restart_controller().unwrap();
    lab.restart_speaker(1).unwrap();
    lab.delete_service("svc").unwrap();
    lab.delete_service("l2svc").unwrap();
    wait_until_some("the ServiceL2Status of l2svc deleted", T, || {
        l2_status(&lab).is_empty().then_some(())
    })
    .expect("the speaker deletes the ServiceL2Status of a deleted Service");
    lab.wait_ext_nexthops(&host_prefix(&ip), &[], T)
        .unwrap_or_else(|e| {
            lab.dump_logs(80);
            panic!("{e:#}")
        });
    lab.delete(
        "metallb.io/v1beta1",
        "IPAddressPool",
        Some(METALLB_NS),
        "overlap",
    )
    .unwrap();
    lab.delete(
        "frrk8s.metallb.io/v1beta1",
        "FRRConfiguration",
        Some(FRRK8S_NS),
        "conflicting",
    )
    .unwrap();
    // the peer goes: its BGPSessionStates are deleted
    lab.delete("metallb.io/v1beta2", "BGPPeer", Some(METALLB_NS), "ext")
        .unwrap();
    wait_until_some("BGPSessionStates deleted", T, || {
        let left = lab
            .list(
                "frrk8s.metallb.io/v1beta1",
                "BGPSessionState",
                Some(FRRK8S_NS),
            )
            .ok()?;
        left.is_empty().then_some(())
    })
    .expect("BGPSessionStates of the removed peer are deleted");
    std::thread::sleep(Duration::from_secs(2));
    lab.check_processes().unwrap();
    webhook_certificates_with_the_controller_token(&lab);

    let requests = read_audit(&lab.audit_log().expect("real API server"));
    let objs = chart::render_release(
        &[json!({"frrk8s": {"namespace": FRRK8S_NS}})],
        "metallb",
        METALLB_NS,
    )
    .unwrap();
    let mut report = Vec::new();
    let mut unused = Vec::new();
    for sa in ["metallb-controller", "metallb-speaker"] {
        let user = format!("system:serviceaccount:{METALLB_NS}:{sa}");
        let mine: Vec<&Request> = requests.iter().filter(|r| r.user == user).collect();
        assert!(
            !mine.is_empty(),
            "{sa} made no request: not running with its token?"
        );
        let refused: Vec<&&Request> = mine.iter().filter(|r| r.code == 403).collect();
        assert!(
            refused.is_empty(),
            "{sa}: requests the chart's RBAC refuses: {refused:#?}"
        );
        let mut calls: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for r in &mine {
            *calls
                .entry((r.group.clone(), r.resource.clone(), r.verb.clone()))
                .or_default() += 1;
        }
        report.push(format!("{sa}: {} requests: {calls:?}", mine.len()));
        let grants = grants_of(&objs, sa, METALLB_NS);
        assert!(!grants.is_empty(), "{sa} has no grants");
        let mut seen = BTreeSet::new();
        for g in grants {
            if !seen.insert((
                g.role.clone(),
                g.group.clone(),
                g.resource.clone(),
                g.verb.clone(),
            )) {
                continue;
            }
            if mine.iter().any(|r| uses(&g, r)) {
                continue;
            }
            match excused(sa, &g) {
                Some(why) => report.push(format!("  {sa}: not exercised here: {g:?}: {why}")),
                None => unused.push(format!("{sa}: {g:?}")),
            }
        }
    }
    for line in &report {
        eprintln!("{line}");
    }
    assert!(
        unused.is_empty(),
        "grants no request used (remove them, or say which test exercises them):\n{}",
        unused.join("\n")
    );
}
