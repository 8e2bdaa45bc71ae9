#!/usr/bin/env bash
# Builds (once) a Debian 13 "trixie" tree holding FRR 10 (Debian's frr package), for the lab
# to run FRR 10 daemons and vtysh from with chroot, beside the host's FRR 8.4 (Debian 12).
#
#   netlab/scripts/frr10-tree.sh [DIR]      DIR default: $NETLAB_FRR10_ROOT, else
#                                           /var/cache/metallb-rs/frr10-trixie
#
# Prints DIR on stdout when the tree is ready. A finished tree is kept (a marker file names
# the recipe); CI machines that keep /var/cache reuse it, others build it in ~40-90 s.
# Needs root, debootstrap and Debian's package mirror. Idempotent; a half-built tree from an
# interrupted run is removed and built again.
set -euo pipefail

RECIPE=2 # bump when the steps below change: a tree from an older recipe is rebuilt
DIR=${1:-${NETLAB_FRR10_ROOT:-/var/cache/metallb-rs/frr10-trixie}}
MIRROR=${NETLAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
MARKER="$DIR/.netlab-frr10-recipe"

log() { printf 'frr10-tree: %s\n' "$*" >&2; }

if [[ -f $MARKER && $(cat "$MARKER") == "$RECIPE" ]]; then
    echo "$DIR"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    log "building the FRR 10 tree needs root"
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
# The daemons run as the host's frr user (the lab creates the run and config dirs on the
# host side with those ids), so the tree must know the same ids.
for g in frr frrvty; do
    getent group "$g" >/dev/null || { log "the host has no group $g (install Debian's frr first)"; exit 1; }
done
FRR_GID=$(getent group frr | cut -d: -f3)
VTY_GID=$(getent group frrvty | cut -d: -f3)
FRR_UID=$(getent passwd frr | cut -d: -f3)

BUILD="$DIR.building"
rm -rf "$BUILD"
mkdir -p "$(dirname "$DIR")"
log "debootstrap trixie into $BUILD (mirror $MIRROR)"
start=$SECONDS
debootstrap --variant=minbase trixie "$BUILD" "$MIRROR" >"$BUILD.log" 2>&1 || {
    tail -20 "$BUILD.log" >&2
    exit 1
}
# No service is ever started inside the tree (the lab starts daemons itself).
printf '#!/bin/sh\nexit 101\n' >"$BUILD/usr/sbin/policy-rc.d"
chmod 0755 "$BUILD/usr/sbin/policy-rc.d"
chroot "$BUILD" groupadd -g "$FRR_GID" frr
chroot "$BUILD" groupadd -g "$VTY_GID" frrvty
chroot "$BUILD" useradd -u "$FRR_UID" -g frr -G frrvty -d /nonexistent -s /usr/sbin/nologin -M frr
in_tree() { DEBIAN_FRONTEND=noninteractive chroot "$BUILD" "$@"; }
in_tree apt-get update -qq >>"$BUILD.log" 2>&1
# systemd-standalone-sysusers first: it satisfies frr's dependency on sysusers without
# systemd itself, whose postinst fails in a chroot.
in_tree apt-get install -y -qq --no-install-recommends systemd-standalone-sysusers >>"$BUILD.log" 2>&1
in_tree apt-get install -y -qq --no-install-recommends frr frr-pythontools iproute2 >>"$BUILD.log" 2>&1 || {
    tail -20 "$BUILD.log" >&2
    exit 1
}
in_tree apt-get clean
# Each lab instance keeps its config and run dirs inside the tree (etc/frr/NAME,
# run/frr/NAME), where the tree's daemons and vtysh look. Never go through the tree's
# var/run: it is an absolute symlink to /run, which from outside the chroot is the host's.
mkdir -p "$BUILD/run/frr" "$BUILD/etc/frr"
# shellcheck disable=SC2016 # ${Version} is dpkg-query's field, not the shell's
version=$(chroot "$BUILD" dpkg-query -W -f='${Version}' frr)
echo "$RECIPE" >"$BUILD/.netlab-frr10-recipe"
rm -rf "$DIR"
mv "$BUILD" "$DIR"
rm -f "$BUILD.log"
log "FRR $version ready in $DIR ($((SECONDS - start)) s)"
echo "$DIR"
