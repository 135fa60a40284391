//! The [`Store`] contract (versioned compare-and-swap) and [`MemoryStore`].

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::policy::Policy;
use crate::record::Record;
use crate::subject::SubjectKey;

/// The version of a stored record. A store gives every write of a key a new
/// version (a counter is enough); it never reuses one for that key while the
/// record exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u64);

/// The result of a [`Store::compare_and_swap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Swap {
    /// The record was written; this is its new version.
    Done(Version),
    /// The stored version was not the expected one; nothing was written.
    Conflict,
}

/// Where records live: one per [`SubjectKey`], written only by
/// compare-and-swap.
///
/// # Security contract
///
/// otpflow's guarantees — a code validates at most once, no more checks are
/// accepted than the budget, the failure cap holds across resends and new
/// validations — rest on these promises. An implementation must keep them:
///
/// 1. **Atomic compare-and-swap.** `compare_and_swap(key, expected, new)`
///    writes `new` only if the stored version of `key` is still `expected`
///    (`None`: no record), and does so atomically with that comparison. Two
///    calls with the same `expected` never both return [`Swap::Done`]. This
///    is what stops two concurrent checks from both spending the last
///    attempt, or one code from validating twice.
/// 2. **Fresh versions.** Every successful write gives the key a version it
///    has not had while its record existed.
/// 3. **No lost or resurrected writes.** A `load` after `Done` returns that
///    record or a later one, never an older one. A replica that can serve a
///    stale read is fine only if the compare-and-swap itself is checked
///    against the primary: a stale read then costs a [`Swap::Conflict`],
///    never a double spend.
/// 4. **Deletion only when allowed.** A record may be dropped at or after
///    [`Record::expires_at`] (use it as a TTL), never before: dropping early
///    resets the subject's failure and send budgets.
///
/// False refusals are safe (a spurious `Conflict` or an error is retried or
/// surfaced as [`Error::Store`](crate::Error::Store)); false acceptances are
/// not. Records hold no secret that validates a code, but they do reveal
/// which numbers are being verified: protect them as personal data.
///
/// The contract maps onto Redis (a Lua script comparing a version field),
/// SQL (`UPDATE … SET version = version + 1 WHERE key = $1 AND version = $2`,
/// or `INSERT` for `expected = None`) and DynamoDB conditional writes. Stores
/// of bytes use [`Record::to_bytes`] and [`Record::from_bytes`].
pub trait Store {
    /// The store's own failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The record for `key` and its version, or `None` if there is none.
    ///
    /// # Errors
    /// The store's error; the caller surfaces it and changes nothing.
    fn load(&self, key: &SubjectKey) -> Result<Option<(Record, Version)>, Self::Error>;

    /// Writes `new` only if the stored version is still `expected` (`None`:
    /// only if there is no record).
    ///
    /// # Errors
    /// The store's error; then nothing may have been written.
    fn compare_and_swap(
        &self,
        key: &SubjectKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error>;
}

/// [`Store`]'s contract for stores reached over the network from async
/// code (Redis, PostgreSQL, a JavaScript host's database): the same two
/// operations and the same security contract, as futures that are `Send`,
/// so a multi-threaded executor can hold them across `.await`. otpflow
/// depends on no runtime: a store brings its own.
pub trait AsyncStore: Send + Sync {
    /// The store's own failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The record for `key` and its version, or `None` if there is none.
    ///
    /// # Errors
    /// The store's error; the caller surfaces it and changes nothing.
    fn load(
        &self,
        key: &SubjectKey,
    ) -> impl Future<Output = Result<Option<(Record, Version)>, Self::Error>> + Send;

    /// Writes `new` only if the stored version is still `expected` (`None`:
    /// only if there is no record), atomically with that comparison.
    ///
    /// # Errors
    /// The store's error; then nothing may have been written.
    fn compare_and_swap(
        &self,
        key: &SubjectKey,
        expected: Option<Version>,
        new: &Record,
    ) -> impl Future<Output = Result<Swap, Self::Error>> + Send;
}

impl<S: Store + ?Sized> Store for &S {
    type Error = S::Error;
    fn load(&self, key: &SubjectKey) -> Result<Option<(Record, Version)>, Self::Error> {
        (**self).load(key)
    }
    fn compare_and_swap(
        &self,
        key: &SubjectKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        (**self).compare_and_swap(key, expected, new)
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    type Error = S::Error;
    fn load(&self, key: &SubjectKey) -> Result<Option<(Record, Version)>, Self::Error> {
        (**self).load(key)
    }
    fn compare_and_swap(
        &self,
        key: &SubjectKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        (**self).compare_and_swap(key, expected, new)
    }
}

/// A thread-safe in-memory [`Store`] for one process: records in shards,
/// each a `HashMap` behind its own mutex, so threads working on different
/// subjects rarely wait for each other. Every operation is O(1) on average.
///
/// Records are not dropped by themselves: call
/// [`purge_expired`](Self::purge_expired) now and then (from a timer).
///
/// ```
/// use otpflow::{MemoryStore, Policy};
/// use time::OffsetDateTime;
/// let store = MemoryStore::new();
/// assert!(store.is_empty());
/// let dropped = store.purge_expired(OffsetDateTime::UNIX_EPOCH, &Policy::default());
/// assert_eq!(dropped, 0);
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

#[derive(Debug, Default)]
struct Shard {
    records: HashMap<SubjectKey, (Record, Version)>,
    /// The last version handed out in this shard: versions are unique per
    /// shard, so a deleted and re-created key never reuses one.
    last_version: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with 16 shards per available core (at least 16).
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_shards(16 * cores)
    }

    /// A store with `shards` shards (at least one).
    pub fn with_shards(shards: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).records.len()).sum()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every record whose [`Record::expires_at`] is at or before `now`
    /// (under `policy`, the one the records were written with); returns how
    /// many were dropped.
    pub fn purge_expired(&self, now: OffsetDateTime, policy: &Policy) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let before = shard.records.len();
            shard
                .records
                .retain(|_, (record, _)| record.expires_at(policy) > now);
            dropped += before - shard.records.len();
        }
        dropped
    }

    fn shard(&self, key: &SubjectKey) -> MutexGuard<'_, Shard> {
        let hash = self.hasher.hash_one(key);
        let len = self.shards.len() as u64; // usize fits in u64 on every target
        let index = usize::try_from(hash % len).unwrap_or(0);
        lock(&self.shards[index])
    }
}

/// A poisoned shard means a thread panicked while holding it; every write
/// here is a single `insert`, so the map is still consistent and is used.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store for MemoryStore {
    type Error = std::convert::Infallible;

    fn load(&self, key: &SubjectKey) -> Result<Option<(Record, Version)>, Self::Error> {
        Ok(self.shard(key).records.get(key).cloned())
    }

    fn compare_and_swap(
        &self,
        key: &SubjectKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        let mut shard = self.shard(key);
        let version = Version(shard.last_version + 1);
        match (shard.records.get_mut(key), expected) {
            (Some(slot), Some(expected)) if slot.1 == expected => *slot = (new.clone(), version),
            (None, None) => {
                shard.records.insert(key.clone(), (new.clone(), version));
            }
            _ => return Ok(Swap::Conflict),
        }
        shard.last_version = version.0;
        Ok(Swap::Done(version))
    }
}

/// `MemoryStore` as an [`AsyncStore`]: every future is ready at once (it
/// never waits), so async code and [`AsyncVerifier`](crate::AsyncVerifier)
/// can run over it in tests or in one process.
impl AsyncStore for MemoryStore {
    type Error = std::convert::Infallible;

    fn load(
        &self,
        key: &SubjectKey,
    ) -> impl Future<Output = Result<Option<(Record, Version)>, Self::Error>> + Send {
        std::future::ready(Store::load(self, key))
    }

    fn compare_and_swap(
        &self,
        key: &SubjectKey,
        expected: Option<Version>,
        new: &Record,
    ) -> impl Future<Output = Result<Swap, Self::Error>> + Send {
        std::future::ready(Store::compare_and_swap(self, key, expected, new))
    }
}
