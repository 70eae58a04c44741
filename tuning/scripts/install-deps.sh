#!/usr/bin/env bash
# Installs the Debian packages corecast needs, only those missing.
# Usage: install-deps.sh [build|servers|codec|all]...   (default: all)
# Needs root (or sudo) only when something is missing.
set -euo pipefail

build_pkgs=(build-essential pkg-config curl jq python3)
server_pkgs=(postgresql-15 redis-server tarantool)
codec_pkgs=(libdav1d-dev libsvtav1enc-dev libclang-dev clang)

want=()
[ $# -eq 0 ] && set -- all
for g in "$@"; do
  case "$g" in
    build) want+=("${build_pkgs[@]}") ;;
    servers) want+=("${server_pkgs[@]}") ;;
    codec) want+=("${codec_pkgs[@]}") ;;
    all) want+=("${build_pkgs[@]}" "${server_pkgs[@]}" "${codec_pkgs[@]}") ;;
    *) echo "unknown group: $g" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Do not let package scripts start system-wide services: tests start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
