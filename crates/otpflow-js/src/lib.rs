//! otpflow for JavaScript and TypeScript: node services, browsers and edge
//! functions, through wasm-bindgen.
//!
//! The npm package (built by `scripts/build.sh` in this crate's folder) is
//! this crate's module and the JavaScript and TypeScript declarations
//! wasm-bindgen generates from it. Its classes:
//!
//! - [`PhoneNumber`] (`PhoneNumber.parse`, `PhoneNumber.fromParts`) and
//!   [`PhonePolicy`]: every way a number is written, to canonical E.164.
//! - [`Policy`] and [`PolicyBuilder`]: code length, lifetimes, budgets.
//! - [`KeyRing`]: the HMAC keys codes are derived with, rotated by id.
//! - [`Verifier`]: start, resend, verify, cancel and status over a
//!   **JavaScript store object** (the `Store` interface: async `load` and
//!   `compareAndSwap` of records as `Uint8Array`s), so a node service keeps
//!   records in its own Redis or database; [`MemoryStore`] is one.
//!   `startWithin` / `resendWithin` also spend from attack budgets (the
//!   client's address, the number's range, its country, a global key,
//!   labels; `Policy.builder().budgetRate(…)`) against SMS pumping, and a
//!   context (`{ amount, payee }`, `{ session }`) binds a code to what it
//!   approves.
//!
//! Every refusal is a JavaScript `Error` with `code`, `httpStatus`,
//! `retryAfter` (seconds, or `null`) and `public`, the enumeration-safe
//! answer to give someone who may not hold the number (see [`error`]).
//!
//! The host build of this crate compiles (so the workspace builds and
//! documents it) but its functions call JavaScript: they run only in a wasm
//! module under node or a browser.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(feature = "narrow"))]
pub mod error;
#[cfg(not(feature = "narrow"))]
mod instant;
#[cfg(not(feature = "narrow"))]
pub mod keys;
#[cfg(not(feature = "narrow"))]
pub mod phone;
#[cfg(not(feature = "narrow"))]
pub mod policy;
#[cfg(not(feature = "narrow"))]
pub mod store;
#[cfg(not(feature = "narrow"))]
pub mod verifier;

#[cfg(feature = "narrow")]
pub mod narrow;

#[cfg(not(feature = "narrow"))]
pub use keys::KeyRing;
#[cfg(not(feature = "narrow"))]
pub use phone::{PhoneNumber, PhonePolicy};
#[cfg(not(feature = "narrow"))]
pub use policy::{Policy, PolicyBuilder};
#[cfg(not(feature = "narrow"))]
pub use store::MemoryStore;
#[cfg(not(feature = "narrow"))]
pub use verifier::Verifier;

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
