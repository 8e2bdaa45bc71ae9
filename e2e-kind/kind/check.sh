#!/usr/bin/env bash
# Static checks of e2e-kind/kind and the Dockerfile, for CI (nothing here needs Docker/kind):
#   1. shellcheck -x of every script (missing shellcheck: skipped locally, fails when CI is set;
#      Debian package `shellcheck`);
#   2. bash -n of every script;
#   3. check_images.py: the Dockerfile parsed and checked against the chart rendered with the
#      dev tags, .dockerignore, kind-config.yaml, install.sh's --set keys.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

scripts=(*.sh vtysh-docker.sh)
mapfile -t scripts < <(printf '%s\n' "${scripts[@]}" | sort -u)

if command -v shellcheck >/dev/null 2>&1; then
    shellcheck -x "${scripts[@]}"
    echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#scripts[@]} scripts clean"
elif [[ -n ${CI:-} ]]; then
    echo "ERROR: shellcheck is not installed (Debian: apt-get install shellcheck)" >&2
    exit 1
else
    echo "SKIPPED: shellcheck is not installed (Debian: apt-get install shellcheck)"
fi

for s in "${scripts[@]}"; do
    bash -n "$s"
done
echo "bash -n: ${#scripts[@]} scripts parse"

python3 check_images.py
