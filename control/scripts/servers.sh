#!/usr/bin/env bash
# Throwaway PostgreSQL 15, Redis 7 and Tarantool 2.6 for corecast-control tests and local use.
#
#   servers.sh start DIR              install missing Debian packages, start all three on free
#                                     loopback ports under DIR, write DIR/env (URLs)
#   servers.sh stop DIR               stop all three (idempotent)
#   servers.sh stop-one DIR NAME      stop one of pg|redis|tarantool (data kept)
#   servers.sh start-one DIR NAME     start it again on the same port
#
# DIR/env holds CORECAST_TEST_PG, CORECAST_TEST_REDIS, CORECAST_TEST_TARANTOOL plus
# CORECAST_TEST_SERVERS_DIR and CORECAST_TEST_SERVERS_SCRIPT (for fault tests).
# Needs root (apt-get, runuser). Every wait is bounded.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
INIT_LUA="$(cd "$HERE/.." && pwd)/tarantool/init.lua"
PGBIN=/usr/lib/postgresql/15/bin

log() { echo "servers.sh: $*" >&2; }

install_missing() {
    local need=()
    [ -x "$PGBIN/initdb" ] || need+=(postgresql-15)
    command -v redis-server >/dev/null || need+=(redis-server)
    command -v tarantool >/dev/null || need+=(tarantool)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then log "timed out waiting for $what"; return 1; fi
        sleep 0.1
    done
}

port_of() { cat "$1/$2.port"; }

start_pg() {
    local dir=$1 port
    port=$(port_of "$dir" pg)
    mkdir -p "$dir/pg"
    chown postgres:postgres "$dir/pg"
    chmod 700 "$dir/pg"
    if [ ! -f "$dir/pg/data/PG_VERSION" ]; then
        runuser -u postgres -- "$PGBIN/initdb" -D "$dir/pg/data" --auth=trust -U postgres >"$dir/pg-initdb.log" 2>&1
    fi
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 30 \
        -o "-p $port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    if [ ! -f "$dir/pg.created" ]; then
        runuser -u postgres -- "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE corecast' >/dev/null
        touch "$dir/pg.created"
    fi
}

stop_pg() {
    local dir=$1
    [ -f "$dir/pg/data/postmaster.pid" ] || return 0
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

start_redis() {
    local dir=$1 port
    port=$(port_of "$dir" redis)
    mkdir -p "$dir/redis"
    redis-server --daemonize yes --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$dir/redis" --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" >/dev/null
    wait_for 10 redis redis-cli -p "$port" ping
}

stop_redis() {
    local dir=$1 port
    port=$(port_of "$dir" redis)
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait_for 10 "redis exit" bash -c "! redis-cli -p $port ping" || true
}

start_tarantool() {
    local dir=$1 port
    port=$(port_of "$dir" tarantool)
    mkdir -p "$dir/tarantool"
    rm -f "$dir/tarantool/ready"
    (cd "$dir/tarantool" && CORECAST_TT_LISTEN="127.0.0.1:$port" CORECAST_TT_DIR="$dir/tarantool" \
        CORECAST_TT_BACKGROUND=1 CORECAST_TT_READY_FILE="$dir/tarantool/ready" tarantool "$INIT_LUA")
    wait_for 20 tarantool test -f "$dir/tarantool/ready"
}

stop_tarantool() {
    local dir=$1 pid
    [ -f "$dir/tarantool/tarantool.pid" ] || return 0
    pid=$(cat "$dir/tarantool/tarantool.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_for 15 "tarantool exit" bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/tarantool/tarantool.pid" "$dir/tarantool/ready"
}

write_env() {
    local dir=$1
    cat >"$dir/env" <<ENV
CORECAST_TEST_PG=postgres://postgres@127.0.0.1:$(port_of "$dir" pg)/corecast
CORECAST_TEST_REDIS=redis://127.0.0.1:$(port_of "$dir" redis)/
CORECAST_TEST_TARANTOOL=tarantool://corecast:corecast@127.0.0.1:$(port_of "$dir" tarantool)
CORECAST_TEST_SERVERS_DIR=$dir
CORECAST_TEST_SERVERS_SCRIPT=$SELF
ENV
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|start-one|stop-one DIR [pg|redis|tarantool]" >&2; exit 2; }
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
chmod 755 "$dir"

case "$cmd" in
start)
    install_missing
    for s in pg redis tarantool; do [ -f "$dir/$s.port" ] || free_port >"$dir/$s.port"; done
    start_pg "$dir"
    start_redis "$dir"
    start_tarantool "$dir"
    write_env "$dir"
    log "started; URLs in $dir/env"
    ;;
stop)
    stop_tarantool "$dir"
    stop_redis "$dir" 2>/dev/null || true
    stop_pg "$dir"
    log "stopped"
    ;;
start-one)
    case "${3:-}" in pg) start_pg "$dir" ;; redis) start_redis "$dir" ;; tarantool) start_tarantool "$dir" ;;
        *) echo "unknown server ${3:-}" >&2; exit 2 ;; esac ;;
stop-one)
    case "${3:-}" in pg) stop_pg "$dir" ;; redis) stop_redis "$dir" ;; tarantool) stop_tarantool "$dir" ;;
        *) echo "unknown server ${3:-}" >&2; exit 2 ;; esac ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
