#!/usr/bin/env bash
# What the JavaScript package's tests need (crates/otpflow-js): the wasm
# target, wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock
# (it also brings wasm-bindgen-test-runner), node 20+, binaryen's wasm-opt
# from npm (crates/otpflow-js/tools, a few seconds), and Chromium with its
# driver for the browser suite; for the slim module, the nightly toolchain's
# rust-src and wasm32 target (scripts/build.sh builds it with -Zbuild-std).
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

rustup target add wasm32-unknown-unknown >/dev/null 2>&1
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
rustup component add rust-src --toolchain nightly >/dev/null
rustup target add wasm32-unknown-unknown --toolchain nightly >/dev/null

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$want" ] || { echo "Cargo.lock has no wasm-bindgen" >&2; exit 1; }
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }') || true
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (found: ${have:-none})"
  cargo install wasm-bindgen-cli --version "$want" --quiet
fi

command -v node >/dev/null || { echo "node (20+) is needed for the JavaScript package's tests" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "node 20+ is needed, found $(node --version)" >&2; exit 1; }

tools=crates/otpflow-js/tools
want_opt=$(node -p "require('./$tools/package.json').devDependencies.binaryen.split('.')[0]")
have_opt=$("$tools/node_modules/.bin/wasm-opt" --version 2>/dev/null | awk '{ print $3 }') || true
if [ "$have_opt" != "$want_opt" ]; then
  echo "installing binaryen (wasm-opt $want_opt) from npm"
  npm ci --prefix "$tools" --no-audit --no-fund --silent
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "installing chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi
wasm-bindgen --version
"$tools/node_modules/.bin/wasm-opt" --version
chromium --version
