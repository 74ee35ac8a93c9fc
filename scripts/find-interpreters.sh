#!/usr/bin/env bash
# Write the interpreter list the tests run against, from the CPythons this machine has:
#
#   scripts/find-interpreters.sh [DEST]     (default ${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons})
#
# Lists pyenv builds (~/.pyenv/versions/*), /usr/bin/python3.* and /usr/local/bin/python3.*,
# each as "label<TAB>path" in DEST/interpreters.txt; an interpreter that does not start is left
# out. Interpreters already listed there (e.g. by a fuller provisioning) are kept.
set -euo pipefail
DEST=${1:-${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}}
mkdir -p "$DEST"
LIST=$DEST/interpreters.txt
touch "$LIST"
add() {  # LABEL PATH
  grep -qF "	$2" "$LIST" && return 0
  "$2" -c 'import sys, json, decimal' >/dev/null 2>&1 || return 0
  printf '%s\t%s\n' "$1" "$2" >>"$LIST"
  echo "listed $1 $2"
}
for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*; do
  [ -d "$d" ] || continue
  v=$(basename "$d")
  case $v in 3.[0-7].*|3.[0-7]) continue ;; esac   # pymemspy reads 3.8 and later
  bin=$(ls "$d"/bin/python3.* 2>/dev/null | grep -E 'python3\.[0-9]+t?$' | head -n1 || true)
  [ -n "$bin" ] && add "pyenv-$v" "$bin"
done
for bin in /usr/bin/python3.* /usr/local/bin/python3.*; do
  [[ $bin =~ python3\.[0-9]+t?$ ]] || continue
  [ -x "$bin" ] || continue
  v=$("$bin" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) || continue
  add "$(basename "$(dirname "$(dirname "$bin")")")-$v" "$bin"
done
echo "$(grep -c . "$LIST") interpreters in $LIST"
