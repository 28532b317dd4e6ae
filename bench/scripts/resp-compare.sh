#!/usr/bin/env bash
# Redis 7 (Debian's redis-server) and Jubilant DB's RESP listener, each in
# its own process on loopback, driven by the same redis-benchmark command
# lines: SET sync (Redis: appendonly, appendfsync always; Jubilant: storage
# durability "sync"), SET async (appendfsync everysec; durability "async")
# and GET; 3-byte and 1 KiB values; 50 connections; pipeline depth 1 and 16;
# 100,000 random keys. One server of each per durability class. Prints one
# Markdown table of requests per second (redis-benchmark --csv) and the
# ratio Jubilant/Redis.
#
#   bench/scripts/resp-compare.sh [REQUESTS]   (requests per row, default 100000;
#                                               installs redis-server and redis-tools if missing)
#
# SIZES (default "3 1024"), PIPELINES (default "1 16") and OPS (default
# "SET sync,SET async,GET") narrow the rows, e.g. the large-value rows:
#
#   SIZES="16384 262144" PIPELINES=1 OPS="SET sync" bench/scripts/resp-compare.sh 5000
#
# Run it on a quiet machine: redis-benchmark, the server under test and the
# idle others share its cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
requests=${1:-100000}
sizes=${SIZES:-3 1024}
pipelines=${PIPELINES:-1 16}
ops=${OPS:-SET sync,SET async,GET}
if ! command -v redis-server >/dev/null; then
    apt-get install -y redis-server >/dev/null
fi
if ! command -v redis-benchmark >/dev/null || ! command -v redis-cli >/dev/null; then
    apt-get install -y redis-tools >/dev/null
fi
redis_sync_port=6399
redis_async_port=6398
jubilant_sync_port=6391
jubilant_async_port=6392
jubilant_pids=()
cleanup_more() {
    for port in $redis_sync_port $redis_async_port; do
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    for pid in "${jubilant_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
source bench/scripts/server.sh

wait_ready() { # wait_ready PORT NAME
    for _ in $(seq 100); do
        if [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "$2 did not answer PING on port $1" >&2
    return 1
}

start_redis() { # start_redis PORT APPENDFSYNC
    mkdir -p "$work/redis-$1"
    redis-server --port "$1" --bind 127.0.0.1 --dir "$PWD/$work/redis-$1" \
        --appendonly yes --appendfsync "$2" --save '' \
        --daemonize yes --logfile "$PWD/$work/redis-$1.log" >/dev/null
    wait_ready "$1" "redis-server (appendfsync $2)"
}

start_jubilant() { # start_jubilant RESP_PORT DURABILITY
    printf '[storage]\ndurability = "%s"\n' "$2" >"$work/jubilant-$2.toml"
    ./target/release/jubilant-server --config "$work/jubilant-$2.toml" \
        --data-dir "$work/jubilant-$2" --listen 127.0.0.1:0 --resp-listen "127.0.0.1:$1" \
        2>"$work/jubilant-$2.log" &
    jubilant_pids+=($!)
    wait_ready "$1" "jubilant-server (durability $2)"
}

# rps PORT TEST SIZE PIPELINE: requests per second of one redis-benchmark row.
rps() {
    local csv
    csv=$(redis-benchmark -h 127.0.0.1 -p "$1" -t "$2" -n "$requests" -c 50 -P "$4" -d "$3" \
        -r 100000 --csv)
    local upper
    upper=$(printf '%s' "$2" | tr '[:lower:]' '[:upper:]')
    local figure
    figure=$(printf '%s\n' "$csv" | grep "^\"$upper\"," | cut -d'"' -f4)
    if [ -z "$figure" ]; then
        echo "redis-benchmark on port $1 gave no $upper figure:" >&2
        printf '%s\n' "$csv" >&2
        return 1
    fi
    echo "$figure"
}

cargo build --release --locked -p jubilant-server >&2
redis-server --version >&2
redis-benchmark --version >&2
start_redis $redis_sync_port always
start_redis $redis_async_port everysec
start_jubilant $jubilant_sync_port sync
start_jubilant $jubilant_async_port async

echo "redis-benchmark -c 50 -r 100000 -n $requests, per row -t set|get -d SIZE -P DEPTH --csv"
echo
echo "| op | value size | pipeline | Redis rps | Jubilant rps | ratio |"
echo "|---|---:|---:|---:|---:|---:|"
for size in $sizes; do
    for pipeline in $pipelines; do
        # GET last: it reads the keys the SETs of this size wrote.
        for row in "SET sync:set:$redis_sync_port:$jubilant_sync_port" \
            "SET async:set:$redis_async_port:$jubilant_async_port" \
            "GET:get:$redis_async_port:$jubilant_async_port"; do
            IFS=: read -r op test redis_port jubilant_port <<<"$row"
            case ",$ops," in *",$op,"*) ;; *) continue ;; esac
            echo "$op, $size B, pipeline $pipeline..." >&2
            redis=$(rps "$redis_port" "$test" "$size" "$pipeline")
            jubilant=$(rps "$jubilant_port" "$test" "$size" "$pipeline")
            ratio=$(awk -v j="$jubilant" -v r="$redis" 'BEGIN { printf "%.2f", j / r }')
            echo "| $op | $size B | $pipeline | $redis | $jubilant | $ratio |"
        done
    done
done
