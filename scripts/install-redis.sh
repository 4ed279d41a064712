#!/usr/bin/env bash
# Makes sure `redis-server` (Debian's package) is on this machine. Tests start their own
# instances on free loopback ports with no persistence (tests/support/redis.rs) and stop them at
# the end: nothing here starts a server, and a server already running is never used.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
command -v apt-get >/dev/null || { echo "install-redis: redis-server missing and no apt-get: install Redis 7" >&2; exit 1; }
echo "==> installing redis-server (Debian package)" >&2
export DEBIAN_FRONTEND=noninteractive
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
if ! $sudo_ apt-get install -y --no-install-recommends redis-server >&2; then
  $sudo_ apt-get update -qq >&2
  $sudo_ apt-get install -y --no-install-recommends redis-server >&2
fi
# The package's service (if the machine runs one) is not ours: tests never use port 6379.
command -v redis-server >/dev/null
