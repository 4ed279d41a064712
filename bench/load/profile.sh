#!/usr/bin/env bash
# Where an order's CPU goes: `perf record -e cpu-clock -g` of `oms up` while `oms-load` places
# orders (end to end: intake, reserve, route, notify) at one client, with guest functions named
# (OMS_PERFMAP=1 writes /tmp/perf-<pid>.map). Needs `perf` (Debian: apt-get install linux-perf)
# and the builds bench/load.sh makes.
#
# Usage: bench/load/profile.sh OUT_DIR [SECONDS] [extra `oms up` options, e.g. --kv-readers 0]
# Writes OUT_DIR/perf.data, OUT_DIR/report.txt (flat, by symbol), OUT_DIR/dso.txt (by binary)
# and OUT_DIR/load.txt (what the load tool measured meanwhile).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=bench/common.sh
source bench/common.sh
bin=${CARGO_TARGET_DIR:-target}/release
out=$1
seconds=${2:-8}
shift $(($# < 2 ? $# : 2))
mkdir -p "$out"
state=$(mktemp -d)
port=$(free_port)
cache=${OMS_BENCH_CACHE:-${TMPDIR:-/tmp}/oms-bench-cache}
mkdir -p "$cache" "$state/oms" && ln -s "$cache" "$state/oms/cache"
token=bench-admin-token
OMS_PERFMAP=1 SPIN_VARIABLE_ADMIN_TOKEN=$token start_server "$state/oms.log" \
  "$bin"/oms up --listen "127.0.0.1:$port" --state-dir "$state/oms" "$@"
oms_pid=${bench_pids[-1]}
"$bin"/oms-load suite --base "http://127.0.0.1:$port" --admin-token "$token" \
  --only orders --clients 1 --seconds $((seconds + 4)) >"$out/load.txt" 2>"$out/load.err" &
load_pid=$!
# Profile once seeding is over and orders flow.
for _ in $(seq 600); do grep -q '^orders:' "$out/load.err" 2>/dev/null && break; sleep 0.1; done
sleep 1
perf record -e cpu-clock -g -p "$oms_pid" -o "$out/perf.data" -- sleep "$seconds" 2>"$out/perf.err"
wait "$load_pid"
perf report -i "$out/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
  grep -v '^$' | grep -E '^ +[0-9]' | head -60 >"$out/report.txt" || true
perf report -i "$out/perf.data" --no-children --sort dso --stdio 2>/dev/null |
  grep -E '^ +[0-9]' | head -20 >"$out/dso.txt" || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/load.txt"
cat "$out/load.txt"
echo "--- top symbols ($out/report.txt)"
head -30 "$out/report.txt"
