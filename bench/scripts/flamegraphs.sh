#!/usr/bin/env bash
# Flamegraphs (SVG, docs/flamegraphs/) of Jubilant DB on the workloads where
# it is behind the best engine (docs/benchmarks.md): the embedded benchmark
# run for Jubilant DB alone under `perf record`, its profile cut into one
# graph per workload by the marks the benchmark prints
# (JUBILANT_EMBEDDED_MARKS), and the server on `SET sync 3 B 50x16`.
#
#   bench/scripts/flamegraphs.sh   (needs perf; installs inferno if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v perf >/dev/null || apt-get install -y linux-perf >/dev/null
command -v inferno-flamegraph >/dev/null || cargo install --locked inferno
out=docs/flamegraphs
mkdir -p "$out"
source bench/scripts/server.sh

graph() { # graph NAME TITLE [perf script args...]
    local name=$1 title=$2
    shift 2
    perf script "$@" 2>/dev/null | inferno-collapse-perf |
        inferno-flamegraph --title "$title" --width 1400 >"$out/$name.svg"
    echo "$out/$name.svg"
}

# Embedded: every workload of the benchmark, Jubilant DB only.
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

# Server: SET sync, 3-byte values, 50 connections, depth 16.
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
