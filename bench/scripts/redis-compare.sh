#!/usr/bin/env bash
# Redis 7 (Debian's redis-server) under the same loads as
# `cargo bench -p jubilant-bench --bench server`: 1 and 50 connections,
# pipeline depth 1 and 16, SET with appendfsync always (the analogue of
# `sync`) and everysec (`async`), GET; 3-byte and 1 KiB values; keys over
# 10,000. Prints a Markdown table (ops/s, p50 and p99 in µs).
#
#   bench/scripts/redis-compare.sh      (installs redis-server if missing)
set -euo pipefail
if ! command -v redis-server >/dev/null; then
    apt-get install -y redis-server >/dev/null
fi
dir=$(mktemp -d)
port=6399
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
redis-server --port $port --dir "$dir" --appendonly yes --appendfsync always \
    --save '' --daemonize yes --logfile "$dir/log" >/dev/null
sleep 0.5
echo "| op | value | connections | depth | ops/s | p50 µs | p99 µs |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row() { # op label, redis test, value bytes, connections, depth
    local requests=$(( $4 * $5 * 2000 ))
    [ "$requests" -gt 400000 ] && requests=400000
    redis-benchmark -p $port -t "$2" -d "$3" -c "$4" -P "$5" -n "$requests" \
        -r 10000 --csv 2>/dev/null | tail -1 | tr -d '"' |
    awk -F, -v op="$1" -v d="$3" -v c="$4" -v p="$5" \
        '{ printf "| %s | %s B | %s | %s | %.0f | %.0f | %.0f |\n", op, d, c, p, $2, $5*1000, $7*1000 }'
}
for bytes in 3 1024; do
    redis-cli -p $port config set appendfsync always >/dev/null
    for cp in "1 1" "1 16" "50 1" "50 16"; do row "SET always" set $bytes $cp; done
    redis-cli -p $port config set appendfsync everysec >/dev/null
    for cp in "1 1" "1 16" "50 1" "50 16"; do row "SET everysec" set $bytes $cp; done
    for cp in "1 1" "1 16" "50 1" "50 16"; do row "GET" get $bytes $cp; done
done
