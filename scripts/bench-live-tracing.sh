#!/usr/bin/env bash
# What turning a running server's tracing on costs it: requests per second before, during and
# after `pymemspy record --pid P --tracemalloc N`, tracemalloc's own memory during and after
# (back to 0 once tracing stops), and the time from the command to the first trace.
#
#   scripts/bench-live-tracing.sh [python ...]      (default: python3; N=16, 10 s windows)
#
# The target is tests/targets/alloc_threads.py --io: four request threads that parse (churn)
# and remember (leak), waiting 0.2 ms on a "socket" per request; it reports its own counters.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-16}
WINDOW=${WINDOW:-10}
cargo build --release --quiet
TOOL=$PWD/target/release/pymemspy
[ $# -gt 0 ] || set -- python3
state() { cat "$1.state" 2>/dev/null || echo "0 0 0 0"; }
rate() {  # STATE_FILE_PREFIX SECONDS -> requests/s over that window
  local a b
  a=$(state "$1"); sleep "$2"; b=$(state "$1")
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
    if (y[4] > x[4]) printf "%.0f", (y[2] - x[2]) / (y[4] - x[4]); else print "?" }'
}
printf '%-44s %9s %9s %9s %12s %12s %10s\n' python before during after "tm mem during" "tm mem after" "start"
for py in "$@"; do
  dir=$(mktemp -d)
  "$py" tests/targets/alloc_threads.py "$dir/t.json" --io --seconds 100000 >/dev/null 2>&1 &
  pid=$!
  while [ ! -e "$dir/t.json" ]; do sleep 0.05; done
  touch "$dir/t.json.go"
  sleep 2
  before=$(rate "$dir/t.json" "$WINDOW")
  "$TOOL" record --pid "$pid" --tracemalloc "$FRAMES" --duration "$((WINDOW + 4))" -o "$dir/out.collapsed" \
    2>"$dir/record.err" &
  rec=$!
  sleep 3
  during=$(rate "$dir/t.json" "$WINDOW")
  mem_during=$(state "$dir/t.json" | awk '{print $3}')
  wait "$rec" || true
  sleep 1
  after=$(rate "$dir/t.json" "$WINDOW")
  mem_after=$(state "$dir/t.json" | awk '{print $3}')
  start=$(grep -o 'in [0-9]* ms' "$dir/record.err" | head -1 | awk '{print $2 " ms"}')
  printf '%-44s %9s %9s %9s %12s %12s %10s\n' "$py" "$before" "$during" "$after" "$mem_during" "$mem_after" "${start:-?}"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
done
