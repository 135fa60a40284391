//! Black-box tests: the real binary on a free port, each seed's flow over
//! HTTP with reqwest, codes read from the outbox.

mod budgets;
mod harness;
mod kavoon;
mod kgen;
mod kii;
mod pg_store;
mod redis_store;
mod service;
mod shared;
mod stores;
mod verifik;
mod webhooks;
