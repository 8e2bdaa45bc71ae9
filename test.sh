#!/usr/bin/env bash
# The project's whole test suite: unit, property, golden, API-over-HTTP, and (as root, with
# FRR installed) the real-FRR and network-namespace tests, the end-to-end lab and the timing
# suite, on the host's FRR (Debian 12: FRR 8.4). Tests that need root or FRR skip with a
# loud message when run by a non-root user or without FRR.
#
# Then the FRR-facing tests again on FRR 10 (Debian 13's, from the tree that
# `netlab/scripts/frr10-tree.sh` builds; CI builds it, elsewhere this part is skipped
# loudly without it): the lab crate, the driver against real FRR, the golden dry runs and
# frr-k8s alone in the e2e lab all on FRR 10; the e2e scenarios with the nodes on FRR 10 and
# the external router on 8.4 (the mixed pair); the timing suite's BGP rows all on FRR 10.
#
# Arguments go to every `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")"

in_ci() { [[ -n ${CI:-} && ${CI} != false && ${CI} != 0 ]]; }
status=0
run() {
    printf '\n==> %s\n' "$*"
    "$@" || status=1
}

# The e2e lab runs the product binaries this build makes (target/debug); build them first
# so that no test has to build them while cargo holds the build directory.
cargo build --bins -p metallb-controller -p metallb-speaker -p frr-k8s
export E2E_NO_BUILD=1
# The bulk test runs here as a check that bulk creation works end to end (500 Services with
# debug binaries: ~100 s instead of ~200 s for 1,000); its figures in the README come from
# runs by hand with release binaries (E2E_BULK=1000 and 10000).
export E2E_BULK=${E2E_BULK:-500}

# Benchmarks are not part of the suite (they are compiled by clippy --all-targets in CI and
# run with `cargo bench`); doc tests are. --no-fail-fast: a failing test binary does not stop
# the others; cargo lists every failure at the end.
run cargo test --workspace --no-fail-fast "$@"

frr10_root=${NETLAB_FRR10_ROOT:-/var/cache/metallb-rs/frr10-trixie}
if [[ ! -f $frr10_root/.netlab-frr10-recipe ]]; then
    if in_ci; then
        echo "FAILED: the FRR 10 runs: no FRR 10 tree at $frr10_root (.ci/run builds it)" >&2
        exit 1
    fi
    echo "SKIPPED: the FRR 10 runs: no FRR 10 tree at $frr10_root (build it as root with netlab/scripts/frr10-tree.sh)"
    exit $status
fi
export NETLAB_FRR10_ROOT=$frr10_root
run env NETLAB_FRR=10 cargo test --no-fail-fast -p metallb-netlab -p frr-k8s -p metallb-e2e \
    --test two_frr_ebgp --test frr_apply --test frr_match_local --test golden \
    --test frr_golden_roundtrip \
    --test frrk8s_lab "$@"
run env E2E_FRR_NODES=10 E2E_FRR_EXT=host cargo test --no-fail-fast -p metallb-e2e \
    --test scenarios "$@"
target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
run env NETLAB_FRR=10 E2E_TIMINGS_BGP_ONLY=1 E2E_TIMINGS_FILE="$target/e2e-timings-frr10.txt" \
    cargo test --no-fail-fast -p metallb-e2e --test timings "$@"
exit $status
