#!/usr/bin/env bash
# Checks the deployment files under infra/ (scripts/check-infra.py), then checks that the checker
# still rejects every broken file in tests/fixtures/infra-bad/. Runs in a Python (3.11 or newer)
# venv under target/venv holding the pinned packages of scripts/check-infra.requirements.txt:
# created on the first run, reused afterwards, refilled when that file changes.
# Usage: scripts/check-infra.sh   (extra arguments go to check-infra.py)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

venv=target/venv
reqs=scripts/check-infra.requirements.txt
stamp=$venv/.check-infra-requirements

find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "check-infra: needs Python 3.11 or newer (tomllib); set PYTHON=/path/to/python3.11" >&2
  exit 1
}

# A venv whose interpreter no longer runs (Python upgraded or removed) is rebuilt.
if [ -d "$venv" ] && ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "==> check-infra: $venv is unusable, recreating it" >&2
  rm -rf "$venv"
fi
if [ ! -d "$venv" ]; then
  python=$(find_python)
  echo "==> check-infra: creating $venv ($("$python" --version))" >&2
  "$python" -m venv "$venv" || {
    echo "check-infra: '$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    rm -rf "$venv"
    exit 1
  }
fi
want=$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$reqs")
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> check-infra: installing $reqs into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$reqs" >&2
  # Written last: an interrupted install is redone on the next run.
  echo "$want" >"$stamp"
fi
exec "$venv/bin/python" scripts/check-infra.py --expect-fail tests/fixtures/infra-bad "$@"
