#!/usr/bin/env bash
# Builds the parity oracle: the upstream KubeRay operator (github.com/ray-project/kuberay/ray-operator at
# KUBERAY_ORACLE_VERSION from hack/versions.env) with the ordinary `go install`, into the control-plane
# cache (hack/test-bins-dir.sh), next to its bin/ directory. Nothing of it enters the work tree. Cached
# and reused; a lock keeps two runs from building at once. Prints the binary's path on success.
#
#   hack/build-upstream-operator.sh          build (or reuse) and print the path
#   hack/build-upstream-operator.sh --path   print the path only (no build; it may not exist)
#
# Exit codes: 0 built or cached, 3 a precondition failed (Go missing or too old), 1 the build failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
: "${KUBERAY_ORACLE_VERSION:?hack/versions.env does not set KUBERAY_ORACLE_VERSION}"

module=github.com/ray-project/kuberay/ray-operator
dir="$("$here/test-bins-dir.sh")/oracle-kuberay-$KUBERAY_ORACLE_VERSION"
binary="$dir/ray-operator"
stamp_want="$module@$KUBERAY_ORACLE_VERSION"

if [[ "${1:-}" == "--path" ]]; then echo "$binary"; exit 0; fi

cached() { [[ -x "$binary" && -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$stamp_want" ]]; }
die() { echo "build-upstream-operator: $*" >&2; exit 3; }

mkdir -p "$dir"
if cached; then echo "$binary"; exit 0; fi

exec 9>"$dir.lock"
if ! flock -n 9; then
  echo "build-upstream-operator: another build holds $dir.lock; waiting" >&2
  flock 9
fi
if cached; then echo "$binary"; exit 0; fi

command -v go >/dev/null 2>&1 || die "Go is not installed; the oracle is built from its Go module and needs Go >= 1.25"
gov=$(go env GOVERSION | sed 's/^go//')
IFS=. read -r gomaj gomin _ <<<"$gov"
(( gomaj > 1 || (gomaj == 1 && gomin >= 25) )) || die "Go $gov is too old; $module@$KUBERAY_ORACLE_VERSION declares go 1.25"

log="$dir/build.log"
tmp="$dir/bin.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
start=$SECONDS
echo "build-upstream-operator: go install $stamp_want (a few minutes on 2 cores with a cold Go cache; log: $log)" >&2
# The default build flags (no -trimpath, cgo as `go env` says) so a warm Go build cache is reused.
if ! GOTOOLCHAIN=local GOBIN="$tmp" go install "$stamp_want" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "build-upstream-operator: go install $stamp_want failed (full log: $log)" >&2
  exit 1
fi
[[ -x "$tmp/ray-operator" ]] || { echo "build-upstream-operator: go install produced no ray-operator in $tmp" >&2; exit 1; }
mv -f "$tmp/ray-operator" "$binary"
rmdir "$tmp"
echo "$stamp_want" >"$dir/.stamp"
echo "build-upstream-operator: done in $((SECONDS - start)) s" | tee -a "$log" >&2
echo "$binary"
