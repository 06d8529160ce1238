#!/usr/bin/env bash
# Install the Debian packages libdeepseek needs to build, test and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo) on Debian 12 (bookworm).
set -euo pipefail

PKGS=(
  build-essential meson ninja-build pkg-config cmake   # toolchain (cmake: finds oneDNN's CMake config)
  libdnnl-dev libzstd-dev libpcre2-dev libcjson-dev    # library dependencies
  libcmocka-dev                                        # C tests
  python3-numpy python3-pytest                         # reference implementation, Python tests
  clang lld libclang-rt-14-dev                         # fuzzing (libFuzzer) and sanitizers
  abigail-tools                                        # ABI check
)
if [ "${DS_SETUP_TORCH:-0}" = 1 ]; then
  PKGS+=(python3-torch libopenblas0-pthread)
fi

missing=()
for p in "${PKGS[@]}"; do
  [ "${p:0:1}" = "#" ] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
