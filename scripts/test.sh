#!/usr/bin/env bash
# The test command: unit tests plus integration tests against every interpreter listed in
# ${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}/interpreters.txt (on a machine without that file,
# the tests use the python3 on PATH; in CI a missing list is a failure). docs/testing.md says
# what the full and the quick runs check.
#
#   scripts/test.sh            the full run (CI): what is exact per build on every build, the
#                              long end-to-end runs once per interpreter family
#   scripts/test.sh --quick    a developer's loop (< 5 min): unit tests, and the census, size
#                              and layout checks on three interpreters (3.8, 3.12, the newest)
#   scripts/test.sh ARGS...    cargo test's filter and options, on the full matrix
#
# What a test could not check is logged and counted at the end ("skipped", "unsupported"), and
# so is each build a long test left to another of its family ("spread").
# PYMEMSPY_FULL_MATRIX=1 runs the long tests on every build too.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYMEMSPY_SKIP_LOG=${PYMEMSPY_SKIP_LOG:-$PWD/target/test-skips.log}
mkdir -p "$(dirname "$PYMEMSPY_SKIP_LOG")"
: >"$PYMEMSPY_SKIP_LOG"
rc=0
if [ "${1:-}" = "--quick" ]; then
  shift
  # The per-build exact checks (census, sizes, layouts) on 3.8, 3.12 and the newest listed.
  list=${PYMEMSPY_INTERPRETERS:-${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}/interpreters.txt}
  quick=$PWD/target/quick-interpreters.txt
  : >"$quick"
  if [ -r "$list" ]; then
    declare -A first=()
    newest=0
    while IFS=$'\t' read -r label path; do
      case $label in '' | '#'*) continue ;; esac
      minor=$("$path" -c 'import sys, sysconfig
print(sys.version_info[1] if not sysconfig.get_config_var("Py_GIL_DISABLED") else "t")' 2>/dev/null) || continue
      [ "$minor" = t ] && continue
      [ -n "${first[$minor]:-}" ] || first[$minor]="$label	$path"
      [ "$minor" -gt "$newest" ] && newest=$minor
    done <"$list"
    for m in 8 12 "$newest"; do
      [ -n "${first[$m]:-}" ] && ! grep -qxF "${first[$m]}" "$quick" && printf '%s\n' "${first[$m]}" >>"$quick"
    done
    export PYMEMSPY_INTERPRETERS=$quick
    echo "== quick: $(cut -f1 "$quick" | paste -sd' ')"
  fi
  cargo test --release --locked --lib -- --test-threads=2 "$@" || rc=$?
  cargo test --release --locked --no-fail-fast \
    --test complete_census --test real_sizes --test snapshot_gc --test targets_selfcheck \
    --test heap_dump --test phantom_objects --test production_tracemalloc \
    -- --test-threads=2 "$@" || rc=$?
else
  cargo test --release --locked --no-fail-fast -- --test-threads=2 "$@" || rc=$?
  # The hostile-memory test again in a debug build, where arithmetic overflow panics: a wild
  # pointer or length read from the target must never reach an unchecked sum.
  if [ $# -eq 0 ]; then
    cargo test --locked --lib hostile -- --test-threads=2 || rc=$?
  fi
fi
skipped=$(grep -c '^skipped:' "$PYMEMSPY_SKIP_LOG" || true)
unsupported=$(grep -c '^unsupported:' "$PYMEMSPY_SKIP_LOG" || true)
spread=$(grep -c '^spread:' "$PYMEMSPY_SKIP_LOG" || true)
echo
echo "== checks not run: $skipped skipped, $unsupported unsupported (interpreter x feature)"
echo "== long tests left to another build of the family: $spread (spread; PYMEMSPY_FULL_MATRIX=1 runs them)"
grep -v '^spread:' "$PYMEMSPY_SKIP_LOG" | sort | uniq -c | sed 's/^/  /' || true
grep '^spread:' "$PYMEMSPY_SKIP_LOG" | cut -d' ' -f2 | sort | uniq -c |
  sed 's/^ *\([0-9]*\) \(.*\)/  spread: \2 (\1 builds left to their family)/' || true
exit $rc
