#!/usr/bin/env bash
# The OMS under load, in one command: builds the components, the host and the load generator,
# starts `oms up` on embedded defaults (fresh SQLite store and queue in a temporary folder, on a
# free port), then runs `oms-load suite`: order intake and end-to-end routing at 1, 16 and 64
# clients, the hot-SKU race with its oversell check, and cached vs uncached reads.
# Usage: [OMS_UP_ARGS="--queue-sync full"] bench/load.sh [oms-load suite options, e.g. --seconds 5 --clients 1,16]
# OMS_UP_ARGS: extra `oms up` options, to compare settings run against run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/common.sh
source bench/common.sh

./oms build
cargo build --release -p oms-load

state=$(mktemp -d)
port=$(free_port)
token=bench-admin-token
echo "==> oms up on 127.0.0.1:$port, state in $state (log: $state/oms.log)" >&2
# shellcheck disable=SC2086 # OMS_UP_ARGS is a list of options
SPIN_VARIABLE_ADMIN_TOKEN=$token start_server "$state/oms.log" \
  target/release/oms up --listen "127.0.0.1:$port" --state-dir "$state/oms" ${OMS_UP_ARGS:-}
machine_summary
target/release/oms-load suite --base "http://127.0.0.1:$port" --admin-token "$token" "$@"
