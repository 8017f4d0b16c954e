#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok)
# from published Go modules. Versions come from hack/versions.env; the wrapper modules in hack/*-bin(s)
# pin every dependency through their committed go.sum. Output is cached outside the work tree and
# reused; a lock keeps two runs from building at once. Prints the bin directory on success.
#
# Exit codes: 0 built or cached, 3 a precondition failed (Go missing or too old, no disk space),
# anything else: the build itself failed (see the log it names).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

out=$("$here/test-bins-dir.sh")
bin="$out/bin"
stamp_want="k8s=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION"
bins=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)

cached() {
  [[ -f "$bin/.stamp" && "$(cat "$bin/.stamp")" == "$stamp_want" ]] || return 1
  local b
  for b in "${bins[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
  "$bin/etcd" --version >/dev/null 2>&1 && "$bin/kube-apiserver" --version >/dev/null 2>&1
}

die() { echo "build-test-bins: $*" >&2; exit 3; }

mkdir -p "$out"
if cached; then echo "$bin"; exit 0; fi

exec 9>"$out.lock"
if ! flock -n 9; then
  echo "build-test-bins: another build holds $out.lock; waiting" >&2
  flock 9
fi
if cached; then echo "$bin"; exit 0; fi

command -v go >/dev/null 2>&1 || die "Go is not installed; the control plane is built from Go modules and needs Go >= 1.26"
gov=$(go env GOVERSION | sed 's/^go//')
IFS=. read -r gomaj gomin _ <<<"$gov"
(( gomaj > 1 || (gomaj == 1 && gomin >= 26) )) || die "Go $gov is too old; need >= 1.26 (k8s.io/kubernetes v$K8S_VERSION declares go 1.26.0)"
need_kb=$((6 * 1024 * 1024))
for d in "$(go env GOMODCACHE)" "$(go env GOCACHE)" "$out"; do
  mkdir -p "$d"
  free_kb=$(df -Pk "$d" | awk 'NR==2 {print $4}')
  (( free_kb >= need_kb )) || die "only $((free_kb / 1024)) MiB free under $d; the build needs about 6 GiB for modules, build cache and binaries"
done

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log="$out/build.log"
: >"$log"
echo "build-test-bins: building into $bin (first run takes a while on 2 cores; log: $log)" >&2
tmp="$out/bin.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
start=$SECONDS

minor=${K8S_VERSION#1.}; minor=${minor%%.*}
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done

run() { echo "+ $*" >>"$log"; "$@" >>"$log" 2>&1 || { tail -n 40 "$log" >&2; exit 1; }; }

# T1 first (apiserver, etcd), so an interrupted build still leaves the most useful part in the cache.
(cd "$here/etcd-bin" && run go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
(cd "$here/k8s-bins" && run go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "$ld" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler)
(cd "$here/kwok-bin" && run go build -trimpath -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)

echo "$stamp_want" >"$tmp/.stamp"
rm -rf "$bin"
mv "$tmp" "$bin"
echo "build-test-bins: done in $((SECONDS - start)) s" | tee -a "$log" >&2
echo "$bin"
