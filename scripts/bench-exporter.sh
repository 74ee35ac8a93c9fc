#!/usr/bin/env bash
# Cost of `pymemspy exporter`: N processes of ~OBJECTS live objects each (scripts/bench/
# heap_holder.py), the exporter following them at INTERVAL under each CPU budget of BUDGETS.
# For each budget, after WARMUP seconds (sessions opened, first censuses), over DURATION
# seconds: the exporter's CPU (utime+stime from /proc, all threads: censuses, discovery, /proc
# reads, scrapes) as % of one core, censuses taken, CPU per census, the age of the oldest
# figures at the end (how far the budget stretched the interval), its peak RSS (VmHWM), and the
# latency of 20 scrapes (curl time_total).
#   scripts/bench-exporter.sh [python] [N]
# Environment: OBJECTS (1000000), INTERVAL (15s), BUDGETS ("1 0.02"), WARMUP (30), DURATION (120)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
N=${2:-20}
OBJECTS=${OBJECTS:-1000000}
INTERVAL=${INTERVAL:-15s}
BUDGETS=${BUDGETS:-1 0.02}
WARMUP=${WARMUP:-30}
DURATION=${DURATION:-120}
PORT=${PORT:-19499}
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-target}/release/pymemspy
OUT=$(mktemp -d /tmp/bench-exporter.XXXXXX)
TAG=$(basename "$OUT")
PIDS=()
EXP=
cleanup() {
  [ -n "$EXP" ] && kill "$EXP" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$OUT"
}
trap cleanup EXIT

HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

echo "python: $("$PY" -c 'import sys;print(sys.version.split()[0])') ($PY)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "targets: $N processes x $OBJECTS objects; interval $INTERVAL; warm-up ${WARMUP}s, measured ${DURATION}s"
for i in $(seq 1 "$N"); do
  "$PY" scripts/bench/heap_holder.py "$OBJECTS" "$OUT/ready.$i" "$TAG" &
  PIDS+=($!)
done
for i in $(seq 1 "$N"); do
  while [ ! -e "$OUT/ready.$i" ]; do sleep 0.2; done
done
echo "target RSS: $(awk '/VmRSS/ {print int($2/1024)}' "/proc/${PIDS[0]}/status") MiB each"

for budget in $BUDGETS; do
  "$BIN" exporter --listen "127.0.0.1:$PORT" --match "$TAG" --interval "$INTERVAL" \
    --cpu-budget "$budget" 2> "$OUT/exporter.log" &
  EXP=$!
  sleep "$WARMUP"
  c0=$(cpu_ticks "$EXP"); n0=$(metric pymemspy_exporter_censuses_total)
  cc0=$(metric pymemspy_exporter_census_cpu_seconds_total)
  sleep "$DURATION"
  c1=$(cpu_ticks "$EXP"); n1=$(metric pymemspy_exporter_censuses_total)
  cc1=$(metric pymemspy_exporter_census_cpu_seconds_total)
  now=$(date +%s.%N)
  oldest=$(curl -s "http://127.0.0.1:$PORT/metrics" \
    | awk -v now="$now" '/^pymemspy_census_timestamp_seconds/ {n++; a = now - $2; if (a > m) m = a} END {printf "%.0f s (%d processes censused)", m, n}')
  followed=$(metric pymemspy_exporter_processes)
  lat=$(for _ in $(seq 1 20); do
      curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT/metrics"
    done | sort -n | awk '{v[NR] = $1} END {printf "median %.1f ms, max %.1f ms", v[int((NR + 1) / 2)] * 1000, v[NR] * 1000}')
  size=$(curl -s "http://127.0.0.1:$PORT/metrics" | wc -c)
  hwm=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$EXP/status")
  python3 - "$budget" "$c0" "$c1" "$HZ" "$DURATION" "$n0" "$n1" "$cc0" "$cc1" "$oldest" "$followed" <<'PYEOF'
import sys
budget, c0, c1, hz, dur, n0, n1, cc0, cc1, oldest, followed = sys.argv[1:]
cpu = (float(c1) - float(c0)) / float(hz)
n = float(n1) - float(n0)
per = (float(cc1) - float(cc0)) / n if n else float("nan")
print(f"budget {budget}: exporter CPU {100 * cpu / float(dur):.1f}% of one core; "
      f"{n:.0f} censuses in {dur}s ({per:.3f} CPU-s each); "
      f"{followed} processes followed, oldest figures {oldest} old", end="; ")
PYEOF
  echo "peak RSS ${hwm} MiB; scrape ${size} bytes, $lat"
  kill "$EXP"; wait "$EXP" 2>/dev/null || true; EXP=
done
