#!/usr/bin/env bash
# Online backup (design 12) of the release server, measured on loopback:
# a database of KEYS 1 KiB values loaded through RESP, then
#   1. `jubectl backup` alone: seconds and MB/s of the copy (it includes
#      the copy's open, validate and close);
#   2. redis-benchmark SET (1 KiB, 50 connections, pipeline 1, sync
#      durability) alone, then again while a backup runs: what a backup
#      costs the writers.
# Prints a Markdown table.
#
#   bench/scripts/backup.sh [KEYS]   (default 300000; installs redis-tools if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
keys=${1:-300000}
if ! command -v redis-benchmark >/dev/null || ! command -v redis-cli >/dev/null; then
    apt-get install -y redis-tools >/dev/null
fi
source bench/scripts/server.sh
cargo build --release --locked -p jubectl
port=6393
resp=6394
start_server "$port" --resp-listen "127.0.0.1:$resp"
for _ in $(seq 100); do
    [ "$(redis-cli -p "$resp" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
redis-benchmark -p "$resp" -t set -n "$keys" -r "$keys" -d 1024 -c 50 -P 16 -q >/dev/null
jubectl() { ./target/release/jubectl --addr "127.0.0.1:$port" --timeout 120 "$@"; }
jubectl checkpoint >/dev/null
db_bytes=$(du -sb "$work/server" | cut -f1)

started=$(date +%s.%N)
jubectl --json backup "$work/quiet" >"$work/quiet.json"
quiet_s=$(printf %.1f "$(echo "$(date +%s.%N) - $started" | bc)")
copy_bytes=$(python3 -c "import json; print(json.load(open('$work/quiet.json'))['bytes'])")

set_rate() { # set_rate REQUESTS -> requests per second
    redis-benchmark -p "$resp" -t set -n "$1" -r "$keys" -d 1024 -c 50 --csv |
        awk -F, 'NR==2 {gsub(/"/, "", $2); print $2}'
}
alone=$(set_rate 100000)
set_rate 200000 >"$work/during.rate" &
bench=$!
sleep 1
started=$(date +%s.%N)
jubectl --json backup "$work/busy" >"$work/busy.json"
busy_s=$(printf %.1f "$(echo "$(date +%s.%N) - $started" | bc)")
wait "$bench"
during=$(cat "$work/during.rate")

mb() { echo "scale=1; $1 / 1048576" | bc; }
echo "| figure | value |"
echo "|---|---|"
echo "| database directory | $(mb "$db_bytes") MiB |"
echo "| copied (data bytes) | $(mb "$copy_bytes") MiB |"
echo "| backup alone | ${quiet_s} s ($(echo "scale=1; $copy_bytes / 1048576 / $quiet_s" | bc) MiB/s) |"
echo "| backup while SET runs | ${busy_s} s |"
echo "| SET 1 KiB sync, P1, alone | $alone req/s |"
echo "| SET 1 KiB sync, P1, during the backup (200k requests, the backup inside) | $during req/s |"
