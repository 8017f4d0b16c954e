#!/usr/bin/env bash
# Installs the tools `make image` needs (buildah, podman, runc, mmdebstrap, uidmap), and nftables for the
# local node's pod network (internal/controlplane/localnode/sandbox.py), when any is missing.
# Debian packages, as root (CI runs as root). `apt-get update` runs only when the install from the
# package lists already on the machine fails (a fresh list costs time; a stale one may 404).
set -euo pipefail

need=()
for tool in buildah podman runc mmdebstrap newuidmap nft; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if (( ${#need[@]} == 0 )); then
  echo "ci-tools: buildah, podman, runc, mmdebstrap, uidmap and nftables are installed"
  exit 0
fi
echo "ci-tools: missing ${need[*]}: installing with apt-get"

if (( EUID != 0 )); then
  echo "ci-tools: must run as root to install packages (apt-get install -y buildah podman runc mmdebstrap uidmap nftables)" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
packages=(buildah podman runc mmdebstrap uidmap nftables)
apt_install() { apt-get install -y -q --no-install-recommends "${packages[@]}"; }

start=$SECONDS
if ! apt_install; then
  echo "ci-tools: install from the current package lists failed; running apt-get update"
  apt-get update -q
  apt_install
fi
echo "ci-tools: installed ${packages[*]} in $((SECONDS - start)) s"
