#!/usr/bin/env bash
# Prints the cache directory of the test control plane (binaries in its bin/), outside the work tree.
# K8S_TEST_CACHE_DIR overrides it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
if [[ -n "${K8S_TEST_CACHE_DIR:-}" ]]; then
  echo "$K8S_TEST_CACHE_DIR"
else
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/kuberay-py/k8s-$K8S_VERSION-etcd$ETCD_VERSION-kwok$KWOK_VERSION"
fi
