//! The [`Store`] contract as a test suite (feature `testkit`): any store,
//! yours included, proves it keeps the promises otpflow's guarantees rest on
//! by passing [`check_store`] (or [`check_async_store`] for an
//! [`AsyncStore`]).
//!
//! The suite writes records for subjects of its own (random UK mobile
//! numbers, purposes `login` and `onboarding`) and checks, each on a store
//! fresh from your fixture:
//!
//! | check | what must hold |
//! |---|---|
//! | `absent` | an unknown subject loads as `None`; a swap that expects a version of it conflicts and creates nothing |
//! | `insert` | a swap expecting `None` creates the record once; a second one conflicts and changes nothing |
//! | `update` | a swap expecting the current version writes and gives a new version; a stale or made-up version conflicts and changes nothing |
//! | `isolation` | subjects that share a number but not a purpose are separate records |
//! | `budgets` | budget keys' records (an address's, a number range's) live beside a subject's, each loads back as written, and swap by version |
//! | `fresh_versions` | 64 updates in a row give 65 distinct versions |
//! | `concurrent_insert` | 16 threads (tasks) insert the same subject at once: exactly one wins |
//! | `concurrent_update` | 16 threads (tasks) increment one record by compare-and-swap: no increment is lost, no expected version wins twice, and no thread ever reads a record older than its own last write |
//! | `expiry` | a record is loaded at every moment before [`Record::expires_at`]; once the store has dropped it, a re-created record gets a version the old one never had and the old versions conflict |
//!
//! [`check_failed_calls`] (and its async twin) adds a check that needs a
//! second, failing handle on the same data: calls that fail leave the record
//! unchanged.
//!
//! # Your store
//!
//! ```
//! use otpflow::testkit::{check_store, StoreFixture};
//! use otpflow::{MemoryStore, Policy};
//! use time::OffsetDateTime;
//!
//! // A closure that makes a fresh store is a fixture. `MemoryStore` drops
//! // nothing by itself, so this fixture purges expired records when asked.
//! struct Memory;
//! impl StoreFixture for Memory {
//!     type Store = MemoryStore;
//!     fn store(&mut self) -> MemoryStore {
//!         MemoryStore::new()
//!     }
//!     fn purge_expired(&mut self, store: &MemoryStore) {
//!         store.purge_expired(OffsetDateTime::now_utc(), &Policy::default());
//!     }
//! }
//! let report = check_store(Memory)?;
//! assert!(report.not_exercised.is_empty());
//! # Ok::<(), otpflow::testkit::Violation>(())
//! ```
//!
//! A store over a shared server (Redis, SQL) returns from
//! [`StoreFixture::store`] a store whose records the suite cannot see from
//! earlier runs: a fresh key prefix, table or namespace (the suite's random
//! subjects make collisions unlikely, not impossible). A store that drops
//! records by itself (a TTL) needs no `purge_expired`. The suite takes about
//! two seconds, most of it waiting for a record to expire; records it leaves
//! behind expire within an hour.
//!
//! The records the suite writes carry no validation a real key could check:
//! they exist only to be stored and compared.

use core::fmt;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::budget::KeyBucket;
use crate::budget_key::{BudgetKey, BudgetKind};
use crate::code::NONCE_LEN;
use crate::keys::KeyId;
use crate::phone::{PhoneNumber, PhonePolicy};
use crate::record::{At, DERIVATION_V1, Ledger, Record, Secs, State, Validation};
use crate::store::RecordKey;
use crate::store::{AsyncStore, Store, Swap, Version};
use crate::subject::{Channel, Purpose, SubjectKey};

/// Threads (or tasks) in the concurrent checks.
pub const CONCURRENCY: usize = 16;
/// Successful increments each thread (task) makes in `concurrent_update`.
pub const INCREMENTS_PER_WORKER: u32 = 8;
/// Updates in a row in `fresh_versions`.
const SEQUENTIAL_UPDATES: u32 = 64;
/// How far ahead of now the `expiry` check's record expires.
const EXPIRY_DELAY: Duration = Duration::milliseconds(1200);
/// Clock skew allowed between this process and the store's server, in the
/// store's favour: a record missing this close to its expiry is not a
/// violation.
const CLOCK_SLACK: Duration = Duration::milliseconds(50);
/// How long after its expiry the `expiry` check waits for a record to go.
const DROP_WAIT: Duration = Duration::seconds(2);
/// Between two loads while waiting.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A source of fresh stores for [`check_store`].
///
/// Any `FnMut() -> S` closure is one (with no
/// [`purge_expired`](Self::purge_expired)).
pub trait StoreFixture {
    /// The store under test.
    type Store: Store + Sync;

    /// A store that holds none of the suite's subjects.
    fn store(&mut self) -> Self::Store;

    /// Drops the records whose [`Record::expires_at`] has passed, for
    /// stores that do not drop them by themselves. The default does
    /// nothing.
    fn purge_expired(&mut self, store: &Self::Store) {
        let _ = store;
    }
}

impl<S: Store + Sync, F: FnMut() -> S> StoreFixture for F {
    type Store = S;
    fn store(&mut self) -> S {
        self()
    }
}

/// A source of fresh stores for [`check_async_store`].
///
/// Any `FnMut() -> impl Future<Output = S>` closure is one (with no
/// [`purge_expired`](Self::purge_expired)).
pub trait AsyncStoreFixture {
    /// The store under test.
    type Store: AsyncStore;

    /// A store that holds none of the suite's subjects.
    fn store(&mut self) -> impl Future<Output = Self::Store>;

    /// Drops the records whose [`Record::expires_at`] has passed, for
    /// stores that do not drop them by themselves. The default does
    /// nothing.
    fn purge_expired(&mut self, store: &Self::Store) -> impl Future<Output = ()> {
        let _ = store;
        core::future::ready(())
    }
}

impl<S: AsyncStore, Fut: Future<Output = S>, F: FnMut() -> Fut> AsyncStoreFixture for F {
    type Store = S;
    fn store(&mut self) -> impl Future<Output = S> {
        self()
    }
}

/// What a passing run did not exercise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Checks (or parts of them) the store gave no occasion to run, with
    /// why: today only the re-creation half of `expiry`, when the store
    /// kept an expired record and the fixture has no `purge_expired`.
    pub not_exercised: Vec<&'static str>,
}

/// A broken promise: which check, and what happened.
#[derive(Debug)]
pub struct Violation {
    /// The check's name (see the table in the [module docs](self)).
    pub check: &'static str,
    /// What went wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store contract, check `{}`: {}", self.check, self.detail)
    }
}

impl std::error::Error for Violation {}

fn violation(check: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        check,
        detail: detail.into(),
    }
}

/// The store's error as a violation of `check`.
fn failed<E: fmt::Display>(check: &'static str, during: &str) -> impl Fn(E) -> Violation {
    move |e| violation(check, format!("the store failed during {during}: {e}"))
}

macro_rules! ensure {
    ($check:expr, $cond:expr, $($detail:tt)+) => {
        if !$cond {
            return Err(violation($check, format!($($detail)+)));
        }
    };
}

// ---------------------------------------------------------------------------
// Test data.

/// Subjects no earlier run used (with high probability): random numbers in
/// the UK mobile range 07911 xxxxxx.
struct Subjects {
    random: RandomState,
    next: u64,
}

impl Subjects {
    fn new() -> Self {
        Self {
            random: RandomState::new(),
            next: 0,
        }
    }

    fn phone(&mut self) -> PhoneNumber {
        loop {
            self.next += 1;
            let n = self.random.hash_one(self.next) % 1_000_000;
            let text = format!("+447911{n:06}");
            // Every 07911 number is a UK mobile; the loop is a guard, not
            // a retry that is expected to run.
            if let Ok(phone) = PhoneNumber::parse(&text, &PhonePolicy::default()) {
                return phone;
            }
        }
    }

    fn subject(&mut self) -> RecordKey {
        SubjectKey::new(Purpose::Login, self.phone()).into()
    }

    /// A budget key: an IPv6 /64 of the documentation prefix no earlier
    /// run used (with high probability), or the range of a random number.
    /// Both kinds have a rate under the default policy, so a store that
    /// sets TTLs from it keeps their records.
    fn budget(&mut self, kind: BudgetKind) -> RecordKey {
        self.next += 1;
        let n = self.random.hash_one(self.next);
        let key = match kind {
            BudgetKind::Address => BudgetKey::address(std::net::IpAddr::V6(
                std::net::Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(n) << 64)),
            )),
            _ => BudgetKey::range(&self.phone(), &crate::Policy::default()),
        };
        key.into()
    }
}

/// A budget key's record whose bucket runs to `tat` (a whole second), its
/// latest spend tagged `tag`.
fn bucket(kind: BudgetKind, tag: u64, tat: OffsetDateTime) -> Record {
    let mut r = Record::bucket(kind);
    r.bucket = Some(Box::new(KeyBucket {
        kind,
        tat: Some(Secs::of(tat)),
        last: tag,
        refunded: false,
    }));
    r.written_at = Secs::new(At::of(OffsetDateTime::now_utc()).ceil().get() - 1);
    r
}

/// A record whose [`Record::expires_at`] is `expires_at` (a whole second)
/// under every policy (it has no ledger windows), carrying `counter` as its
/// generation less one (a record's first validation is generation 1), and
/// consistent enough to pass [`Record::from_bytes`]'s checks.
fn record(counter: u32, expires_at: OffsetDateTime) -> Record {
    let nonce_byte = counter.to_be_bytes()[3];
    let expires_at = Secs::of(expires_at);
    let sent_at = Secs::new(expires_at.get() - 1);
    Record {
        current: Some(Validation {
            generation: counter.wrapping_add(1),
            state: State::Sent,
            channel: Channel::Sms,
            derivation: DERIVATION_V1,
            key_id: KeyId(1),
            nonce: [nonce_byte; NONCE_LEN],
            created_at: sent_at,
            last_sent_at: sent_at,
            expires_at,
            ended_at: None,
            checks: 0,
            sends: 1,
        }),
        ledger: Ledger::default(),
        written_at: sent_at,
        bucket: None,
    }
}

/// The counter a [`record`] carries.
fn counter_of(r: &Record) -> u32 {
    r.generation().wrapping_sub(1)
}

fn far() -> OffsetDateTime {
    At::of(OffsetDateTime::now_utc() + Duration::hours(1))
        .ceil()
        .to_datetime()
}

fn describe(loaded: &Option<(Record, Version)>) -> String {
    match loaded {
        None => "nothing".to_owned(),
        Some((r, v)) => format!("counter {} at version {}", counter_of(r), v.0),
    }
}

fn same(loaded: &Option<(Record, Version)>, record: &Record, version: Version) -> bool {
    loaded
        .as_ref()
        .is_some_and(|(r, v)| r == record && *v == version)
}

fn done(check: &'static str, swap: Swap, what: &str) -> Result<Version, Violation> {
    match swap {
        Swap::Done(v) => Ok(v),
        Swap::Conflict => Err(violation(check, format!("{what} conflicted"))),
    }
}

/// A version the store did not hand out (with high probability).
fn made_up(seen: &[Version]) -> Version {
    let random = RandomState::new().hash_one(0u8);
    let mut v = Version(random);
    while seen.contains(&v) {
        v = Version(v.0.wrapping_add(1));
    }
    v
}

// ---------------------------------------------------------------------------
// The suites. Every check but the concurrent ones is written once, against
// `AsyncStore`; a synchronous store runs them through `Blocking`, whose
// futures are ready at once.

/// A [`Store`] seen as an [`AsyncStore`] whose futures are ready at once.
struct Blocking<'a, S>(&'a S);

impl<S: Store + Sync> AsyncStore for Blocking<'_, S> {
    type Error = S::Error;
    fn load(
        &self,
        key: &RecordKey,
    ) -> impl Future<Output = Result<Option<(Record, Version)>, S::Error>> + Send {
        core::future::ready(self.0.load(key))
    }
    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> impl Future<Output = Result<Swap, S::Error>> + Send {
        core::future::ready(self.0.compare_and_swap(key, expected, new))
    }
}

/// Runs the whole suite against stores from `fixture`. The concurrent
/// checks run on 16 OS threads sharing one store.
///
/// # Errors
/// The first [`Violation`]; a store error during a check is one too.
pub fn check_store<F: StoreFixture>(mut fixture: F) -> Result<Report, Violation> {
    let mut subjects = Subjects::new();
    let mut report = Report::default();
    futures_executor::block_on(async {
        absent(&Blocking(&fixture.store()), &mut subjects).await?;
        insert(&Blocking(&fixture.store()), &mut subjects).await?;
        update(&Blocking(&fixture.store()), &mut subjects).await?;
        isolation(&Blocking(&fixture.store()), &mut subjects).await?;
        budgets(&Blocking(&fixture.store()), &mut subjects).await?;
        fresh_versions(&Blocking(&fixture.store()), &mut subjects).await
    })?;
    concurrent_insert_threads(&fixture.store(), &mut subjects)?;
    concurrent_update_threads(&fixture.store(), &mut subjects)?;
    let store = fixture.store();
    let purge = async || fixture.purge_expired(&store);
    futures_executor::block_on(expiry(&Blocking(&store), purge, &mut subjects, &mut report))?;
    Ok(report)
}

/// Runs the whole suite against async stores from `fixture`, on the
/// caller's executor (any: the suite needs no runtime of its own and
/// sleeps with `futures-timer`). The concurrent checks run as 16 futures
/// joined on the calling task: a store that multiplexes or pools its
/// connections has them in flight on the server at once.
///
/// ```
/// use otpflow::MemoryStore;
/// let report = futures_executor::block_on(otpflow::testkit::check_async_store(
///     async || MemoryStore::new(),
/// ))?;
/// // `MemoryStore` keeps expired records until purged, and this fixture
/// // does not purge: re-creation after expiry went untested.
/// assert_eq!(report.not_exercised.len(), 1);
/// # Ok::<(), otpflow::testkit::Violation>(())
/// ```
///
/// # Errors
/// The first [`Violation`]; a store error during a check is one too.
pub async fn check_async_store<F: AsyncStoreFixture>(mut fixture: F) -> Result<Report, Violation> {
    let mut subjects = Subjects::new();
    let mut report = Report::default();
    absent(&fixture.store().await, &mut subjects).await?;
    insert(&fixture.store().await, &mut subjects).await?;
    update(&fixture.store().await, &mut subjects).await?;
    isolation(&fixture.store().await, &mut subjects).await?;
    budgets(&fixture.store().await, &mut subjects).await?;
    fresh_versions(&fixture.store().await, &mut subjects).await?;
    concurrent_insert_tasks(&fixture.store().await, &mut subjects).await?;
    concurrent_update_tasks(&fixture.store().await, &mut subjects).await?;
    let store = fixture.store().await;
    let purge = async || fixture.purge_expired(&store).await;
    expiry(&store, purge, &mut subjects, &mut report).await?;
    Ok(report)
}

/// A compare-and-swap for check `c`: the store's error is a violation.
async fn cas<S: AsyncStore>(
    c: &'static str,
    store: &S,
    key: &RecordKey,
    expected: Option<Version>,
    new: &Record,
) -> Result<Swap, Violation> {
    store
        .compare_and_swap(key, expected, new)
        .await
        .map_err(failed(c, "compare_and_swap"))
}

/// A load for check `c`: the store's error is a violation.
async fn load<S: AsyncStore>(
    c: &'static str,
    store: &S,
    key: &RecordKey,
) -> Result<Option<(Record, Version)>, Violation> {
    store.load(key).await.map_err(failed(c, "load"))
}

async fn absent<S: AsyncStore>(store: &S, subjects: &mut Subjects) -> Result<(), Violation> {
    const C: &str = "absent";
    let key = subjects.subject();
    let loaded = load(C, store, &key).await?;
    ensure!(
        C,
        loaded.is_none(),
        "an unknown subject loaded {}",
        describe(&loaded)
    );
    let swap = cas(C, store, &key, Some(made_up(&[])), &record(1, far())).await?;
    ensure!(
        C,
        swap == Swap::Conflict,
        "a swap expecting a version of an absent record wrote it"
    );
    let loaded = load(C, store, &key).await?;
    ensure!(
        C,
        loaded.is_none(),
        "a conflicting swap created {}",
        describe(&loaded)
    );
    Ok(())
}

async fn insert<S: AsyncStore>(store: &S, subjects: &mut Subjects) -> Result<(), Violation> {
    const C: &str = "insert";
    let key = subjects.subject();
    let first = record(1, far());
    let swap = cas(C, store, &key, None, &first).await?;
    let v1 = done(C, swap, "inserting a new record")?;
    let loaded = load(C, store, &key).await?;
    ensure!(
        C,
        same(&loaded, &first, v1),
        "after inserting counter 1 at version {}, loaded {}",
        v1.0,
        describe(&loaded)
    );
    let swap = cas(C, store, &key, None, &record(2, far())).await?;
    ensure!(
        C,
        swap == Swap::Conflict,
        "a second insert of the same subject succeeded"
    );
    let loaded = load(C, store, &key).await?;
    ensure!(
        C,
        same(&loaded, &first, v1),
        "a conflicting insert changed the record to {}",
        describe(&loaded)
    );
    Ok(())
}

async fn update<S: AsyncStore>(store: &S, subjects: &mut Subjects) -> Result<(), Violation> {
    const C: &str = "update";
    let key = subjects.subject();
    let swap = cas(C, store, &key, None, &record(1, far())).await?;
    let v1 = done(C, swap, "inserting a new record")?;
    let second = record(2, far());
    let swap = cas(C, store, &key, Some(v1), &second).await?;
    let v2 = done(C, swap, "an update expecting the current version")?;
    ensure!(C, v2 != v1, "an update kept the version {}", v1.0);
    let loaded = load(C, store, &key).await?;
    ensure!(
        C,
        same(&loaded, &second, v2),
        "after an update to counter 2 at version {}, loaded {}",
        v2.0,
        describe(&loaded)
    );
    for (stale, what) in [
        (v1, "a stale version"),
        (made_up(&[v1, v2]), "a made-up version"),
    ] {
        let swap = cas(C, store, &key, Some(stale), &record(3, far())).await?;
        ensure!(
            C,
            swap == Swap::Conflict,
            "an update expecting {what} ({}) succeeded",
            stale.0
        );
        let swap = cas(C, store, &key, None, &record(3, far())).await?;
        ensure!(
            C,
            swap == Swap::Conflict,
            "an insert over an existing record succeeded"
        );
        let loaded = load(C, store, &key).await?;
        ensure!(
            C,
            same(&loaded, &second, v2),
            "a conflicting update changed the record to {}",
            describe(&loaded)
        );
    }
    Ok(())
}

async fn isolation<S: AsyncStore>(store: &S, subjects: &mut Subjects) -> Result<(), Violation> {
    const C: &str = "isolation";
    let phone = subjects.phone();
    let login = RecordKey::from(SubjectKey::new(Purpose::Login, phone));
    let onboarding = RecordKey::from(SubjectKey::new(Purpose::Onboarding, phone));
    let swap = cas(C, store, &login, None, &record(1, far())).await?;
    done(C, swap, "inserting the login record")?;
    let loaded = load(C, store, &onboarding).await?;
    ensure!(
        C,
        loaded.is_none(),
        "the onboarding subject of the same number loaded {}",
        describe(&loaded)
    );
    let swap = cas(C, store, &onboarding, None, &record(7, far())).await?;
    done(
        C,
        swap,
        "inserting the onboarding record beside the login one",
    )?;
    let loaded = load(C, store, &login).await?;
    ensure!(
        C,
        loaded.as_ref().is_some_and(|(r, _)| counter_of(r) == 1),
        "writing the onboarding subject changed the login one to {}",
        describe(&loaded)
    );
    Ok(())
}

/// Budget keys' records (see [`budget_key`](crate::budget_key)) are
/// records like any other: each under its own key, apart from subjects and
/// from each other, read back as written, and swapped by version.
async fn budgets<S: AsyncStore>(store: &S, subjects: &mut Subjects) -> Result<(), Violation> {
    const C: &str = "budgets";
    let subject = subjects.subject();
    let address = subjects.budget(BudgetKind::Address);
    let range = subjects.budget(BudgetKind::Range);
    let written = [
        (&subject, record(5, far())),
        (&address, bucket(BudgetKind::Address, 11, far())),
        (&range, bucket(BudgetKind::Range, 12, far())),
    ];
    let mut versions = Vec::new();
    for (key, record) in &written {
        let swap = cas(C, store, key, None, record).await?;
        versions.push(done(C, swap, "inserting a record")?);
    }
    for ((key, record), version) in written.iter().zip(&versions) {
        let loaded = load(C, store, key).await?;
        ensure!(
            C,
            same(&loaded, record, *version),
            "the {key} loaded something else than was written (a budget key's record must round-trip, apart from subjects)"
        );
    }
    let spent = bucket(BudgetKind::Address, 13, far() + Duration::minutes(6));
    let stale = cas(C, store, &address, None, &spent).await?;
    ensure!(
        C,
        stale == Swap::Conflict,
        "a second insert of a budget key's record was written"
    );
    let swap = cas(C, store, &address, versions.get(1).copied(), &spent).await?;
    let v = done(C, swap, "updating a budget key's record")?;
    let loaded = load(C, store, &address).await?;
    ensure!(
        C,
        same(&loaded, &spent, v),
        "the updated budget record did not load back"
    );
    Ok(())
}

async fn fresh_versions<S: AsyncStore>(
    store: &S,
    subjects: &mut Subjects,
) -> Result<(), Violation> {
    const C: &str = "fresh_versions";
    let key = subjects.subject();
    let swap = cas(C, store, &key, None, &record(0, far())).await?;
    let mut version = done(C, swap, "inserting a new record")?;
    let mut seen = HashSet::from([version]);
    for n in 1..=SEQUENTIAL_UPDATES {
        let swap = cas(C, store, &key, Some(version), &record(n, far())).await?;
        version = done(C, swap, "an update expecting the current version")?;
        ensure!(
            C,
            seen.insert(version),
            "update {n} reused version {}",
            version.0
        );
    }
    Ok(())
}

/// `concurrent_insert`'s verdict over every worker's result.
fn count_inserts(results: Vec<Result<Swap, String>>) -> Result<(), Violation> {
    const C: &str = "concurrent_insert";
    let mut wins = 0;
    for result in results {
        match result {
            Ok(Swap::Done(_)) => wins += 1,
            Ok(Swap::Conflict) => {}
            Err(e) => return Err(violation(C, format!("the store failed: {e}"))),
        }
    }
    ensure!(
        C,
        wins == 1,
        "{wins} of {CONCURRENCY} concurrent inserts of one subject succeeded"
    );
    Ok(())
}

fn concurrent_insert_threads<S: Store + Sync>(
    store: &S,
    subjects: &mut Subjects,
) -> Result<(), Violation> {
    let key = subjects.subject();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CONCURRENCY)
            .map(|i| {
                let key = &key;
                scope.spawn(move || {
                    store
                        .compare_and_swap(key, None, &record(counter(i), far()))
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(joined).collect()
    });
    count_inserts(results)
}

async fn concurrent_insert_tasks<S: AsyncStore>(
    store: &S,
    subjects: &mut Subjects,
) -> Result<(), Violation> {
    let key = &subjects.subject();
    let tasks = (0..CONCURRENCY).map(|i| async move {
        store
            .compare_and_swap(key, None, &record(counter(i), far()))
            .await
            .map_err(|e| e.to_string())
    });
    count_inserts(futures_util::future::join_all(tasks).await)
}

fn counter(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T, String>>) -> Result<T, String> {
    handle
        .join()
        .unwrap_or_else(|_| Err("a worker thread panicked".to_owned()))
}

/// What the workers of `concurrent_update` saw: each success's expected
/// version and the counter it wrote.
#[derive(Default)]
struct Tally {
    wins: Vec<(Version, u32)>,
}

/// One worker's bookkeeping after a load: the counter to write next and
/// the version to expect, or what went wrong.
fn next_counter(
    loaded: Option<(Record, Version)>,
    own_last: u32,
) -> Result<(u32, Version), String> {
    let Some((r, v)) = loaded else {
        return Err("the record vanished".to_owned());
    };
    if counter_of(&r) < own_last {
        return Err(format!(
            "a worker that wrote counter {own_last} then loaded counter {}: a lost or resurrected write",
            counter_of(&r)
        ));
    }
    Ok((counter_of(&r) + 1, v))
}

fn record_win(tally: &Mutex<Tally>, expected: Version, counter: u32) -> Result<(), String> {
    tally
        .lock()
        .map_err(|_| "a worker panicked".to_owned())?
        .wins
        .push((expected, counter));
    Ok(())
}

/// `concurrent_update`'s verdict: the final counter and every success.
fn settle(tally: Mutex<Tally>, errors: Vec<String>, final_counter: u32) -> Result<(), Violation> {
    const C: &str = "concurrent_update";
    if let Some(e) = errors.into_iter().next() {
        return Err(violation(C, e));
    }
    let tally = tally
        .into_inner()
        .map_err(|_| violation(C, "a worker panicked"))?;
    let total = counter(CONCURRENCY) * INCREMENTS_PER_WORKER;
    ensure!(
        C,
        final_counter == total,
        "{total} successful increments left the counter at {final_counter}: lost or doubled writes"
    );
    let expected: HashSet<_> = tally.wins.iter().map(|(v, _)| v).collect();
    ensure!(
        C,
        expected.len() == tally.wins.len(),
        "two swaps expecting the same version both succeeded"
    );
    let written: HashSet<_> = tally.wins.iter().map(|(_, c)| c).collect();
    ensure!(
        C,
        written.len() == tally.wins.len(),
        "two workers both wrote the same counter"
    );
    Ok(())
}

async fn start_counter<S: AsyncStore>(store: &S, key: &RecordKey) -> Result<(), Violation> {
    const C: &str = "concurrent_update";
    let swap = cas(C, store, key, None, &record(0, far())).await?;
    done(C, swap, "inserting a new record").map(|_| ())
}

async fn final_counter<S: AsyncStore>(store: &S, key: &RecordKey) -> Result<u32, Violation> {
    let loaded = store
        .load(key)
        .await
        .map_err(failed("concurrent_update", "load"))?;
    Ok(loaded.map_or(0, |(r, _)| counter_of(&r)))
}

fn concurrent_update_threads<S: Store + Sync>(
    store: &S,
    subjects: &mut Subjects,
) -> Result<(), Violation> {
    let key = subjects.subject();
    let swap = store
        .compare_and_swap(&key, None, &record(0, far()))
        .map_err(failed("concurrent_update", "compare_and_swap"))?;
    done("concurrent_update", swap, "inserting a new record")?;
    let tally = Mutex::new(Tally::default());
    let errors: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (key, tally) = (&key, &tally);
                scope.spawn(move || {
                    let (mut wins, mut own_last) = (0, 0);
                    while wins < INCREMENTS_PER_WORKER {
                        let loaded = store.load(key).map_err(|e| e.to_string())?;
                        let (counter, expected) = next_counter(loaded, own_last)?;
                        let new = record(counter, far());
                        match store.compare_and_swap(key, Some(expected), &new) {
                            Ok(Swap::Done(_)) => {
                                wins += 1;
                                own_last = counter;
                                record_win(tally, expected, counter)?;
                            }
                            Ok(Swap::Conflict) => {}
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| joined(h).err())
            .collect()
    });
    let loaded = store
        .load(&key)
        .map_err(failed("concurrent_update", "load"))?;
    let last = loaded.map_or(0, |(r, _)| counter_of(&r));
    settle(tally, errors, last)
}

async fn concurrent_update_tasks<S: AsyncStore>(
    store: &S,
    subjects: &mut Subjects,
) -> Result<(), Violation> {
    let key = &subjects.subject();
    start_counter(store, key).await?;
    let tally = &Mutex::new(Tally::default());
    let tasks = (0..CONCURRENCY).map(|_| async move {
        let (mut wins, mut own_last) = (0, 0);
        while wins < INCREMENTS_PER_WORKER {
            let loaded = store.load(key).await.map_err(|e| e.to_string())?;
            let (counter, expected) = next_counter(loaded, own_last)?;
            let new = record(counter, far());
            match store.compare_and_swap(key, Some(expected), &new).await {
                Ok(Swap::Done(_)) => {
                    wins += 1;
                    own_last = counter;
                    record_win(tally, expected, counter)?;
                }
                Ok(Swap::Conflict) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok::<(), String>(())
    });
    let results = futures_util::future::join_all(tasks).await;
    let errors = results.into_iter().filter_map(Result::err).collect();
    let last = final_counter(store, key).await?;
    let tally =
        Mutex::new(std::mem::take(&mut *tally.lock().map_err(|_| {
            violation("concurrent_update", "a worker panicked")
        })?));
    settle(tally, errors, last)
}

async fn expiry<S: AsyncStore>(
    store: &S,
    mut purge: impl AsyncFnMut(),
    subjects: &mut Subjects,
    report: &mut Report,
) -> Result<(), Violation> {
    const C: &str = "expiry";
    let key = subjects.subject();
    let expires_at = At::of(OffsetDateTime::now_utc() + EXPIRY_DELAY)
        .ceil()
        .to_datetime();
    let swap = cas(C, store, &key, None, &record(1, expires_at)).await?;
    let v1 = done(C, swap, "inserting a record")?;
    let swap = cas(C, store, &key, Some(v1), &record(2, expires_at)).await?;
    let v2 = done(C, swap, "updating it")?;
    // Present at every load before expires_at.
    loop {
        let before = OffsetDateTime::now_utc();
        if before >= expires_at - CLOCK_SLACK {
            break;
        }
        let loaded = load(C, store, &key).await?;
        ensure!(
            C,
            loaded.is_some(),
            "a record was dropped {} ms before its expires_at",
            (expires_at - before).whole_milliseconds()
        );
        futures_timer::Delay::new(POLL).await;
    }
    // Then, once dropped, re-created with a fresh version.
    let deadline = expires_at + DROP_WAIT;
    let mut gone = false;
    while OffsetDateTime::now_utc() < deadline {
        if OffsetDateTime::now_utc() > expires_at {
            purge().await;
        }
        if load(C, store, &key).await?.is_none() {
            gone = true;
            break;
        }
        futures_timer::Delay::new(POLL).await;
    }
    if !gone {
        report
            .not_exercised
            .push("expiry: re-creation (the store kept the expired record)");
        return Ok(());
    }
    for stale in [v1, v2] {
        let swap = cas(C, store, &key, Some(stale), &record(3, far())).await?;
        ensure!(
            C,
            swap == Swap::Conflict,
            "a swap expecting version {} of a dropped record wrote",
            stale.0
        );
    }
    let swap = cas(C, store, &key, None, &record(3, far())).await?;
    let v3 = done(C, swap, "re-creating a dropped record")?;
    ensure!(
        C,
        v3 != v1 && v3 != v2,
        "the re-created record reused version {}",
        v3.0
    );
    for stale in [v1, v2] {
        let swap = cas(C, store, &key, Some(stale), &record(4, far())).await?;
        ensure!(
            C,
            swap == Swap::Conflict,
            "a swap expecting version {} of the dropped record overwrote the re-created one",
            stale.0
        );
    }
    Ok(())
}

/// Checks that calls through `failing` — a handle on the same data as
/// `healthy` that cannot reach it (a closed port, a stopped server, bad
/// credentials) — fail, and leave the record as it was.
///
/// # Errors
/// A [`Violation`] of check `failed_calls` when a failing call succeeds or
/// the record changed.
pub fn check_failed_calls<S: Store + Sync, T: Store + Sync>(
    healthy: &S,
    failing: &T,
) -> Result<(), Violation> {
    futures_executor::block_on(check_async_failed_calls(
        &Blocking(healthy),
        &Blocking(failing),
    ))
}

/// [`check_failed_calls`] for async stores.
///
/// # Errors
/// A [`Violation`] of check `failed_calls` when a failing call succeeds or
/// the record changed.
pub async fn check_async_failed_calls<S: AsyncStore, T: AsyncStore>(
    healthy: &S,
    failing: &T,
) -> Result<(), Violation> {
    const C: &str = "failed_calls";
    let key = Subjects::new().subject();
    let first = record(1, far());
    let swap = healthy
        .compare_and_swap(&key, None, &first)
        .await
        .map_err(failed(C, "compare_and_swap"))?;
    let v1 = done(C, swap, "inserting a record")?;
    ensure!(
        C,
        failing.load(&key).await.is_err(),
        "a load through the failing handle succeeded"
    );
    for expected in [Some(v1), None] {
        let result = failing
            .compare_and_swap(&key, expected, &record(2, far()))
            .await;
        ensure!(
            C,
            result.is_err(),
            "a swap through the failing handle succeeded"
        );
    }
    let loaded = healthy.load(&key).await.map_err(failed(C, "load"))?;
    ensure!(
        C,
        same(&loaded, &first, v1),
        "after failed calls the record is {}",
        describe(&loaded)
    );
    Ok(())
}
