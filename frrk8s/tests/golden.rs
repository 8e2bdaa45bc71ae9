//! Golden files: `tests/golden/<case>/input.yaml` (FRRConfigurations, Secrets and an
//! optional `kind: TestOptions` document) is selected, merged and rendered into
//! `tests/golden/<case>/frr.conf`, compared byte for byte. `UPDATE_GOLDEN=1` rewrites them.
//! `frr_accepts_every_golden` feeds every golden file to a real FRR (`vtysh --dryrun`).

use metallb_netlab::FrrBuild;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use frr_k8s::{merge, render, select, RenderOptions};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Secret;
use metallb_api::frrk8s::{FRRConfiguration, LogLevel};
use serde::Deserialize;

const NAMESPACE: &str = "frr-k8s-system";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TestOptions {
    hostname: Option<String>,
    log_level: Option<LogLevel>,
    fallback_router_id: Option<Ipv4Addr>,
    #[serde(default)]
    always_block: Vec<IpNet>,
    max_prefix_list_entries: Option<usize>,
    #[serde(default)]
    node_labels: BTreeMap<String, String>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("input.yaml").exists())
        .collect();
    v.sort();
    v
}

fn render_case(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("input.yaml")).expect("read input.yaml");
    let mut configs: Vec<FRRConfiguration> = Vec::new();
    let mut secrets: Vec<Secret> = Vec::new();
    let mut opts = TestOptions::default();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(doc).expect("yaml document");
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        match kind.as_str() {
            "FRRConfiguration" => {
                let mut c: FRRConfiguration = serde_yaml::from_value(v).expect("FRRConfiguration");
                c.metadata
                    .namespace
                    .get_or_insert_with(|| NAMESPACE.to_string());
                configs.push(c);
            }
            "Secret" => {
                let mut s: Secret = serde_yaml::from_value(v).expect("Secret");
                s.metadata
                    .namespace
                    .get_or_insert_with(|| NAMESPACE.to_string());
                secrets.push(s);
            }
            "TestOptions" => opts = serde_yaml::from_value(v).expect("TestOptions"),
            other => panic!("{}: unknown kind {other:?}", dir.display()),
        }
    }
    let sel = select(&configs, NAMESPACE, &opts.node_labels);
    assert!(sel.errors.is_empty(), "{}: {:?}", dir.display(), sel.errors);
    let outcome = merge(&sel.selected, &secrets, NAMESPACE);
    assert!(
        outcome.errors.is_empty(),
        "{}: merge errors:\n{}",
        dir.display(),
        outcome.errors
    );
    let ro = RenderOptions {
        hostname: opts.hostname,
        log_level: opts.log_level.unwrap_or(LogLevel::Info),
        fallback_router_id: opts.fallback_router_id,
        always_block: opts.always_block,
        max_prefix_list_entries: opts
            .max_prefix_list_entries
            .unwrap_or(frr_k8s::prefix_list::MAX_ENTRIES),
        collapse_ranges: true,
    };
    render(&outcome.config, &ro)
}

#[test]
fn golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(
        cases.len() >= 20,
        "expected the golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for dir in &cases {
        let got = render_case(dir);
        let path = dir.join("frr.conf");
        if update {
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}: rendered output differs from frr.conf (UPDATE_GOLDEN=1 to accept)\n--- got ---\n{got}",
                dir.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The FRR build the dry runs use (`NETLAB_FRR`: the host's, or FRR 10's tree), or `None`
/// (with the loud skip line, or a failure in CI) when it is not installed here.
fn dry_run_build(test: &str) -> Option<FrrBuild> {
    let build = FrrBuild::from_env().expect("NETLAB_FRR");
    let missing = build.unavailable_reason().or_else(|| {
        (build != FrrBuild::Host && !metallb_netlab::is_root())
            .then(|| "running FRR 10's vtysh through chroot needs root".to_string())
    });
    match missing {
        Some(reason) => {
            metallb_netlab::skip_or_fail(test, &reason);
            None
        }
        None => Some(build),
    }
}

/// `vtysh --dryrun -f` of `text` on `build`: (accepted, what vtysh printed). No daemon is
/// needed; the file goes where that build's vtysh can read it.
fn dry_run(build: &FrrBuild, text: &str) -> (bool, String) {
    let tmp = tempfile::tempdir().expect("tmp dir");
    let (host_dir, seen_dir) = build.scratch_dir(tmp.path());
    let name = format!("frrk8s-dryrun-{}-{}.conf", std::process::id(), next_id());
    std::fs::write(host_dir.join(&name), text).expect("write");
    let out = build
        .vtysh()
        .arg("--dryrun")
        .arg("-f")
        .arg(seen_dir.join(&name))
        .output()
        .expect("run vtysh");
    let _ = std::fs::remove_file(host_dir.join(&name));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

fn next_id() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Every golden file must be accepted by a real FRR (8.4, or 10 with `NETLAB_FRR=10`):
/// `vtysh --dryrun` needs no running daemon.
#[test]
fn frr_accepts_every_golden() {
    let Some(build) = dry_run_build("frr_accepts_every_golden") else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in cases() {
        let file = dir.join("frr.conf");
        let text = std::fs::read_to_string(&file).expect("golden frr.conf");
        let (ok, printed) = dry_run(&build, &text);
        let bad: Vec<&str> = printed
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains('%') || l.contains("error") || l.contains("unknown")
            })
            .collect();
        if !ok || !bad.is_empty() {
            failures.push(format!("{}:\n{printed}", file.display()));
        }
        checked += 1;
    }
    let label = build.label();
    assert!(
        failures.is_empty(),
        "{label} rejected:\n{}",
        failures.join("\n")
    );
    eprintln!("{label} (vtysh --dryrun) accepted {checked} golden files");
}

/// The dry run really catches errors (guards against a vacuous check).
#[test]
fn frr_dryrun_rejects_garbage() {
    let Some(build) = dry_run_build("frr_dryrun_rejects_garbage") else {
        return;
    };
    let (ok, printed) = dry_run(
        &build,
        "router bgp 64512\n neighbor 10.0.0.1 remote-as 1\n neighbor 10.0.0.1 frobnicate\nexit\n",
    );
    assert!(!ok, "vtysh --dryrun accepted an unknown command: {printed}");
}
