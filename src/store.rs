//! The [`Store`] contract (versioned compare-and-swap) and [`MemoryStore`].

use std::cell::Cell;
use std::hash::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::budget_key::BudgetKey;
use crate::policy::Policy;
use crate::record::{At, Record};
use crate::subject::{Purpose, SubjectKey};

/// The name of one record in a store: a subject's, or a budget key's (see
/// [`budget_key`](crate::budget_key)). One record per key, each written by
/// its own compare-and-swap, so a store may put keys on different shards.
///
/// [`store_key`](Self::store_key) is its stable name. A subject's is its
/// [`SubjectKey::store_key`] (records stored before budget keys existed
/// keep their names); a budget key's starts with `#`, which no subject's
/// does.
///
/// ```
/// use otpflow::{PhoneNumber, PhonePolicy, Purpose, RecordKey, SubjectKey};
/// use otpflow::budget_key::BudgetKey;
/// let subject = SubjectKey::new(Purpose::Login, PhoneNumber::parse("07401 101801", &PhonePolicy::default())?);
/// assert_eq!(RecordKey::from(&subject).store_key(), "login:+447401101801");
/// assert_eq!(RecordKey::from(BudgetKey::global()).store_key(), "#budget/global");
/// # Ok::<(), otpflow::PhoneError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    /// A subject's record: its validation and ledger.
    Subject(SubjectKey),
    /// A budget key's bucket.
    Budget(BudgetKey),
}

impl RecordKey {
    /// The record's full, stable name (see the type's docs). It holds a
    /// phone number or an address: hash it before it leaves the process,
    /// and log the key's masked `Display` instead.
    pub fn store_key(&self) -> String {
        match self {
            Self::Subject(s) => s.store_key(),
            Self::Budget(b) => b.store_key(),
        }
    }
}

/// Masked: the subject's masked form, or the budget's kind.
impl core::fmt::Display for RecordKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Subject(s) => core::fmt::Display::fmt(s, f),
            Self::Budget(b) => core::fmt::Display::fmt(b, f),
        }
    }
}

impl From<SubjectKey> for RecordKey {
    fn from(key: SubjectKey) -> Self {
        Self::Subject(key)
    }
}

impl From<&SubjectKey> for RecordKey {
    fn from(key: &SubjectKey) -> Self {
        Self::Subject(key.clone())
    }
}

impl From<BudgetKey> for RecordKey {
    fn from(key: BudgetKey) -> Self {
        Self::Budget(key)
    }
}

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

/// The result of a [`Store::update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Update {
    /// The new record was written; this is its new version.
    Written(Version),
    /// The transition wrote nothing; nothing was written.
    Unchanged,
    /// The record changed between the read and the write; nothing was
    /// written. Run the transition again.
    Conflict,
}

/// A transition handed to [`Store::update`]: it sees the stored record
/// (`None`: none) and returns the record to write, if any. It is pure and
/// may run again after a conflict.
pub type Transition<'a> = dyn FnMut(Option<&Record>) -> Option<Record> + 'a;

/// Where records live: one per [`RecordKey`] (a subject, or a budget key),
/// written only by compare-and-swap.
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
///    resets the subject's failure and send budgets, or a budget key's
///    bucket.
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
    fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, Self::Error>;

    /// Writes `new` only if the stored version is still `expected` (`None`:
    /// only if there is no record).
    ///
    /// # Errors
    /// The store's error; then nothing may have been written.
    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error>;

    /// Reads the record for `key`, runs `transition` on it and writes what it
    /// returns, as one compare-and-swap: [`Update::Conflict`] if the record
    /// changed in between. [`Verifier`](crate::Verifier) calls this.
    ///
    /// The provided implementation is [`load`](Self::load) then
    /// [`compare_and_swap`](Self::compare_and_swap), which keeps the
    /// contract above for any store. A store that can hold the record
    /// while the transition runs (one lock, one lookup: [`MemoryStore`])
    /// overrides it; the transition is short and pure (no I/O), but it
    /// derives a code, so do not hold a lock across a network round trip.
    ///
    /// # Errors
    /// The store's error; then nothing may have been written.
    fn update(
        &self,
        key: &RecordKey,
        transition: &mut Transition<'_>,
    ) -> Result<Update, Self::Error> {
        let loaded = self.load(key)?;
        let Some(new) = transition(loaded.as_ref().map(|(record, _)| record)) else {
            return Ok(Update::Unchanged);
        };
        let expected = loaded.as_ref().map(|(_, version)| *version);
        Ok(match self.compare_and_swap(key, expected, &new)? {
            Swap::Done(version) => Update::Written(version),
            Swap::Conflict => Update::Conflict,
        })
    }
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
        key: &RecordKey,
    ) -> impl Future<Output = Result<Option<(Record, Version)>, Self::Error>> + Send;

    /// Writes `new` only if the stored version is still `expected` (`None`:
    /// only if there is no record), atomically with that comparison.
    ///
    /// # Errors
    /// The store's error; then nothing may have been written.
    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> impl Future<Output = Result<Swap, Self::Error>> + Send;
}

impl<S: Store + ?Sized> Store for &S {
    type Error = S::Error;
    fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, Self::Error> {
        (**self).load(key)
    }
    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        (**self).compare_and_swap(key, expected, new)
    }
    fn update(
        &self,
        key: &RecordKey,
        transition: &mut Transition<'_>,
    ) -> Result<Update, Self::Error> {
        (**self).update(key, transition)
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    type Error = S::Error;
    fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, Self::Error> {
        (**self).load(key)
    }
    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        (**self).compare_and_swap(key, expected, new)
    }
    fn update(
        &self,
        key: &RecordKey,
        transition: &mut Transition<'_>,
    ) -> Result<Update, Self::Error> {
        (**self).update(key, transition)
    }
}

/// A thread-safe in-memory [`Store`] for one process: a concurrent hash
/// table (`papaya`) whose lookups take no lock and write no line that other
/// threads read, over records that each have their own lock. Threads
/// working on different subjects share no written cache line, and every
/// operation is O(1) on average: [`update`](Store::update) hashes the key
/// once, finds the record without a lock, and holds the record's own lock
/// while the transition runs (SipHash with a random key, as keys are
/// attacker-chosen numbers).
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
pub struct MemoryStore {
    /// `papaya` rather than shards of `hashbrown` behind mutexes: with
    /// shards, every operation wrote its shard's lock word, a line the
    /// other core had last written about half the time whatever the shard
    /// count, and two threads scaled 1.63× instead of the 1.98× of two
    /// stores sharing nothing. A `papaya` lookup reads the table and
    /// writes only the thread's own epoch slot; a write to a record takes
    /// that record's lock, on the record's own line.
    records: papaya::HashMap<CompactKey, Slot, RandomState>,
}

/// One record, its version and its lock. A slot is found without a lock
/// and then locked; [`Version`] 0 (never handed out) marks a slot that
/// [`MemoryStore::purge_expired`] took out of the table, so a writer that
/// found it just before looks again instead of writing into a record that
/// is gone.
struct Slot(Mutex<Held>);

struct Held {
    record: Record,
    version: Version,
}

/// Marks a slot taken out of the table.
const GONE: Version = Version(0);

/// Versions are unique in the process, not just per key: each thread takes
/// a block of [`BLOCK`] from this counter and hands them out itself, so
/// writes share no counter line. 2^64 versions: none is ever reused.
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

/// Versions a thread takes from [`NEXT_BLOCK`] at once.
const BLOCK: u64 = 1 << 16;

std::thread_local! {
    /// The thread's next version and the end of its block.
    static VERSIONS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A version no write of any key in this process has had.
fn fresh_version() -> Version {
    VERSIONS.with(|cell| {
        let (mut next, mut end) = cell.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next.saturating_add(BLOCK);
        }
        cell.set((next + 1, end));
        Version(next)
    })
}

/// A [`RecordKey`] as the memory store holds it. A subject's key without a
/// tenant and under a built-in purpose (the usual case) is packed into 16
/// bytes with nothing on the heap; any other key is boxed as it is. Exact
/// either way: two keys are equal exactly when their compact forms are (a
/// subject's key ignores its context; so does this).
#[derive(Debug, PartialEq, Eq)]
enum CompactKey {
    Packed(Packed),
    Other(Box<RecordKey>),
}

/// A phone number's E.164 digits as an integer (below 10^15 < 2^50), their
/// count in bits 56 to 59 (so leading zeros count), and the purpose's
/// number in bit 60.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Packed(u64);

/// A key being looked up: packed, or the caller's own (nothing cloned or
/// allocated to find a record).
#[derive(Clone, Copy)]
enum KeyRef<'a> {
    Packed(Packed),
    Other(&'a RecordKey),
}

impl<'a> KeyRef<'a> {
    fn of(key: &'a RecordKey) -> Self {
        let RecordKey::Subject(s) = key else {
            return Self::Other(key);
        };
        let purpose = match s.purpose() {
            Purpose::Login => 0,
            Purpose::Onboarding => 1,
            Purpose::Custom(_) => return Self::Other(key),
        };
        if s.tenant().is_some() {
            return Self::Other(key);
        }
        // The bytes after `+` (no UTF-8 check: only ASCII is ever there).
        let digits = s.phone().e164_bytes().get(1..).unwrap_or_default();
        // At most 15 digits (E.164): below 10^15 < 2^50.
        let Ok(count) = u64::try_from(digits.len()) else {
            return Self::Other(key);
        };
        if count > 15 {
            return Self::Other(key);
        }
        let value = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d.wrapping_sub(b'0') % 10));
        Self::Packed(Packed(value | (count << 56) | (purpose << 60)))
    }

    fn to_owned(self) -> CompactKey {
        match self {
            Self::Packed(p) => CompactKey::Packed(p),
            Self::Other(k) => CompactKey::Other(Box::new(k.clone())),
        }
    }
}

/// Exact (see [`CompactKey`]): a packed key is compared as its integer,
/// held in the table's entry itself (no pointer followed).
impl papaya::Equivalent<CompactKey> for KeyRef<'_> {
    fn equivalent(&self, stored: &CompactKey) -> bool {
        match (self, stored) {
            (Self::Packed(a), CompactKey::Packed(b)) => a == b,
            (Self::Other(a), CompactKey::Other(b)) => *a == &**b,
            _ => false,
        }
    }
}

/// A packed key hashes as its one integer (one SipHash write, not two:
/// no discriminant), any other as the key. A packed and an unpacked key
/// never name the same record ([`KeyRef`]'s `Equivalent`), so sharing a
/// hash value between the two forms costs a probe at most.
impl core::hash::Hash for KeyRef<'_> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        match self {
            Self::Packed(p) => state.write_u64(p.0),
            Self::Other(k) => k.hash(state),
        }
    }
}

/// The same hash as the key's [`KeyRef`]: the table finds a stored key by
/// the form it is looked up with.
impl core::hash::Hash for CompactKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl CompactKey {
    fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Self::Packed(p) => KeyRef::Packed(*p),
            Self::Other(k) => KeyRef::Other(k),
        }
    }
}

impl core::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Records name phone numbers: count them, do not print them.
        f.debug_struct("MemoryStore")
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl Slot {
    fn new(record: Record, version: Version) -> Self {
        Self(Mutex::new(Held { record, version }))
    }

    /// The slot's record, locked. A poisoned lock means a thread panicked
    /// in a transition, before anything was written (every write here is a
    /// single assignment), so the record is still whole and is used.
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            records: papaya::HashMap::builder()
                .hasher(RandomState::new())
                .build(),
        }
    }

    /// An empty store. The store was sharded once; its table now takes no
    /// lock to find a record, so `shards` is ignored (kept so that callers
    /// build unchanged).
    pub fn with_shards(shards: usize) -> Self {
        let _ = shards;
        Self::new()
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every record whose [`Record::expires_at`] is at or before `now`
    /// (under `policy`, the one the records were written with); returns how
    /// many were dropped.
    pub fn purge_expired(&self, now: OffsetDateTime, policy: &Policy) -> usize {
        let now = At::of(now);
        let records = self.records.pin();
        let mut dropped = 0;
        for (key, slot) in records.iter() {
            let mut held = slot.lock();
            if held.version == GONE || held.record.expiry(policy).is_none_or(|t| t > now) {
                continue;
            }
            // Under the record's lock: no write can come between the check
            // and the removal, and a writer that found the slot before
            // sees it marked once it gets the lock.
            if let Ok(Some(_)) = records.remove_if(key, |_, v| core::ptr::eq(v, slot)) {
                held.version = GONE;
                dropped += 1;
            }
        }
        dropped
    }
}

impl Store for MemoryStore {
    type Error = std::convert::Infallible;

    fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, Self::Error> {
        let key = KeyRef::of(key);
        let records = self.records.pin();
        let Some(slot) = records.get(&key) else {
            return Ok(None);
        };
        let held = slot.lock();
        // A slot purged since the lookup: the record is gone.
        Ok((held.version != GONE).then(|| (held.record.clone(), held.version)))
    }

    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        let key = KeyRef::of(key);
        let records = self.records.pin();
        let Some(expected) = expected else {
            let version = fresh_version();
            return Ok(
                match records.try_insert(key.to_owned(), Slot::new(new.clone(), version)) {
                    Ok(_) => Swap::Done(version),
                    Err(_) => Swap::Conflict,
                },
            );
        };
        let Some(slot) = records.get(&key) else {
            return Ok(Swap::Conflict);
        };
        let mut held = slot.lock();
        // `GONE` is never expected: a purged slot conflicts.
        if held.version != expected || expected == GONE {
            return Ok(Swap::Conflict);
        }
        let version = fresh_version();
        *held = Held {
            record: new.clone(),
            version,
        };
        Ok(Swap::Done(version))
    }

    /// One hash and no lock to find the record; the transition runs on the
    /// stored record in place (no copy) under the record's own lock, and
    /// what it returns is moved in. No other writer can come between, so
    /// this conflicts only when two writers create the same absent record
    /// at once.
    fn update(
        &self,
        key: &RecordKey,
        transition: &mut Transition<'_>,
    ) -> Result<Update, Self::Error> {
        let key = KeyRef::of(key);
        let records = self.records.pin();
        if let Some(slot) = records.get(&key) {
            let mut held = slot.lock();
            if held.version != GONE {
                let Some(new) = transition(Some(&held.record)) else {
                    return Ok(Update::Unchanged);
                };
                let version = fresh_version();
                *held = Held {
                    record: new,
                    version,
                };
                return Ok(Update::Written(version));
            }
            // Purged since the lookup: the record is gone, as if not found.
        }
        let Some(new) = transition(None) else {
            return Ok(Update::Unchanged);
        };
        let version = fresh_version();
        Ok(
            match records.try_insert(key.to_owned(), Slot::new(new, version)) {
                Ok(_) => Update::Written(version),
                // Another writer created it first: run again on its record.
                Err(_) => Update::Conflict,
            },
        )
    }
}

/// `MemoryStore` as an [`AsyncStore`]: every future is ready at once (it
/// never waits), so async code and [`AsyncVerifier`](crate::AsyncVerifier)
/// can run over it in tests or in one process.
impl AsyncStore for MemoryStore {
    type Error = std::convert::Infallible;

    fn load(
        &self,
        key: &RecordKey,
    ) -> impl Future<Output = Result<Option<(Record, Version)>, Self::Error>> + Send {
        std::future::ready(Store::load(self, key))
    }

    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> impl Future<Output = Result<Swap, Self::Error>> + Send {
        std::future::ready(Store::compare_and_swap(self, key, expected, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyId, KeyRing, SecretKey};
    use crate::phone::{PhoneNumber, PhonePolicy};
    use crate::subject::{Channel, Purpose};
    use crate::validation::Engine;
    use rand_core::SeedableRng;

    fn subject() -> SubjectKey {
        let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default());
        SubjectKey::new(Purpose::Login, phone.unwrap_or_else(|e| panic!("{e}")))
    }

    fn record() -> Record {
        let key = SecretKey::new(KeyId(1), &[1; 32]).unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::new(Policy::default(), KeyRing::new(key));
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let step = engine.start(None, &subject(), Channel::Sms, now, &mut rng);
        step.write.unwrap_or_else(|| panic!("a record"))
    }

    /// Only the required methods: `update` is the provided one.
    struct Forward<'a>(&'a MemoryStore);

    impl Store for Forward<'_> {
        type Error = std::convert::Infallible;
        fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, Self::Error> {
            Store::load(self.0, key)
        }
        fn compare_and_swap(
            &self,
            key: &RecordKey,
            expected: Option<Version>,
            new: &Record,
        ) -> Result<Swap, Self::Error> {
            Store::compare_and_swap(self.0, key, expected, new)
        }
    }

    #[test]
    fn memory_update_reads_writes_and_leaves_alone() {
        let store = MemoryStore::with_shards(3);
        let key = RecordKey::from(subject());
        let mut seen = Vec::new();
        let first = store.update(&key, &mut |r| {
            seen.push(r.is_some());
            Some(record())
        });
        let Ok(Update::Written(v1)) = first else {
            panic!("{first:?}")
        };
        let unchanged = store.update(&key, &mut |r| {
            seen.push(r.is_some());
            None
        });
        assert_eq!(unchanged, Ok(Update::Unchanged));
        assert_eq!(
            Store::load(&store, &key).ok().flatten().map(|(_, v)| v),
            Some(v1)
        );
        let second = store.update(&key, &mut |r| r.cloned());
        assert!(matches!(second, Ok(Update::Written(v2)) if v2 != v1));
        assert_eq!(seen, [false, true]);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn provided_update_reports_a_conflict_and_writes_nothing() {
        let inner = MemoryStore::new();
        let store = Forward(&inner);
        let key = RecordKey::from(subject());
        assert!(matches!(
            store.update(&key, &mut |_| Some(record())),
            Ok(Update::Written(_))
        ));
        let before = Store::load(&inner, &key).ok().flatten().map(|(_, v)| v);
        // Another writer comes between the read and the write.
        let raced = store.update(&key, &mut |r| {
            let (_, version) = Store::load(&inner, &key).ok().flatten()?;
            let _ = Store::compare_and_swap(&inner, &key, Some(version), &record());
            r.cloned()
        });
        assert_eq!(raced, Ok(Update::Conflict));
        let after = Store::load(&inner, &key).ok().flatten().map(|(_, v)| v);
        assert_ne!(after, before, "the other writer's record stays");
        assert_eq!(store.update(&key, &mut |_| None), Ok(Update::Unchanged));
    }

    #[test]
    fn many_keys_stay_apart_and_purge_drops_only_the_expired() {
        let store = MemoryStore::new();
        let policy = PhonePolicy::default();
        let keys: Vec<RecordKey> = (0..400)
            .map(|i| {
                let phone = PhoneNumber::parse(&format!("+4474011{i:05}"), &policy)
                    .unwrap_or_else(|e| panic!("{e}"));
                RecordKey::from(SubjectKey::new(Purpose::Login, phone))
            })
            .collect();
        let mut versions = std::collections::HashSet::new();
        for key in &keys {
            let Ok(Swap::Done(v)) = Store::compare_and_swap(&store, key, None, &record()) else {
                panic!("created")
            };
            assert!(versions.insert(v), "versions are fresh");
        }
        assert_eq!(store.len(), 400);
        let written = record();
        let expiry = written.expires_at(&Policy::default());
        let before = expiry - time::Duration::seconds(1);
        assert_eq!(store.purge_expired(before, &Policy::default()), 0);
        assert_eq!(store.len(), 400);
        assert_eq!(store.purge_expired(expiry, &Policy::default()), 400);
        assert!(store.is_empty());
        assert_eq!(Store::load(&store, &keys[0]), Ok(None));
        // A stale version does not write over a re-created record.
        let Some(old) = versions.iter().next().copied() else {
            panic!("a version")
        };
        assert_eq!(
            Store::compare_and_swap(&store, &keys[0], Some(old), &record()),
            Ok(Swap::Conflict)
        );
        assert!(
            matches!(Store::compare_and_swap(&store, &keys[0], None, &record()), Ok(Swap::Done(v)) if !versions.contains(&v))
        );
        assert_eq!(
            Store::compare_and_swap(&store, &keys[0], Some(old), &record()),
            Ok(Swap::Conflict)
        );
    }

    /// Threads that each count up their own keys, and all of them one
    /// shared key, through `update`: no write is lost.
    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 has no threads")]
    fn concurrent_updates_lose_nothing() {
        let store = MemoryStore::new();
        let shared = RecordKey::from(subject());
        let policy = PhonePolicy::default();
        let bump = |r: Option<&Record>| {
            let mut r = r.cloned().unwrap_or_else(record);
            if let Some(v) = r.current.as_mut() {
                v.generation += 1;
            }
            Some(r)
        };
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (store, shared) = (&store, &shared);
                let phone = PhoneNumber::parse(&format!("+44740110{t:04}"), &policy)
                    .unwrap_or_else(|e| panic!("{e}"));
                let own = RecordKey::from(SubjectKey::new(Purpose::Login, phone));
                scope.spawn(move || {
                    for _ in 0..500 {
                        for key in [&own, shared] {
                            loop {
                                match store.update(key, &mut |r| bump(r)) {
                                    Ok(Update::Written(_)) => break,
                                    Ok(Update::Conflict) => {}
                                    other => panic!("{other:?}"),
                                }
                            }
                        }
                    }
                });
            }
        });
        let generation = |key: &RecordKey| {
            Store::load(&store, key)
                .ok()
                .flatten()
                .map(|(r, _)| r.generation())
        };
        let first = record().generation();
        assert_eq!(generation(&shared), Some(first + 2000));
        assert_eq!(store.len(), 5);
    }

    /// The compact key is exact: every key that differs from another by
    /// its tenant, purpose, digits (leading zeros and length too) or kind
    /// finds its own record; the usual key is packed, the others boxed.
    #[test]
    fn compact_keys_keep_every_key_apart() {
        use crate::budget_key::BudgetKey;
        use crate::subject::Tenant;
        let store = MemoryStore::with_shards(2);
        let policy = PhonePolicy::default();
        let phone = |n: &str| PhoneNumber::parse(n, &policy).unwrap_or_else(|e| panic!("{e}"));
        let tenant = Tenant::new("shop-eu").unwrap_or_else(|e| panic!("{e}"));
        let custom = Purpose::custom("pay").unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<RecordKey> = vec![
            SubjectKey::new(Purpose::Login, phone("+447401101801")).into(),
            SubjectKey::new(Purpose::Onboarding, phone("+447401101801")).into(),
            SubjectKey::new(custom, phone("+447401101801")).into(),
            SubjectKey::new(Purpose::Login, phone("+447401101801"))
                .with_tenant(tenant)
                .into(),
            SubjectKey::new(Purpose::Login, phone("+447401101802")).into(),
            SubjectKey::new(Purpose::Login, phone("+14155550123")).into(),
            BudgetKey::global().into(),
            BudgetKey::range(&phone("+447401101801"), &Policy::default()).into(),
        ];
        let packed = keys
            .iter()
            .filter(|k| matches!(KeyRef::of(k), KeyRef::Packed(_)))
            .count();
        assert_eq!(packed, 4);
        for (i, key) in keys.iter().enumerate() {
            let mut r = record();
            if let Some(v) = r.current.as_mut() {
                v.generation = u32::try_from(i).unwrap_or(0) + 1;
            }
            assert!(matches!(
                Store::compare_and_swap(&store, key, None, &r),
                Ok(Swap::Done(_))
            ));
        }
        assert_eq!(store.len(), keys.len());
        for (i, key) in keys.iter().enumerate() {
            let (r, _) = Store::load(&store, key)
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("key {i}"));
            assert_eq!(r.generation(), u32::try_from(i).unwrap_or(0) + 1);
        }
        // Packing reads all digits and their count.
        let a = KeyRef::of(&keys[0]);
        let b = KeyRef::of(&keys[4]);
        assert!(matches!((a, b), (KeyRef::Packed(a), KeyRef::Packed(b)) if a != b));
        assert!(core::mem::size_of::<CompactKey>() <= 16);
    }
}
