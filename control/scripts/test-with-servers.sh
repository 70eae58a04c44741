#!/usr/bin/env bash
# Starts throwaway PostgreSQL/Redis/Tarantool, runs the corecast-control tests against them
# (contract suite on both backends, fault tests), and always stops the servers.
# Extra arguments go to `cargo test`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="$(mktemp -d /tmp/corecast-servers.XXXXXX)"
cleanup() { "$HERE/servers.sh" stop "$DIR" || true; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM
"$HERE/servers.sh" start "$DIR"
set -a; . "$DIR/env"; set +a
cd "$HERE/../.."
cargo test -p corecast-control "$@"
