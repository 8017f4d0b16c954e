#!/usr/bin/env bash
# Builds the parity oracle: the upstream KubeRay operator (github.com/ray-project/kuberay/ray-operator at
# KUBERAY_ORACLE_VERSION from hack/versions.env), with hack/go-install-tool.sh. Prints the binary's path.
#
#   hack/build-upstream-operator.sh          build (or reuse) and print the path
#   hack/build-upstream-operator.sh --path   print the path only (no build; it may not exist)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
: "${KUBERAY_ORACLE_VERSION:?hack/versions.env does not set KUBERAY_ORACLE_VERSION}"
exec "$here/go-install-tool.sh" "oracle-kuberay-$KUBERAY_ORACLE_VERSION" \
  github.com/ray-project/kuberay/ray-operator "$KUBERAY_ORACLE_VERSION" 1.25 "$@"
