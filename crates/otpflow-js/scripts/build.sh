#!/usr/bin/env bash
# Builds the npm package into crates/otpflow-js/pkg (or $1): the full module
# (with the phonenumber crate) and the slim one (UK fast path and the
# structural check), each for node (CommonJS) and for browsers and bundlers
# (an ES module with an init function), with TypeScript declarations.
# Prints each module's size, raw and gzipped, and fails if the slim module
# is over 100 KB or 40 KB gzipped.
#
# Needs: rustup target wasm32-unknown-unknown, and wasm-bindgen-cli at the
# exact version of wasm-bindgen in Cargo.lock (.ci/install/js.sh installs it).
# The size flags (opt-level "z", fat LTO, one codegen unit, panic = "abort",
# stripped) are set here, for these builds only, in their own target dirs.
set -euo pipefail
crate=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$crate/../.." && pwd)
out=${1:-$crate/pkg}
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac

SLIM_LIMIT=$((100 * 1024))
SLIM_GZIP_LIMIT=$((40 * 1024))

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }') || true
if [ "$want" != "$have" ]; then
  echo "wasm-bindgen-cli $want is needed (found: ${have:-none}):" >&2
  echo "  cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_PROFILE_RELEASE_STRIP=true
export CARGO_PROFILE_RELEASE_DEBUG=false

rm -rf "$out"
mkdir -p "$out"

# build <flavor> <cargo feature flags...>: the module, then its bindings.
build() {
  local flavor=$1
  shift
  local dir="$target_dir/otpflow-js-$flavor"
  (cd "$root" && cargo build -p otpflow-js --lib --release --target wasm32-unknown-unknown \
    --target-dir "$dir" "$@")
  local wasm="$dir/wasm32-unknown-unknown/release/otpflow_js.wasm"
  local sub=$out
  [ "$flavor" = full ] || sub=$out/$flavor
  for target in nodejs web; do
    local dest=$sub/node
    [ "$target" = web ] && dest=$sub/web
    wasm-bindgen --target "$target" --out-dir "$dest" --out-name otpflow \
      --remove-name-section --remove-producers-section "$wasm"
  done
}

build full
build slim --no-default-features

size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1024 }'; }
full_wasm=$out/node/otpflow_bg.wasm
slim_wasm=$out/slim/node/otpflow_bg.wasm
for flavor in full slim; do
  wasm=$full_wasm
  [ "$flavor" = slim ] && wasm=$slim_wasm
  printf 'otpflow-js %s module: %d bytes (%s), %d bytes gzipped (%s)\n' "$flavor" \
    "$(size "$wasm")" "$(kb "$(size "$wasm")")" "$(gz "$wasm")" "$(kb "$(gz "$wasm")")"
done

cp "$crate/package/package.json" "$crate/package/README.md" "$out/"
echo "package: $out"

if [ "$(size "$slim_wasm")" -ge "$SLIM_LIMIT" ] || [ "$(gz "$slim_wasm")" -ge "$SLIM_GZIP_LIMIT" ]; then
  echo "the slim module is over its limits: $SLIM_LIMIT bytes, $SLIM_GZIP_LIMIT bytes gzipped" >&2
  exit 1
fi
