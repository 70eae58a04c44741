#!/usr/bin/env bash
# `make run`: the whole system on embedded defaults (no external server):
#   auth + calls (users in an embedded on-disk database under .run/data,
#   sessions and calls in memory), the router and the codec pool, linked to
#   each other; calls generates its join-token signing key and the router
#   secret into .run/data on first start (mode 0600, reused afterwards), the
#   router gets the public key from calls' /v1/keys and reads the secret file,
#   the codec pool gets the secret through its environment;
# then two short live calls through all of it: 3 users register, log in,
# start and join a call, and send media for 5 seconds (every packet checked);
# then 2 users send real AV1 and a third asks for SD and saves the composite
# the codec pool makes as IVF. A copy-paste walk-through follows, and
# everything keeps running until Ctrl-C (or RUN_SECONDS seconds if set), or
# until one of the services (control, router, codec) exits.
#
# The demo calls cannot take the system down: a demo client that fails is
# reported (which one, its exit code) and the script goes on.
#
# Environment: CORECAST_BIN_DIR (default ./target/release, e.g. a debug build's
# target/debug), AUTH_PORT, CALLS_PORT, ROUTER_PORT, ADMIN_PORT, CODEC_PORT (the codec pool's
# /healthz, /readyz and /metrics; default ADMIN_PORT + 100), RUN_SECONDS;
# ROUTER_LISTEN (the router's UDP bind, default the ROUTER address 127.0.0.1:ROUTER_PORT; e.g.
# 0.0.0.0:40000 to reach it from other interfaces: its WebRTC answers then list every interface
# address present when it starts as ICE host candidates, loopback last; native clients are still
# pointed at 127.0.0.1; tests/browser/simulcast-e2e.mjs's receiver in a network namespace needs it);
# RUN_DEMO=0 starts the services only (no demo calls, no walk-through) and prints
# "corecast is ready" once they are up: tests start the system so
# (tuning/scripts/browser-e2e.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${CORECAST_BIN_DIR:-./target/release}
# SVT-AV1 logs at info level by default; errors only here.
export SVT_LOG=${SVT_LOG:-1}
AUTH=http://127.0.0.1:${AUTH_PORT:-8081}
CALLS=http://127.0.0.1:${CALLS_PORT:-8082}
ROUTER=127.0.0.1:${ROUTER_PORT:-40000}
ADMIN=127.0.0.1:${ADMIN_PORT:-40100}
CODEC=127.0.0.1:${CODEC_PORT:-$((${ADMIN_PORT:-40100} + 100))}
mkdir -p .run
mkdir -p -m 700 .run/data
cat > .run/control.toml <<TOML
[stores]
data_dir = ".run/data"
[router]
address = "$ROUTER"
admin = "http://$ADMIN"
TOML

# The services: their pids and names (name.log under .run/ is each one's log).
svc_pids=()
svc_names=()
# Demo clients running in the background: pids and what each is.
client_pids=()
client_names=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${svc_pids[@]}" "${client_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Exits (stopping everything) if a service is no longer running.
check_services() {
  local i rc
  for i in "${!svc_pids[@]}"; do
    if ! kill -0 "${svc_pids[$i]}" 2>/dev/null; then
      rc=0
      wait "${svc_pids[$i]}" || rc=$?
      echo "!! service ${svc_names[$i]} exited (exit code $rc); see .run/${svc_names[$i]}.log. Stopping everything." >&2
      exit 1
    fi
  done
}

# Each service runs in a session of its own (setsid): Ctrl-C reaches this script
# only, which then stops them, rather than some services first (which would look
# like a service dying). Without job control a background command is no process
# group leader, so setsid runs it in place: $! is the service's own pid.
MALLOC_MMAP_THRESHOLD_=262144 RUST_LOG=${RUST_LOG:-warn} setsid "$bin/corecast-control" --config .run/control.toml \
  --auth-listen "${AUTH#http://}" --calls-listen "${CALLS#http://}" > .run/control.out 2> .run/control.log &
svc_pids+=($!) svc_names+=(control)
for _ in $(seq 100); do
  curl -sf "$CALLS/v1/keys" >/dev/null 2>&1 && break
  check_services
  sleep 0.1
done
# The keys calls generated (or reused): its public key for the router, the router secret for the
# router (from the file) and for the codec pool and the demo (through the environment, not argv).
PUBLIC_KEY=$(curl -sf "$CALLS/v1/keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key_hex"])') \
  || { echo "control plane did not start; see .run/control.log" >&2; exit 1; }
SECRET_FILE=.run/data/router-secret
SECRET=$(cat "$SECRET_FILE")
RUST_LOG=${RUST_LOG:-warn} setsid "$bin/corecast-router" --listen "${ROUTER_LISTEN:-$ROUTER}" --admin-listen "$ADMIN" \
  --calls-url "$CALLS" --router-id local --public-key-hex "$PUBLIC_KEY" --router-secret-file "$SECRET_FILE" \
  --heartbeat-ms 500 --stats-interval 0 > .run/router.out 2> .run/router.log &
svc_pids+=($!) svc_names+=(router)
CORECAST_ROUTER_SECRET=$SECRET RUST_LOG=${RUST_LOG:-warn} setsid "$bin/corecast-codec" --router-admin "http://$ADMIN" \
  --calls-url "$CALLS" --poll-ms 200 --listen "$CODEC" > .run/codec.out 2> .run/codec.log &
svc_pids+=($!) svc_names+=(codec)
for _ in $(seq 100); do
  curl -sf "http://$ADMIN/healthz" >/dev/null 2>&1 && break
  check_services
  sleep 0.1
done
curl -sf "http://$ADMIN/healthz" >/dev/null || { echo "router did not start; see .run/router.log" >&2; exit 1; }
sleep 1.2 # the router registers with calls
check_services

cat <<TXT
corecast is running:
  app     $CALLS/   <- open this in a browser: register, start a call, share its link
  auth    $AUTH     (its /v1/register, /v1/login, /v1/logout, /v1/me also on the app's origin)
  calls   $CALLS
  router  $ROUTER (UDP)   admin http://$ADMIN   (/v1/stats)
  codec   SD composites for calls with SD receivers (corecast-codec)   http://$CODEC
  health  /healthz, /readyz and Prometheus /metrics on $AUTH, $CALLS, http://$ADMIN and http://$CODEC
  logs    .run/*.log
TXT

if [ "${RUN_DEMO:-1}" = 0 ]; then
  echo "corecast is ready (RUN_DEMO=0: no demo calls)"
  end=$((SECONDS + ${RUN_SECONDS:-0}))
  while [ -z "${RUN_SECONDS:-}" ] || [ "$SECONDS" -lt "$end" ]; do
    check_services
    sleep 1
  done
  exit 0
fi

# From here on the demo runs: its failures are reported, never fatal (no
# errexit; every step is checked by hand). Only a service exiting stops the script.
set +e
C="$bin/corecast-client"
export CORECAST_PASSWORD=demo-password-1
demo_failures=0
# failed WHAT CODE: reports a failed demo step.
failed() {
  echo "!! demo: $1 failed (exit code $2); the system keeps running" >&2
  demo_failures=$((demo_failures + 1))
}
# login USER VAR: sets VAR to USER's session token (registering USER first if needed).
login() {
  local _out _rc=0
  _out=$("$C" login --auth "$AUTH" --login "$1" --register) || _rc=$?
  if [ "$_rc" -ne 0 ] || [ -z "$_out" ]; then failed "login of $1" "$_rc"; return 1; fi
  printf -v "$2" '%s' "$_out"
}
# start_call SESSION VAR: starts a call, sets VAR to its id.
start_call() {
  local _out _rc=0
  _out=$("$C" start --calls "$CALLS" --session "$1") || _rc=$?
  if [ "$_rc" -ne 0 ] || [ -z "$_out" ]; then failed "start of a call" "$_rc"; return 1; fi
  printf -v "$2" '%s' "$_out"
}
# Waits for every background demo client, reporting each one that failed.
await_clients() {
  local i rc
  for i in "${!client_pids[@]}"; do
    rc=0
    wait "${client_pids[$i]}" || rc=$?
    [ "$rc" -eq 0 ] || failed "${client_names[$i]} (pid ${client_pids[$i]})" "$rc"
  done
  client_pids=()
  client_names=()
}

demo_call() {
  local s1 s2 s3 call u s stats
  login demo-alice s1 && login demo-bob s2 && login demo-carol s3 || return 1
  start_call "$s1" call || return 1
  echo "call $call"
  for u in alice bob carol; do
    case $u in alice) s=$s1 ;; bob) s=$s2 ;; carol) s=$s3 ;; esac
    "$C" join --calls "$CALLS" --session "$s" --call "$call" --seconds 5 &
    client_pids+=($!) client_names+=("client of demo-$u (join, call 1)")
  done
  await_clients
  "$C" end --calls "$CALLS" --session "$s1" --call "$call" || failed "end of call 1" $?
  echo "call ended; router stats:"
  stats=$(curl -sf -H "authorization: Bearer $SECRET" "http://$ADMIN/v1/stats") || { failed "reading the router's stats" $?; return 1; }
  python3 -c 'import json,sys; d=json.load(sys.stdin); w=d["workers"][0]; print("  backend", d["backend"], "| joins", w["joins"], "| forwarded", w["forwarded_rtp"], "| dropped", sum(w["dropped"].values()))' <<<"$stats" \
    || failed "reading the router's stats" $?
}

demo_sd() {
  local s1 s2 s4 call
  login demo-alice s1 && login demo-bob s2 && login demo-dave s4 || return 1
  start_call "$s1" call || return 1
  rm -rf .run/ivf
  "$C" join --calls "$CALLS" --session "$s4" --call "$call" --seconds 6 --sd --fps 30 --save-ivf .run/ivf/sd &
  client_pids+=($!) client_names+=("client of demo-dave (SD receiver, call 2)")
  sleep 1 # the pool joins as the call's mixer
  "$C" join --calls "$CALLS" --session "$s1" --call "$call" --seconds 4 --av1 --fps 30 --save-ivf .run/ivf/alice >/dev/null &
  client_pids+=($!) client_names+=("client of demo-alice (AV1 sender, call 2)")
  "$C" join --calls "$CALLS" --session "$s2" --call "$call" --seconds 4 --av1 --fps 30 --save-ivf .run/ivf/bob >/dev/null &
  client_pids+=($!) client_names+=("client of demo-bob (AV1 sender, call 2)")
  await_clients
  "$C" end --calls "$CALLS" --session "$s1" --call "$call" || failed "end of call 2" $?
  echo "  play the SD composite: ffplay .run/ivf/sd/ssrc-*.ivf, or dav1d -i FILE -o out.y4m (apt-get install dav1d)"
}

echo
echo "== a 5-second live call: 3 users register, log in, start and join a call, send and check media =="
demo_call
check_services
echo
echo "== SD: 2 users send real AV1 test patterns, a third asks for SD; the codec pool composites =="
demo_sd
check_services
if [ "$demo_failures" -gt 0 ]; then
  echo "!! $demo_failures demo step(s) failed (see above); the system is up all the same" >&2
fi

cat <<TXT

== walk-through (copy and paste into another terminal) ==
  # with curl:
  curl -s -XPOST $AUTH/v1/register -H 'content-type: application/json' \\
       -d '{"login":"me","email":"me@example.com","name":"Me","password":"a-long-password"}'
  SESSION=\$(curl -s -XPOST $AUTH/v1/login -H 'content-type: application/json' \\
       -d '{"login":"me","password":"a-long-password"}' | jq -r .session)
  CALL=\$(curl -s -XPOST $CALLS/v1/calls -H "authorization: Bearer \$SESSION" | jq -r .call_id)
  curl -s -XPOST $CALLS/v1/calls/\$CALL/join -H "authorization: Bearer \$SESSION"   # router + token
  # or the whole flow with the client (it joins the router with the returned token):
  export CORECAST_PASSWORD=a-long-password
  SESSION=\$($C login --auth $AUTH --login me --register)
  CALL=\$($C start --calls $CALLS --session "\$SESSION")
  $C join --calls $CALLS --session "\$SESSION" --call \$CALL --seconds 30 &
  VIEWER=\$($C login --auth $AUTH --login viewer --register)         # receives only:
  $C join --calls $CALLS --session "\$VIEWER" --call \$CALL --role subscriber --seconds 30 &
  SESSION2=\$($C login --auth $AUTH --login friend --register)
  $C join --calls $CALLS --session "\$SESSION2" --call \$CALL --seconds 30
  # WebRTC as a browser joins (WHIP to publish, WHEP to watch; ICE-lite, DTLS-SRTP):
  $C whip --calls $CALLS --session "\$SESSION" --call \$CALL --seconds 30 &     # prints its participant id
  $C whep --calls $CALLS --session "\$VIEWER" --call \$CALL --participant <id printed by whip> --seconds 10
  # or a real browser against this system: node tests/browser/webrtc-e2e.mjs --calls $CALLS --auth $AUTH
  # or the web app in a browser (two windows, or two browsers, to call yourself):
  #   $CALLS/
Ctrl-C stops everything.
TXT
# Up until Ctrl-C, RUN_SECONDS, or a service exiting.
end=$((SECONDS + ${RUN_SECONDS:-0}))
while [ -z "${RUN_SECONDS:-}" ] || [ "$SECONDS" -lt "$end" ]; do
  check_services
  sleep 1
done
