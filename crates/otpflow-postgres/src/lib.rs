#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod migrate;
pub mod store;
pub mod subject_hash;

pub use error::PgStoreError;
pub use migrate::SCHEMA_VERSION;
pub use store::{BlockingPgStore, PgStore, PgStoreBuilder};
pub use subject_hash::SubjectHasher;

/// The pool this crate uses (for [`PgStore::from_pool`]).
pub use deadpool_postgres;
/// The PostgreSQL client this crate speaks through (for its `Config`).
pub use tokio_postgres;
