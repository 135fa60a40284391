//! The reference service serving the seed phone-verification APIs
//! (Kavoon, Verifik login and onboarding, Kii, KGen) on top of
//! [`otpflow`]. See the crate README for the routes, the configuration and
//! every choice made where a seed's document is silent.
//!
//! The binary is `otpflow-server`; this library exposes its parts so the
//! tests and the load run can build the same service.

#![forbid(unsafe_code)]

pub mod app;
pub mod backend;
pub mod body;
pub mod clock;
pub mod config;
pub mod facts;
pub mod keys;
pub mod kii;
pub mod openapi;
pub mod seeds;
pub mod sender;
pub mod server;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod tokens;
pub mod webhooks;
