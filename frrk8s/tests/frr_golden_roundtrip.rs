//! Every golden configuration, applied by the driver to a real FRR and read back: the
//! applier's verification (the running config, with the running FRR's own defaults left
//! out, against the rendered one) must find nothing missing and nothing extra. Run on
//! FRR 8.4 and, in the FRR 10 run of `test.sh` (`NETLAB_FRR=10`), on FRR 10: this is where
//! `show running-config` differences between versions (block order, lines printed or left
//! out as defaults) would turn into a failed apply on a node.

mod common;

use std::path::Path;

use frr_k8s::frr::{Applier, ApplyError};
use metallb_netlab::{require_root_and_frr, FrrBuild, FrrInstance, Netns};

#[test]
fn every_golden_configuration_round_trips_through_frr() {
    if !require_root_and_frr("every_golden_configuration_round_trips_through_frr") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("frr.conf").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} golden cases", cases.len());
    let mut failures = Vec::new();
    // every instance below runs this build (NETLAB_FRR); its version is asked once
    let label = FrrBuild::from_env().expect("NETLAB_FRR").label();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(case.join("frr.conf")).unwrap();
        // a fresh FRR per case: each starts from an empty configuration, as a node does
        let ns = Netns::new("grt").unwrap();
        let frr = FrrInstance::start(&ns, "frr defaults traditional\n").unwrap();
        let mut applier = Applier::new(common::vtysh_for(&frr));
        match applier.apply(&text) {
            Ok(report) => assert!(report.commands > 0, "{name}: nothing was sent"),
            Err(ApplyError::Mismatch { remaining }) => failures.push(format!(
                "{name}: the running config differs after the apply; still to send:\n  {}\nrunning:\n{}",
                remaining.join("\n  "),
                frr.running_config().unwrap_or_default()
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{label}: {} of {} golden configurations did not round-trip:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    eprintln!(
        "{label}: all {} golden configurations applied and verified",
        cases.len()
    );
}
