# syntax=docker/dockerfile:1
#
# Images of metallb-rs (charts/metallb's defaults):
#
#   docker build --target controller -t ghcr.io/metallb-rs/controller:dev .
#   docker build --target speaker    -t ghcr.io/metallb-rs/speaker:dev .
#
# controller: distroless, only /usr/local/bin/metallb-controller, user 65534, the binary is the
#             ENTRYPOINT (the chart passes only args).
# speaker:    Debian 13 with Debian's FRR (10.3) + /usr/local/bin/metallb-speaker and
#             /usr/local/bin/frr-k8s. No ENTRYPOINT: the chart runs the speaker, frr-k8s and,
#             by default, the FRR container (`/usr/lib/frr/frrinit.sh start` under bash) from
#             this one image with explicit commands, so the speaker's vtysh is FRR's own.
#
# Both runtime images are Debian 13 (trixie), like the builder: the binaries link against
# the same glibc they run with. The workspace's rust-version is 1.85; rust:1-trixie is the
# newest stable 1.x.

ARG RUST_IMAGE=docker.io/library/rust:1-trixie
ARG CONTROLLER_BASE=gcr.io/distroless/cc-debian13:nonroot
ARG SPEAKER_BASE=docker.io/library/debian:trixie-slim

# ---------------------------------------------------------------------------- builder
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# The whole workspace (every member's manifest must be there for cargo to load it);
# .dockerignore keeps target/ and .git out.
COPY . .
# target/ lives in a cache mount, so the binaries are copied out in the same step.
RUN --mount=type=cache,id=metallb-rs-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=metallb-rs-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=metallb-rs-target,target=/src/target,sharing=locked \
    cargo build --profile dist --locked --bins -p metallb-controller -p metallb-speaker -p frr-k8s \
    && mkdir -p /out \
    && cp target/dist/metallb-controller target/dist/metallb-speaker target/dist/frr-k8s /out/

# ---------------------------------------------------------------------------- controller
FROM ${CONTROLLER_BASE} AS controller
LABEL org.opencontainers.image.title="metallb-rs controller" \
      org.opencontainers.image.description="MetalLB controller (IP address assignment, webhooks)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/metallb-controller /usr/local/bin/metallb-controller
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/metallb-controller"]

# ---------------------------------------------------------------------------- speaker
FROM ${SPEAKER_BASE} AS speaker
LABEL org.opencontainers.image.title="metallb-rs speaker" \
      org.opencontainers.image.description="MetalLB speaker (all-in-one with frr-k8s), frr-k8s, and Debian's FRR" \
      org.opencontainers.image.licenses="Apache-2.0"
# frr: zebra, bgpd, bfdd, staticd, watchfrr, vtysh (/usr/bin/vtysh), frrinit.sh and
# frrcommon.sh; frr-pythontools: frr-reload.py; iproute2: `ip` for the FRR container and
# debugging. policy-rc.d keeps the package scripts from starting FRR during the build.
RUN set -eux; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod +x /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        frr frr-pythontools iproute2 ca-certificates; \
    rm -f /usr/sbin/policy-rc.d; \
    rm -rf /var/lib/apt/lists/*; \
    test -x /usr/bin/vtysh; \
    test -x /usr/lib/frr/frrinit.sh; \
    test -f /usr/lib/frr/frrcommon.sh
COPY --from=builder /out/metallb-speaker /out/frr-k8s /usr/local/bin/
