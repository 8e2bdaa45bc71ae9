#!/usr/bin/env bash
# Creates the kind cluster (one control plane + two workers, kind-config.yaml) and writes its
# kubeconfig to $KUBECONFIG_FILE. Idempotent: an existing cluster is kept.
#
#   KIND_NODE_IMAGE=kindest/node:v1.33.1 ./create-cluster.sh   # optional node image
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd kind kubectl "$CONTAINER_CLI"
mkdir -p "$STATE_DIR"

if cluster_exists; then
    log "kind cluster $CLUSTER_NAME exists: keeping it"
else
    log "creating kind cluster $CLUSTER_NAME (1 control plane, 2 workers)"
    args=(create cluster --name "$CLUSTER_NAME" --config "$KIND_DIR/kind-config.yaml" --wait 180s)
    if [[ -n ${KIND_NODE_IMAGE:-} ]]; then
        args+=(--image "$KIND_NODE_IMAGE")
    fi
    kind "${args[@]}"
fi

kind get kubeconfig --name "$CLUSTER_NAME" >"$KUBECONFIG_FILE"
log "kubeconfig: $KUBECONFIG_FILE"

kctl wait --for=condition=Ready nodes --all --timeout=180s

# kubeadm labels the control plane node.kubernetes.io/exclude-from-external-load-balancers,
# which keeps MetalLB from announcing there. Remove it (as upstream MetalLB's dev-env does)
# so that all three nodes announce and are next hops at the external routers.
kctl label nodes --all node.kubernetes.io/exclude-from-external-load-balancers- >/dev/null 2>&1 || true

log "nodes:"
for n in $(kind_nodes); do
    printf '    %-32s %s\n' "$n" "$(container_ip "$n" "$KIND_NETWORK")" >&2
done
