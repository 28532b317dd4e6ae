#!/usr/bin/env bash
# Peak RSS of Jubilant DB's server (its own process, the release binary)
# loaded with a data set ten times its cache budget through 32 connections
# (`cargo bench -p jubilant-bench --bench memory` in server mode). Prints
# one Markdown row set; results go to docs/benchmarks.md.
#
#   bench/scripts/server-memory.sh [CACHE_MIB]   (default 32)
set -euo pipefail
cd "$(dirname "$0")/../.."
cache_mib=${1:-32}
cargo build --release --locked -p jubilant-server
cargo bench --locked -p jubilant-bench --bench memory --no-run
work=$(mktemp -d -p .)
port=6791
cleanup() {
    if [ -n "${server_pid:-}" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
printf '[storage]\ncache_bytes = %d\n' $((cache_mib << 20)) >"$work/jubilant.toml"
./target/release/jubilant-server --config "$work/jubilant.toml" --data-dir "$work/data" \
    --listen 127.0.0.1:$port 2>"$work/jubilant.log" &
server_pid=$!
sleep 1
JUBILANT_MEMORY_SERVER=127.0.0.1:$port JUBILANT_BENCH_PID=$server_pid \
JUBILANT_MEMORY_CACHE_MIB=$cache_mib \
    cargo bench --locked -p jubilant-bench --bench memory 2>/dev/null | grep '^|'
