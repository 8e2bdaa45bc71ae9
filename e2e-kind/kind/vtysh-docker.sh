#!/usr/bin/env bash
# A `vtysh` for the e2e harness against kind: `vtysh -N NAME ARGS...` runs
# `docker exec NAME vtysh ARGS...`, so the harness's pathspace (E2E_EXT_PATHSPACE) names an
# external router container. run-e2e.sh puts it first in PATH as `vtysh`. Without -N it
# uses $E2E_EXT_PATHSPACE.
set -euo pipefail
cli=${CONTAINER_CLI:-docker}
if [[ ${1:-} == -N ]]; then
    (($# >= 2)) || {
        echo "vtysh-docker.sh: -N needs a container name" >&2
        exit 2
    }
    name=$2
    shift 2
elif [[ ${1:-} == -N* ]]; then
    name=${1#-N}
    shift
else
    name=${E2E_EXT_PATHSPACE:?vtysh-docker.sh: no -N NAME and no E2E_EXT_PATHSPACE}
fi
exec "$cli" exec "$name" vtysh "$@"
