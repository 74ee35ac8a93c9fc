#!/usr/bin/env bash
# Snapshot speed on a 1M-instance heap (each instance with a list and a str: ~4M objects):
# whole-process wall time of `pymemspy snapshot` (complete census and GC-only), its peak RSS,
# against the in-process Counter(type(o) for o in gc.get_objects()) timed inside the target;
# then the whole-heap analyses on the same heap: `why`, the retention flamegraph, the census
# with retained sizes, the heap dump
# (time, peak RSS per object, file bytes per object) and `why` read back from the dump.
#   scripts/bench-snapshot.sh [python] [N]        (N=3000000 for the ~12M-object heap)
#   BENCH_RUNS=7 (census runs), BENCH_GRAPH_RUNS=3 (runs of each whole-heap analysis)
#   BENCH_HEAP=real: the heap of scripts/bench/real_heap.py instead (a service's shapes: pandas,
#   JSON-like records, slots, dataclasses, deque, numpy object array, generators, asyncio tasks,
#   threads; needs a python with numpy and pandas), N its scale (1: ~4M objects, 3: ~12M)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
N=${2:-1000000}
case ${BENCH_HEAP:-million} in
  million) SCRIPT=scripts/bench/million.py WHY_TYPE=__main__.Item ;;
  real) SCRIPT=scripts/bench/real_heap.py WHY_TYPE=__main__.Session ;;
  *) echo "BENCH_HEAP: million or real" >&2; exit 2 ;;
esac
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-target}/release/pymemspy
OUT=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$OUT"' EXIT
"$PY" "$SCRIPT" "$OUT/truth.json" "$N" &
PID=$!
for _ in $(seq 1500); do [ -s "$OUT/truth.json" ] && break; sleep 0.2; done
sleep 0.5
inproc=$(python3 -c "import json;print(json.load(open('$OUT/truth.json'))['in_process_counter_s'])")
measure() {  # args...: prints "median_wall_s peak_rss_kb objects min_s max_s" over 7 runs
  local walls=() rss=0 objs=0
  for _ in $(seq "${BENCH_RUNS:-7}"); do
    /usr/bin/time -f "%e %M" -o "$OUT/time" "$BIN" snapshot --pid "$PID" --format json "$@" -o "$OUT/snap.json"
    read -r w m < "$OUT/time"; walls+=("$w"); rss=$m
    objs=$(python3 -c "import json;print(json.load(open('$OUT/snap.json'))['totals']['objects'])")
  done
  local sorted; sorted=$(printf '%s\n' "${walls[@]}" | sort -n)
  echo "$(sed -n "$(( (${BENCH_RUNS:-7} + 1) / 2 ))p" <<<"$sorted") $rss $objs $(head -1 <<<"$sorted") $(tail -1 <<<"$sorted")"
}
graph() {  # args...: prints "median_wall_s peak_rss_kb" of a whole-heap analysis
  local walls=() rss=0
  for _ in $(seq "${BENCH_GRAPH_RUNS:-3}"); do
    /usr/bin/time -f "%e %M" -o "$OUT/time" "$BIN" "$@" > /dev/null 2> "$OUT/err" \
      || { cat "$OUT/err" >&2; exit 1; }
    read -r w m < "$OUT/time"; walls+=("$w"); [ "$m" -gt "$rss" ] && rss=$m
  done
  local sorted; sorted=$(printf '%s\n' "${walls[@]}" | sort -n)
  echo "$(sed -n "$(( (${BENCH_GRAPH_RUNS:-3} + 1) / 2 ))p" <<<"$sorted") $rss"
}
read -r full_s full_kb full_objs full_min full_max < <(measure)
read -r gc_s gc_kb gc_objs gc_min gc_max < <(measure --gc-only)
read -r why_s why_kb < <(graph why --pid "$PID" -t "$WHY_TYPE")
read -r flame_s flame_kb < <(graph snapshot --pid "$PID" --format collapsed -o "$OUT/r.folded")
read -r ret_s ret_kb < <(graph snapshot --pid "$PID" --retained -o "$OUT/retained.txt")
read -r dump_s dump_kb < <(graph snapshot --pid "$PID" --format heap -o "$OUT/app.heap")
dump_bytes=$(stat -c %s "$OUT/app.heap")
read -r dwhy_s dwhy_kb < <(graph why --heap "$OUT/app.heap" -t "$WHY_TYPE")
echo "python: $("$PY" -c 'import sys;print(sys.version.split()[0])')  heap: ${BENCH_HEAP:-million} $N  machine: $(nproc) cores"
echo "in-process Counter over gc.get_objects(): ${inproc}s"
python3 - <<PY
full_s, gc_s, inproc = float("$full_s"), float("$gc_s"), float("$inproc")
print(f"pymemspy snapshot (complete, {int('$full_objs'):,} objects): {full_s:.2f}s wall (median of ${BENCH_RUNS:-7}; $full_min-$full_max), ratio {full_s/inproc:.2f}, peak RSS {int('$full_kb')/1024:.0f} MiB = {int('$full_kb')*1024/int('$full_objs'):.0f} B/object")
objs = int('$full_objs')
for what, s, kb in [("why -t $WHY_TYPE", $why_s, $why_kb),
                    ("retention flamegraph (collapsed)", $flame_s, $flame_kb),
                    ("census with retained sizes (--retained)", $ret_s, $ret_kb),
                    ("heap dump (--format heap)", $dump_s, $dump_kb),
                    ("why from the dump (--heap)", $dwhy_s, $dwhy_kb)]:
    print(f"{what}: {s:.2f}s wall ({s/full_s:.1f}x the census), peak RSS {kb/1024:.0f} MiB = {kb*1024/objs:.0f} B/object")
print(f"heap dump file: {int('$dump_bytes')/2**20:.1f} MiB = {int('$dump_bytes')/objs:.2f} B/object")
print(f"pymemspy snapshot --gc-only ({int('$gc_objs'):,} objects): {gc_s:.2f}s wall (median of ${BENCH_RUNS:-7}; $gc_min-$gc_max), ratio {gc_s/inproc:.2f}, peak RSS {int('$gc_kb')/1024:.0f} MiB")
PY
