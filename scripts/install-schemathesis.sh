#!/usr/bin/env bash
# Installs schemathesis (the contract test's fuzzer, tests/contract.rs) into a Python (3.10 or
# newer) venv under target/schemathesis-venv from the pinned scripts/schemathesis.requirements.txt:
# created on the first run, reused afterwards, refilled when that file changes. Prints nothing
# on stdout but the path of the schemathesis executable, so callers can use it.
# Usage: scripts/install-schemathesis.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

venv=target/schemathesis-venv
reqs=scripts/schemathesis.requirements.txt
stamp=$venv/.requirements

usable() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; }

find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && usable "$candidate"; then
      echo "$candidate"
      return
    fi
  done
  echo "install-schemathesis: needs Python 3.10 or newer; set PYTHON=/path/to/python3" >&2
  exit 1
}

# A venv whose interpreter no longer runs (Python upgraded or removed) is rebuilt.
if [ -d "$venv" ] && ! usable "$venv/bin/python"; then
  echo "==> install-schemathesis: $venv is unusable, recreating it" >&2
  rm -rf "$venv"
fi
if [ ! -d "$venv" ]; then
  python=$(find_python)
  echo "==> install-schemathesis: creating $venv ($("$python" --version))" >&2
  "$python" -m venv "$venv" >&2 || {
    echo "install-schemathesis: '$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    rm -rf "$venv"
    exit 1
  }
fi
want=$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$reqs")
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> install-schemathesis: installing $reqs into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$reqs" >&2
  # Written last: an interrupted install is redone on the next run.
  echo "$want" >"$stamp"
fi
echo "$root/$venv/bin/schemathesis"
