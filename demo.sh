#!/bin/bash
# The seed demo: MetalLB (Rust reimplementation) assigns a LoadBalancer IP and every node
# announces it over BGP to an external router, which routes it with ECMP via all nodes.
#
# Runs everything locally in network namespaces (no Kubernetes cluster, no Docker):
# FRR per node, an external FRR router, an in-memory Kubernetes API on 127.0.0.1, the
# metallb-controller and one metallb-speaker per node. Needs root. Cleans up after itself.
#
#   sudo ./demo.sh
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
	echo "demo.sh needs root: it creates network namespaces and runs FRR (routing daemons) in them," >&2
	echo "and installs FRR with apt-get if it is missing. Run: sudo ./demo.sh   (nothing was created)" >&2
	exit 2
fi

if [ ! -x /usr/lib/frr/bgpd ] || ! command -v vtysh >/dev/null; then
	echo "==> installing FRR (apt-get install -y frr frr-pythontools)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq frr frr-pythontools iproute2 >/dev/null
fi

TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/debug"
# Build when cargo is here (a no-op when up to date; otherwise an updated checkout would run
# old binaries); without cargo, prebuilt binaries must be present.
if command -v cargo >/dev/null; then
	echo "==> building (cargo build --bins -p metallb-controller -p metallb-speaker -p metallb-e2e)"
	cargo build --quiet --bins -p metallb-controller -p metallb-speaker -p metallb-e2e
elif [ ! -x "$BIN/demo" ] || [ ! -x "$BIN/metallb-speaker" ] || [ ! -x "$BIN/metallb-controller" ]; then
	echo "cargo not found: install Rust (https://rustup.rs) to build the binaries" >&2
	exit 2
fi

E2E_BIN_DIR="$(cd "$BIN" && pwd)"
export E2E_BIN_DIR
exec "$BIN/demo" "$@"
