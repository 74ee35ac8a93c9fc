#!/usr/bin/env bash
# What turning a running server's tracing on costs it: requests per second before, during and
# after `pymemspy record --pid P --tracemalloc N`, tracemalloc's own memory during and after
# (back to 0 once tracing stops), and the time from the command to the first trace.
#
#   scripts/bench-live-tracing.sh [[LABEL=]python ...]      (default: python3)
#
#   SHAPES="threads asyncio"  which servers (both by default):
#     threads  tests/targets/alloc_threads.py --io: four request threads that parse (churn) and
#              remember (keep a session), waiting 0.2 ms on a "socket" per request;
#     asyncio  tests/targets/live_shapes.py asyncio --bench: an asyncio TCP server on loopback,
#              a client thread sending the next request as soon as the answer comes.
#   KEEP=2000    sessions each server keeps (its steady state, reached within WARMUP=5 s);
#                KEEP=0: the leaking server,
#                whose heap, and so every collection, grows all the time.
#   FRAMES=16 WINDOW=10   tracemalloc's frames; seconds per measured window.
#
# Each (python, shape) runs twice on the same timeline: "traced" records with live tracing
# during the middle window, "control" records nothing. The control's after/before is what the
# server does to itself over that time (a growing heap slows it; the machine's noise); the
# traced row's after/before is compared with it, not with 100%. Beside each rate, the target's
# CPU time per request (µs, from /proc/PID/stat): what tracing costs each request, much less
# moved than the rate by whatever else the machine runs.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-16}
WINDOW=${WINDOW:-10}
KEEP=${KEEP:-2000}
WARMUP=${WARMUP:-5}
SHAPES=${SHAPES:-threads asyncio}
cargo build --release --quiet
TOOL=$PWD/target/release/pymemspy
[ $# -gt 0 ] || set -- python3

state() { cat "$1.state" 2>/dev/null || echo "0 0 0 0"; }
cpu_ticks() { # PID -> the target's user + system CPU time so far, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
rate() { # STATE_FILE_PREFIX PID SECONDS -> "requests/s CPU-µs/request" over that window
  local a b ca cb
  a=$(state "$1")
  ca=$(cpu_ticks "$2")
  sleep "$3"
  b=$(state "$1")
  cb=$(cpu_ticks "$2")
  awk -v a="$a" -v b="$b" -v ca="$ca" -v cb="$cb" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); n = y[2] - x[2];
    if (y[4] > x[4] && n > 0) printf "%.0f %.0f", n / (y[4] - x[4]), 1e6 * (cb - ca) / hz / n;
    else print "? ?" }'
}

start_target() { # PYTHON SHAPE DIR -> pid
  local py=$1 shape=$2 dir=$3
  case $shape in
    threads)
      "$py" tests/targets/alloc_threads.py "$dir/t.json" --io --seconds 100000 --keep "$KEEP" \
        >/dev/null 2>&1 &
      ;;
    asyncio)
      "$py" tests/targets/live_shapes.py "$dir/t.json" asyncio --bench --keep "$KEEP" \
        >/dev/null 2>&1 &
      ;;
  esac
  echo $!
}

row() { printf '%-28s %-8s %-8s %14s %14s %14s %8s %8s %11s %9s %7s\n' "$@"; }
row python shape run "before/s µs" "during/s µs" "after/s µs" "after/b" "µs a/b" "tm mem dur" "tm after" start
for arg in "$@"; do
  label=${arg%%=*} py=${arg#*=}
  for shape in $SHAPES; do
    for run in traced control; do
      dir=$(mktemp -d)
      pid=$(start_target "$py" "$shape" "$dir")
      while [ ! -e "$dir/t.json" ]; do sleep 0.05; done
      touch "$dir/t.json.go"
      sleep "$WARMUP"
      before=$(rate "$dir/t.json" "$pid" "$WINDOW")
      rec=
      if [ $run = traced ]; then
        "$TOOL" record --pid "$pid" --tracemalloc "$FRAMES" --duration "$((WINDOW + 4))" \
          -o "$dir/out.collapsed" 2>"$dir/record.err" &
        rec=$!
      fi
      sleep 3
      during=$(rate "$dir/t.json" "$pid" "$WINDOW")
      mem_during=$(state "$dir/t.json" | awk '{print $3}')
      if [ -n "$rec" ]; then wait "$rec" || true; else sleep 1; fi
      sleep 1
      after=$(rate "$dir/t.json" "$pid" "$WINDOW")
      mem_after=$(state "$dir/t.json" | awk '{print $3}')
      start=-
      if [ $run = traced ]; then
        start=$(grep -o 'in [0-9]* ms' "$dir/record.err" | head -1 | awk '{print $2 "ms"}')
      fi
      ratio=$(awk -v a="${after% *}" -v b="${before% *}" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "?" }')
      cpu_ratio=$(awk -v a="${after#* }" -v b="${before#* }" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "?" }')
      row "$label" "$shape" "$run" "$before" "$during" "$after" "$ratio" "$cpu_ratio" \
        "$mem_during" "$mem_after" "${start:-?}"
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      rm -rf "$dir"
    done
  done
done
