#!/usr/bin/env bash
# `make run`: starts the router on 127.0.0.1:40000 (development key), runs a
# short live call through it with progress, then keeps the router running
# until Ctrl-C (or for RUN_SECONDS seconds if set).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=./target/release
listen=${CORECAST_ROUTER_LISTEN:-127.0.0.1:40000}

"$bin/corecast-router" --listen "$listen" --stats-interval 5 &
router=$!
trap 'kill $router 2>/dev/null; wait $router 2>/dev/null || true' EXIT INT TERM
sleep 0.5

echo
echo "== a 5-second live call with 4 synthetic participants through the router at $listen =="
"$bin/corecast-bench" demo --router "$listen" --participants 4 --seconds 5

cat <<TXT

== the router keeps running at $listen (development key) ==
Join it yourself from another terminal:
  CALL=\$(cat /proc/sys/kernel/random/uuid)
  TOKEN=\$($bin/corecast-client token --call \$CALL --participant 1)
  $bin/corecast-client join --router $listen --token \$TOKEN --seconds 10 &
  $bin/corecast-client join --router $listen --token \$($bin/corecast-client token --call \$CALL --participant 2) --seconds 10
Ctrl-C stops the router.
TXT
if [ -n "${RUN_SECONDS:-}" ]; then sleep "$RUN_SECONDS"; else wait $router; fi
