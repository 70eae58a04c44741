#!/usr/bin/env bash
# Installs the Debian packages corecast needs, only those missing.
# Usage: install-deps.sh [build|servers|codec|all|browser|firefox]...   (default: all)
#   browser: Debian's chromium, ffmpeg (fake-camera pictures) and nftables (the web app test's
#            network impairment: loss on the router's packets to the browser), then `npm ci` of
#            tests/browser (playwright-core, no browser download) for tests/browser/webrtc-e2e.mjs;
#            needs the machine's Node.js >= 20 (Debian 12's own is 18: too old for playwright-core).
#   firefox: firefox-esr, for tests/browser/firefox-e2e.mjs (`make firefox-e2e`, part of `make test`)
#            and tests/browser/capture-offers.mjs (the SDP fixtures).
#   Neither is part of `all` (yet): `make browser-e2e` asks for `browser`.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

build_pkgs=(build-essential pkg-config curl jq python3 cmake libopus-dev clang libbpf-dev ethtool iproute2)
server_pkgs=(postgresql-15 redis-server tarantool nginx-light)
codec_pkgs=(libdav1d-dev libsvtav1enc-dev libclang-dev clang)
browser_pkgs=(chromium ffmpeg nftables)
firefox_pkgs=(firefox-esr)

want=()
npm_ci=0
[ $# -eq 0 ] && set -- all
for g in "$@"; do
  case "$g" in
    browser) want+=("${browser_pkgs[@]}") npm_ci=1 ;;
    firefox) want+=("${firefox_pkgs[@]}") ;;
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

if [ ${#missing[@]} -gt 0 ]; then
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
fi

# tests/browser's Node packages (playwright-core, pinned by package-lock.json), installed
# again only when the lock file changed; playwright downloads no browser (Debian's chromium).
if [ "$npm_ci" -eq 1 ]; then
  dir="$(cd "$(dirname "$0")/../.." && pwd)/tests/browser"
  command -v node >/dev/null && command -v npm >/dev/null \
    || { echo "install-deps: tests/browser needs Node.js >= 20 and npm (node/npm not found)" >&2; exit 1; }
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || { echo "install-deps: tests/browser needs Node.js >= 20 (found $(node --version))" >&2; exit 1; }
  stamp="$dir/node_modules/.corecast-lock"
  want_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_sum" ] || [ ! -d "$dir/node_modules/playwright-core" ]; then
    echo "installing: tests/browser node modules (npm ci)"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    echo "$want_sum" > "$stamp"
  fi
fi
