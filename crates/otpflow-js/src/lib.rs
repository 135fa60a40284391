//! otpflow for JavaScript and TypeScript: node services, browsers and edge
//! functions.
//!
//! The npm package (built by `scripts/build.sh` in this crate's folder) is a
//! plain-JavaScript layer (`package/api.js`: the classes `PhoneNumber`,
//! `PhonePolicy`, `Policy`, `PolicyBuilder`, `KeyRing`, `MemoryStore`,
//! `Verifier` and `OtpflowError`, and the verifier's load → step →
//! compare-and-swap → retry loop over the caller's store object) over this
//! crate's module: the narrow, byte-level exports of [`narrow`], each one
//! pure step of the core. Nothing JavaScript crosses into the module but
//! numbers, strings and byte arrays: no promises, objects or closures; no
//! `format!` is reached from an export (error messages are written in
//! JavaScript from the codes), which keeps the slim module small.
//!
//! Every rule stays in Rust: code derivation and checking, budgets and
//! lockouts, which budget refusal wins (`otpflow::budget_key::allows_last`),
//! the record codec, phone parsing. The JavaScript layer only carries bytes
//! between the module and the store, in the order the core's own
//! `AsyncVerifier` uses.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod narrow;

/// The module's allocator: talc's (a fraction of the size of dlmalloc,
/// Rust's default on wasm), growing the wasm memory as it needs.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use wasm_bindgen::prelude::wasm_bindgen;

/// `"full"` when the module validates every country's numbers with the
/// `phonenumber` crate, `"slim"` when it has only the UK fast path and the
/// structural check.
#[wasm_bindgen(js_name = buildFlavor)]
pub fn build_flavor() -> String {
    if cfg!(feature = "phonenumber") {
        "full".into()
    } else {
        "slim".into()
    }
}
