#!/usr/bin/env bash
# Builds the browser package: the domain rules (shared/browser, crate oms-browser) for
# wasm32-unknown-unknown, bound with wasm-bindgen into an npm-layout ES module package in
# target/browser-pkg/ (package.json, oms_browser.js, oms_browser.d.ts, oms_browser_bg.wasm,
# SIZE.txt). Usage: scripts/build-browser.sh [--force]
#
# - Toolchain: rustup's wasm32-unknown-unknown std when installed; otherwise the Debian
#   rustc-web + -Zbuild-std path of scripts/wasm-env.sh (the same bootstrap, cached in
#   .toolchain/), in its own target dir (target/browser-build).
# - Profile: release with opt-level "z", fat LTO, one codegen unit, panic=abort.
# - wasm-bindgen-cli at exactly the version root Cargo.toml pins for the `wasm-bindgen` crate,
#   installed once from crates.io into .toolchain/wasm-bindgen-<version>/ and reused.
# - wasm-opt (binaryen) is used when one is on PATH; none is installed by this script (the
#   `wasm-opt` crate compiles binaryen's C++ for many minutes; Debian 12's binaryen 108 is
#   older than the features rustc emits).
# - Skips everything when the package is newer than its inputs (shared/src, shared/browser,
#   Cargo.toml, Cargo.lock, this script).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/target/browser-pkg"
log() { printf '[build-browser] %s\n' "$*" >&2; }

force=0
[ "${1:-}" = "--force" ] && force=1
if [ "$force" = 0 ] && [ -f "$out/SIZE.txt" ] && [ -f "$out/oms_browser_bg.wasm" ]; then
  newer=$(find shared/src shared/browser/src shared/browser/Cargo.toml Cargo.toml Cargo.lock \
    scripts/build-browser.sh -newer "$out/SIZE.txt" -print -quit 2>/dev/null || true)
  if [ -z "$newer" ]; then
    log "target/browser-pkg is up to date"
    exit 0
  fi
fi

version=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9][0-9.]*\)".*/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { log "no exact wasm-bindgen version (=x.y.z) in Cargo.toml"; exit 1; }

# --- wasm-bindgen-cli, exactly the crate's version --------------------------------------------
cli_root="$root/.toolchain/wasm-bindgen-$version"
bindgen="$cli_root/bin/wasm-bindgen"
if [ ! -x "$bindgen" ] || ! "$bindgen" --version 2>/dev/null | grep -q " $version"; then
  log "installing wasm-bindgen-cli $version into $cli_root (one time, a few minutes)"
  # No TLS: the CLI never downloads anything for `wasm-bindgen`. --locked first (the crate's
  # own lockfile); if the registry no longer has a locked dependency version, resolve afresh.
  cargo install --quiet --locked --no-default-features wasm-bindgen-cli --version "=$version" --root "$cli_root" \
    || { log "cargo install --locked failed; retrying without --locked";
         cargo install --quiet --no-default-features wasm-bindgen-cli --version "=$version" --root "$cli_root"; }
fi

# --- the toolchain for wasm32-unknown-unknown --------------------------------------------------
has_rustup_target() {
  local sysroot
  sysroot=$(rustc --print sysroot 2>/dev/null) || return 1
  ls "$sysroot"/lib/rustlib/wasm32-unknown-unknown/lib/libstd-*.rlib >/dev/null 2>&1
}
if has_rustup_target; then
  log "using rustup's installed wasm32-unknown-unknown target"
  export CARGO_TARGET_DIR="$root/target/browser-build"
else
  # wasm-env.sh's Debian bootstrap (its own target selection is for wasip1 guests: skipped).
  OMS_WASM_TOOLCHAIN=browser
  # shellcheck source=scripts/wasm-env.sh
  source scripts/wasm-env.sh
  oms_debian_toolchain
  export CARGO_TARGET_DIR="$root/target/browser-build"
  log "no wasm32-unknown-unknown std in rustup: Debian rustc-web with -Zbuild-std"
fi

export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_PROFILE_RELEASE_DEBUG=false
log "cargo build --release --target wasm32-unknown-unknown -p oms-browser"
cargo build --release --target wasm32-unknown-unknown -p oms-browser
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/oms_browser.wasm"

# --- bind, package -------------------------------------------------------------------------------
stage=$(mktemp -d "$root/target/browser-pkg.XXXXXX")
chmod 755 "$stage"
trap 'rm -rf "$stage"' EXIT
"$bindgen" --target web --remove-name-section --remove-producers-section \
  --out-dir "$stage" --out-name oms_browser "$wasm"
if command -v wasm-opt >/dev/null 2>&1; then
  log "wasm-opt -Oz ($(wasm-opt --version))"
  wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
    --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
    "$stage/oms_browser_bg.wasm" -o "$stage/oms_browser_bg.wasm"
else
  log "no wasm-opt on PATH: skipped"
fi
pkg_version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
cat >"$stage/package.json" <<EOF
{
  "name": "oms-browser",
  "version": "$pkg_version",
  "description": "The OMS order rules in the browser: validateOrder, quoteTotals, refundable (the server's own Rust code, via wasm-bindgen)",
  "license": "Apache-2.0",
  "type": "module",
  "module": "oms_browser.js",
  "main": "oms_browser.js",
  "types": "oms_browser.d.ts",
  "exports": {
    ".": { "types": "./oms_browser.d.ts", "default": "./oms_browser.js" },
    "./oms_browser_bg.wasm": "./oms_browser_bg.wasm"
  },
  "files": ["oms_browser.js", "oms_browser.d.ts", "oms_browser_bg.wasm", "oms_browser_bg.wasm.d.ts"],
  "sideEffects": false
}
EOF
rm -f "$stage/.gitignore"

size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
{
  printf 'oms-browser %s (wasm-bindgen %s, opt-level z, lto, panic=abort%s)\n' "$pkg_version" "$version" \
    "$(command -v wasm-opt >/dev/null 2>&1 && echo ', wasm-opt -Oz' || echo ', no wasm-opt')"
  for f in oms_browser_bg.wasm oms_browser.js; do
    printf '%-22s %8d bytes raw %8d bytes gzip -9\n' "$f" "$(size "$stage/$f")" "$(gz "$stage/$f")"
  done
  printf '%-22s %8d bytes raw %8d bytes gzip -9\n' total \
    $(( $(size "$stage/oms_browser_bg.wasm") + $(size "$stage/oms_browser.js") )) \
    $(( $(gz "$stage/oms_browser_bg.wasm") + $(gz "$stage/oms_browser.js") ))
} >"$stage/SIZE.txt"

rm -rf "$out"
mv "$stage" "$out"
trap - EXIT
cat "$out/SIZE.txt" >&2
