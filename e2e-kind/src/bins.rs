//! Finding (and when missing, building) the product binaries the lab runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context as _};

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// `CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Directories searched for a binary, best first: `E2E_BIN_DIR`, the directory of the
/// running executable (and its parent, for test binaries in `deps/`), then
/// `<target>/debug` and `<target>/release`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("E2E_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            if dir.file_name().is_some_and(|n| n == "deps") {
                if let Some(up) = dir.parent() {
                    dirs.push(up.to_path_buf());
                }
            } else {
                dirs.push(dir.to_path_buf());
            }
        }
    }
    let t = target_dir();
    dirs.push(t.join("debug"));
    dirs.push(t.join("release"));
    dirs
}

/// Where `name` is, if built.
pub fn find(name: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Which cargo package builds a binary.
pub fn package_of(bin: &str) -> &'static str {
    match bin {
        "metallb-controller" => "metallb-controller",
        "metallb-speaker" => "metallb-speaker",
        "frr-k8s" => "frr-k8s",
        "test-apiserver" => "metallb-testkit",
        _ => "metallb-e2e",
    }
}

static BUILD: Mutex<()> = Mutex::new(());

/// Finds `name`, building its package with `cargo build --bins -p PKG` when missing.
///
/// Inside `cargo test` the build directory may be locked by the running cargo; set
/// `E2E_NO_BUILD=1` to fail fast instead (the suite's `test.sh` builds first).
pub fn ensure(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = find(name) {
        return Ok(p);
    }
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = find(name) {
        return Ok(p);
    }
    if std::env::var_os("E2E_NO_BUILD").is_some() {
        bail!("{name} is not built (run `cargo build --bins` first)");
    }
    let pkg = package_of(name);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("e2e: {name} missing, running `cargo build --bins -p {pkg}`");
    let status = Command::new(cargo)
        .args(["build", "--bins", "-p", pkg])
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running cargo build -p {pkg}"))?;
    if !status.success() {
        bail!("cargo build --bins -p {pkg} failed ({status})");
    }
    find(name).with_context(|| format!("{name} still not found after building {pkg}"))
}
