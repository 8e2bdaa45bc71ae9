//! The Helm chart as the tests see it: rendered and linted offline by Helm's own Go SDK
//! (`charts/render.py`, PyPI `helm-python-sdk`), then applied to a real API server.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::bins::workspace_root;

/// `charts/render.py`.
pub fn render_script() -> PathBuf {
    workspace_root().join("charts").join("render.py")
}

/// Why the chart cannot be rendered here (no python3 or no `helm_python` module), or
/// `None`.
pub fn unavailable() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import helm_python, yaml"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "python3 cannot import helm_python and yaml (pip install helm-python-sdk pyyaml): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("python3: {e}")),
    }
}

/// `true` when the chart can be rendered; otherwise skips loudly (fails in CI).
pub fn require(test: &str) -> bool {
    match unavailable() {
        None => true,
        Some(reason) => {
            metallb_testkit::envtest::skip_or_fail(test, &reason);
            false
        }
    }
}

fn run(command: &str, values: &[Value], name: &str, namespace: &str) -> anyhow::Result<String> {
    let mut cmd = Command::new("python3");
    cmd.arg(render_script())
        .arg(command)
        .args(["--name", name, "--namespace", namespace]);
    for v in values {
        cmd.arg("--set-json").arg(v.to_string());
    }
    let out = cmd.output().context("running charts/render.py")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "charts/render.py {command} {values:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// Every object the chart renders with these values (merged in order over values.yaml),
/// CRDs first, in Helm's install order, for release `name` in `namespace`.
pub fn render_release(values: &[Value], name: &str, namespace: &str) -> anyhow::Result<Vec<Value>> {
    let text = run("render", values, name, namespace)?;
    let mut objs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        if !v.is_null() {
            objs.push(v);
        }
    }
    Ok(objs)
}

/// [`render_release`] for release `metallb` in `metallb-system`, as the README installs it.
pub fn render(values: &[Value]) -> anyhow::Result<Vec<Value>> {
    render_release(values, "metallb", "metallb-system")
}

/// `helm lint`'s findings (fails on errors).
pub fn lint(values: &[Value]) -> anyhow::Result<String> {
    run("lint", values, "metallb", "metallb-system")
}

/// The objects of `kind` (and `name`, when given).
pub fn find<'a>(objs: &'a [Value], kind: &str, name: Option<&str>) -> Vec<&'a Value> {
    objs.iter()
        .filter(|o| o["kind"] == kind)
        .filter(|o| name.is_none_or(|n| o["metadata"]["name"] == n))
        .collect()
}

/// The value sets CI renders, lints and applies: (label, values).
pub fn value_sets() -> Vec<(&'static str, Vec<Value>)> {
    use serde_json::json;
    vec![
        ("default", vec![]),
        (
            "standalone frr-k8s",
            vec![
                json!({"controller": {"enabled": false}, "speaker": {"enabled": false},
                        "frrk8s": {"enabled": true, "namespace": "frr-k8s-system"}}),
            ],
        ),
        (
            "speaker beside a separate frr-k8s",
            vec![json!({"frrk8s": {"enabled": true}})],
        ),
        (
            "cert-manager",
            vec![json!({"webhooks": {"certificates": "certManager"}})],
        ),
        (
            "monitoring",
            vec![json!({"prometheus": {"serviceMonitor": {"enabled": true},
                                       "podMonitor": {"enabled": true},
                                       "prometheusRule": {"enabled": true},
                                       "scrapeAnnotations": true}})],
        ),
        (
            "upstream-style values",
            vec![json!({"loadBalancerClass": "metallb.io/metallb",
                        "controller": {"logLevel": "debug", "priorityClassName": "system-cluster-critical",
                                       "tolerations": [{"key": "a", "operator": "Exists"}],
                                       "nodeSelector": {"disk": "ssd"},
                                       "resources": {"limits": {"memory": "100Mi"}}},
                        "speaker": {"logLevel": "warn", "ignoreExcludeLB": true, "withdrawOnShutdown": true,
                                    "frr": {"bgpPort": 1179, "logLevel": "debug"}},
                        "frrk8s": {"alwaysBlock": ["192.0.2.0/24", "2001:db8::/32"]}})],
        ),
    ]
}

/// Minimal CRDs for kinds of optional dependencies (`(group, kind, plural)`, namespaced,
/// v1, any content).
pub fn stub_crds(kinds: &[(&str, &str, &str)]) -> Vec<Value> {
    kinds
        .iter()
        .map(|(group, kind, plural)| {
            serde_json::json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.{group}")},
                "spec": {
                    "group": group,
                    "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                    "scope": "Namespaced",
                    "versions": [{
                        "name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object",
                            "x-kubernetes-preserve-unknown-fields": true}}
                    }]
                }
            })
        })
        .collect()
}

/// Server-side applies `objs` as `helm` would install them: their namespaces first, CRDs
/// (waiting until each is established), then everything else. Returns how many objects
/// were applied; the first refusal is an error naming the object.
pub async fn apply_all(client: &kube::Client, objs: &[Value]) -> anyhow::Result<usize> {
    use kube::api::{DynamicObject, Patch, PatchParams};
    use kube::core::GroupVersionKind;
    use kube::Api;
    let pp = PatchParams::apply("chart-test").force();
    let namespaces: BTreeSet<&str> = objs
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .collect();
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in namespaces {
        let obj =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        ns_api
            .patch(ns, &pp, &Patch::Apply(&obj))
            .await
            .with_context(|| format!("namespace {ns}"))?;
    }
    let (crds, rest): (Vec<&Value>, Vec<&Value>) = objs
        .iter()
        .partition(|o| o["kind"] == "CustomResourceDefinition");
    let crd_api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in &crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        crd_api
            .patch(name, &pp, &Patch::Apply(crd))
            .await
            .with_context(|| format!("CustomResourceDefinition {name}"))?;
    }
    for crd in &crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let c = crd_api.get(name).await?;
            let established = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("CustomResourceDefinition {name} not established after 60 s");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    for o in &rest {
        let api_version = o["apiVersion"].as_str().unwrap_or_default();
        let kind = o["kind"].as_str().unwrap_or_default();
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("discovering {api_version} {kind}"))?;
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                o["metadata"]["namespace"]
                    .as_str()
                    .with_context(|| format!("{kind} {name} has no namespace"))?,
                &ar,
            ),
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        api.patch(name, &pp, &Patch::Apply(o))
            .await
            .with_context(|| format!("{kind} {name} refused"))?;
    }
    Ok(objs.len())
}
