#!/usr/bin/env bash
# The OMS under load, in one command: builds the components, the host and the load generator,
# starts `oms up` (fresh store and queue, free ports), then runs `oms-load suite`: order intake
# and end-to-end routing at 1, 16 and 64 clients, the hot-SKU race with its oversell check, and
# cached vs uncached reads.
#
# Usage: [OMS_BACKEND=sqlite|redis] [OMS_HOSTS=1|2] [OMS_UP_ARGS="..."] bench/load.sh [oms-load suite options, e.g. --seconds 5 --clients 1,16]
#   OMS_BACKEND=sqlite (default): embedded SQLite store and queue.
#   OMS_BACKEND=redis: key-value and queue (Streams) on a throwaway redis-server on a free port.
#   OMS_HOSTS=2 (redis only): two hosts split with -c — one serves intake, reads, admin and
#     webhooks (where the load generator sends everything), the other consumes the queue for
#     reserve and route.
#   OMS_UP_ARGS: extra `oms up` options, to compare settings run against run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/common.sh
source bench/common.sh

backend=${OMS_BACKEND:-sqlite}
hosts=${OMS_HOSTS:-1}
case "$backend:$hosts" in
  sqlite:1 | redis:1 | redis:2) ;;
  *) echo "load.sh: OMS_BACKEND=$backend OMS_HOSTS=$hosts is not a mode (sqlite:1, redis:1, redis:2)" >&2; exit 2 ;;
esac

./oms build
cargo build --release -p oms-load

state=$(mktemp -d)
port=$(free_port)
token=bench-admin-token
shared=()
if [ "$backend" = redis ]; then
  bash scripts/install-redis.sh
  rport=$(free_port)
  start_server "$state/redis.log" redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no
  for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
  printf '[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:%s"\n' "$rport" >"$state/rc.toml"
  shared=(--runtime-config-file "$state/rc.toml" --queue-url "redis://127.0.0.1:$rport")
  echo "==> redis-server on 127.0.0.1:$rport" >&2
fi
split=()
if [ "$hosts" = 2 ]; then
  split=(-c validate -c query -c admin -c notify -c refund)
  # shellcheck disable=SC2086 # OMS_UP_ARGS is a list of options
  SPIN_VARIABLE_ADMIN_TOKEN=$token start_server "$state/oms-2.log" \
    target/release/oms up --listen "127.0.0.1:$(free_port)" --state-dir "$state/oms-2" \
    "${shared[@]}" -c reserve -c route ${OMS_UP_ARGS:-}
  echo "==> second host: reserve, route (log: $state/oms-2.log)" >&2
fi
echo "==> oms up on 127.0.0.1:$port ($backend, $hosts host(s)), state in $state (log: $state/oms.log)" >&2
# shellcheck disable=SC2086 # OMS_UP_ARGS is a list of options
SPIN_VARIABLE_ADMIN_TOKEN=$token start_server "$state/oms.log" \
  target/release/oms up --listen "127.0.0.1:$port" --state-dir "$state/oms" \
  "${shared[@]}" "${split[@]}" ${OMS_UP_ARGS:-}
machine_summary
echo "mode: backend $backend, $hosts host(s)"
target/release/oms-load suite --base "http://127.0.0.1:$port" --admin-token "$token" "$@"
