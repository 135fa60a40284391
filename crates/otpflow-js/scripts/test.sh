#!/usr/bin/env bash
# Tests the npm package: builds it (scripts/build.sh, which also checks the
# slim module's size), runs the node tests on the full and the slim module,
# then the wasm-bindgen-test suite in headless Chromium and the built web
# entries in Chromium (tests/browser/package-check.mjs). Fails when a runner
# ran no test, or when the browser suite did not run in a browser.
#   CHROMEDRIVER  the chromedriver binary (default: the one on PATH)
set -euo pipefail
crate=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$crate/../.." && pwd)
pkg=$crate/pkg
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

bash "$crate/scripts/build.sh" "$pkg"

# node 20's runner takes no globs: every test file by name.
node_tests=(
  tests/node/lifecycle.test.mjs
  tests/node/concurrency.test.mjs
  tests/node/enumeration.test.mjs
  tests/node/phone.test.mjs
  tests/node/budgets.test.mjs
  tests/node/context.test.mjs
  tests/node/giveback.test.mjs
)
for flavor in full slim; do
  module=$pkg/node/otpflow.js
  [ "$flavor" = slim ] && module=$pkg/slim/node/otpflow.js
  echo "node tests on the $flavor module"
  (cd "$crate" && OTPFLOW_JS_PKG=$module node --test "${node_tests[@]}") | tee "$log/node-$flavor"
  passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log/node-$flavor")
  if [ "${passed:-0}" -eq 0 ]; then
    echo "node --test ran no test on the $flavor module" >&2
    exit 1
  fi
done

# The browser suite: wasm-bindgen-test-runner drives headless Chromium
# through chromedriver (it passes --headless and --no-sandbox, which
# Chromium needs to run as root). WASM_BINDGEN_USE_BROWSER makes it run
# every test in the browser, not only those configured for one. It runs on
# the slim build (a quicker compile): the browser part is the bindings,
# crypto.getRandomValues and the event loop; node covers both phone builds.
chromedriver=${CHROMEDRIVER:-$(command -v chromedriver || true)}
if [ -z "$chromedriver" ]; then
  echo "chromedriver is needed for the browser tests (apt-get install chromium chromium-driver)" >&2
  exit 1
fi
echo "browser tests (headless Chromium)"
(cd "$crate" && CHROMEDRIVER=$chromedriver WASM_BINDGEN_USE_BROWSER=1 \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --manifest-path "$root/Cargo.toml" -p otpflow-js \
  --target wasm32-unknown-unknown --no-default-features --test browser) 2>&1 | tee "$log/browser"
if ! grep -q "Running headless tests in Chrome" "$log/browser"; then
  echo "the browser suite did not run in Chromium" >&2
  exit 1
fi
browser_passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log/browser" | tail -n 1)
if [ "${browser_passed:-0}" -eq 0 ]; then
  echo "the browser suite ran no test" >&2
  exit 1
fi
# The built package's web entries (init() fetching the module, a life
# cycle) in headless Chromium, full and slim.
chromium_bin=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$chromium_bin" ]; then
  echo "chromium is needed for the package's web check (apt-get install chromium)" >&2
  exit 1
fi
CHROMIUM=$chromium_bin node "$crate/tests/browser/package-check.mjs" "$pkg"
echo "otpflow-js: node tests passed on both modules; $browser_passed browser tests passed in Chromium; both web entries ran a life cycle in Chromium"
