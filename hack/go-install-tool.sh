#!/usr/bin/env bash
# Builds one Go program with the ordinary `go install <package>@<version>` into the control-plane cache
# (hack/test-bins-dir.sh)/<dir>/<binary>. Nothing of it enters the work tree. Cached and reused (a stamp
# names the package and version); a lock keeps two runs from building at once. Prints the path.
#
#   hack/go-install-tool.sh DIR PACKAGE VERSION MIN_GO [--path]
#
# MIN_GO is the Go the module declares (for example 1.25). With --path, only the path is printed.
# Exit codes: 0 built or cached, 3 a precondition failed (Go missing or too old), 1 the build failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $# -ge 4 ]] || { echo "usage: go-install-tool.sh DIR PACKAGE VERSION MIN_GO [--path]" >&2; exit 2; }
name=$1 package=$2 version=$3 min_go=$4
dir="$("$here/test-bins-dir.sh")/$name"
binary="$dir/${package##*/}"
stamp_want="$package@$version"
me="go-install-tool($name)"

if [[ "${5:-}" == "--path" ]]; then echo "$binary"; exit 0; fi

cached() { [[ -x "$binary" && -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$stamp_want" ]]; }
die() { echo "$me: $*" >&2; exit 3; }

mkdir -p "$dir"
if cached; then echo "$binary"; exit 0; fi

exec 9>"$dir.lock"
if ! flock -n 9; then
  echo "$me: another build holds $dir.lock; waiting" >&2
  flock 9
fi
if cached; then echo "$binary"; exit 0; fi

command -v go >/dev/null 2>&1 || die "Go is not installed; $package is built from its Go module and needs Go >= $min_go"
gov=$(go env GOVERSION | sed 's/^go//')
IFS=. read -r gomaj gomin _ <<<"$gov"
IFS=. read -r wantmaj wantmin <<<"$min_go"
(( gomaj > wantmaj || (gomaj == wantmaj && gomin >= wantmin) )) || die "Go $gov is too old; $stamp_want declares go $min_go"

log="$dir/build.log"
tmp="$dir/bin.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
start=$SECONDS
echo "$me: go install $stamp_want (a few minutes on 2 cores with a cold Go cache; log: $log)" >&2
# The default build flags (no -trimpath, cgo as `go env` says) so a warm Go build cache is reused.
if ! GOTOOLCHAIN=local GOBIN="$tmp" go install "$stamp_want" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "$me: go install $stamp_want failed (full log: $log)" >&2
  exit 1
fi
[[ -x "$tmp/${package##*/}" ]] || { echo "$me: go install produced no ${package##*/} in $tmp" >&2; exit 1; }
mv -f "$tmp/${package##*/}" "$binary"
rmdir "$tmp"
echo "$stamp_want" >"$dir/.stamp"
echo "$me: done in $((SECONDS - start)) s" | tee -a "$log" >&2
echo "$binary"
