#!/usr/bin/env bash
# Builds the reference runtime, `wasmtime serve`, from the wasmtime-cli crate at the same version
# as the host's wasmtime (48.0.8), into .toolchain/wasmtime-cli (cached: a second run is instant).
# Only the features `wasmtime serve` needs, to keep the build short.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=48.0.8
prefix="$root/.toolchain/wasmtime-cli"
bin="$prefix/bin/wasmtime"
if [ -x "$bin" ] && "$bin" --version | grep -q " $version"; then
  echo "[wasmtime-cli] cached: $("$bin" --version)" >&2
  exit 0
fi
echo "[wasmtime-cli] cargo install wasmtime-cli@$version (serve only; takes several minutes)" >&2
CARGO_TARGET_DIR="$root/target/wasmtime-cli" cargo install wasmtime-cli \
  --version "=$version" --locked --root "$prefix" --no-default-features \
  --features serve,run,component-model-async,cranelift,pooling-allocator,parallel-compilation,cache,logging
"$bin" --version >&2
