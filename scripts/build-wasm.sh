#!/usr/bin/env bash
# Builds every guest crate (functions/* and tests/components/*) to wasm32-wasip1, release, so the
# artifacts land in target/wasm32-wasip1/release/ where the manifests' `source` fields point.
# Usage: scripts/build-wasm.sh [-p crate ...]   (default: all guest crates)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The browser package first (target/browser-pkg): the console component embeds it. Skips
# itself when up to date.
bash scripts/build-browser.sh
# shellcheck source=scripts/wasm-env.sh
source scripts/wasm-env.sh

pkgs=()
if [ "$#" -gt 0 ]; then
  pkgs=("$@")
else
  for manifest in functions/*/Cargo.toml tests/components/*/Cargo.toml; do
    pkgs+=(-p "$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n1)")
  done
fi

echo "[build-wasm] cargo build --target wasm32-wasip1 --release ${pkgs[*]} (toolchain: $OMS_WASM_TOOLCHAIN)" >&2
cargo build --target wasm32-wasip1 --release "${pkgs[@]}"

if [ "$OMS_WASM_TOOLCHAIN" = debian ]; then
  # Same place as a plain rustup build, so spin.toml's sources hold on either path.
  mkdir -p target/wasm32-wasip1/release
  for wasm in "$OMS_WASM_TARGET_DIR"/wasm32-wasip1/release/*.wasm; do
    cp -p "$wasm" target/wasm32-wasip1/release/
  done
fi
ls -1 target/wasm32-wasip1/release/*.wasm >&2
