#!/usr/bin/env bash
# The test command: unit tests plus integration tests against every interpreter listed in
# ${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}/interpreters.txt (on a machine without that file,
# the tests use the python3 on PATH; in CI a missing list is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked --no-fail-fast -- --test-threads=2 "$@"
