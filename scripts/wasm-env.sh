# shellcheck shell=bash
# Sourced by scripts/build-wasm.sh: decides how wasm32-wasip1 guests are built on this machine and
# exports the environment for it, so that the plain `cargo build --target wasm32-wasip1 --release`
# commands from spin.toml work unchanged.
#
# Path 1 (normal rustup machine): the wasm32-wasip1 std is installed -> nothing to set.
# Path 2 (no rustup target, no network to fetch one): Debian's rustc-web with its library source,
#         fetched with apt-get download into .toolchain/ (never installed system-wide), builds std
#         for wasm32-wasip1 with -Zbuild-std. Cached: a second run downloads and rebuilds nothing.
#
# Exports OMS_WASM_TOOLCHAIN=rustup|debian and, for debian, OMS_WASM_TARGET_DIR (where cargo
# writes, copied afterwards to target/wasm32-wasip1/release where spin.toml points).

oms_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
oms_tc="$oms_root/.toolchain"

oms_log() { printf '[wasm-toolchain] %s\n' "$*" >&2; }

oms_has_rustup_target() {
  local sysroot
  sysroot=$(rustc --print sysroot 2>/dev/null) || return 1
  [ -d "$sysroot/lib/rustlib/wasm32-wasip1/lib" ] && ls "$sysroot"/lib/rustlib/wasm32-wasip1/lib/libstd-*.rlib >/dev/null 2>&1
}

oms_debian_toolchain() {
  local root="$oms_tc/debian" debs="$oms_tc/debs"
  if [ ! -x "$root/usr/bin/rustc" ] || [ ! -f "$root/.complete" ]; then
    oms_log "bootstrapping Debian rustc-web + std source into $root (one time, a few minutes)"
    command -v apt-get >/dev/null || { oms_log "apt-get not found: install the wasm32-wasip1 target with rustup instead"; return 1; }
    mkdir -p "$debs" "$root"
    rm -f "$debs"/*.deb  # a half-finished earlier try must not mix versions
    # Package lists on a fresh machine can be months old (and name a rustc-web too old for the
    # guests, or none): refresh them first. This runs once, with the bootstrap.
    oms_log "refreshing the package lists (apt-get update)"
    apt-get update -qq >&2 || oms_log "apt-get update failed; trying the lists as they are"
    # The three rust-web packages must share one version; the libstd-rust-web-X.Y name carries it.
    local std_pkg
    std_pkg=$(apt-cache depends libstd-rust-web-dev 2>/dev/null | awk '/Depends: libstd-rust-web-[0-9]/ {print $2; exit}')
    [ -n "$std_pkg" ] || { oms_log "no libstd-rust-web package found in apt"; return 1; }
    # rustc links against LLVM through the std package (libstd-rust-web-X.Y depends on libllvmN).
    local llvm_pkg
    llvm_pkg=$(apt-cache depends rustc-web "$std_pkg" 2>/dev/null | awk '/Depends: libllvm[0-9]+/ {print $2; exit}')
    [ -n "$llvm_pkg" ] || { oms_log "cannot tell which libllvm $std_pkg needs"; return 1; }
    oms_log "fetching rustc-web, $std_pkg, rust-web-src, $llvm_pkg, wasi-libc"
    (cd "$debs" && apt-get download rustc-web libstd-rust-web-dev "$std_pkg" rust-web-src "$llvm_pkg" wasi-libc >&2) \
      || { oms_log "apt-get download failed"; return 1; }
    local deb
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$root"; done
    touch "$root/.complete"
  fi
  # Linkers: rustup's toolchain ships rust-lld; rustc for wasm32 calls it as wasm-ld / rust-lld.
  local lld
  lld="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
  [ -x "$lld" ] || { oms_log "rust-lld not found at $lld"; return 1; }
  mkdir -p "$oms_tc/linkers"
  ln -sf "$lld" "$oms_tc/linkers/wasm-ld"
  ln -sf "$lld" "$oms_tc/linkers/rust-lld"

  export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export RUSTC="$root/usr/bin/rustc"
  export RUSTC_BOOTSTRAP=1
  export PATH="$oms_tc/linkers:$PATH"
  export CARGO_UNSTABLE_BUILD_STD="std,panic_abort"
  export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C link-self-contained=no -L $root/usr/lib/wasm32-wasi"
  # A target dir of its own: a different rustc must not invalidate the host's build.
  export OMS_WASM_TARGET_DIR="$oms_root/target/wasm-debian"
  export CARGO_TARGET_DIR="$OMS_WASM_TARGET_DIR"
  # rustc-web looks for its std source here (rust-src layout).
  local src
  src=$("$RUSTC" --print sysroot)/lib/rustlib/src/rust
  [ -d "$src/library" ] || { oms_log "std source missing at $src"; return 1; }
  export OMS_WASM_TOOLCHAIN=debian
  oms_log "using Debian rustc-web ($("$RUSTC" --version)) with -Zbuild-std (no wasm32-wasip1 std in rustup)"
}

if [ "${OMS_WASM_TOOLCHAIN:-}" = "" ]; then
  if oms_has_rustup_target; then
    export OMS_WASM_TOOLCHAIN=rustup
    oms_log "using rustup's installed wasm32-wasip1 target"
  else
    oms_debian_toolchain || return 1
  fi
fi
