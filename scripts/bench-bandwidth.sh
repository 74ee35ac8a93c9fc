#!/usr/bin/env bash
# How far is the census from the bandwidth bound? Reads every readable anonymous mapping of the
# 1M-instance benchmark target in reads of several sizes (through /proc/PID/mem: the same kernel
# path as process_vm_readv), then compares `pymemspy snapshot`'s time with bytes_read / throughput.
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


def throughput(size):
    """Read every span in reads of `size` bytes into one reused buffer: bytes/s."""
    buf = bytearray(size)
    total, t0 = 0, time.perf_counter()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for a, b in spans:
            for off in range(a, b, size):
                try:
                    mem.seek(off)
                    total += mem.readinto(memoryview(buf)[: min(size, b - off)])
                except OSError:
                    pass
    return total, time.perf_counter() - t0


# The view reads 128 KiB chunks; the read size barely matters (the buffer's alignment does:
# see ChunkBuf in src/process/view.rs), which these figures show.
best = None
for size in (32 << 10, 128 << 10, 1 << 20, 4 << 20):
    total, dt = min((throughput(size) for _ in range(3)), key=lambda r: r[1])
    gbps = total / dt / 1e9
    print(f"anonymous memory in {size >> 10} KiB reads: {total/1e6:.0f} MB in {dt:.3f} s = {gbps:.2f} GB/s")
    if size == 128 << 10:
        best = gbps
read = snap["coverage"]["bytes_read"]
took = snap["duration_ms"] / 1000
print(f"census: {snap['totals']['objects']:,} objects, read {read/1e6:.0f} MB, took {took:.2f} s")
print(f"bandwidth bound (128 KiB reads, one core) {read/1e9/best:.3f} s -> the census runs at {100*read/1e9/best/took:.0f}% of it")
PY
