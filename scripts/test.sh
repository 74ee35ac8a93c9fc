#!/usr/bin/env bash
# The test command: unit tests plus integration tests against every interpreter listed in
# ${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}/interpreters.txt (on a machine without that file,
# the tests use the python3 on PATH; in CI a missing list is a failure).
# What a test could not check is logged and counted at the end ("skipped", "unsupported").
set -euo pipefail
cd "$(dirname "$0")/.."
export PYMEMSPY_SKIP_LOG=${PYMEMSPY_SKIP_LOG:-$PWD/target/test-skips.log}
mkdir -p "$(dirname "$PYMEMSPY_SKIP_LOG")"
: >"$PYMEMSPY_SKIP_LOG"
rc=0
cargo test --release --locked --no-fail-fast -- --test-threads=2 "$@" || rc=$?
# The hostile-memory test again in a debug build, where arithmetic overflow panics: a wild
# pointer or length read from the target must never reach an unchecked sum.
if [ $# -eq 0 ]; then
  cargo test --locked --bin pymemspy hostile -- --test-threads=2 || rc=$?
fi
skipped=$(grep -c '^skipped:' "$PYMEMSPY_SKIP_LOG" || true)
unsupported=$(grep -c '^unsupported:' "$PYMEMSPY_SKIP_LOG" || true)
echo
echo "== checks not run: $skipped skipped, $unsupported unsupported (interpreter x feature)"
sort "$PYMEMSPY_SKIP_LOG" | uniq -c | sed 's/^/  /'
exit $rc
