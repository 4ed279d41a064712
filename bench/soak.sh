#!/usr/bin/env bash
# The 100,000-order soak (not part of CI): starts `oms up` on the embedded store (fresh state,
# free port) with the retention window shortened so pruning happens within the run, places the
# orders end to end through it (bench/soak.py: closed-loop intake, a webhook sink counting
# order.routed) and every N orders samples the host's RSS and the store's live bytes (SQLite,
# after a checkpoint) with its key count per prefix; prints the samples as a table.
#
# Usage: [SOAK_ORDERS=100000] [SOAK_EVERY=10000] [SOAK_RETENTION_SECONDS=60] [SOAK_CLIENTS=8]
#        [SOAK_NO_BUILD=1] [OMS_UP_ARGS="..."] bench/soak.sh
#   SOAK_RETENTION_SECONDS: the app's `retention_seconds` (idempotency entries and marketplace
#     de-duplication are pruned by the minutely expiry sweeper once this old; 86400 in production).
#   SOAK_NO_BUILD=1: use the components and host already built.
# Takes ~27 minutes for 100,000 orders on 2 cores (~62 orders/s under the Python client).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/common.sh
source bench/common.sh

if [ -z "${SOAK_NO_BUILD:-}" ]; then
  ./oms build
fi

state=$(mktemp -d)
port=$(free_port)
token=soak-admin-token
echo "==> oms up on 127.0.0.1:$port, state in $state (log: $state/oms.log)" >&2
# shellcheck disable=SC2086 # OMS_UP_ARGS is a list of options
SPIN_VARIABLE_ADMIN_TOKEN=$token SPIN_VARIABLE_RETENTION_SECONDS=${SOAK_RETENTION_SECONDS:-60} \
  start_server "$state/oms.log" \
  target/release/oms up --listen "127.0.0.1:$port" --state-dir "$state/oms" ${OMS_UP_ARGS:-}
pid=${bench_pids[-1]}
for _ in $(seq 600); do
  curl -s -o /dev/null "http://127.0.0.1:$port/v1/openapi.json" && break
  sleep 0.1
done
machine_summary
echo "soak: ${SOAK_ORDERS:-100000} orders, sample every ${SOAK_EVERY:-10000}, retention ${SOAK_RETENTION_SECONDS:-60} s"
python3 bench/soak.py --base "http://127.0.0.1:$port" --token "$token" --state "$state/oms" \
  --pid "$pid" --orders "${SOAK_ORDERS:-100000}" --every "${SOAK_EVERY:-10000}" \
  --clients "${SOAK_CLIENTS:-8}"
