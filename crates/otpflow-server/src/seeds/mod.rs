//! The seed APIs, one module each, with their own paths, bodies, field
//! names, status codes and error bodies.

// The helpers return the finished answer as their `Err`: it goes straight
// back to the client, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod kavoon;
pub mod kgen;
pub mod kii;
pub mod verifik;
