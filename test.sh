#!/usr/bin/env bash
# The project's whole test suite: unit, property, golden, API-over-HTTP, and (as root, with
# FRR installed) the real-FRR and network-namespace tests. Tests that need root or FRR skip
# with a loud message when run by a non-root user or without FRR.
set -euo pipefail
cd "$(dirname "$0")"
# Benchmarks are not part of the suite (they are compiled by clippy --all-targets in CI and
# run with `cargo bench`); doc tests are. --no-fail-fast: a failing test binary does not stop
# the others; cargo lists every failure at the end.
exec cargo test --workspace --no-fail-fast "$@"
