#!/usr/bin/env bash
# Installs what the browser tests (tests/browser, run by tests/console.rs) need on a fresh
# machine: Debian's Chromium (/usr/bin/chromium) and the pinned playwright-core from
# tests/browser/package-lock.json (npm ci, into tests/browser/node_modules). Idempotent: a second
# run installs nothing. playwright-core never downloads a browser of its own; the tests launch
# /usr/bin/chromium.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ ! -x /usr/bin/chromium ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "[install-chromium] apt-get install -y chromium" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version >&2

command -v npm >/dev/null 2>&1 || { echo "install-chromium: npm not found (install Node.js 20+)" >&2; exit 1; }
lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.oms-installed
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  echo "[install-chromium] npm ci (tests/browser)" >&2
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi
