#!/usr/bin/env bash
# Builds both images of the repository's Dockerfile, tagged $IMAGE_TAG (dev), and loads them
# into the kind cluster's nodes:
#   --target controller -> $CONTROLLER_IMAGE:$IMAGE_TAG (ghcr.io/metallb-rs/controller:dev)
#   --target speaker    -> $SPEAKER_IMAGE:$IMAGE_TAG    (ghcr.io/metallb-rs/speaker:dev)
# CONTAINER_CLI=podman builds with podman and loads through an image archive.
# SKIP_LOAD=1 only builds (e.g. before the cluster exists).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cmd "$CONTAINER_CLI"
[[ ${SKIP_LOAD:-} == 1 ]] || require_cmd kind

images=("$CONTROLLER_IMAGE:$IMAGE_TAG" "$SPEAKER_IMAGE:$IMAGE_TAG")
targets=(controller speaker)

build_env=()
if [[ $CONTAINER_CLI == docker ]]; then
    # BuildKit: the Dockerfile's cache mounts (cargo registry, target/).
    build_env=(env DOCKER_BUILDKIT=1)
fi
for i in "${!targets[@]}"; do
    log "building ${images[i]} (--target ${targets[i]})"
    "${build_env[@]}" "$CONTAINER_CLI" build --target "${targets[i]}" -t "${images[i]}" \
        -f "$REPO_ROOT/Dockerfile" "$REPO_ROOT"
done

if [[ ${SKIP_LOAD:-} == 1 ]]; then
    log "SKIP_LOAD=1: not loading into kind"
    exit 0
fi
require_cluster

for img in "${images[@]}"; do
    log "loading $img into kind cluster $CLUSTER_NAME"
    if [[ $CONTAINER_CLI == docker ]]; then
        kind load docker-image --name "$CLUSTER_NAME" "$img"
    else
        archive=$(mktemp "${TMPDIR:-/tmp}/metallb-rs-image.XXXXXX.tar")
        add_cleanup rm -f "$archive"
        "$CONTAINER_CLI" save -o "$archive" "$img"
        kind load image-archive --name "$CLUSTER_NAME" "$archive"
    fi
done
log "images loaded: ${images[*]}"
