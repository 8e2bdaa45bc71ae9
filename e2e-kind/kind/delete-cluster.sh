#!/usr/bin/env bash
# Removes everything the kind scripts created: the external routers and their network, the
# kind cluster and $STATE_DIR. Idempotent: what does not exist is skipped.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd kind "$CONTAINER_CLI"

for r in "$EBGP_ROUTER" "$IBGP_ROUTER" "$MULTIHOP_ROUTER"; do
    if "$CONTAINER_CLI" inspect "$r" >/dev/null 2>&1; then
        log "removing router container $r"
        "$CONTAINER_CLI" rm -f "$r" >/dev/null
    fi
done
if "$CONTAINER_CLI" network inspect "$MULTIHOP_NETWORK" >/dev/null 2>&1; then
    log "removing docker network $MULTIHOP_NETWORK"
    "$CONTAINER_CLI" network rm "$MULTIHOP_NETWORK" >/dev/null
fi
if cluster_exists; then
    log "deleting kind cluster $CLUSTER_NAME"
    kind delete cluster --name "$CLUSTER_NAME"
else
    log "kind cluster $CLUSTER_NAME does not exist"
fi
if [[ -d $STATE_DIR ]]; then
    log "removing $STATE_DIR"
    rm -rf "$STATE_DIR"
fi
