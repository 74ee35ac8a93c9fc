#!/usr/bin/env bash
# Target slowdown while `pymemspy record` watches it: throughput of a CPU- and allocation-heavy
# target (scripts/bench/workload.py) alone, under `record --rate 100` and under `record --rate
# 1000` (census every --interval, default 1 s), several runs interleaved so that machine drift
# hits every configuration alike (the order rotates each run). Prints the median throughput
# and median slowdown per configuration, the target's own work per CPU second (interference:
# cache, page faults, locks; not being descheduled) and the tool's CPU use.
#   scripts/bench-overhead.sh [python] [runs]
# Environment: DURATION (measured seconds, 15), WARMUP (3), INTERVAL (census seconds, 1),
#   RETAIN (retained orders in the target's heap, 10000), CONFIGS ("base r100 r1000"; rN is
#   record at N Hz, r0 is the census alone, cN is `record --gc-only` at N Hz).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
RUNS=${2:-5}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
INTERVAL=${INTERVAL:-1}
RETAIN=${RETAIN:-10000}
CONFIGS=${CONFIGS:-base r100 r1000}
# The target keeps working this long after its measured phase: the recording ends (and writes
# its report) while the target is still alive and busy.
LINGER=6
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-target}/release/pymemspy
OUT=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$OUT"' EXIT
read -ra configs <<< "$CONFIGS"

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "python: $("$PY" -c 'import sys;print(sys.version.split()[0])') ($PY)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "runs: $RUNS x (${configs[*]}), ${DURATION}s measured each, census every ${INTERVAL}s, $RETAIN retained orders"
echo "load average before: $(load)"

one() {  # config run
  local cfg=$1 run=$2 tag="$1.$2"
  "$PY" scripts/bench/workload.py --duration "$DURATION" --warmup "$WARMUP" --linger "$LINGER" \
    --retain-max "$RETAIN" --out "$OUT/$tag.json" &
  PID=$!
  if [ "$cfg" != base ]; then
    local rate=${cfg:1} extra=()
    [ "${cfg:0:1}" = c ] && extra=(--gc-only)
    # Attached during the warm-up; ends a second after the measured phase.
    /usr/bin/time -f "%U %S %e" -o "$OUT/$tag.time" \
      "$BIN" record --pid "$PID" --rate "$rate" --interval "$INTERVAL" "${extra[@]}" \
      --duration "$(python3 -c "print($WARMUP + $DURATION + 1)")" \
      --format json -o "$OUT/$tag.rec.json" > "$OUT/$tag.log" 2>&1 \
      || { echo "record failed ($tag):"; cat "$OUT/$tag.log"; }
  fi
  wait "$PID"
  PID=
  printf '%s ' "$tag"
}
for run in $(seq "$RUNS"); do
  for k in "${!configs[@]}"; do
    one "${configs[$(( (k + run - 1) % ${#configs[@]} ))]}" "$run"
  done
done
echo
echo "load average after: $(load)"

python3 - "$OUT" "$RUNS" "${configs[@]}" <<'PY'
import json, statistics, sys, os
out, runs, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median

def result(cfg, run):
    with open(os.path.join(out, f"{cfg}.{run}.json")) as f:
        return json.load(f)

def tool(cfg, run):
    """(tool CPU % of one core, census count, sampler ticks per second) for a record run."""
    with open(os.path.join(out, f"{cfg}.{run}.time")) as f:
        user, sys_, wall = map(float, f.read().split()[-3:])
    try:
        with open(os.path.join(out, f"{cfg}.{run}.rec.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return 100 * (user + sys_) / wall, None, None
    dur = doc.get("duration_s") or wall
    allocs = doc.get("allocations") or {}
    ticks = allocs.get("ticks")
    return (100 * (user + sys_) / wall, len(doc.get("timeline", [])),
            ticks / dur if ticks is not None else None)

base = {r: result("base", r) for r in range(1, runs + 1)} if "base" in configs else {}
print(f"{'config':<10}{'ops/s':>10}{'slowdown':>10}{'ops/CPU-s':>11}{'slowdown':>10}"
      f"{'tool CPU':>10}{'ticks/s':>9}{'censuses':>9}")
for cfg in configs:
    rs = {r: result(cfg, r) for r in range(1, runs + 1)}
    ops = med(x["ops_per_s"] for x in rs.values())
    opc = med(x["ops_per_cpu_s"] for x in rs.values())
    row = f"{cfg:<10}{ops:>10.0f}"
    if cfg != "base" and base:
        # Per-run ratio against the baseline of the same run (adjacent in time), then median.
        slow = med(100 * (1 - rs[r]["ops_per_s"] / base[r]["ops_per_s"]) for r in rs)
        slow_cpu = med(100 * (1 - rs[r]["ops_per_cpu_s"] / base[r]["ops_per_cpu_s"]) for r in rs)
        row += f"{slow:>9.1f}%{opc:>11.0f}{slow_cpu:>9.1f}%"
    else:
        row += f"{'':>10}{opc:>11.0f}{'':>10}"
    if cfg != "base":
        t = [tool(cfg, r) for r in rs]
        cpu = med(x[0] for x in t)
        ticks = [x[2] for x in t if x[2] is not None]
        cens = [x[1] for x in t if x[1] is not None]
        row += f"{cpu:>9.1f}%"
        row += f"{med(ticks):>9.0f}" if ticks else f"{'-':>9}"
        row += f"{med(cens):>9.0f}" if cens else f"{'-':>9}"
    print(row)
if base:
    spread = [x["ops_per_s"] for x in base.values()]
    print(f"baseline spread over runs: {min(spread):.0f}..{max(spread):.0f} ops/s "
          f"({100 * (max(spread) - min(spread)) / med(spread):.1f}% of the median)")
PY
