#!/usr/bin/env bash
# The JavaScript package (crates/otpflow-js): builds the npm package (full and
# slim modules; fails when the slim module passes its size ceiling, see
# scripts/build.sh), runs the node tests on both modules, then the wasm-bindgen-test
# suite in headless Chromium. See crates/otpflow-js/scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash crates/otpflow-js/scripts/test.sh
