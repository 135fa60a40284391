//! The seed APIs, one module each, with their own paths, bodies, field
//! names, status codes and error bodies.

pub mod kavoon;
pub mod kgen;
pub mod kii;
pub mod verifik;
