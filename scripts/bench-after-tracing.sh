#!/usr/bin/env bash
# Does a server run slower after its tracing stopped? The four-thread server in its steady state
# (tests/targets/alloc_threads.py --io --keep 2000), its CPU time per request (µs, from
# /proc/PID/stat) over 6 s before and 6 s after a 9 s window in which:
#
#   pymemspy  `pymemspy record --pid P --tracemalloc 16` traces it (live tracing);
#   self      the program itself starts and stops tracemalloc (scripts/bench/toggle_tracemalloc.py);
#   none      nothing happens (the control: how much a run moves by itself).
#
# The three are interleaved RUNS times (default 3), so the machine's drift falls on all alike.
#
#   scripts/bench-after-tracing.sh [python]     (default: python3; RUNS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
py=${1:-python3}
cargo build --release --quiet
TOOL=$PWD/target/release/pymemspy

cpu_per_request() { # DIR PID -> µs of CPU per request over 6 s
  local a b ca cb
  a=$(cat "$1/t.json.state")
  ca=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
  sleep 6
  b=$(cat "$1/t.json.state")
  cb=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
  awk -v a="$a" -v b="$b" -v ca="$ca" -v cb="$cb" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", 1e6 * (cb - ca) / hz / (y[2] - x[2]) }'
}

one() { # MODE -> "MODE before after after/before"
  local mode=$1 dir pid before after
  dir=$(mktemp -d)
  "$py" scripts/bench/toggle_tracemalloc.py tests/targets/alloc_threads.py "$dir/t.json" --io \
    --seconds 100000 --keep 2000 >/dev/null 2>&1 &
  pid=$!
  while [ ! -e "$dir/t.json" ]; do sleep 0.05; done
  touch "$dir/t.json.go"
  sleep 5
  before=$(cpu_per_request "$dir" "$pid")
  case $mode in
    pymemspy) "$TOOL" record --pid "$pid" --tracemalloc 16 --duration 9 -o "$dir/o.collapsed" 2>/dev/null ;;
    self) kill -USR1 "$pid"; sleep 9; kill -USR1 "$pid" ;;
    none) sleep 9 ;;
  esac
  sleep 2
  after=$(cpu_per_request "$dir" "$pid")
  printf '%-9s %8s %8s %7s\n' "$mode" "$before" "$after" \
    "$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

printf '%-9s %8s %8s %7s\n' mode "before" "after" "a/b"
for _ in $(seq "$RUNS"); do
  for mode in pymemspy self none; do one "$mode"; done
done
