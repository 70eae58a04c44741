#!/usr/bin/env bash
# `make run`: the whole system on embedded defaults (no external server):
#   auth + calls (users in an embedded on-disk database under .run/data,
#   sessions and calls in memory), the router and the codec pool, linked to
#   each other;
# then two short live calls through all of it: 3 users register, log in,
# start and join a call, and send media for 5 seconds (every packet checked);
# then 2 users send real AV1 and a third asks for SD and saves the composite
# the codec pool makes as IVF. A copy-paste walk-through follows, and
# everything keeps running until Ctrl-C (or RUN_SECONDS seconds if set).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=./target/release
# SVT-AV1 logs at info level by default; errors only here.
export SVT_LOG=${SVT_LOG:-1}
AUTH=http://127.0.0.1:${AUTH_PORT:-8081}
CALLS=http://127.0.0.1:${CALLS_PORT:-8082}
ROUTER=127.0.0.1:${ROUTER_PORT:-40000}
ADMIN=127.0.0.1:${ADMIN_PORT:-40100}
SECRET=corecast-dev-router-secret
mkdir -p .run/data
cat > .run/control.toml <<TOML
[stores]
data_dir = ".run/data"
[router]
address = "$ROUTER"
admin = "http://$ADMIN"
secret = "$SECRET"
TOML

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

RUST_LOG=${RUST_LOG:-warn} "$bin/corecast-control" --config .run/control.toml \
  --auth-listen "${AUTH#http://}" --calls-listen "${CALLS#http://}" > .run/control.out 2> .run/control.log &
pids+=($!)
RUST_LOG=${RUST_LOG:-warn} "$bin/corecast-router" --listen "$ROUTER" --admin-listen "$ADMIN" \
  --calls-url "$CALLS" --router-id local --router-secret "$SECRET" --heartbeat-ms 1000 --stats-interval 0 \
  > .run/router.out 2> .run/router.log &
pids+=($!)
RUST_LOG=${RUST_LOG:-warn} "$bin/corecast-codec" --router-admin "http://$ADMIN" --calls-url "$CALLS" \
  --router-secret "$SECRET" --poll-ms 200 > .run/codec.out 2> .run/codec.log &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "$CALLS/v1/keys" >/dev/null 2>&1 && curl -sf "http://$ADMIN/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "$CALLS/v1/keys" >/dev/null || { echo "control plane did not start; see .run/control.log" >&2; exit 1; }
sleep 1.2 # the router registers with calls

cat <<TXT
corecast is running:
  auth    $AUTH
  calls   $CALLS
  router  $ROUTER (UDP)   admin http://$ADMIN   (/v1/stats, /metrics)
  codec   SD composites for calls with SD receivers (corecast-codec)
  logs    .run/*.log

== a 5-second live call: 3 users register, log in, start and join a call, send and check media ==
TXT
C="$bin/corecast-client"
export CORECAST_PASSWORD=demo-password-1
S1=$($C login --auth "$AUTH" --login demo-alice --register)
S2=$($C login --auth "$AUTH" --login demo-bob --register)
S3=$($C login --auth "$AUTH" --login demo-carol --register)
CALL=$($C start --calls "$CALLS" --session "$S1")
echo "call $CALL"
for s in "$S1" "$S2" "$S3"; do
  $C join --calls "$CALLS" --session "$s" --call "$CALL" --seconds 5 &
done
wait -n; wait -n; wait -n || true
$C end --calls "$CALLS" --session "$S1" --call "$CALL"
echo "call ended; router stats:"
curl -s -H "authorization: Bearer $SECRET" "http://$ADMIN/v1/stats" | python3 -c 'import json,sys; d=json.load(sys.stdin); w=d["workers"][0]; print("  backend", d["backend"], "| joins", w["joins"], "| forwarded", w["forwarded_rtp"], "| dropped", sum(w["dropped"].values()))'


echo
echo "== SD: 2 users send real AV1 test patterns, a third asks for SD; the codec pool composites =="
S4=$($C login --auth "$AUTH" --login demo-dave --register)
CALL2=$($C start --calls "$CALLS" --session "$S1")
rm -rf .run/ivf
$C join --calls "$CALLS" --session "$S4" --call "$CALL2" --seconds 6 --sd --fps 30 --save-ivf .run/ivf/sd &
sdpid=$!
sleep 1 # the pool joins as the call's mixer
$C join --calls "$CALLS" --session "$S1" --call "$CALL2" --seconds 4 --av1 --fps 30 --save-ivf .run/ivf/alice >/dev/null &
apid=$!
$C join --calls "$CALLS" --session "$S2" --call "$CALL2" --seconds 4 --av1 --fps 30 --save-ivf .run/ivf/bob >/dev/null &
bpid=$!
wait "$sdpid" "$apid" "$bpid" || true
$C end --calls "$CALLS" --session "$S1" --call "$CALL2" || true
echo "  play the SD composite: ffplay .run/ivf/sd/ssrc-*.ivf, or dav1d -i FILE -o out.y4m (apt-get install dav1d)"

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
  CALL=\$($C start --calls $CALLS --session \$SESSION)
  $C join --calls $CALLS --session \$SESSION --call \$CALL --seconds 30 &
  SESSION2=\$($C login --auth $AUTH --login friend --register)
  $C join --calls $CALLS --session \$SESSION2 --call \$CALL --seconds 30
Ctrl-C stops everything.
TXT
if [ -n "${RUN_SECONDS:-}" ]; then sleep "$RUN_SECONDS"; else wait; fi
