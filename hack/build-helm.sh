#!/usr/bin/env bash
# Builds Helm (helm.sh/helm/v4 at HELM_VERSION from hack/versions.env) for the chart tests, with
# hack/go-install-tool.sh. Prints the binary's path.
#
#   hack/build-helm.sh          build (or reuse) and print the path
#   hack/build-helm.sh --path   print the path only (no build; it may not exist)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
: "${HELM_VERSION:?hack/versions.env does not set HELM_VERSION}"
exec "$here/go-install-tool.sh" "helm-$HELM_VERSION" helm.sh/helm/v4/cmd/helm "$HELM_VERSION" 1.25 "$@"
