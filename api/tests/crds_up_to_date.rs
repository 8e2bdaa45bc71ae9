//! The chart's CRD files must be exactly what the generator produces from the Rust types.
//! Regenerate with `cargo run -p metallb-api --bin crdgen` (or `UPDATE_GOLDEN=1 cargo test`).

use std::path::PathBuf;

#[test]
fn committed_crds_match_the_generator() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(metallb_api::crds::CHART_CRD_DIR);
    let files = metallb_api::crds::render_files();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let stale = metallb_api::crds::sync_dir(&dir, &files, !update).expect("CRD directory readable");
    if !update {
        assert!(
            stale.is_empty(),
            "stale CRD files in {}: {:?}; run `cargo run -p metallb-api --bin crdgen` and commit",
            dir.display(),
            stale
        );
    }
}

#[test]
fn every_kind_of_both_groups_has_a_crd() {
    let names: Vec<String> = metallb_api::crds::all()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    for expected in [
        "bfdprofiles.metallb.io",
        "bgpadvertisements.metallb.io",
        "bgppeers.metallb.io",
        "communities.metallb.io",
        "configurationstates.metallb.io",
        "ipaddresspools.metallb.io",
        "l2advertisements.metallb.io",
        "servicebgpstatuses.metallb.io",
        "servicel2statuses.metallb.io",
        "bgpsessionstates.frrk8s.metallb.io",
        "frrconfigurations.frrk8s.metallb.io",
        "frrk8sconfigurations.frrk8s.metallb.io",
        "frrnodestates.frrk8s.metallb.io",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing CRD {expected}; have {names:?}"
        );
    }
}
