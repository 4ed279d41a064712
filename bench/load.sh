#!/usr/bin/env bash
# The OMS under load, in one command: builds the components, the host and the load generator,
# starts `oms up` (fresh store and queue, free ports), then runs `oms-load suite`: order intake
# and end-to-end routing at 1, 16 and 64 clients, the hot-SKU race with its oversell check,
# reads with the host's response cache on vs off, and the write-then-read (stale read) check.
#
# Usage: [OMS_BACKEND=sqlite|redis] [OMS_HOSTS=1|2] [OMS_UP_ARGS="..."] [OMS_VARIANTS="A;B;..."]
#        bench/load.sh [oms-load suite options, e.g. --seconds 5 --clients 1,16 --only orders,hot]
#   OMS_BACKEND=sqlite (default): embedded SQLite store and queue.
#   OMS_BACKEND=redis: key-value and queue (Streams) on a throwaway redis-server on a free port.
#   OMS_HOSTS=2 (redis only): two hosts split with -c — one serves intake, reads, admin and
#     webhooks (where the load generator sends everything), the other consumes the queue for
#     reserve and route.
#   OMS_UP_ARGS: extra `oms up` options for every run.
#   OMS_VARIANTS: `;`-separated sets of extra `oms up` options (e.g. "--kv-readers 0;"): the
#     suite runs once per set, back to back, each on a fresh store, so settings compare side by
#     side in one session on one binary (an empty set is the defaults).
#   OMS_SKIP_BUILD=1: use the binaries already built (in ${CARGO_TARGET_DIR:-target}/release).
#   OMS_UNCACHED=0: no second host for the uncached reads (by default one more `oms up -c query
#     --no-cache` shares the first host's store, and the reads run on both).
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

bin=${CARGO_TARGET_DIR:-target}/release
if [ "${OMS_SKIP_BUILD:-0}" != 1 ]; then
  ./oms build
  cargo build --release -p oms-load
fi

token=bench-admin-token
# Compiled components are kept between runs (keyed by the .wasm's hash and the engine), so a
# fresh store does not mean compiling every component again.
cache=${OMS_BENCH_CACHE:-${TMPDIR:-/tmp}/oms-bench-cache}
mkdir -p "$cache"
no_cache=()
if "$bin"/oms up --help | grep -q -- '--no-cache'; then
  no_cache=(--no-cache)
fi

# run_variant ARGS: fresh state, servers started, the suite run, servers stopped.
run_variant() {
  local extra=$1
  shift
  local state port shared=() split=()
  state=$(mktemp -d)
  port=$(free_port)
  for d in oms oms-2 oms-nc; do mkdir -p "$state/$d" && ln -s "$cache" "$state/$d/cache"; done
  if [ "$backend" = redis ]; then
    bash scripts/install-redis.sh
    local rport
    rport=$(free_port)
    start_server "$state/redis.log" redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no
    for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
    printf '[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:%s"\n' "$rport" >"$state/rc.toml"
    shared=(--runtime-config-file "$state/rc.toml" --queue-url "redis://127.0.0.1:$rport")
    echo "==> redis-server on 127.0.0.1:$rport" >&2
  fi
  if [ "$hosts" = 2 ]; then
    split=(-c validate -c query -c admin -c notify -c refund)
    # shellcheck disable=SC2086 # OMS_UP_ARGS and the variant are lists of options
    SPIN_VARIABLE_ADMIN_TOKEN=$token start_server "$state/oms-2.log" \
      "$bin"/oms up --listen "127.0.0.1:$(free_port)" --state-dir "$state/oms-2" \
      "${shared[@]}" -c reserve -c route ${OMS_UP_ARGS:-} $extra
    echo "==> second host: reserve, route (log: $state/oms-2.log)" >&2
  fi
  echo "==> oms up on 127.0.0.1:$port ($backend, $hosts host(s)) ${OMS_UP_ARGS:-} $extra, state in $state (log: $state/oms.log)" >&2
  # shellcheck disable=SC2086
  SPIN_VARIABLE_ADMIN_TOKEN=$token start_server "$state/oms.log" \
    "$bin"/oms up --listen "127.0.0.1:$port" --state-dir "$state/oms" \
    "${shared[@]}" "${split[@]}" ${OMS_UP_ARGS:-} $extra
  local server_pid=${bench_pids[-1]}
  local uncached=()
  if [ "${OMS_UNCACHED:-1}" != 0 ]; then
    # The same store, read by the query component alone without a response cache.
    local nport rc_nc=("${shared[@]}")
    nport=$(free_port)
    if [ "$backend" = sqlite ]; then
      printf '[key_value_store.default]\ntype = "spin"\npath = "%s"\n[key_value_store.owed]\ntype = "spin"\npath = "%s"\n' \
        "$state/oms/kv.db" "$state/oms/kv.db" >"$state/rc-nc.toml"
      rc_nc=(--runtime-config-file "$state/rc-nc.toml")
    fi
    # shellcheck disable=SC2086
    SPIN_VARIABLE_ADMIN_TOKEN=$token start_server "$state/oms-nc.log" \
      "$bin"/oms up --listen "127.0.0.1:$nport" --state-dir "$state/oms-nc" \
      "${rc_nc[@]}" -c query "${no_cache[@]}" ${OMS_UP_ARGS:-} $extra
    uncached=(--uncached-base "http://127.0.0.1:$nport")
    if [ ${#no_cache[@]} = 0 ]; then
      echo "==> note: this oms has no --no-cache (no response cache yet): both read hosts are uncached" >&2
    fi
    echo "==> uncached reads: oms up -c query ${no_cache[*]} on 127.0.0.1:$nport (log: $state/oms-nc.log)" >&2
  fi
  machine_summary
  echo "mode: backend $backend, $hosts host(s), oms up ${OMS_UP_ARGS:-} $extra"
  "$bin"/oms-load suite --base "http://127.0.0.1:$port" --admin-token "$token" \
    --server-pid "$server_pid" "${uncached[@]}" "$@"
  stop_servers
  bench_pids=()
}

if [ -n "${OMS_VARIANTS:-}" ]; then
  IFS=';' read -r -a variants <<<"$OMS_VARIANTS"
  # A trailing `;` means a last, empty variant (the defaults).
  case "$OMS_VARIANTS" in *';') variants+=("") ;; esac
  for v in "${variants[@]}"; do
    echo
    echo "### variant: oms up ${v:-(defaults)}  [load average: $(cut -d' ' -f1-3 /proc/loadavg)]"
    run_variant "$v" "$@"
  done
else
  run_variant "" "$@"
fi
