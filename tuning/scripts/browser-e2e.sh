#!/usr/bin/env bash
# `make browser-e2e`: starts corecast the way `make run` does (tuning/scripts/run-local.sh,
# RUN_DEMO=0: the services only), runs the real-browser WHIP/WHEP test against it
# (tests/browser/webrtc-e2e.mjs: headless Chromium), and always stops the services.
# Arguments go to webrtc-e2e.mjs (e.g. --only whip-whep, --codec vp8, --json FILE).
# E2E_TEST=simulcast runs the simulcast test instead (tests/browser/simulcast-e2e.mjs, `make
# simulcast-e2e`, as root): it first creates the receiver's network namespace and veth pair
# (tests/browser/lib/netns.mjs up: 10.213.0.1/30 here, 10.213.0.2/30 in namespace corecast_sim), then
# starts the router on 0.0.0.0:ROUTER_PORT (ROUTER_LISTEN) so that its WebRTC answers list the veth's
# address as a host candidate (it lists its interfaces' addresses when it starts); the trap deletes
# the namespace, the veth, its qdisc and the namespace's nft table (netns.mjs down), whatever happened.
# E2E_TEST=webapp runs the web app's test instead (tests/browser/webapp-e2e.mjs, `make web-e2e`),
# which impairs the router's packets to the browser with an nftables table of its own
# (tests/browser/lib/impair.mjs); the trap deletes that table too, whatever happened.
# E2E_TEST=webfailover runs the web app's failover test (tests/browser/webapp-failover.mjs, part of
# `make web-e2e`): it starts two routers of its own next to the system's (their pids in
# .run/webapp-failover/routers.pid, which the trap kills, whatever happened) and drains the
# system's own for the run.
# E2E_TEST=firefox runs tests/browser/firefox-e2e.mjs (`make firefox-e2e`): Firefox ESR publishes
# and views over WHIP/WHEP with Chromium on the other end; the router listens on 0.0.0.0 (Firefox
# pairs no loopback candidates, so it checks the router's other host candidates).
#
# Environment: CORECAST_BIN_DIR (default $CARGO_TARGET_DIR/debug or ./target/debug, what `make test` builds), AUTH_PORT,
# CALLS_PORT, ROUTER_PORT, ADMIN_PORT (run-local.sh's defaults: 8081, 8082, 40000, 40100),
# E2E_TIMEOUT (seconds for the browser test, default 180). The state and logs are under .run/
# as for `make run`, so the two cannot run at once: stop `make run` first, or run
# webrtc-e2e.mjs by hand against it (see tests/browser/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CORECAST_BIN_DIR=${CORECAST_BIN_DIR:-${CARGO_TARGET_DIR:-./target}/debug}
export AUTH_PORT=${AUTH_PORT:-8081} CALLS_PORT=${CALLS_PORT:-8082} ROUTER_PORT=${ROUTER_PORT:-40000} ADMIN_PORT=${ADMIN_PORT:-40100}
timeout_s=${E2E_TIMEOUT:-180}

for b in corecast-control corecast-router corecast-codec; do
  [ -x "$CORECAST_BIN_DIR/$b" ] || { echo "browser-e2e: no $CORECAST_BIN_DIR/$b (build first: cargo build --workspace --bins)" >&2; exit 2; }
done
[ -d tests/browser/node_modules/playwright-core ] || { echo "browser-e2e: run tuning/scripts/install-deps.sh browser first" >&2; exit 2; }
for p in "$AUTH_PORT" "$CALLS_PORT" "$ADMIN_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "browser-e2e: 127.0.0.1:$p is in use (is \`make run\` up? stop it, or point webrtc-e2e.mjs at it by hand)" >&2
    exit 2
  fi
done

case "${E2E_TEST:-webrtc}" in webrtc|webapp|webfailover|simulcast|firefox) ;; *) echo "browser-e2e: E2E_TEST is webrtc, webapp, webfailover, simulcast or firefox" >&2; exit 2 ;; esac
if [ "${E2E_TEST:-webrtc}" = simulcast ]; then
  if [ "$(id -u)" != 0 ]; then echo "SKIP simulcast-e2e: needs root (ip netns, tc, nft)"; exit 0; fi
  # Before the router starts (its host candidates), and always deleted by stop() below.
  trap 'node tests/browser/lib/netns.mjs down' EXIT
  node tests/browser/lib/netns.mjs up || exit 2
  export ROUTER_LISTEN=0.0.0.0:$ROUTER_PORT
fi

# Firefox pairs no loopback candidates: the router listens on every address (and lists them).
[ "${E2E_TEST:-webrtc}" = firefox ] && export ROUTER_LISTEN=${ROUTER_LISTEN:-0.0.0.0:$ROUTER_PORT}

mkdir -p .run
log=.run/browser-e2e-system.log
fo_pids=.run/webapp-failover/routers.pid
# The system stays up a little longer than the test may take; run-local.sh stops its services
# on TERM or when RUN_SECONDS are up.
RUN_DEMO=0 RUN_SECONDS=$((timeout_s + 60)) bash tuning/scripts/run-local.sh >"$log" 2>&1 &
sys=$!
stop() {
  trap - EXIT INT TERM
  if [ "${E2E_TEST:-webrtc}" = webapp ] && command -v nft >/dev/null; then
    nft delete table inet "corecast_e2e_$ROUTER_PORT" 2>/dev/null || true
  fi
  [ "${E2E_TEST:-webrtc}" = simulcast ] && node tests/browser/lib/netns.mjs down
  if [ "${E2E_TEST:-webrtc}" = webfailover ] && [ -f "$fo_pids" ]; then
    while read -r p; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done <"$fo_pids" || true
    rm -f "$fo_pids"
  fi
  kill -TERM "$sys" 2>/dev/null || true
  wait "$sys" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq 600); do
  grep -q '^corecast is ready' "$log" && break
  kill -0 "$sys" 2>/dev/null || { echo "browser-e2e: the system did not start:" >&2; tail -20 "$log" >&2; exit 1; }
  sleep 0.1
done
grep -q '^corecast is ready' "$log" || { echo "browser-e2e: the system was not ready within 60 s:" >&2; tail -20 "$log" >&2; exit 1; }
echo "browser-e2e: corecast up (bin $CORECAST_BIN_DIR; logs .run/*.log, $log)"

rc=0
case "${E2E_TEST:-webrtc}" in
  webrtc) timeout --kill-after=10 "$timeout_s" node tests/browser/webrtc-e2e.mjs \
    --calls "http://127.0.0.1:$CALLS_PORT" --auth "http://127.0.0.1:$AUTH_PORT" --timeout $((timeout_s - 10)) "$@" || rc=$? ;;
  webapp) timeout --kill-after=10 "$timeout_s" node tests/browser/webapp-e2e.mjs \
    --base "http://127.0.0.1:$CALLS_PORT" --router-port "$ROUTER_PORT" --timeout $((timeout_s - 10)) --artifacts .run/webapp-e2e "$@" || rc=$? ;;
  webfailover) timeout --kill-after=10 "$timeout_s" node tests/browser/webapp-failover.mjs \
    --base "http://127.0.0.1:$CALLS_PORT" --bin-dir "$CORECAST_BIN_DIR" --secret-file .run/data/router-secret \
    --timeout $((timeout_s - 10)) --artifacts .run/webapp-failover --pid-file "$fo_pids" "$@" || rc=$? ;;
  firefox) timeout --kill-after=10 "$timeout_s" node tests/browser/firefox-e2e.mjs \
    --calls "http://127.0.0.1:$CALLS_PORT" --auth "http://127.0.0.1:$AUTH_PORT" --timeout $((timeout_s - 10)) "$@" || rc=$? ;;
  simulcast) timeout --kill-after=10 "$timeout_s" node tests/browser/simulcast-e2e.mjs \
    --calls "http://127.0.0.1:$CALLS_PORT" --auth "http://127.0.0.1:$AUTH_PORT" --admin "http://127.0.0.1:$ADMIN_PORT" \
    --secret-file .run/data/router-secret --router-port "$ROUTER_PORT" --timeout $((timeout_s - 10)) "$@" || rc=$? ;;
esac
if [ "$rc" -ne 0 ]; then
  echo "browser-e2e: failed (exit code $rc); the services' logs:" >&2
  [ "${E2E_TEST:-webrtc}" = webfailover ] && for f in .run/webapp-failover/router-*.log; do [ -s "$f" ] && { echo "--- $f (last 10 lines)" >&2; tail -10 "$f" >&2; }; done
  for f in control router codec; do [ -s ".run/$f.log" ] && { echo "--- .run/$f.log (last 15 lines)" >&2; tail -15 ".run/$f.log" >&2; }; done
fi
kill -0 "$sys" 2>/dev/null || { echo "browser-e2e: a service exited during the test:" >&2; tail -5 "$log" >&2; rc=1; }
exit "$rc"
