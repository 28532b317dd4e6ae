#!/usr/bin/env bash
# Flamegraphs (SVG, docs/flamegraphs/) of Jubilant DB on the workloads where
# it is behind the best engine (docs/benchmarks.md): the embedded benchmark
# run for Jubilant DB alone under `perf record`, its profile cut into one
# graph per workload by the marks the benchmark prints
# (JUBILANT_EMBEDDED_MARKS), the server on `SET sync 3 B 50x16`, the RESP
# listener on the rows of issue 21 it misses against Redis (redis-benchmark,
# one graph per row), and the WAL benchmark's 64 committers.
#
#   bench/scripts/flamegraphs.sh   (needs perf; installs inferno if missing)
#   PARTS="resp wal" bench/scripts/flamegraphs.sh   (only those graphs)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v perf >/dev/null || apt-get install -y linux-perf >/dev/null
command -v inferno-flamegraph >/dev/null || cargo install --locked inferno
out=docs/flamegraphs
mkdir -p "$out"
parts=" ${PARTS:-embedded server resp wal} "
resp_pids=()
cleanup_more() {
    for pid in "${resp_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
source bench/scripts/server.sh

graph() { # graph NAME TITLE [perf script args...]
    local name=$1 title=$2
    shift 2
    perf script "$@" 2>/dev/null | inferno-collapse-perf |
        inferno-flamegraph --title "$title" --width 1400 >"$out/$name.svg"
    echo "$out/$name.svg"
}

# Embedded: every workload of the benchmark, Jubilant DB only.
if [[ $parts == *" embedded "* ]]; then
cargo bench --locked -p jubilant-bench --bench embedded --no-run
bench=$(ls -t target/release/deps/embedded-* | grep -v '\.d$' | head -1)
JUBILANT_EMBEDDED_ENGINES=none JUBILANT_EMBEDDED_MARKS=1 \
    perf record -k CLOCK_MONOTONIC -F 299 --call-graph dwarf,16384 -o "$work/embedded.data" \
    "$bench" --bench 2>"$work/marks.txt" >/dev/null
grep '^mark' "$work/marks.txt" | while IFS=$'\t' read -r _ engine workload start end; do
    [ "$workload" = "(check)" ] && continue
    slug=$(echo "$workload" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]\+/-/g; s/^-//; s/-$//' | cut -c1-40)
    graph "embedded-$slug" "$engine: $workload" -i "$work/embedded.data" --time "$start,$end"
done
fi

# Server: SET sync, 3-byte values, 50 connections, depth 16.
if [[ $parts == *" server "* ]]; then
cargo bench --locked -p jubilant-bench --bench server --no-run
port=6792
start_server $port
perf record -F 299 --call-graph dwarf,16384 -o "$work/server.data" -p "$server_pid" &
perf_pid=$!
JUBILANT_BENCH_ADDR=127.0.0.1:$port JUBILANT_BENCH_PID=$server_pid \
    cargo bench --locked -p jubilant-bench --bench server -- "SET sync 3 B 50x16" >/dev/null 2>&1
kill -INT "$perf_pid"
wait "$perf_pid" || true
graph server-set-sync "jubilant-server: SET sync 3 B, 50 connections x 16" -i "$work/server.data"
fi

# RESP: redis-benchmark's rows (resp-compare.sh's command lines), one
# server per durability class, each row profiled on its own.
if [[ $parts == *" resp "* ]]; then
    command -v redis-benchmark >/dev/null || apt-get install -y redis-tools >/dev/null
    cargo build --release --locked -p jubilant-server
    declare -A resp_pid
    for durability in sync async; do
        port=$([ $durability = sync ] && echo 6381 || echo 6382)
        printf '[storage]\ndurability = "%s"\n' $durability >"$work/$durability.toml"
        ./target/release/jubilant-server --config "$work/$durability.toml" \
            --data-dir "$work/resp-$durability" --listen 127.0.0.1:0 \
            --resp-listen "127.0.0.1:$port" 2>"$work/resp-$durability.log" &
        resp_pids+=($!)
        resp_pid[$durability]=$!
    done
    sleep 1
    for row in "set:sync:6381:3:16" "set:async:6382:3:16" "get:async:6382:3:16" \
        "set:sync:6381:1024:1" "set:async:6382:1024:1" "get:async:6382:1024:1"; do
        IFS=: read -r test durability port size depth <<<"$row"
        # The keys a GET row reads are written first, unprofiled.
        [ "$test" = get ] && redis-benchmark -p "$port" -t set -n 100000 -c 50 -P 16 \
            -d "$size" -r 100000 -q >/dev/null
        perf record -F 299 --call-graph dwarf,16384 -o "$work/resp.data" \
            -p "${resp_pid[$durability]}" 2>/dev/null &
        perf_pid=$!
        sleep 0.5
        redis-benchmark -p "$port" -t "$test" -n 200000 -c 50 -P "$depth" -d "$size" \
            -r 100000 -q | tail -1
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        name=$([ "$test" = get ] && echo get || echo "set-$durability")
        graph "resp-$name-${size}b-p$depth" \
            "jubilant-server RESP: ${test^^} ($durability) $size B, 50 connections x $depth" \
            -i "$work/resp.data"
    done
fi

# Group commit: the WAL benchmark's 64 committers on the real disk.
if [[ $parts == *" wal "* ]]; then
    cargo bench --locked -p jubilant-bench --bench wal --no-run
    bench=$(ls -t target/release/deps/wal-* | grep -v '\.d$' | head -1)
    JUBILANT_WAL_COMMITTERS=64 perf record -F 299 --call-graph dwarf,16384 \
        -o "$work/wal.data" "$bench" --bench
    graph wal-64-committers "sync commits, 64 committers (group commit)" -i "$work/wal.data"
fi
