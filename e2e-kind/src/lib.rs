//! End-to-end lab and seed demo for the MetalLB + frr-k8s reimplementation.
//!
//! [`Lab`] builds N node namespaces with FRR on one LAN, an external FRR router (and
//! optionally BIRD), a Kubernetes API (a real kube-apiserver with etcd and the garbage
//! collector when the control-plane assets are there, as in CI; else the in-memory test
//! API server) with Node objects, and runs the product binaries (controller, one speaker
//! per node, or standalone frr-k8s) against it. Scenarios in `tests/` assert on
//! the external router's tables. See `README.md`.

pub mod bins;
pub mod chart;
pub mod lab;
pub mod objects;
pub mod process;
pub mod router;
pub mod stats;

pub use lab::{ApiKind, BirdRouter, ExtRouter, Lab, LabNode, LabOptions, Stack, VrfBackend};
pub use router::{ExtOptions, FrrQueries};

/// `true` when the lab can run here (root, FRR, iproute2); otherwise prints a loud
/// `SKIPPED: <test>: <reason>` and returns `false`. With `E2E_KUBECONFIG` (an existing
/// cluster) only the local `vtysh` is needed.
pub fn require_lab(test: &str) -> bool {
    if std::env::var_os("E2E_KUBECONFIG").is_some() {
        return true;
    }
    metallb_netlab::require_root_and_frr(test)
}

/// Like [`require_lab`], for tests of the full stack (controller + all-in-one speakers):
/// skipped when `E2E_STACK=frr-k8s` asks for the frr-k8s-only stack.
pub fn require_full_stack(test: &str) -> bool {
    if !require_lab(test) {
        return false;
    }
    if Stack::auto() != Stack::Full {
        metallb_netlab::skip(test, "E2E_STACK=frr-k8s: this test needs the full stack");
        return false;
    }
    true
}

/// Why VRF devices cannot be created here (kernel without `CONFIG_NET_VRF`), or `None`.
pub fn vrf_unsupported_reason() -> Option<String> {
    let ns = match metallb_netlab::Netns::new("e2v") {
        Ok(ns) => ns,
        Err(e) => return Some(format!("cannot create a namespace: {e}")),
    };
    match ns.ip(&["link", "add", "vrftest", "type", "vrf", "table", "10"]) {
        Ok(_) => None,
        Err(e) => Some(format!("kernel without VRF support: {e}")),
    }
}
