#!/usr/bin/env bash
# A/B: the same redis-benchmark rows against two jubilant-server binaries
# (OLD and NEW, e.g. release builds of two commits), each row twice per
# binary, averaged; prints a Markdown table of requests per second.
#
#   OLD=path/to/jubilant-server NEW=target/release/jubilant-server bench/scripts/inline-ab.sh
set -euo pipefail
old=${OLD:?the "before" binary}
new=${NEW:-target/release/jubilant-server}
run() { # bin durability port -> starts server, prints pid
  local dir; dir=$(mktemp -d)
  printf '[storage]\ndurability = "%s"\n' "$2" > "$dir/c.toml"
  "$1" --config "$dir/c.toml" --data-dir "$dir/d" --listen 127.0.0.1:0 --resp-listen 127.0.0.1:$3 >"$dir/log" 2>&1 &
  echo $!
}
rps() { redis-benchmark -p "$1" -t "$2" -c 50 -P "$3" -d "$4" -r 100000 -n "$5" --csv 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'; }
echo "| op | value | pipeline | OLD req/s | NEW req/s | NEW/OLD |"
echo "|---|---:|---:|---:|---:|---:|"
for dur in sync async; do
  p1=$(run $old $dur 6901); p2=$(run $new $dur 6902); sleep 1
  for d in 1024 3; do for P in 1 16; do for op in set get; do
    [ $dur = async ] && [ $op = get ] && continue
    a=$(rps 6901 $op $P $d 100000); b=$(rps 6902 $op $P $d 100000)
    a2=$(rps 6901 $op $P $d 100000); b2=$(rps 6902 $op $P $d 100000)
    python3 -c "a=($a+$a2)/2; b=($b+$b2)/2; print(f'| {\"SET\" if \"$op\"==\"set\" else \"GET\"} {\"$dur\" if \"$op\"==\"set\" else \"\"} | $d B | $P | {a:,.0f} | {b:,.0f} | {b/a:.2f} |')"
  done; done; done
  kill $p1 $p2; wait $p1 $p2 2>/dev/null || true
done
