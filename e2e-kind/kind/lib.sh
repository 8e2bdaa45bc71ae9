# shellcheck shell=bash
# Shared settings and functions of the kind scripts (sourced, not run).
#
# Every setting can be overridden from the environment; the defaults make the scripts work
# together (see README.md).

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_ROOT=$(cd "$KIND_DIR/../.." && pwd)

# The kind cluster and where the scripts keep what they generate (kubeconfig, router
# configurations, the vtysh shim). .state/ is git-ignored.
CLUSTER_NAME=${CLUSTER_NAME:-metallb-rs}
STATE_DIR=${STATE_DIR:-$KIND_DIR/.state}
KUBECONFIG_FILE=${KUBECONFIG_FILE:-$STATE_DIR/kubeconfig}
# The docker network kind attaches its nodes to (kind's own variable, default "kind").
KIND_NETWORK=${KIND_EXPERIMENTAL_DOCKER_NETWORK:-kind}

# Images (charts/metallb's repositories) and the tag the scripts build and install.
IMAGE_TAG=${IMAGE_TAG:-dev}
CONTROLLER_IMAGE=${CONTROLLER_IMAGE:-ghcr.io/metallb-rs/controller}
SPEAKER_IMAGE=${SPEAKER_IMAGE:-ghcr.io/metallb-rs/speaker}

# The release: MetalLB in metallb-system; frr-k8s's objects (FRRConfigurations, its
# webhook) in frr-k8s-system, the namespace the e2e harness uses (objects::FRRK8S_NS).
RELEASE_NAME=${RELEASE_NAME:-metallb}
METALLB_NAMESPACE=${METALLB_NAMESPACE:-metallb-system}
FRRK8S_NAMESPACE=${FRRK8S_NAMESPACE:-frr-k8s-system}

# External routers (external-routers.sh). The nodes are AS 64512 towards all of them.
NODE_ASN=${NODE_ASN:-64512}
ROUTER_IMAGE=${ROUTER_IMAGE:-$SPEAKER_IMAGE:$IMAGE_TAG}
ROUTER_PREFIX=${ROUTER_PREFIX:-metallb-e2e}
EBGP_ROUTER=${EBGP_ROUTER:-$ROUTER_PREFIX-ebgp}
EBGP_ASN=${EBGP_ASN:-64513}
IBGP_ROUTER=${IBGP_ROUTER:-$ROUTER_PREFIX-ibgp}
MULTIHOP_ROUTER=${MULTIHOP_ROUTER:-$ROUTER_PREFIX-multihop}
MULTIHOP_ASN=${MULTIHOP_ASN:-64514}
MULTIHOP_NETWORK=${MULTIHOP_NETWORK:-$ROUTER_PREFIX-multihop-net}

# The container CLI: docker (podman only for build-images.sh, see README.md).
CONTAINER_CLI=${CONTAINER_CLI:-docker}

# ---------------------------------------------------------------------------- logging

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# require_cmd CMD...: fails with a hint when a command is missing.
require_cmd() {
    local c missing=()
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    if ((${#missing[@]})); then
        die "missing command(s): ${missing[*]} (prerequisites: see $KIND_DIR/README.md)"
    fi
}

# ---------------------------------------------------------------------------- cleanup trap

# add_cleanup CMD [ARGS...]: runs the command when the script exits (last added first),
# also on failure. Cleanup failures are reported, never fatal.
_CLEANUPS=()
add_cleanup() {
    local q
    printf -v q '%q ' "$@"
    _CLEANUPS+=("$q")
}
_run_cleanups() {
    local rc=$? i
    for ((i = ${#_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_CLEANUPS[i]}" || warn "cleanup failed: ${_CLEANUPS[i]}"
    done
    return "$rc"
}
trap _run_cleanups EXIT

# ---------------------------------------------------------------------------- helpers

# kctl ARGS...: kubectl against the kind cluster.
kctl() {
    kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"
}

cluster_exists() {
    kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"
}

require_cluster() {
    cluster_exists || die "kind cluster $CLUSTER_NAME does not exist: run create-cluster.sh first"
    if [[ ! -s $KUBECONFIG_FILE ]]; then
        mkdir -p "$(dirname "$KUBECONFIG_FILE")"
        kind get kubeconfig --name "$CLUSTER_NAME" >"$KUBECONFIG_FILE"
    fi
}

# kind_nodes: the cluster's node containers, one a line.
kind_nodes() {
    kind get nodes --name "$CLUSTER_NAME" | sort
}

# container_ip CONTAINER NETWORK: the container's IPv4 address on that docker network.
container_ip() {
    local ip
    ip=$("$CONTAINER_CLI" inspect -f "{{with index .NetworkSettings.Networks \"$2\"}}{{.IPAddress}}{{end}}" "$1")
    [[ -n $ip ]] || die "container $1 has no IPv4 address on network $2"
    printf '%s\n' "$ip"
}

# node_ips: the IPv4 addresses of the kind nodes on the kind network, one a line.
node_ips() {
    local n
    for n in $(kind_nodes); do
        container_ip "$n" "$KIND_NETWORK"
    done
}

# network_v4_subnet NETWORK: the network's IPv4 subnet (kind's network also has an IPv6 one).
network_v4_subnet() {
    local s
    for s in $("$CONTAINER_CLI" network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$1"); do
        if [[ $s != *:* ]]; then
            printf '%s\n' "$s"
            return 0
        fi
    done
    die "network $1 has no IPv4 subnet"
}

# container_running NAME
container_running() {
    [[ $("$CONTAINER_CLI" inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]
}

# router_vtysh ROUTER ARGS...: vtysh of an external router container.
router_vtysh() {
    local r=$1
    shift
    "$CONTAINER_CLI" exec "$r" vtysh "$@"
}

# wait_for DESCRIPTION TIMEOUT_SECONDS CMD [ARGS...]: retries CMD every 2 s until it succeeds.
wait_for() {
    local what=$1 timeout=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - start >= timeout)); then
            die "timed out after ${timeout}s waiting for $what"
        fi
        sleep 2
    done
    log "$what: ok after $((SECONDS - start))s"
}
