#!/usr/bin/env bash
# Builds the operator image from Containerfile on a machine without a Docker daemon or registry access
# (see docs/install.md, "The image"), and prints its name (localhost/kuberay-operator:<version>) as the
# last line of standard output; progress goes to standard error.
#
#   1. A Python base: a Debian bookworm rootfs made by mmdebstrap (minbase, merged /usr, python3,
#      python3-venv, ca-certificates; bookworm, bookworm-updates and bookworm-security), cached as a
#      tarball keyed on its package list and options, imported as localhost/kuberay-py-base:<key>.
#   2. The wheels: the runtime dependencies pinned by constraints.txt and the build tools named in
#      Containerfile, downloaded on the host for CPython 3.11 / manylinux (cached, keyed likewise).
#   3. `buildah bud --network none` with the wheels mounted at /mnt: the build stage makes the
#      project's wheel from the sources and installs it with its dependencies, offline.
#
# podman and buildah run with a containers.conf (runc, no default rlimits) and a storage.conf (overlay)
# written here, with their storage under the cache directory, so the host's defaults do not matter.
#
# Usage: hack/build-image.sh               build (reusing the cached base and wheels)
#        hack/build-image.sh --offline     build only from the cached base and wheels (exit 3 when one
#                                          is missing): no network at all (tests use this)
#        hack/build-image.sh --print-env   write the configuration files and print CONTAINERS_CONF=,
#                                          CONTAINERS_STORAGE_CONF=, IMAGE= and WHEELS= lines (the
#                                          wheels directory, complete once WHEELS/.complete exists)
# Environment: KUBERAY_IMAGE_CACHE_DIR (default ~/.cache/kuberay-py/image), REFRESH_BASE=1 (rebuild the
#   base, e.g. for new Debian security updates), NO_CACHE=1 (no layer cache: rebuild every step),
#   PYTHON (runs pip download; default .venv/bin/python, else python3), IMAGE_ARCH (default: the host's).
# Exit codes: 0 built, 2 a tool is missing, 3 --offline and the base or wheels not cached, other: failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${KUBERAY_IMAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kuberay-py/image}
containers_dir="$cache/containers"
mode=build
case "${1:-}" in
  "") ;;
  --offline) mode=offline ;;
  --print-env) mode=print-env ;;
  *) echo "build-image: unknown argument $1 (usage: hack/build-image.sh [--offline|--print-env])" >&2; exit 1 ;;
esac

log() { echo "build-image: $*" >&2; }
sha() { sha256sum | cut -c1-16; }

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
version=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
  "$repo/pyproject.toml")
image="localhost/kuberay-operator:$version"

# ---- what the base and the wheels are made of (their cache keys) ----------------------------------
# Default mirror: for a stable release mmdebstrap adds the -updates and -security suites itself.
base_suite=bookworm
base_packages=python3,python3-venv,ca-certificates
base_opts=(
  --variant=minbase
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --include="$base_packages"
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
)
arch=${IMAGE_ARCH:-$(dpkg --print-architecture)}
base_key=$(printf '%s\n' "$base_suite" "$arch" "${base_opts[@]}" | sha)
base_tar="$cache/base-$base_suite-$base_key.tar"
base_image="localhost/kuberay-py-base:$base_suite-$base_key"

containerfile_arg() { sed -n "s/^ARG $1=\\(.*\\)$/\\1/p" "$repo/Containerfile" | head -n 1; }
build_tools=(
  "pip==$(containerfile_arg PIP_VERSION)"
  "setuptools==$(containerfile_arg SETUPTOOLS_VERSION)"
  "wheel==$(containerfile_arg WHEEL_VERSION)"
)
mapfile -t runtime_deps < <(
  "$PYTHON" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
    "$repo/pyproject.toml"
)
case "$arch" in
  amd64) pyarch=x86_64 ;;
  arm64) pyarch=aarch64 ;;
  *) pyarch=$arch ;;
esac
# bookworm's glibc is 2.36: every manylinux wheel up to that runs on it.
platforms=()
for minor in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${minor}_$pyarch"); done
platforms+=(--platform "manylinux2014_$pyarch")
wheels_key=$( { cat "$repo/constraints.txt"; printf '%s\n' "${runtime_deps[@]}" "${build_tools[@]}" "${platforms[@]}"; } | sha)
wheels="$cache/wheels-$wheels_key"

# ---- podman and buildah configuration -------------------------------------------------------------
write_file() {  # atomically, so a concurrent reader never sees half a file
  local dest=$1 tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$dest"; then rm -f "$tmp"; else mv -f "$tmp" "$dest"; fi
}
mkdir -p "$containers_dir/storage" "$containers_dir/run" "$containers_dir/tmp"
# No default rlimits (the VM cannot raise RLIMIT_NOFILE's hard limit; containers inherit the host's)
# and runc (crun refuses this host's hybrid cgroup layout).
write_file "$containers_dir/containers.conf" <<EOF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$containers_dir/tmp"
EOF
write_file "$containers_dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$containers_dir/storage"
runroot = "$containers_dir/run"
EOF
export CONTAINERS_CONF="$containers_dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$containers_dir/storage.conf"

if [[ "$mode" == print-env ]]; then
  echo "CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
  echo "IMAGE=$image"
  echo "WHEELS=$wheels"
  exit 0
fi

missing=()
for tool in buildah podman runc mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if (( ${#missing[@]} > 0 )); then
  echo "build-image: ${missing[*]} not installed; install them with: apt-get install -y buildah podman runc mmdebstrap" >&2
  exit 2
fi

exec 9>"$cache/build.lock"
if ! flock -n 9; then
  log "another build holds $cache/build.lock; waiting"
  flock 9
fi
if [[ "$mode" == offline ]]; then
  [[ -s "$base_tar" ]] || { log "--offline: the base $base_tar is not built; run make image"; exit 3; }
  [[ -f "$wheels/.complete" ]] || { log "--offline: the wheels $wheels are not downloaded; run make image"; exit 3; }
fi

# Reproducible timestamps: the last commit's time (1980-01-01 outside a git checkout).
SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 315532800)
export SOURCE_DATE_EPOCH
start=$SECONDS

# ---- 1. the Python base ---------------------------------------------------------------------------
if [[ "${REFRESH_BASE:-0}" == 1 || ! -s "$base_tar" ]]; then
  log "building the Python base with mmdebstrap ($base_suite: $base_packages)"
  t=$SECONDS
  mmdebstrap --quiet --format=tar --architectures="$arch" "${base_opts[@]}" "$base_suite" "$base_tar.tmp" >&2
  mv -f "$base_tar.tmp" "$base_tar"
  podman image rm --force "$base_image" >/dev/null 2>&1 || true
  log "base tarball: $(( $(stat -c %s "$base_tar") / 1000000 )) MB in $((SECONDS - t)) s"
fi
if ! podman image exists "$base_image"; then
  podman import --quiet --change 'ENV LANG=C.UTF-8' "$base_tar" "$base_image" >/dev/null
  log "imported $base_image"
fi

# ---- 2. the wheels --------------------------------------------------------------------------------
if [[ ! -f "$wheels/.complete" ]]; then
  log "downloading wheels for ${#runtime_deps[@]} runtime dependencies (pinned by constraints.txt)"
  t=$SECONDS
  rm -rf "$wheels.tmp"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-cache-dir --dest "$wheels.tmp" \
    --only-binary=:all: "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 \
    -c "$repo/constraints.txt" "${runtime_deps[@]}" "${build_tools[@]}" >&2
  touch "$wheels.tmp/.complete"
  rm -rf "$wheels"
  mv "$wheels.tmp" "$wheels"
  log "$(find "$wheels" -name '*.whl' | wc -l) wheels in $((SECONDS - t)) s"
fi

# ---- 3. the image ---------------------------------------------------------------------------------
source_url=$(git -C "$repo" config --get remote.origin.url 2>/dev/null || echo unknown)
cache_opt=--layers
[[ "${NO_CACHE:-0}" == 1 ]] && cache_opt=--no-cache
log "building $image (base $base_image, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
t=$SECONDS
buildah bud --quiet --network none --pull=never "$cache_opt" \
  --timestamp "$SOURCE_DATE_EPOCH" \
  --build-arg "BASE=$base_image" \
  --build-arg "VERSION=$version" \
  --build-arg "SOURCE=$source_url" \
  --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" \
  --volume "$wheels:/mnt:ro" \
  --file "$repo/Containerfile" \
  --tag "$image" \
  "$repo" >&2
# Untagged images (earlier builds, unused layer cache) older than a week; newer layers stay as the cache.
podman image prune --force --filter until=168h >/dev/null 2>&1 || true
size=$(podman image inspect --format '{{.Size}}' "$image")
log "built $image in $((SECONDS - t)) s ($((size / 1000000)) MB uncompressed); total $((SECONDS - start)) s"
echo "$image"
