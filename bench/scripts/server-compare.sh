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
cargo build --release --locked -p jubilant-server
cargo bench --locked -p jubilant-bench --bench server --no-run
work=$(mktemp -d -p .)
redis_port=6399
jubilant_port=6790
cleanup() {
    redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true
    if [ -n "${jubilant_pid:-}" ]; then
        kill "$jubilant_pid" 2>/dev/null || true
        wait "$jubilant_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
redis-server --port $redis_port --dir "$PWD/$work" --appendonly yes --appendfsync always \
    --save '' --daemonize yes --logfile "$PWD/$work/redis.log" >/dev/null
./target/release/jubilant-server --data-dir "$work/jubilant" --listen 127.0.0.1:$jubilant_port \
    2>"$work/jubilant.log" &
jubilant_pid=$!
sleep 1
JUBILANT_BENCH_ADDR=127.0.0.1:$jubilant_port JUBILANT_BENCH_PID=$jubilant_pid \
JUBILANT_BENCH_REDIS=127.0.0.1:$redis_port \
    cargo bench --locked -p jubilant-bench --bench server -- "${1:-}" 2>/dev/null | grep '^|'
