#!/usr/bin/env bash
# One venv with numpy and pandas per interpreter that can have them, for tests/native_memory.rs,
# and a "web" venv (Django, Flask, gunicorn, SQLAlchemy, pydantic) on a few interpreters, for
# tests/real_frameworks.rs.
#
# Reads /opt/pymemspy-pythons/interpreters.txt (label<TAB>python), makes
# /opt/pymemspy-pythons/venvs/<label> and writes /opt/pymemspy-pythons/venvs.txt
# (label<TAB>venv python<TAB>numpy version). One more venv pins numpy<2 on an older interpreter:
# numpy 1.x lays out its array and dtype structs differently, and the tool must read both.
# Idempotent: a venv that already imports numpy and pandas is kept. Uses pip as the machine
# configures it (its mirror); wheels only, so an interpreter without wheels is skipped, not built.
set -uo pipefail
ROOT=${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}
LIST="$ROOT/interpreters.txt"
OUT="$ROOT/venvs"
mkdir -p "$OUT"
if [ ! -f "$LIST" ]; then
  echo "provision-venvs: $LIST missing" >&2
  exit 1
fi

# Which interpreters: the pyenv builds 3.9-3.13 (they ship venv and pip) and the free-threaded
# build (a larger object header: every numpy offset moves). Debian's and the other source builds
# are the same versions, and a venv each would only repeat the numpy layouts.
wanted() {
  case "$1" in
    pyenv-3.9.*|pyenv-3.10.*|pyenv-3.11.*|pyenv-3.12.*|pyenv-3.13.*) return 0 ;;
    *free-threaded*) return 0 ;;
    *) return 1 ;;
  esac
}

# make_venv LABEL PYTHON NUMPY_SPEC: prints the numpy version on success.
make_venv() {
  local label=$1 py=$2 spec=$3 dir="$OUT/$1"
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c 'import numpy, pandas' 2>/dev/null; then
    "$dir/bin/python" -c 'import numpy; print(numpy.__version__)'
    return 0
  fi
  rm -rf "$dir"
  "$py" -m venv "$dir" >&2 || return 1
  "$dir/bin/python" -m pip install -q --only-binary=:all: "$spec" pandas >&2 || return 1
  "$dir/bin/python" -c 'import numpy, pandas; print(numpy.__version__)'
}

tmp=$(mktemp)
numpy1_done=0
while IFS=$'\t' read -r label py; do
  [ -n "$label" ] || continue
  wanted "$label" || continue
  [ -x "$py" ] || continue
  if v=$(make_venv "$label" "$py" numpy); then
    printf '%s\t%s\t%s\n' "$label" "$OUT/$label/bin/python" "$v" >>"$tmp"
    echo "provision-venvs: $label numpy $v"
  else
    echo "provision-venvs: $label: numpy/pandas did not install, skipped" >&2
  fi
  case "$label" in
    pyenv-3.10.*|pyenv-3.9.*)
      if [ "$numpy1_done" = 0 ] && v=$(make_venv "$label-numpy1" "$py" 'numpy<2'); then
        printf '%s\t%s\t%s\n' "$label-numpy1" "$OUT/$label-numpy1/bin/python" "$v" >>"$tmp"
        echo "provision-venvs: $label-numpy1 numpy $v"
        numpy1_done=1
      fi
      ;;
  esac
done <"$LIST"
mv "$tmp" "$ROOT/venvs.txt"
chmod 644 "$ROOT/venvs.txt"
echo "provision-venvs: $(wc -l <"$ROOT/venvs.txt") venvs in $ROOT/venvs.txt"

# The web venvs: the frameworks issue 33's programs were built on, on one interpreter per layout
# family that matters to the tool (3.10: frames are objects; 3.12: embedded frames and the
# per-interpreter registries; 3.13t: free-threaded). Django 5 needs 3.10+. Three, not more:
# each costs CI a minute or two of installing (Django's files compiled to bytecode). Writes
# $ROOT/web-venvs.txt (label<TAB>venv python<TAB>versions). Same rules as above: wheels only,
# a venv that already imports them is kept, an interpreter without wheels is skipped (logged).
WEB_PKGS="django flask gunicorn sqlalchemy pydantic"
WEB_IMPORTS="import django, flask, gunicorn, sqlalchemy, pydantic"
WEB_VERSIONS='import importlib.metadata as m
print(" ".join("%s=%s" % (p, m.version(p)) for p in ("django", "flask", "gunicorn", "sqlalchemy", "pydantic")))'
web_wanted() {
  case "$1" in
    pyenv-3.10.*|pyenv-3.12.*|*free-threaded*) return 0 ;;
    *) return 1 ;;
  esac
}

# make_web_venv LABEL PYTHON: prints the packages' versions on success.
make_web_venv() {
  local dir="$OUT/web-$1"
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "$WEB_IMPORTS" 2>/dev/null; then
    "$dir/bin/python" -c "$WEB_VERSIONS"
    return 0
  fi
  rm -rf "$dir"
  "$2" -m venv "$dir" >&2 || return 1
  # shellcheck disable=SC2086
  "$dir/bin/python" -m pip install -q --only-binary=:all: $WEB_PKGS >&2 || return 1
  "$dir/bin/python" -c "$WEB_IMPORTS" >&2 || return 1
  "$dir/bin/python" -c "$WEB_VERSIONS"
}

# The venvs are made side by side: most of a fresh install's time is waiting on the index.
start=$SECONDS
work=$(mktemp -d)
labels=()
while IFS=$'\t' read -r label py; do
  [ -n "$label" ] || continue
  web_wanted "$label" || continue
  [ -x "$py" ] || continue
  labels+=("$label")
  (make_web_venv "$label" "$py" >"$work/$label.out" 2>"$work/$label.err"; echo $? >"$work/$label.rc") &
done <"$LIST"
wait
tmp=$(mktemp)
for label in "${labels[@]}"; do
  if [ "$(cat "$work/$label.rc")" = 0 ]; then
    v=$(cat "$work/$label.out")
    printf '%s\t%s\t%s\n' "web-$label" "$OUT/web-$label/bin/python" "$v" >>"$tmp"
    echo "provision-venvs: web-$label $v"
  else
    rm -rf "$OUT/web-$label"
    tail -3 "$work/$label.err" >&2
    echo "provision-venvs: web-$label: the web frameworks did not install from wheels, skipped" >&2
  fi
done
rm -rf "$work"
mv "$tmp" "$ROOT/web-venvs.txt"
chmod 644 "$ROOT/web-venvs.txt"
echo "provision-venvs: $(wc -l <"$ROOT/web-venvs.txt") web venvs in $ROOT/web-venvs.txt ($((SECONDS - start)) s)"
