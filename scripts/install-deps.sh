#!/usr/bin/env bash
# install-deps.sh - the Debian 12 packages ringattn builds and tests with.
# Installs only what is missing (apt-get update first), as root or via sudo.
set -euo pipefail
pkgs=(build-essential pkg-config meson ninja-build openmpi-bin libopenmpi-dev
      libopenblas-dev libhwloc-dev libcmocka-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
