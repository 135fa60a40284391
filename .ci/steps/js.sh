#!/usr/bin/env bash
# The JavaScript package (crates/otpflow-js): builds the npm package (full and
# slim modules; fails when the slim module is 100 KB or more, or 40 KB or more
# gzipped), runs the node tests on both modules, then the wasm-bindgen-test
# suite in headless Chromium. See crates/otpflow-js/scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash crates/otpflow-js/scripts/test.sh
