//! The package in a real browser (headless Chromium through
//! `wasm-bindgen-test-runner`): the plain-JavaScript layer
//! (`package/api.js`) bound to this test's module (its narrow exports),
//! driven by the cases in `tests/browser/suite.js`, with the browser's
//! `crypto.getRandomValues`, `Date.now()` and event loop. Each test runs
//! one case; a case throws on a failure. `scripts/test.sh` runs the suite
//! on the slim build; on the host this file compiles to nothing.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(module = "/package/api.js")]
extern "C" {
    /// The package's API over a module's glue.
    fn bind(glue: &JsValue) -> JsValue;
}

#[wasm_bindgen(module = "/tests/browser/suite.js")]
extern "C" {
    /// This test module's glue (its exports: the narrow module's).
    #[wasm_bindgen(catch)]
    async fn glue() -> Result<JsValue, JsValue>;

    /// Runs the case `name` against the bound API.
    #[wasm_bindgen(catch)]
    async fn run(name: &str, api: &JsValue) -> Result<JsValue, JsValue>;
}

/// Runs a case of the suite against the API bound to this module.
async fn case(name: &str) {
    // A call into the library links its narrow module (and with it the
    // module's exports) into this test's module.
    assert!(otpflow_js::narrow::region_known("GB"));
    assert_eq!(otpflow_js::build_flavor(), "slim");
    let glue = glue().await.expect("the test module's glue loads");
    let api = bind(&glue);
    if let Err(e) = run(name, &api).await {
        let message = js_sys::Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| format!("{e:?}"));
        panic!("{name}: {message}");
    }
}

#[wasm_bindgen_test]
async fn runs_in_a_browser() {
    case("runsInABrowser").await;
}

#[wasm_bindgen_test]
async fn the_life_cycle() {
    case("lifecycle").await;
}

#[wasm_bindgen_test]
async fn two_concurrent_verifies_one_succeeds() {
    case("twoConcurrentVerifies").await;
}

#[wasm_bindgen_test]
async fn codes_come_from_crypto_get_random_values() {
    case("codesAreRandom").await;
}

#[wasm_bindgen_test]
async fn phone_errors_are_errors_with_fields() {
    case("phoneErrors").await;
}

#[wasm_bindgen_test]
async fn budgets_refuse_the_send_past_an_address_rate() {
    case("budgets").await;
}

#[wasm_bindgen_test]
async fn a_code_bound_to_a_context_validates_only_under_it() {
    case("context").await;
}
