#!/usr/bin/env bash
# Every side-by-side benchmark of docs/benchmarks.md in one go, one after
# the other on a quiet machine (about 40 minutes on 2 vCPUs): the embedded
# engines, the server against Redis, memory with a data set 10x the cache
# (embedded, glibc's default arenas and MALLOC_ARENA_MAX=2; the server), and
# the flamegraphs. Tables go to standard output.
#
#   bench/scripts/all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "## Embedded engines"
cargo bench --locked -p jubilant-bench --bench embedded 2>/dev/null
echo "## Server against Redis"
bench/scripts/server-compare.sh
echo "## Memory, embedded"
for cache_mib in 8 16 32 64; do
    echo "glibc default arenas, $cache_mib MiB:"
    JUBILANT_MEMORY_CACHE_MIB=$cache_mib \
        cargo bench --locked -p jubilant-bench --bench memory 2>/dev/null | grep '^|'
    echo "MALLOC_ARENA_MAX=2, $cache_mib MiB:"
    MALLOC_ARENA_MAX=2 JUBILANT_MEMORY_CACHE_MIB=$cache_mib \
        cargo bench --locked -p jubilant-bench --bench memory 2>/dev/null | grep '^|'
done
echo "## Memory, server"
bench/scripts/server-memory.sh 32
echo "## Flamegraphs"
bench/scripts/flamegraphs.sh
