#!/usr/bin/env bash
# External BGP routers for the kind cluster, as upstream MetalLB's dev-env runs them: FRR
# containers beside the kind nodes, their configurations generated from the nodes' IPs.
#
#   $EBGP_ROUTER     (metallb-e2e-ebgp)     AS 64513, eBGP single hop, on the kind network;
#                                           also the gateway of the multi-hop network
#   $IBGP_ROUTER     (metallb-e2e-ibgp)     AS 64512 (= the nodes), iBGP, on the kind network
#   $MULTIHOP_ROUTER (metallb-e2e-multihop) AS 64514, eBGP multi-hop, only on the docker
#                                           network $MULTIHOP_NETWORK, two hops from the
#                                           nodes (through $EBGP_ROUTER)
#
# Each router peers with every node (peer-group NODES, AS $NODE_ASN), installs what it
# learns in its kernel (so traffic to a LoadBalancer IP can be sent from it) and is reached
# with `docker exec NAME vtysh ...` (or `vtysh -N NAME` through vtysh-docker.sh, see
# run-e2e.sh). The nodes get a route to the multi-hop network through $EBGP_ROUTER.
#
# Idempotent: the routers are re-created with fresh configurations on every run (e.g. after
# nodes were added). Writes $STATE_DIR/routers.env (names, addresses, ASNs) for run-e2e.sh.
# The image is the speaker image by default (Debian's FRR, the same FRR as the nodes).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd kind "$CONTAINER_CLI"
require_cluster
"$CONTAINER_CLI" image inspect "$ROUTER_IMAGE" >/dev/null 2>&1 ||
    die "router image $ROUTER_IMAGE not found: run build-images.sh (or set ROUTER_IMAGE to a Debian-based image with FRR)"

mapfile -t NODES < <(node_ips)
((${#NODES[@]})) || die "no kind nodes found"
KIND_SUBNET=$(network_v4_subnet "$KIND_NETWORK")
log "kind nodes: ${NODES[*]} (network $KIND_NETWORK, $KIND_SUBNET)"

if ! "$CONTAINER_CLI" network inspect "$MULTIHOP_NETWORK" >/dev/null 2>&1; then
    log "creating docker network $MULTIHOP_NETWORK"
    "$CONTAINER_CLI" network create "$MULTIHOP_NETWORK" >/dev/null
fi
MULTIHOP_SUBNET=$(network_v4_subnet "$MULTIHOP_NETWORK")

# start_router NAME NETWORK: a fresh container that only sleeps; FRR is started once its
# configuration is in place. Privileged: FRR programs routes, the gateway forwards.
start_router() {
    local name=$1 net=$2
    "$CONTAINER_CLI" rm -f "$name" >/dev/null 2>&1 || true
    "$CONTAINER_CLI" run -d --name "$name" --hostname "$name" --privileged --init \
        --network "$net" --sysctl net.ipv4.ip_forward=1 \
        --label "io.metallb-rs.e2e-kind=$CLUSTER_NAME" \
        --entrypoint /bin/bash "$ROUTER_IMAGE" -c 'exec sleep infinity' >/dev/null
}

log "starting $EBGP_ROUTER, $IBGP_ROUTER, $MULTIHOP_ROUTER ($ROUTER_IMAGE)"
start_router "$EBGP_ROUTER" "$KIND_NETWORK"
"$CONTAINER_CLI" network connect "$MULTIHOP_NETWORK" "$EBGP_ROUTER"
start_router "$IBGP_ROUTER" "$KIND_NETWORK"
start_router "$MULTIHOP_ROUTER" "$MULTIHOP_NETWORK"

EBGP_IP=$(container_ip "$EBGP_ROUTER" "$KIND_NETWORK")
GATEWAY_MH_IP=$(container_ip "$EBGP_ROUTER" "$MULTIHOP_NETWORK")
IBGP_IP=$(container_ip "$IBGP_ROUTER" "$KIND_NETWORK")
MULTIHOP_IP=$(container_ip "$MULTIHOP_ROUTER" "$MULTIHOP_NETWORK")

# Routing between the two networks through $EBGP_ROUTER: the multi-hop router reaches the
# nodes through it, and each node reaches the multi-hop network through it.
"$CONTAINER_CLI" exec "$MULTIHOP_ROUTER" ip route replace "$KIND_SUBNET" via "$GATEWAY_MH_IP"
for n in $(kind_nodes); do
    "$CONTAINER_CLI" exec "$n" ip route replace "$MULTIHOP_SUBNET" via "$EBGP_IP"
done

# frr_conf NAME ASN ROUTER_ID MODE: the router's frr.conf (MODE: ebgp, ibgp or multihop).
frr_conf() {
    local name=$1 asn=$2 id=$3 mode=$4 ip
    cat <<CONF
frr defaults traditional
hostname $name
log stdout informational
log timestamp precision 3
!
router bgp $asn
 bgp router-id $id
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 neighbor NODES peer-group
 neighbor NODES remote-as $NODE_ASN
CONF
    if [[ $mode == multihop ]]; then
        echo " neighbor NODES ebgp-multihop 4"
    fi
    for ip in "${NODES[@]}"; do
        echo " neighbor $ip peer-group NODES"
    done
    cat <<CONF
 !
 address-family ipv4 unicast
  neighbor NODES activate
  maximum-paths 16
  maximum-paths ibgp 16
 exit-address-family
exit
!
CONF
}

# FRR's startup files: the daemons (zebra, bgpd, bfdd, staticd under watchfrr) and vtysh's
# integrated configuration.
DAEMONS='bgpd=yes
bfdd=yes
vtysh_enable=yes
zebra_options="  -A 127.0.0.1 -s 90000000"
bgpd_options="   -A 127.0.0.1"
bfdd_options="   -A 127.0.0.1"
staticd_options="-A 127.0.0.1"'

# configure_router NAME ASN ROUTER_ID MODE: writes the configuration into the container and
# starts FRR.
configure_router() {
    local name=$1 dir="$STATE_DIR/routers/$1"
    mkdir -p "$dir"
    frr_conf "$@" >"$dir/frr.conf"
    printf '%s\n' "$DAEMONS" >"$dir/daemons"
    printf 'service integrated-vtysh-config\n' >"$dir/vtysh.conf"
    "$CONTAINER_CLI" cp "$dir/." "$name:/etc/frr/"
    "$CONTAINER_CLI" exec "$name" /bin/bash -c \
        'chown -R frr:frr /etc/frr && mkdir -p /var/run/frr && chown frr:frr /var/run/frr && /usr/lib/frr/frrinit.sh start' >/dev/null
}

configure_router "$EBGP_ROUTER" "$EBGP_ASN" "$EBGP_IP" ebgp
configure_router "$IBGP_ROUTER" "$NODE_ASN" "$IBGP_IP" ibgp
configure_router "$MULTIHOP_ROUTER" "$MULTIHOP_ASN" "$MULTIHOP_IP" multihop

for r in "$EBGP_ROUTER" "$IBGP_ROUTER" "$MULTIHOP_ROUTER"; do
    wait_for "$r's bgpd" 60 router_vtysh "$r" -c 'show bgp summary'
done

cat >"$STATE_DIR/routers.env" <<ENV
# Written by external-routers.sh: the external routers of kind cluster $CLUSTER_NAME.
EBGP_ROUTER=$EBGP_ROUTER
EBGP_IP=$EBGP_IP
EBGP_ASN=$EBGP_ASN
IBGP_ROUTER=$IBGP_ROUTER
IBGP_IP=$IBGP_IP
MULTIHOP_ROUTER=$MULTIHOP_ROUTER
MULTIHOP_IP=$MULTIHOP_IP
MULTIHOP_ASN=$MULTIHOP_ASN
NODE_ASN=$NODE_ASN
NODE_IPS="${NODES[*]}"
ENV

log "external routers:"
printf '    %-24s %-15s AS %s  (eBGP single hop)\n' "$EBGP_ROUTER" "$EBGP_IP" "$EBGP_ASN" >&2
printf '    %-24s %-15s AS %s  (iBGP)\n' "$IBGP_ROUTER" "$IBGP_IP" "$NODE_ASN" >&2
printf '    %-24s %-15s AS %s  (eBGP multi-hop via %s)\n' "$MULTIHOP_ROUTER" "$MULTIHOP_IP" "$MULTIHOP_ASN" "$EBGP_ROUTER" >&2
log "query one: $CONTAINER_CLI exec $EBGP_ROUTER vtysh -c 'show bgp summary'"
