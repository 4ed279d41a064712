#!/usr/bin/env bash
# `oms up` against the reference runtime, `wasmtime serve` (wasmtime-cli, the same wasmtime
# version as the host), serving the same small wasi:http component (tests/components/hello),
# driven by the same load generator in the same run, at 1, 16 and 64 clients.
# Usage: bench/hello.sh [oms-load hello options, e.g. --seconds 5 --clients 16]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/common.sh
source bench/common.sh

bash bench/install-wasmtime-cli.sh
./oms build
cargo build --release -p oms-load

state=$(mktemp -d)
# wasmtime serve takes a component; the host does the same wrapping when it loads the module.
target/release/oms componentize target/wasm32-wasip1/release/hello.wasm "$state/hello.component.wasm"
oms_port=$(free_port)
wasmtime_port=$(free_port)
echo "==> oms up on :$oms_port, wasmtime serve on :$wasmtime_port (logs in $state)" >&2
start_server "$state/oms.log" target/release/oms up --from tests/apps/hello.toml \
  --listen "127.0.0.1:$oms_port" --state-dir "$state/oms"
start_server "$state/wasmtime.log" .toolchain/wasmtime-cli/bin/wasmtime serve -S cli \
  --addr "127.0.0.1:$wasmtime_port" "$state/hello.component.wasm"
machine_summary
target/release/oms-load hello --base "http://127.0.0.1:$oms_port" \
  --base "http://127.0.0.1:$wasmtime_port" "$@"
