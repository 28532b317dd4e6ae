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
cargo bench --locked -p jubilant-bench --bench memory --no-run
source bench/scripts/server.sh
port=6791
printf '[storage]\ncache_bytes = %d\n' $((cache_mib << 20)) >"$work/jubilant.toml"
start_server $port --config "$work/jubilant.toml"
JUBILANT_MEMORY_SERVER=127.0.0.1:$port JUBILANT_BENCH_PID=$server_pid \
JUBILANT_MEMORY_CACHE_MIB=$cache_mib \
    cargo bench --locked -p jubilant-bench --bench memory 2>/dev/null | grep '^|'
