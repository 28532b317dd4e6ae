#!/usr/bin/env bash
# Jubilant DB's server and Redis 7 (Debian's redis-server), each in its own
# process on loopback, driven row by row by the same load generator
# (`cargo bench -p jubilant-bench --bench server`): 1 and 50 connections,
# pipeline depth 1 and 16, SET sync (Redis: appendfsync always) and async
# (everysec), GET; 3-byte and 1 KiB values. Prints one Markdown table with
# both servers' figures and the ratio.
#
#   bench/scripts/server-compare.sh ["SET sync"]   (installs redis-server if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v redis-server >/dev/null; then
    apt-get install -y redis-server >/dev/null
fi
redis-server --version
cargo bench --locked -p jubilant-bench --bench server --no-run
redis_port=6399
jubilant_port=6790
cleanup_more() {
    redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true
}
source bench/scripts/server.sh
redis-server --port $redis_port --dir "$PWD/$work" --appendonly yes --appendfsync always \
    --save '' --daemonize yes --logfile "$PWD/$work/redis.log" >/dev/null
start_server $jubilant_port
JUBILANT_BENCH_ADDR=127.0.0.1:$jubilant_port JUBILANT_BENCH_PID=$server_pid \
JUBILANT_BENCH_REDIS=127.0.0.1:$redis_port \
    cargo bench --locked -p jubilant-bench --bench server -- "${1:-}" 2>/dev/null | grep '^|'
