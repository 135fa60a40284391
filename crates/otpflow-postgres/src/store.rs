//! [`PgStore`] (async, over a connection pool) and [`BlockingPgStore`] (the
//! same store behind a runtime the caller owns).

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use otpflow::store::AsyncStore;
use otpflow::{Policy, Record, RecordKey, Store, Swap, Version};
use time::OffsetDateTime;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::time::{Instant, timeout_at};

use crate::error::PgStoreError;
use crate::migrate;
use crate::subject_hash::SubjectHasher;

/// The call timeout unless set: how long one `load`, `compare_and_swap`,
/// purge batch or migration may take, waiting for a connection included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The connect timeout unless set (it is also bounded by the call timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The pool's size unless set.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// Rows the purge deletes per statement.
pub const PURGE_BATCH: i64 = 1000;

const LOAD: &str = "SELECT version, record FROM otpflow_records WHERE subject = $1";
const INSERT: &str = "INSERT INTO otpflow_records (subject, version, record, expires_at) \
     VALUES ($1, nextval('otpflow_record_versions'), $2, $3) \
     ON CONFLICT (subject) DO NOTHING RETURNING version";
const UPDATE: &str = "UPDATE otpflow_records \
     SET version = nextval('otpflow_record_versions'), record = $3, expires_at = $4 \
     WHERE subject = $1 AND version = $2 RETURNING version";
const PURGE: &str = "DELETE FROM otpflow_records WHERE subject IN \
     (SELECT subject FROM otpflow_records WHERE expires_at <= $1 LIMIT $2) \
     AND expires_at <= $1";

/// otpflow's records in PostgreSQL, reached from async code through a
/// [`deadpool_postgres`] pool of [`tokio_postgres`] connections.
///
/// - One row per subject in `otpflow_records`, named by the
///   [`SubjectHasher`]'s keyed hash (the table lists no phone number), the
///   record as `bytea` ([`Record::to_bytes`]), a version, and `expires_at`
///   ([`Record::expires_at`] under the store's [`Policy`]) with an index.
/// - [`load`](AsyncStore::load) is one `SELECT`;
///   [`compare_and_swap`](AsyncStore::compare_and_swap) is one `UPDATE …
///   WHERE subject = $1 AND version = $2` (one `INSERT … ON CONFLICT DO
///   NOTHING` for a new record), atomic in PostgreSQL. Statements are
///   prepared once per connection. Versions come from a sequence, so they
///   are never reused, even across a purge and a re-creation.
/// - Every call (waiting for a connection, connecting, the statement) ends
///   within the call timeout: a hung server gives
///   [`PgStoreError::Timeout`], never a hang, and the connection is dropped.
///   The server is also told to cancel statements past that time.
/// - Nothing is dropped by itself: call [`purge_expired`](Self::purge_expired)
///   from a timer.
///
/// The schema is created by [`migrate`](Self::migrate), an explicit call
/// (at deploy or start-up), in the first schema of the connection's
/// `search_path`. Cloning is cheap and shares the pool.
///
/// ```no_run
/// use otpflow::{KeyId, KeyRing, Policy, SecretKey};
/// use otpflow_postgres::{PgStore, SubjectHasher};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pg: tokio_postgres::Config = "host=127.0.0.1 user=otpflow dbname=otp".parse()?;
/// let hasher = SubjectHasher::new(&[7u8; 32])?; // from your secrets manager
/// let store = PgStore::builder(pg, hasher, Policy::default())
///     .call_timeout(std::time::Duration::from_millis(500))
///     .build()?;
/// store.migrate().await?;
/// // … hand `store` to otpflow's async driver; from a timer:
/// let dropped = store.purge_expired(time::OffsetDateTime::now_utc()).await?;
/// # let _ = dropped;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    hasher: SubjectHasher,
    policy: Policy,
    call_timeout: Duration,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.inner.pool.status())
            .field("hasher", &self.inner.hasher)
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`PgStore`]; from [`PgStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct PgStoreBuilder {
    pg: tokio_postgres::Config,
    hasher: SubjectHasher,
    policy: Policy,
    call_timeout: Duration,
    connect_timeout: Duration,
    max_connections: usize,
}

impl PgStoreBuilder {
    /// How long one call may take, waiting for a connection and connecting
    /// included (default [`DEFAULT_CALL_TIMEOUT`]). The server is told to
    /// cancel any statement that runs longer (`statement_timeout`).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How long opening a connection may take (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]); a call still ends within its call
    /// timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most connections the pool opens (default
    /// [`DEFAULT_MAX_CONNECTIONS`], at least 1). Calls beyond it wait for a
    /// free connection, within their call timeout.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// The store. Connections are opened on first use, so this needs
    /// neither a server nor a runtime; the store's calls run on tokio.
    ///
    /// # Errors
    /// [`PgStoreError::Pool`] if the pool cannot be built.
    pub fn build(self) -> Result<PgStore, PgStoreError> {
        let mut pg = self.pg;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(self.connect_timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("otpflow");
        }
        pg.keepalives(true);
        let millis = self.call_timeout.as_millis().max(1);
        let options = match pg.get_options() {
            Some(existing) => format!("{existing} -c statement_timeout={millis}"),
            None => format!("-c statement_timeout={millis}"),
        };
        pg.options(&options);
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.call_timeout))
            .create_timeout(Some(self.connect_timeout.min(self.call_timeout)))
            .recycle_timeout(Some(self.call_timeout))
            .build()
            .map_err(|_| PgStoreError::Pool(PoolError::NoRuntimeSpecified))?;
        Ok(PgStore::from_pool(
            pool,
            self.hasher,
            self.policy,
            self.call_timeout,
        ))
    }
}

impl PgStore {
    /// Settings for a store over the server `pg` names (plain TCP or a
    /// Unix socket; for TLS build your own pool and use
    /// [`from_pool`](Self::from_pool)). `policy` must be the one otpflow's
    /// engine runs with: it sets each row's `expires_at`.
    pub fn builder(
        pg: tokio_postgres::Config,
        hasher: SubjectHasher,
        policy: Policy,
    ) -> PgStoreBuilder {
        PgStoreBuilder {
            pg,
            hasher,
            policy,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// A store over a pool you built (with TLS, say). Give the pool a wait
    /// and create timeout, and its connections a `statement_timeout`; every
    /// call here is bounded by `call_timeout` in any case.
    pub fn from_pool(
        pool: Pool,
        hasher: SubjectHasher,
        policy: Policy,
        call_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                hasher,
                policy,
                call_timeout,
            }),
        }
    }

    /// The pool, to share it or read its status.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The policy that sets each row's `expires_at`.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Creates or upgrades the schema (see [`SCHEMA_VERSION`](crate::SCHEMA_VERSION));
    /// returns how many migrations it applied, 0 when the schema was up to
    /// date. Safe to call from several processes at once.
    ///
    /// # Errors
    /// [`PgStoreError::SchemaTooNew`] when the database was migrated by a
    /// newer build; otherwise the errors of any call.
    pub async fn migrate(&self) -> Result<u32, PgStoreError> {
        let deadline = self.deadline();
        let mut client = self.checkout(deadline).await?;
        let outcome = timeout_at(deadline, migrate::migrate(&mut client)).await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                drop(Object::take(client));
                Err(PgStoreError::Timeout)
            }
        }
    }

    /// Deletes every row whose `expires_at` is at or before `now`, in
    /// batches of [`PURGE_BATCH`]; returns how many it deleted. A row
    /// written again meanwhile with a later expiry is kept. Run it from a
    /// timer with the same clock the engine reads.
    ///
    /// # Errors
    /// The errors of any call; rows deleted by earlier batches stay deleted.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, PgStoreError> {
        if now < OffsetDateTime::UNIX_EPOCH {
            // Stored expiries are clamped to the epoch (see `expires_at`).
            return Ok(0);
        }
        let now = floor_micros(now);
        let mut total = 0;
        loop {
            let deadline = self.deadline();
            let client = self.checkout(deadline).await?;
            let outcome = timeout_at(deadline, async {
                let statement = client.prepare_cached(PURGE).await?;
                client.execute(&statement, &[&now, &PURGE_BATCH]).await
            })
            .await;
            let deleted = settle(client, outcome)?;
            total += deleted;
            if deleted < PURGE_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// A blocking [`Store`] over this store, running its calls on `runtime`:
    /// a multi-thread tokio runtime the caller owns and keeps running for as
    /// long as the blocking store is used (tokio's timers refuse to run on
    /// a runtime that was shut down). Call it from threads that are not the
    /// runtime's.
    ///
    /// # Errors
    /// [`PgStoreError::CurrentThreadRuntime`] for a current-thread runtime,
    /// which cannot run the store's timers and sockets from another thread.
    pub fn blocking(&self, runtime: Handle) -> Result<BlockingPgStore, PgStoreError> {
        if runtime.runtime_flavor() == RuntimeFlavor::CurrentThread {
            return Err(PgStoreError::CurrentThreadRuntime);
        }
        Ok(BlockingPgStore {
            store: self.clone(),
            runtime,
        })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.call_timeout
    }

    async fn checkout(&self, deadline: Instant) -> Result<Object, PgStoreError> {
        match timeout_at(deadline, self.inner.pool.get()).await {
            Ok(client) => Ok(client?),
            Err(_) => Err(PgStoreError::Timeout),
        }
    }

    /// The row's `expires_at`: the record's, rounded up to PostgreSQL's
    /// microsecond, and raised to the Unix epoch if a hostile clock put it
    /// before (PostgreSQL's timestamps start in 4713 BC). Raising an expiry
    /// only keeps a row longer.
    fn expires_at(&self, record: &Record) -> OffsetDateTime {
        ceil_micros(
            record
                .expires_at(&self.inner.policy)
                .max(OffsetDateTime::UNIX_EPOCH),
        )
    }
}

/// `at` rounded up to PostgreSQL's microsecond. At the last representable
/// instant it stays as it is (its sub-microsecond part is then lost in the
/// year 9999).
fn ceil_micros(at: OffsetDateTime) -> OffsetDateTime {
    let below = at.nanosecond() % 1000;
    if below == 0 {
        return at;
    }
    at.checked_add(time::Duration::nanoseconds(i64::from(1000 - below)))
        .unwrap_or(at)
}

/// `now` rounded down to PostgreSQL's microsecond, so a purge never compares
/// against a later instant than the caller's.
fn floor_micros(now: OffsetDateTime) -> OffsetDateTime {
    let below = now.nanosecond() % 1000;
    now.checked_sub(time::Duration::nanoseconds(i64::from(below)))
        .unwrap_or(now)
}

/// A statement's outcome within the deadline. On a timeout the connection
/// is taken out of the pool and closed: it may still be waiting on a hung
/// server, and the next call must not queue behind it.
fn settle<T>(
    client: Object,
    outcome: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
) -> Result<T, PgStoreError> {
    match outcome {
        Ok(result) => Ok(result?),
        Err(_) => {
            drop(Object::take(client));
            Err(PgStoreError::Timeout)
        }
    }
}

/// A version read from the table: sequences start at 1.
fn version(stored: i64) -> Result<Version, PgStoreError> {
    match u64::try_from(stored) {
        Ok(v) if v > 0 => Ok(Version(v)),
        _ => Err(PgStoreError::BadVersion),
    }
}

impl AsyncStore for PgStore {
    type Error = PgStoreError;

    async fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, PgStoreError> {
        let subject = self.inner.hasher.hash_key(key);
        let deadline = self.deadline();
        let client = self.checkout(deadline).await?;
        let outcome = timeout_at(deadline, async {
            let statement = client.prepare_cached(LOAD).await?;
            client.query_opt(&statement, &[&subject.as_slice()]).await
        })
        .await;
        let Some(row) = settle(client, outcome)? else {
            return Ok(None);
        };
        let stored: i64 = row.try_get(0)?;
        let bytes: &[u8] = row.try_get(1)?;
        let record = Record::from_bytes(bytes).map_err(PgStoreError::BadRecord)?;
        Ok(Some((record, version(stored)?)))
    }

    async fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, PgStoreError> {
        let expected = match expected.map(|v| i64::try_from(v.0)) {
            None => None,
            Some(Ok(v)) => Some(v),
            // No row holds a version past i64::MAX.
            Some(Err(_)) => return Ok(Swap::Conflict),
        };
        let subject = self.inner.hasher.hash_key(key);
        let bytes = new.to_bytes();
        let expires_at = self.expires_at(new);
        let deadline = self.deadline();
        let client = self.checkout(deadline).await?;
        let outcome = timeout_at(deadline, async {
            match expected {
                None => {
                    let statement = client.prepare_cached(INSERT).await?;
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                        [&subject.as_slice(), &bytes, &expires_at];
                    client.query_opt(&statement, &params).await
                }
                Some(expected) => {
                    let statement = client.prepare_cached(UPDATE).await?;
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                        [&subject.as_slice(), &expected, &bytes, &expires_at];
                    client.query_opt(&statement, &params).await
                }
            }
        })
        .await;
        match settle(client, outcome)? {
            None => Ok(Swap::Conflict),
            Some(row) => Ok(Swap::Done(version(row.try_get(0)?)?)),
        }
    }
}

/// [`PgStore`] as a blocking [`Store`], for synchronous code such as
/// otpflow's [`Verifier`](otpflow::Verifier): each call runs on a tokio
/// runtime the caller owns (from [`PgStore::blocking`]) and blocks the
/// calling thread until it ends, within the call timeout.
///
/// Calls made on a thread inside a tokio runtime's context are refused with
/// [`PgStoreError::InsideRuntime`] (blocking there would stall or deadlock
/// the executor): use the async [`PgStore`] from async code.
///
/// ```no_run
/// use otpflow::{KeyId, KeyRing, MemoryStore, Policy, SecretKey, SystemClock, Verifier};
/// use otpflow_postgres::{PgStore, SubjectHasher};
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(1)
///     .enable_all()
///     .build()?;
/// let pg: tokio_postgres::Config = "host=127.0.0.1 user=otpflow dbname=otp".parse()?;
/// let store = PgStore::builder(pg, SubjectHasher::new(&[7u8; 32])?, Policy::default())
///     .build()?
///     .blocking(runtime.handle().clone())?;
/// store.migrate()?;
/// let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?);
/// let verifier = Verifier::new(Policy::default(), keys, store, SystemClock);
/// # let _ = verifier;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BlockingPgStore {
    store: PgStore,
    runtime: Handle,
}

impl BlockingPgStore {
    /// The async store underneath.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// [`PgStore::migrate`], blocking.
    ///
    /// # Errors
    /// As [`PgStore::migrate`], and [`PgStoreError::InsideRuntime`].
    pub fn migrate(&self) -> Result<u32, PgStoreError> {
        self.block(self.store.migrate())?
    }

    /// [`PgStore::purge_expired`], blocking.
    ///
    /// # Errors
    /// As [`PgStore::purge_expired`], and [`PgStoreError::InsideRuntime`].
    pub fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, PgStoreError> {
        self.block(self.store.purge_expired(now))?
    }

    fn block<F: Future>(&self, future: F) -> Result<F::Output, PgStoreError> {
        if Handle::try_current().is_ok() {
            return Err(PgStoreError::InsideRuntime);
        }
        Ok(self.runtime.block_on(future))
    }
}

impl Store for BlockingPgStore {
    type Error = PgStoreError;

    fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, PgStoreError> {
        self.block(AsyncStore::load(&self.store, key))?
    }

    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, PgStoreError> {
        self.block(AsyncStore::compare_and_swap(
            &self.store,
            key,
            expected,
            new,
        ))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn expiries_round_up_and_purge_instants_down_to_the_microsecond() {
        let whole = datetime!(2026-11-28 12:00:00.000_001 UTC);
        assert_eq!(ceil_micros(whole), whole);
        assert_eq!(floor_micros(whole), whole);
        let odd = datetime!(2026-11-28 12:00:00.000_001_001 UTC);
        assert_eq!(ceil_micros(odd), datetime!(2026-11-28 12:00:00.000_002 UTC));
        assert_eq!(floor_micros(odd), whole);
        // A stored expiry is never before the record's, and a purge instant
        // never after the caller's.
        assert!(ceil_micros(odd) >= odd && floor_micros(odd) <= odd);
    }

    #[test]
    fn stored_versions_start_at_one() {
        assert_eq!(version(1).ok(), Some(Version(1)));
        assert!(matches!(version(0), Err(PgStoreError::BadVersion)));
        assert!(matches!(version(-5), Err(PgStoreError::BadVersion)));
    }
}
