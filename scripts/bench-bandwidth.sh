#!/usr/bin/env bash
# How far is the census from the bandwidth bound? Reads every readable anonymous mapping of the
# 1M-instance benchmark target in 1 MiB reads (through /proc/PID/mem: the same kernel path as
# process_vm_readv), then compares `pymemspy snapshot`'s time with bytes_read / throughput.
#   scripts/bench-bandwidth.sh [python] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
N=${2:-1000000}
cargo build --release -q
OUT=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$OUT"' EXIT
"$PY" scripts/bench/million.py "$OUT/truth.json" "$N" &
PID=$!
for _ in $(seq 600); do [ -s "$OUT/truth.json" ] && break; sleep 0.2; done
target/release/pymemspy snapshot --pid "$PID" --format json -o "$OUT/snap.json"
python3 - "$PID" "$OUT/snap.json" <<'PY'
import json, sys, time
pid, snap = int(sys.argv[1]), json.load(open(sys.argv[2]))
spans = []
for line in open(f"/proc/{pid}/maps"):
    f = line.split()
    if f[1].startswith("r") and (len(f) < 6 or f[5].startswith("[heap]")):
        a, b = (int(x, 16) for x in f[0].split("-"))
        spans.append((a, b))
total, t0 = 0, time.perf_counter()
with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
    for a, b in spans:
        for off in range(a, b, 1 << 20):
            try:
                mem.seek(off)
                total += len(mem.read(min(1 << 20, b - off)))
            except OSError:
                pass
dt = time.perf_counter() - t0
gbps = total / dt / 1e9
read = snap["coverage"]["bytes_read"]
took = snap["duration_ms"] / 1000
print(f"anonymous memory read in 1 MiB reads: {total/1e6:.0f} MB in {dt:.3f} s = {gbps:.2f} GB/s")
print(f"census: {snap['totals']['objects']:,} objects, read {read/1e6:.0f} MB, took {took:.2f} s")
print(f"bandwidth bound {read/1e9/gbps:.3f} s -> the census runs at {100*read/1e9/gbps/took:.0f}% of it")
PY
