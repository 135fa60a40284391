#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod async_verifier;
pub mod budget;
pub mod budget_key;
pub mod clock;
pub mod code;
pub mod context;
pub mod delivery;
pub mod error;
pub mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod guide;
pub mod keys;
pub mod message;
pub mod phone;
pub mod policy;
pub mod record;
#[cfg(feature = "serde")]
pub mod serde_impls;
pub mod store;
pub mod subject;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod validation;
pub mod verifier;

pub use async_verifier::AsyncVerifier;
pub use budget_key::Budgets;
#[cfg(feature = "std")]
pub use clock::SystemClock;
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use code::Code;
pub use context::{Context, ContextBuilder};
pub use delivery::{Delivery, SendId};
pub use error::{Error, PublicError, StoreError};
pub use events::Events;
pub use keys::{KeyError, KeyId, KeyRef, KeyRing, SecretKey};
pub use phone::{MaskedNumber, PhoneError, PhoneNumber, PhonePolicy};
pub use policy::{Policy, PolicyBuilder, PolicyError, ResendMode};
pub use record::{Contradiction, Record, RecordError, State};
// `MemoryStore` implements both store traits: with both in scope (a glob
// import), name the one meant, as in `Store::load(&store, &key)`.
pub use store::{AsyncStore, MemoryStore, RecordKey, Store, Swap, Transition, Update, Version};
pub use subject::{Channel, Purpose, PurposeError, SubjectKey, Tenant};
pub use validation::{Engine, Event, Sent, Status, Step, Validated};
pub use verifier::Verifier;

/// The random-source traits otpflow takes (`rand_core` 0.10).
pub use rand_core;
/// The date and time types otpflow takes and returns (`time` 0.3): use
/// this re-export so your `OffsetDateTime` and `Duration` are otpflow's.
pub use time;
