#!/usr/bin/env bash
# Starts throwaway PostgreSQL/Redis/Tarantool, runs the tests against them
# (contract suite on both backends, fault tests), and always stops the servers.
# Arguments go to `cargo test` (none: `-p corecast-control`); `make test` passes
# `--workspace --locked` so the whole workspace is built once and tested in one run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="$(mktemp -d /tmp/corecast-servers.XXXXXX)"
cleanup() { "$HERE/servers.sh" stop "$DIR" || true; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM
"$HERE/servers.sh" start "$DIR"
set -a; . "$DIR/env"; set +a
export CORECAST_TEST_REQUIRE_SERVERS=1
cd "$HERE/../.."
[ $# -gt 0 ] || set -- -p corecast-control
cargo test "$@"
