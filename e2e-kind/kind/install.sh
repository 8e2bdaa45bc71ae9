#!/usr/bin/env bash
# Installs (or upgrades) charts/metallb into $METALLB_NAMESPACE with the dev images and
# waits until the controller, the speakers and the webhooks work. Idempotent (helm upgrade
# --install). Extra arguments go to helm, e.g. ./install.sh --set speaker.logLevel=debug
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd helm kubectl kind
require_cluster

# The chart puts frr-k8s's Roles and webhook in this namespace but does not create it.
if [[ $FRRK8S_NAMESPACE != "$METALLB_NAMESPACE" ]]; then
    kctl create namespace "$FRRK8S_NAMESPACE" --dry-run=client -o yaml | kctl apply -f - >/dev/null
fi

log "helm upgrade --install $RELEASE_NAME charts/metallb (images tagged $IMAGE_TAG)"
helm upgrade --install "$RELEASE_NAME" "$REPO_ROOT/charts/metallb" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --namespace "$METALLB_NAMESPACE" --create-namespace \
    --set controller.image.repository="$CONTROLLER_IMAGE" \
    --set controller.image.tag="$IMAGE_TAG" \
    --set speaker.image.repository="$SPEAKER_IMAGE" \
    --set speaker.image.tag="$IMAGE_TAG" \
    --set frrk8s.namespace="$FRRK8S_NAMESPACE" \
    --wait --timeout 5m \
    "$@"

log "waiting for the rollouts"
kctl -n "$METALLB_NAMESPACE" rollout status "deployment/$RELEASE_NAME-controller" --timeout=300s
kctl -n "$METALLB_NAMESPACE" rollout status "daemonset/$RELEASE_NAME-speaker" --timeout=300s
kctl -n "$FRRK8S_NAMESPACE" rollout status "deployment/$RELEASE_NAME-frr-k8s-webhook-server" --timeout=300s

# The validating webhooks answer once their certificates are in place: a server-side dry
# run of a pool goes through the controller's webhook.
probe_webhook() {
    kctl apply --dry-run=server -f - <<YAML
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: webhook-probe
  namespace: $METALLB_NAMESPACE
spec:
  addresses: ["192.0.2.0/32"]
YAML
}
wait_for "MetalLB's validating webhook" 180 probe_webhook

kctl -n "$METALLB_NAMESPACE" get pods -o wide
log "installed: next, ./external-routers.sh then ./run-e2e.sh"
