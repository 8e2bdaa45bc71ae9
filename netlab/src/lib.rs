//! Test support for real routing inside Linux network namespaces.
//!
//! * [`Netns`]: a network namespace that is deleted on drop; [`veth`] links between two.
//! * [`FrrInstance`]: zebra + bgpd + bfdd (+ staticd) of Debian's FRR in a namespace, with
//!   its own pathspace (`-N NAME`: `/etc/frr/NAME`, `/var/run/frr/NAME`), stopped by PID
//!   on drop; on the host's FRR (Debian 12: 8.4) or on FRR 10 from a Debian 13 tree
//!   ([`FrrBuild`], chosen per instance or for the whole run with `NETLAB_FRR=10`).
//! * [`BirdInstance`]: BIRD 2 with its own config and control socket in a temp dir.
//! * [`wait_until`]: poll a condition every 20 ms until it holds or a timeout passes.
//! * [`require_root_and_frr`]: the guard every real-routing test starts with; prints a
//!   loud `SKIPPED: <reason>` and returns `false` when the machine cannot run it.
//!
//! Everything here only touches namespaces and processes it created itself; processes are
//! stopped by their PID, never by name.

mod bird;
mod build;
mod error;
mod frr;
mod netns;
mod proc;
mod wait;

pub use bird::{parse_birdc_routes, BirdInstance, BirdRoute};
pub use build::{FrrBuild, DEFAULT_FRR10_ROOT};
pub use error::{NetlabError, Result};
pub use frr::{FrrInstance, FRR_BIN_DIR};
pub use netns::{unique_name, veth, Netns};
pub use proc::{is_root, pid_alive, run_checked};
pub use wait::{wait_until, wait_until_some, POLL_INTERVAL};

/// Why real-routing tests cannot run here, or `None` when they can (root, the host's FRR
/// installed, and the build `NETLAB_FRR` names, if another).
pub fn frr_unavailable_reason() -> Option<String> {
    if !is_root() {
        return Some("not running as root (network namespaces and FRR need root)".into());
    }
    if let Some(reason) = FrrBuild::Host.unavailable_reason() {
        return Some(reason);
    }
    match FrrBuild::from_env() {
        Ok(build) => {
            if let Some(reason) = build.unavailable_reason() {
                return Some(reason);
            }
        }
        Err(e) => return Some(e.to_string()),
    }
    if which("ip").is_none() {
        return Some("iproute2 missing: ip not in PATH".into());
    }
    None
}

/// Why BIRD tests cannot run here, or `None` when they can.
pub fn bird_unavailable_reason() -> Option<String> {
    if !is_root() {
        return Some("not running as root".into());
    }
    if which("bird").is_none() || which("birdc").is_none() {
        return Some("bird2 missing: bird/birdc not in PATH".into());
    }
    None
}

/// Returns `true` when the test may go on; otherwise (outside CI) prints a loud
/// `SKIPPED: <test>: <reason>` on stderr and stdout and returns `false`. In CI a missing
/// prerequisite fails the test: CI installs FRR, so a skip there hides a broken install.
pub fn require_root_and_frr(test: &str) -> bool {
    match frr_unavailable_reason() {
        None => true,
        Some(reason) => {
            skip_or_fail(test, &reason);
            false
        }
    }
}

/// Whether BIRD can run: like [`require_root_and_frr`], for tests (or parts of tests)
/// that use BIRD as a second kind of router.
pub fn require_bird(test: &str) -> bool {
    match bird_unavailable_reason() {
        None => true,
        Some(reason) => {
            skip_or_fail(test, &format!("the BIRD part: {reason}"));
            false
        }
    }
}

/// `CI` is set (and not `false`/`0`), as CI systems and `.ci/run` do.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A prerequisite is missing: panics in CI, otherwise prints the loud skip line.
pub fn skip_or_fail(test: &str, reason: &str) {
    if in_ci() {
        panic!("{test}: cannot run, and CI must run it: {reason}");
    }
    skip(test, reason);
}

/// Prints the loud skip line (for a test that chose not to run, such as one the selected
/// stack does not apply to; a missing prerequisite goes through [`skip_or_fail`]).
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIPPED: {test}: {reason}");
    eprintln!("{line}");
    println!("{line}");
}

/// Finds an executable in `PATH` (plus the sbin directories root usually has).
pub fn which(bin: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| std::path::Path::new(d).join(bin))
        .find(|p| p.is_file());
    found
}
