#!/usr/bin/env bash
# Builds the npm package into crates/otpflow-js/pkg (or $1): the full module
# (with the phonenumber crate) and the slim one (UK fast path and the
# structural check), each the crate's narrow module (src/narrow.rs: byte-
# level step exports) under the one plain-JavaScript layer (package/api.js),
# with an ES module entry for node (package/node.js: loads the module
# synchronously) and one for browsers, edge functions and bundlers
# (package/web.js: `await init()`), and the hand-written TypeScript
# declarations (package/*.d.ts).
# Prints each module's size, raw and gzipped, and fails when the slim module
# reaches SLIM_LIMIT bytes or SLIM_GZIP_LIMIT gzipped. The goal (issue 12)
# is 100 KB and 40 KB gzipped; the limits below are a ceiling just above
# what the slim module is today (see the README's table), against
# regressions, not the goal.
#
# Needs: rustup target wasm32-unknown-unknown, wasm-bindgen-cli at the exact
# version of wasm-bindgen in Cargo.lock, and binaryen's wasm-opt from npm
# (`npm ci --prefix crates/otpflow-js/tools`; .ci/install/js.sh does both),
# or WASM_OPT naming another wasm-opt.
# The size flags (opt-level "z", fat LTO, one codegen unit, panic = "abort",
# no debug info; SHA-256's compact software rounds; crate paths in panic
# locations shortened) are set here, for these builds only, in their own
# target dirs. The module is not stripped: wasm-bindgen reads its
# target_features section, then drops the name and producers sections
# itself. wasm-opt -Oz shrinks the slim module wasm-bindgen wrote (the same
# for node and the web: optimized once, copied).
#
# The slim module is built with the nightly toolchain: its standard library
# rebuilt for the size profile (-Zbuild-std) with immediate-abort panics
# (-Cpanic=immediate-abort), so no panic message, location or formatting
# code is in the module (a panic is a trap either way: the module aborts).
# That is 10.6 KB and 4.4 KB gzipped of its size goal (issue 12). It needs
# `rustup toolchain install nightly`, `rustup component add rust-src
# --toolchain nightly` and `rustup target add wasm32-unknown-unknown
# --toolchain nightly` (.ci/install/js.sh); without them, or when a newer
# nightly refuses these flags, the build fails: it never falls back to a
# stable, bigger module. The full module is built with stable.
set -euo pipefail
crate=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$crate/../.." && pwd)
out=${1:-$crate/pkg}
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac

SLIM_LIMIT=${SLIM_LIMIT:-100400}
SLIM_GZIP_LIMIT=${SLIM_GZIP_LIMIT:-47900}

wasm_opt=${WASM_OPT:-$crate/tools/node_modules/.bin/wasm-opt}
if ! "$wasm_opt" --version >/dev/null 2>&1; then
  echo "wasm-opt is needed (binaryen, from npm): npm ci --prefix crates/otpflow-js/tools" >&2
  exit 1
fi
# The features rustc's wasm32-unknown-unknown target enables by default;
# wasm-opt must accept them and may use no others.
wasm_features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)

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
export CARGO_PROFILE_RELEASE_STRIP=false
export CARGO_PROFILE_RELEASE_DEBUG=false
# sha2's compact rounds: a fifth of the unrolled ones' code, fast enough for
# the few HMACs a call derives. Panic locations name crates by a short path.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="${RUSTFLAGS:-} --cfg sha2_backend_soft=\"compact\" --remap-path-prefix=$cargo_home/registry/src=crates --remap-path-prefix=$root=otpflow"

rm -rf "$out"
mkdir -p "$out"

if ! rustup run nightly rustc --version >/dev/null 2>&1 ||
  ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src' ||
  ! rustup target list --toolchain nightly --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  echo "the slim module is built with nightly, its rust-src and its wasm32-unknown-unknown target:" >&2
  echo "  rustup toolchain install nightly --profile minimal" >&2
  echo "  rustup component add rust-src --toolchain nightly" >&2
  echo "  rustup target add wasm32-unknown-unknown --toolchain nightly" >&2
  exit 1
fi

# build <flavor> <cargo feature flags...>: the module, its glue, the layer.
# The slim flavor with nightly's build-std and immediate-abort panics.
build() {
  local flavor=$1
  shift
  local dir="$target_dir/otpflow-js-$flavor"
  if [ "$flavor" = slim ]; then
    (cd "$root" && RUSTFLAGS="$RUSTFLAGS -Zunstable-options -Cpanic=immediate-abort" \
      cargo +nightly build -Zbuild-std=std,panic_abort -p otpflow-js --lib --release \
      --target wasm32-unknown-unknown --target-dir "$dir" "$@")
  else
    (cd "$root" && cargo build -p otpflow-js --lib --release --target wasm32-unknown-unknown \
      --target-dir "$dir" "$@")
  fi
  local wasm="$dir/wasm32-unknown-unknown/release/otpflow_js.wasm"
  local sub=$out
  [ "$flavor" = full ] || sub=$out/$flavor
  local glue=$sub/glue
  # One ES module glue for both: node's entry loads the wasm synchronously.
  wasm-bindgen --target web --out-dir "$glue" --out-name otpflow_glue --no-typescript \
    --remove-name-section --remove-producers-section "$wasm"
  # The full module is left as wasm-bindgen wrote it: wasm-opt takes a few
  # percent off its bytes but adds some gzipped (mostly phone metadata).
  if [ "$flavor" = slim ]; then
    "$wasm_opt" -Oz --converge "${wasm_features[@]}" "$glue/otpflow_glue_bg.wasm" -o "$glue/otpflow_glue_bg.wasm"
  fi
  for target in node web; do
    mkdir -p "$sub/$target"
    cp "$glue/otpflow_glue.js" "$glue/otpflow_glue_bg.wasm" "$crate/package/api.js" "$crate/package/api.d.ts" "$sub/$target/"
    cp "$crate/package/$target.js" "$sub/$target/otpflow.js"
    cp "$crate/package/$target.d.ts" "$sub/$target/otpflow.d.ts"
    printf '{ "type": "module" }\n' >"$sub/$target/package.json"
  done
  rm -rf "$glue"
}

build full
build slim --no-default-features

size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1024 }'; }
full_wasm=$out/node/otpflow_glue_bg.wasm
slim_wasm=$out/slim/node/otpflow_glue_bg.wasm
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
  echo "(the goal is 100 KB and 40 KB gzipped)" >&2
  exit 1
fi
