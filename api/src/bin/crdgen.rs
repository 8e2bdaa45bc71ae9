//! Writes the CustomResourceDefinitions generated from the Rust types into the Helm chart.
//!
//! `cargo run -p metallb-api --bin crdgen` rewrites `charts/metallb/crds/`;
//! `--check` only compares and exits non-zero when the committed files are stale;
//! `--stdout` prints one multi-document YAML stream (for `kubectl apply -f -`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let files = metallb_api::crds::render_files();
    if args.iter().any(|a| a == "--stdout") {
        for (_, text) in &files {
            print!("{text}");
        }
        return ExitCode::SUCCESS;
    }
    let check = args.iter().any(|a| a == "--check");
    let dir = match args.iter().position(|a| a == "--out") {
        Some(i) => match args.get(i + 1) {
            Some(d) => PathBuf::from(d),
            None => {
                eprintln!("crdgen: --out needs a directory");
                return ExitCode::from(2);
            }
        },
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(metallb_api::crds::CHART_CRD_DIR),
    };
    match metallb_api::crds::sync_dir(&dir, &files, check) {
        Ok(stale) if check && !stale.is_empty() => {
            eprintln!(
                "crdgen: stale CRD files in {}: {}",
                dir.display(),
                stale.join(", ")
            );
            eprintln!("crdgen: run `cargo run -p metallb-api --bin crdgen` and commit the result");
            ExitCode::FAILURE
        }
        Ok(stale) => {
            if !check {
                eprintln!(
                    "crdgen: wrote {} CRDs to {} ({} changed)",
                    files.len(),
                    dir.display(),
                    stale.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}
