#!/usr/bin/env bash
# How right the allocation flamegraph is on the public targets (share of the weight under the
# leaking function, sampled and exact, on every interpreter of interpreters.txt or the pythons
# given), what a sampler tick costs, and the target's slowdown at 100 and 1000 Hz against
# py-spy's, in alternated pairs of runs. See scripts/bench/alloc_attribution.py.
#   scripts/bench-alloc-attribution.sh [python ...]
#   BENCH_SECONDS=10 (per run), BENCH_PAIRS=5, BENCH_SKIP_SHARES=1, BENCH_SKIP_SLOWDOWN=1
#   (the slowdown is measured on the first interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
exec python3 scripts/bench/alloc_attribution.py "$@"
