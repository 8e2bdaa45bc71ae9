//! The Helm chart (`charts/metallb`): lint and render for several value sets, containers'
//! arguments accepted by the binaries' own parsers, webhook registrations and CRDs equal to
//! what the code defines, alerts on metric names the binaries export, and every rendered
//! object accepted by a real kube-apiserver.

use std::collections::BTreeSet;
use std::process::Command;

use metallb_e2e::{bins, chart};
use serde_json::{json, Value};

#[test]
fn chart_lints_and_renders_for_every_value_set() {
    if !chart::require("chart_lints_and_renders_for_every_value_set") {
        return;
    }
    for (label, values) in chart::value_sets() {
        chart::lint(&values).unwrap_or_else(|e| panic!("{label}: {e:#}"));
        let objs = chart::render(&values).unwrap_or_else(|e| panic!("{label}: {e:#}"));
        let kinds: BTreeSet<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert!(
            kinds.contains("CustomResourceDefinition"),
            "{label}: {kinds:?}"
        );
        for o in &objs {
            assert!(
                o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty()),
                "{label}: object without a name: {o}"
            );
        }
    }
    // The default installs the controller and the all-in-one speaker with its FRR, and
    // gives the speaker no CPU limit (a throttled speaker misses BGP and BFD timers).
    let objs = chart::render(&[]).unwrap();
    let ds = chart::find(&objs, "DaemonSet", Some("metallb-speaker"));
    assert_eq!(ds.len(), 1, "the speaker DaemonSet");
    let containers = ds[0]["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["speaker", "frr"]);
    for c in containers {
        assert!(c["resources"]["limits"]["cpu"].is_null(), "{c}");
    }
    assert_eq!(ds[0]["spec"]["template"]["spec"]["hostNetwork"], true);
    assert_eq!(
        chart::find(&objs, "Deployment", Some("metallb-controller")).len(),
        1
    );
    // A value the schema refuses is refused, naming it.
    let err = chart::render(&[json!({"webhooks": {"certificates": "vault"}})])
        .expect_err("an unknown certificate source must be refused");
    assert!(format!("{err:#}").contains("certificates"), "{err:#}");
}

/// One container running one of our binaries: (who, binary, argv, env).
type Container = (String, String, Vec<String>, Vec<(String, String)>);

/// Every container that runs one of our binaries.
fn our_containers(objs: &[Value]) -> Vec<Container> {
    let mut out = Vec::new();
    for o in objs {
        if !matches!(o["kind"].as_str(), Some("Deployment" | "DaemonSet")) {
            continue;
        }
        let spec = &o["spec"]["template"]["spec"];
        for c in spec["containers"].as_array().into_iter().flatten() {
            let image = c["image"].as_str().unwrap_or_default();
            let binary = match c["command"][0].as_str() {
                Some(cmd) if cmd.starts_with("/usr/local/bin/") => {
                    cmd.trim_start_matches("/usr/local/bin/").to_string()
                }
                None if image.contains("/controller:") => "metallb-controller".to_string(),
                _ => continue,
            };
            let args: Vec<String> = c["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a.as_str().expect("string args").to_string())
                .collect();
            let env = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let name = e["name"].as_str().unwrap().to_string();
                    let value = match e["value"].as_str() {
                        Some(v) => v.to_string(),
                        // downward API: what the kubelet would put there
                        None => match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                            Some("spec.nodeName") => "node-a".into(),
                            Some("metadata.name") => "pod-a".into(),
                            Some("metadata.namespace") => "metallb-system".into(),
                            Some("status.podIP") => "192.0.2.10".into(),
                            other => panic!("env {name}: unexpected source {other:?}"),
                        },
                    };
                    (name, value)
                })
                .collect();
            let who = format!(
                "{}/{} container {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            );
            out.push((who, binary, args, env));
        }
    }
    out
}

fn check_args(binary: &str, args: &[String], env: &[(String, String)]) -> std::process::Output {
    let bin = bins::ensure(binary).unwrap_or_else(|e| panic!("{binary}: {e:#}"));
    Command::new(bin)
        .args(args)
        .arg("--check-args")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

#[test]
fn rendered_containers_are_accepted_by_the_binaries() {
    if !chart::require("rendered_containers_are_accepted_by_the_binaries") {
        return;
    }
    let mut seen = BTreeSet::new();
    for (label, values) in chart::value_sets() {
        let objs = chart::render(&values).unwrap();
        for (who, binary, args, env) in our_containers(&objs) {
            let out = check_args(&binary, &args, &env);
            assert!(
                out.status.success(),
                "{label}: {who}: {binary} {args:?} with {env:?} refused:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            seen.insert(binary.clone());
            if label == "upstream-style values" && binary == "metallb-speaker" {
                // the embedded frr-k8s gets the FRR options the standalone one takes
                let settings = String::from_utf8_lossy(&out.stdout);
                for want in ["192.0.2.0/24", "2001:db8::/32", "frr_log_level: Debug"] {
                    assert!(settings.contains(want), "{who}: no {want} in {settings}");
                }
            }
            // the parser is really consulted: the same with a flag it does not know fails
            let mut bad = args.clone();
            bad.push("--no-such-flag".into());
            assert!(!check_args(&binary, &bad, &env).status.success(), "{who}");
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["frr-k8s", "metallb-controller", "metallb-speaker"],
        "every binary is deployed by some value set"
    );
}

/// The excludel2 ConfigMap the chart ships is what the speaker reads, and holds upstream's
/// default list; the speaker mounts it where it looks by default.
#[test]
fn the_excludel2_configmap_is_the_speakers_default_list() {
    if !chart::require("the_excludel2_configmap_is_the_speakers_default_list") {
        return;
    }
    let objs = chart::render(&[]).unwrap();
    let cm = (objs.iter())
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "metallb-excludel2")
        .expect("the excludel2 ConfigMap");
    let text = cm["data"]["excludel2.yaml"]
        .as_str()
        .expect("excludel2.yaml");
    let patterns = metallb_speaker::l2::links::parse_exclude_file(text).unwrap();
    assert_eq!(patterns, metallb_speaker::l2::links::DEFAULT_EXCLUDES);
    let speaker = (objs.iter())
        .find(|o| o["kind"] == "DaemonSet" && o["metadata"]["name"] == "metallb-speaker")
        .expect("speaker DaemonSet");
    let spec = &speaker["spec"]["template"]["spec"];
    let mounted = (spec["containers"].as_array().into_iter().flatten())
        .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten())
        .any(|m| m["name"] == "metallb-excludel2" && m["mountPath"] == "/etc/metallb");
    assert!(
        mounted,
        "mounted at /etc/metallb (the speaker's --l2-exclude-file default)"
    );
}

fn webhooks_of(objs: &[Value], name: &str) -> Value {
    let vwc = chart::find(objs, "ValidatingWebhookConfiguration", Some(name));
    assert_eq!(vwc.len(), 1, "{name}");
    vwc[0]["webhooks"].clone()
}

#[test]
fn webhook_registrations_and_crds_are_the_ones_the_code_defines() {
    use metallb_api::webhooks::{self, Endpoint, Target};
    if !chart::require("webhook_registrations_and_crds_are_the_ones_the_code_defines") {
        return;
    }
    let objs = chart::render(&[]).unwrap();
    let target = |name: &str| Target {
        endpoint: Endpoint::Service {
            namespace: "metallb-system".into(),
            name: name.into(),
            port: 443,
        },
        ca_bundle: None,
        failure_policy: "Fail".into(),
    };
    let want = serde_json::to_value(webhooks::metallb_validating(&target(
        "metallb-webhook-service",
    )))
    .unwrap();
    assert_eq!(
        webhooks_of(&objs, "metallb-webhook-configuration"),
        want["webhooks"]
    );
    let want = serde_json::to_value(webhooks::frrk8s_validating(&target(
        "metallb-frr-k8s-webhook-service",
    )))
    .unwrap();
    assert_eq!(
        webhooks_of(&objs, "metallb-frr-k8s-validating-webhook-configuration"),
        want["webhooks"]
    );
    // The CRDs: exactly the generated ones, the BGPPeer conversion through the controller.
    let rendered: Vec<&Value> = chart::find(&objs, "CustomResourceDefinition", None);
    let generated: Vec<Value> = metallb_api::crds::all()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(rendered.len(), generated.len());
    for g in &generated {
        let name = g["metadata"]["name"].as_str().unwrap();
        let r = rendered
            .iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("CRD {name} not in the chart"));
        assert_eq!(*r, g, "CRD {name} differs from the generated one");
    }
    let conversion = serde_json::to_value(webhooks::bgppeer_conversion(&target(
        "metallb-webhook-service",
    )))
    .unwrap();
    let bgppeers = rendered
        .iter()
        .find(|r| r["metadata"]["name"] == "bgppeers.metallb.io")
        .unwrap();
    assert_eq!(bgppeers["spec"]["conversion"], conversion);
}

/// Metric names a PromQL expression uses (identifiers followed by `{`, `[`, `)` or an
/// operator that are not PromQL keywords or functions).
fn metric_names(expr: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "sum",
        "by",
        "on",
        "clamp_min",
        "increase",
        "rate",
        "and",
        "or",
        "unless",
        "without",
        "ignoring",
        "group_left",
        "group_right",
        "pool",
    ];
    let mut names = BTreeSet::new();
    let mut cur = String::new();
    for ch in expr.chars().chain([' ']) {
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' {
            cur.push(ch);
        } else {
            if cur.contains('_')
                && cur.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && !WORDS.contains(&cur.as_str())
            {
                names.insert(cur.clone());
            }
            cur.clear();
        }
    }
    names
}

#[test]
fn alerts_use_metric_names_the_binaries_export() {
    use prometheus_client::registry::Registry;
    if !chart::require("alerts_use_metric_names_the_binaries_export") {
        return;
    }
    let objs = chart::render(
        &chart::value_sets()
            .into_iter()
            .find(|(l, _)| *l == "monitoring")
            .unwrap()
            .1,
    )
    .unwrap();
    let rules = chart::find(&objs, "PrometheusRule", None);
    assert_eq!(rules.len(), 1);
    let mut registry = Registry::default();
    // Families without a series are not encoded: give each labelled family one, through
    // the same calls the binaries make.
    let c = metallb_controller::Metrics::register(&mut registry);
    c.set_pool(
        &metallb_controller::allocator::Pool::new("p", &["192.0.2.0/28", "2001:db8::/124"]),
        metallb_controller::allocator::PoolStats::default(),
        0,
    );
    let _s = metallb_speaker::metrics::SpeakerMetrics::register(&mut registry);
    let f = frr_k8s::metrics::FrrMetrics::register(&mut registry);
    f.observe(
        &[frr_k8s::frr::status::BgpNeighborStatus {
            peer: "192.0.2.1".into(),
            ..Default::default()
        }],
        &[],
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            // counters are exposed with `_total`
            Some(match it.next() {
                Some("counter") => format!("{name}_total"),
                _ => name.to_string(),
            })
        })
        .collect();
    let mut used = 0;
    for group in rules[0]["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                used += 1;
                assert!(
                    exported.contains(&name),
                    "alert {}: {name} is not exported (exported: {exported:?})",
                    rule["alert"]
                );
            }
        }
    }
    assert!(used >= 5, "{used}");
}

#[test]
fn every_rendered_object_is_accepted_by_the_real_api_server() {
    use metallb_testkit::envtest;
    const TEST: &str = "every_rendered_object_is_accepted_by_the_real_api_server";
    if !chart::require(TEST) {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Some(cp) = envtest::start_or_skip(TEST, envtest::Options::default()).await else {
            return;
        };
        let client = cp.client();
        // Kinds of optional dependencies (prometheus-operator, cert-manager), as stand-in
        // CRDs: the API server checks group, version, kind and scope, not their schemas.
        let stubs = metallb_e2e::chart::stub_crds(&[
            ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
            ("monitoring.coreos.com", "PodMonitor", "podmonitors"),
            ("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
            ("cert-manager.io", "Certificate", "certificates"),
            ("cert-manager.io", "Issuer", "issuers"),
        ]);
        let mut applied = 0;
        for (i, (label, values)) in chart::value_sets().into_iter().enumerate() {
            // one release per value set, side by side (cluster-scoped names differ)
            let release = format!("mlb{i}");
            let objs = chart::render_release(&values, &release, "metallb-system").unwrap();
            let mut all = stubs.clone();
            all.extend(objs);
            applied += metallb_e2e::chart::apply_all(&client, &all)
                .await
                .unwrap_or_else(|e| panic!("{label}: {e:#}"));
        }
        assert!(applied > 50, "{applied}");
    });
}

#[test]
fn plain_manifests_are_up_to_date() {
    if !chart::require("plain_manifests_are_up_to_date") {
        return;
    }
    let out = Command::new("python3")
        .arg(chart::render_script())
        .args(["manifests", "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "config/manifests/ differ from the chart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // each is a YAML stream that starts with its Namespace
    for f in ["metallb-frr.yaml", "metallb-frr-k8s.yaml", "frr-k8s.yaml"] {
        let path = bins::workspace_root().join("config/manifests").join(f);
        let text = std::fs::read_to_string(&path).unwrap();
        let first: Value = serde_yaml::from_str(text.split("\n---\n").next().unwrap()).unwrap();
        assert_eq!(first["kind"], "Namespace", "{f}");
    }
}
