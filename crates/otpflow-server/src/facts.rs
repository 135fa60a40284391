//! Facts the seeds keep beside otpflow's records, in the same store, so
//! every process serving that store sees them:
//!
//! - Kavoon's clients: a number that has validated once (`new_client` is
//!   true only the first time, whichever process answers);
//! - KGen's links: a number linked to a user (`isNewUser`);
//! - Kii's verified numbers: which user of an app verified a number
//!   (already verified, verified by another user).
//!
//! A fact is a value under a key in a [`Space`]. Facts are kept for good
//! (they stand for a customer table a real service would have); none is
//! ever dropped by this service. In Redis and PostgreSQL a fact's key is a
//! keyed hash (HMAC-SHA256 under `store_key`) of the key, so neither lists
//! phone numbers; the values are user ids and markers, never numbers.
//!
//! [`Facts`] is the server's own small trait; [`MemoryFacts`],
//! [`RedisFacts`] and [`PgFacts`] implement it for the three stores.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use otpflow_postgres::deadpool_postgres::Pool;
use redis::aio::ConnectionManager;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::tokens::hex;

/// What a [`Facts`] call returns: an answer already there (the memory
/// store's: no future boxed per call) or a boxed future (a store over the
/// network).
///
/// ```
/// use otpflow_server::facts::{FactFuture, FactsError};
/// # tokio::runtime::Builder::new_current_thread().build().expect("rt").block_on(async {
/// assert_eq!(FactFuture::ready(Ok(7)).await, Ok(7));
/// assert_eq!(FactFuture::boxed(async { Err::<u8, _>(FactsError) }).await, Err(FactsError));
/// # });
/// ```
pub struct FactFuture<'a, T>(Answer<'a, T>);

enum Answer<'a, T> {
    Ready(Option<Result<T, FactsError>>),
    Pending(Pin<Box<dyn Future<Output = Result<T, FactsError>> + Send + 'a>>),
}

impl<'a, T> FactFuture<'a, T> {
    /// An answer known at once.
    pub fn ready(result: Result<T, FactsError>) -> Self {
        Self(Answer::Ready(Some(result)))
    }

    /// An answer `future` will give.
    pub fn boxed(future: impl Future<Output = Result<T, FactsError>> + Send + 'a) -> Self {
        Self(Answer::Pending(Box::pin(future)))
    }
}

impl<T> std::fmt::Debug for FactFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Answer::Ready(_) => "FactFuture::Ready",
            Answer::Pending(_) => "FactFuture::Pending",
        })
    }
}

impl<T: Unpin> Future for FactFuture<'_, T> {
    type Output = Result<T, FactsError>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut self.get_mut().0 {
            // Polled again after its answer (a caller's bug): an error,
            // never a panic.
            Answer::Ready(answer) => {
                std::task::Poll::Ready(answer.take().unwrap_or(Err(FactsError)))
            }
            Answer::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

/// The kinds of fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Space {
    /// Kavoon: E.164 → `"1"` once the number has validated.
    KavoonClient,
    /// KGen: E.164 → the user id the number is linked to.
    KgenLink,
    /// Kii: [`kii_key`] (app and E.164) → the user id that verified it.
    KiiVerified,
}

impl Space {
    /// The space's stable name (part of every stored key).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KavoonClient => "kavoon-client",
            Self::KgenLink => "kgen-link",
            Self::KiiVerified => "kii-verified",
        }
    }
}

/// The key of a Kii app's number: the app id, length-prefixed, then the
/// E.164 number, so no two (app, number) pairs share a key.
pub fn kii_key(app_id: &str, e164: &str) -> String {
    format!("{}:{app_id}{e164}", app_id.len())
}

/// The shared facts could not be read or written. Says nothing of the
/// fact: the store's own error is logged (at `warn`) where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactsError;

impl std::fmt::Display for FactsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the shared state is unavailable")
    }
}

impl std::error::Error for FactsError {}

/// Where the seeds' facts live. Each call is atomic in the store: two
/// processes that [`claim`](Facts::claim) one key at once get one winner.
pub trait Facts: Send + Sync + std::fmt::Debug {
    /// Records `value` under `key` unless a value is there. `Ok(None)` when
    /// this call recorded it, `Ok(Some(earlier))` when another call had.
    ///
    /// # Errors
    /// [`FactsError`] when the store cannot be reached in time.
    fn claim<'a>(
        &'a self,
        space: Space,
        key: &'a str,
        value: &'a str,
    ) -> FactFuture<'a, Option<String>>;

    /// The value under `key`, if any.
    ///
    /// # Errors
    /// [`FactsError`] when the store cannot be reached in time.
    fn get<'a>(&'a self, space: Space, key: &'a str) -> FactFuture<'a, Option<String>>;

    /// Sets `key` to `value`, replacing any earlier value.
    ///
    /// # Errors
    /// [`FactsError`] when the store cannot be reached in time.
    fn put<'a>(&'a self, space: Space, key: &'a str, value: &'a str) -> FactFuture<'a, ()>;
}

/// Facts in this process (`--store memory`): they die with it.
///
/// ```
/// use otpflow_server::facts::{Facts, MemoryFacts, Space};
/// # tokio::runtime::Builder::new_current_thread().build().expect("rt").block_on(async {
/// let facts = MemoryFacts::default();
/// assert_eq!(facts.claim(Space::KavoonClient, "+447401101801", "1").await, Ok(None));
/// assert_eq!(
///     facts.claim(Space::KavoonClient, "+447401101801", "1").await,
///     Ok(Some("1".to_owned()))
/// );
/// # });
/// ```
///
/// Each space is a striped map: [`FACT_SHARDS`] small tables, each behind
/// its own lock, so the runtime's threads rarely wait for one another and
/// a table that grows rehashes only its own share of the facts. A key is
/// hashed once (the hash picks the shard and is the table's hash), with
/// `foldhash` under a seed drawn from the system's CSPRNG when the service
/// starts:
/// several times cheaper than the standard library's SipHash on a short
/// key. On flooding: a key reaches these maps only after its number has
/// validated a code (Kavoon, KGen) or through an app the operator loaded
/// (Kii), so an outsider cannot choose many keys; and the random seed
/// keeps them from precomputing keys that collide (`foldhash` is not a
/// keyed cryptographic hash, which is the residual risk: an attacker who
/// could validate many numbers and time the answers).
#[derive(Debug)]
pub struct MemoryFacts {
    /// One striped map per [`Space`] (indexed by [`space_index`]).
    spaces: [Striped; 3],
    hasher: foldhash::fast::SeedableRandomState,
}

/// How many independently locked tables each space of [`MemoryFacts`]
/// has.
pub const FACT_SHARDS: usize = 16;

fn space_index(space: Space) -> usize {
    match space {
        Space::KavoonClient => 0,
        Space::KgenLink => 1,
        Space::KiiVerified => 2,
    }
}

/// The longest key and value, together, a [`Fact`] keeps inside its
/// table's slot (an E.164 number and Kavoon's `"1"` fit, so a Kavoon claim
/// allocates nothing).
const INLINE: usize = 30;

/// One fact: its key's hash (compared before the key, and what the table
/// rehashes by, so growing a table reads no key), then the key and the
/// value side by side, in the slot when they fit, else in one allocation.
struct Fact {
    hash: u64,
    text: Text,
}

enum Text {
    Inline {
        len: u8,
        key_len: u8,
        bytes: [u8; INLINE],
    },
    Heap {
        bytes: Box<[u8]>,
        key_len: usize,
    },
}

impl Fact {
    fn new(hash: u64, key: &str, value: &str) -> Self {
        let len = key.len() + value.len();
        let text = match (u8::try_from(len), u8::try_from(key.len())) {
            (Ok(short), Ok(key_len)) if len <= INLINE => {
                let mut bytes = [0u8; INLINE];
                let (k, v) = bytes.split_at_mut(key.len());
                k.copy_from_slice(key.as_bytes());
                if let Some(v) = v.get_mut(..value.len()) {
                    v.copy_from_slice(value.as_bytes());
                }
                Text::Inline {
                    len: short,
                    key_len,
                    bytes,
                }
            }
            _ => {
                let mut bytes = Vec::with_capacity(len);
                bytes.extend_from_slice(key.as_bytes());
                bytes.extend_from_slice(value.as_bytes());
                Text::Heap {
                    bytes: bytes.into_boxed_slice(),
                    key_len: key.len(),
                }
            }
        };
        Self { hash, text }
    }

    /// The key and the value, as they were given.
    fn parts(&self) -> (&[u8], &[u8]) {
        let (bytes, key_len) = match &self.text {
            Text::Inline {
                len,
                key_len,
                bytes,
            } => (
                bytes.get(..usize::from(*len)).unwrap_or_default(),
                usize::from(*key_len),
            ),
            Text::Heap { bytes, key_len } => (&bytes[..], *key_len),
        };
        bytes.split_at_checked(key_len).unwrap_or_default()
    }

    fn is(&self, hash: u64, key: &str) -> bool {
        self.hash == hash && self.parts().0 == key.as_bytes()
    }

    /// The value, as given (a `&str`: always UTF-8).
    fn value(&self) -> String {
        String::from_utf8_lossy(self.parts().1).into_owned()
    }
}

/// A table of one shard, aligned to its own cache lines so two shards'
/// locks never share one.
#[repr(align(64))]
#[derive(Default)]
struct Shard(Mutex<hashbrown::HashTable<Fact>>);

struct Striped {
    shards: Box<[Shard]>,
}

impl Default for Striped {
    fn default() -> Self {
        Self {
            shards: (0..FACT_SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl std::fmt::Debug for Striped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys: they are phone numbers.
        f.debug_struct("Striped")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryFacts {
    fn default() -> Self {
        Self {
            spaces: Default::default(),
            // The seed from the system's CSPRNG (foldhash's own random
            // state mixes addresses and a counter: not a secret).
            hasher: match getrandom::u64() {
                Ok(seed) => foldhash::fast::SeedableRandomState::with_seed(
                    seed,
                    foldhash::SharedSeed::global_random(),
                ),
                Err(_) => foldhash::fast::SeedableRandomState::random(),
            },
        }
    }
}

impl MemoryFacts {
    /// The key's hash and its shard's table, locked.
    fn table(
        &self,
        space: Space,
        key: &str,
    ) -> (u64, std::sync::MutexGuard<'_, hashbrown::HashTable<Fact>>) {
        use std::hash::BuildHasher as _;
        let hash = self.hasher.hash_one(key);
        // The table reads the hash's low bits (the bucket) and its top
        // seven (the tag): the shard comes from bits in between.
        let shard = usize::try_from((hash >> 32) % FACT_SHARDS as u64).unwrap_or_default();
        let stripes = &self.spaces[space_index(space)].shards;
        let table = stripes.get(shard).unwrap_or(&stripes[0]);
        // Each change is one insert: a poisoned table is still consistent.
        (hash, table.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Claims, reads or sets `key` under one lookup.
    fn with<T>(
        &self,
        space: Space,
        key: &str,
        f: impl FnOnce(u64, hashbrown::hash_table::Entry<'_, Fact>) -> T,
    ) -> T {
        let (hash, mut table) = self.table(space, key);
        let entry = table.entry(hash, |fact| fact.is(hash, key), |fact| fact.hash);
        f(hash, entry)
    }
}

impl Facts for MemoryFacts {
    fn claim<'a>(
        &'a self,
        space: Space,
        key: &'a str,
        value: &'a str,
    ) -> FactFuture<'a, Option<String>> {
        use hashbrown::hash_table::Entry;
        let out = self.with(space, key, |hash, entry| match entry {
            Entry::Occupied(o) => Some(o.get().value()),
            Entry::Vacant(v) => {
                v.insert(Fact::new(hash, key, value));
                None
            }
        });
        FactFuture::ready(Ok(out))
    }

    fn get<'a>(&'a self, space: Space, key: &'a str) -> FactFuture<'a, Option<String>> {
        let (hash, table) = self.table(space, key);
        let out = table.find(hash, |fact| fact.is(hash, key)).map(Fact::value);
        FactFuture::ready(Ok(out))
    }

    fn put<'a>(&'a self, space: Space, key: &'a str, value: &'a str) -> FactFuture<'a, ()> {
        use hashbrown::hash_table::Entry;
        self.with(space, key, |hash, entry| match entry {
            Entry::Occupied(mut o) => *o.get_mut() = Fact::new(hash, key, value),
            Entry::Vacant(v) => {
                v.insert(Fact::new(hash, key, value));
            }
        });
        FactFuture::ready(Ok(()))
    }
}

/// Names facts in a shared store: HMAC-SHA256 under `store_key` of the
/// space and the key, so the store lists no phone number.
#[derive(Clone)]
struct Namer {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Namer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Namer { <redacted> }")
    }
}

impl Namer {
    fn new(store_key: &[u8]) -> Self {
        Self {
            key: Zeroizing::new(store_key.to_vec()),
        }
    }

    fn hash(&self, space: Space, key: &str) -> [u8; 32] {
        let Ok(mut mac) = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(b"otpflow-server/fact/v1\0");
        mac.update(space.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Facts in Redis, beside the records: one string key per fact,
/// `otpflow-server:fact:<space>:<hash>`; `SET … NX` claims.
#[derive(Clone)]
pub struct RedisFacts {
    connection: ConnectionManager,
    namer: Namer,
    timeout: Duration,
}

impl std::fmt::Debug for RedisFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFacts")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisFacts {
    /// Connects to the Redis at `url`; each call is bounded by `timeout`.
    ///
    /// # Errors
    /// The URL is bad or the server does not answer in time (the message
    /// never carries the URL).
    pub async fn connect(url: &str, store_key: &[u8], timeout: Duration) -> Result<Self, String> {
        // The error's kind only: its text may carry the URL.
        let client = redis::Client::open(url).map_err(|e| format!("{:?}", e.kind()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let connection =
            tokio::time::timeout(timeout, ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| format!("{:?}", e.kind()))?;
        Ok(Self {
            connection,
            namer: Namer::new(store_key),
            timeout,
        })
    }

    fn name(&self, space: Space, key: &str) -> String {
        format!(
            "otpflow-server:fact:{}:{}",
            space.as_str(),
            hex(&self.namer.hash(space, key))
        )
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, FactsError> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut connection)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::warn!(error = ?e.kind(), "facts: redis refused");
                Err(FactsError)
            }
            Err(_) => {
                tracing::warn!("facts: redis timed out");
                Err(FactsError)
            }
        }
    }
}

impl Facts for RedisFacts {
    fn claim<'a>(
        &'a self,
        space: Space,
        key: &'a str,
        value: &'a str,
    ) -> FactFuture<'a, Option<String>> {
        FactFuture::boxed(async move {
            let name = self.name(space, key);
            let mut set = redis::cmd("SET");
            set.arg(&name).arg(value).arg("NX");
            let done: Option<String> = self.run(set).await?;
            if done.is_some() {
                return Ok(None);
            }
            // Facts are never deleted: the key that refused the claim is
            // still there to read.
            let mut get = redis::cmd("GET");
            get.arg(&name);
            let earlier: Option<String> = self.run(get).await?;
            Ok(Some(earlier.unwrap_or_default()))
        })
    }

    fn get<'a>(&'a self, space: Space, key: &'a str) -> FactFuture<'a, Option<String>> {
        FactFuture::boxed(async move {
            let mut get = redis::cmd("GET");
            get.arg(self.name(space, key));
            self.run(get).await
        })
    }

    fn put<'a>(&'a self, space: Space, key: &'a str, value: &'a str) -> FactFuture<'a, ()> {
        FactFuture::boxed(async move {
            let mut set = redis::cmd("SET");
            set.arg(self.name(space, key)).arg(value);
            let _: Option<String> = self.run(set).await?;
            Ok(())
        })
    }
}

/// The table [`PgFacts`] keeps, created at start if absent.
pub const PG_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS otpflow_server_facts (\
     space text NOT NULL, \
     key bytea NOT NULL, \
     value text NOT NULL, \
     created_at timestamptz NOT NULL DEFAULT now(), \
     PRIMARY KEY (space, key))";

const PG_CLAIM: &str = "INSERT INTO otpflow_server_facts (space, key, value) VALUES ($1, $2, $3) \
     ON CONFLICT (space, key) DO NOTHING RETURNING value";
const PG_GET: &str = "SELECT value FROM otpflow_server_facts WHERE space = $1 AND key = $2";
const PG_PUT: &str = "INSERT INTO otpflow_server_facts (space, key, value) VALUES ($1, $2, $3) \
     ON CONFLICT (space, key) DO UPDATE SET value = EXCLUDED.value";

/// Facts in PostgreSQL, in the records' database: one row per fact in
/// `otpflow_server_facts` ([`PG_SCHEMA`]), over the records' pool.
#[derive(Clone)]
pub struct PgFacts {
    pool: Pool,
    namer: Namer,
    timeout: Duration,
}

impl std::fmt::Debug for PgFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFacts")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn pg_failed(what: &str, e: &dyn std::fmt::Display) -> FactsError {
    tracing::warn!(error = %e, "facts: postgres {what} failed");
    FactsError
}

impl PgFacts {
    /// Facts over `pool`, creating the table if absent (safe from several
    /// processes at once: the creation runs under an advisory lock).
    ///
    /// # Errors
    /// The database cannot be reached or refuses the table.
    pub async fn open(pool: Pool, store_key: &[u8], timeout: Duration) -> Result<Self, String> {
        let create = async {
            let mut client = pool.get().await.map_err(|e| e.to_string())?;
            let tx = client.transaction().await.map_err(|e| e.to_string())?;
            // One creator at a time: concurrent CREATE TABLE IF NOT EXISTS
            // can still collide in the catalog.
            tx.execute("SELECT pg_advisory_xact_lock(7461736374)", &[])
                .await
                .map_err(|e| e.to_string())?;
            tx.batch_execute(PG_SCHEMA)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())
        };
        tokio::time::timeout(timeout, create)
            .await
            .map_err(|_| "timed out".to_owned())??;
        Ok(Self {
            pool,
            namer: Namer::new(store_key),
            timeout,
        })
    }

    async fn query(
        &self,
        sql: &'static str,
        space: Space,
        key: &str,
        value: Option<&str>,
    ) -> Result<Option<String>, FactsError> {
        let hash = self.namer.hash(space, key);
        let call = async {
            let client = self.pool.get().await.map_err(|e| pg_failed("pool", &e))?;
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(|e| pg_failed("prepare", &e))?;
            let space = space.as_str();
            let hash = &hash[..];
            let rows = match value {
                Some(v) => client.query(&statement, &[&space, &hash, &v]).await,
                None => client.query(&statement, &[&space, &hash]).await,
            }
            .map_err(|e| pg_failed("query", &e))?;
            rows.first()
                .map(|r| r.try_get::<_, String>(0))
                .transpose()
                .map_err(|e| pg_failed("read", &e))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| pg_failed("call", &"timed out"))?
    }
}

impl Facts for PgFacts {
    fn claim<'a>(
        &'a self,
        space: Space,
        key: &'a str,
        value: &'a str,
    ) -> FactFuture<'a, Option<String>> {
        FactFuture::boxed(async move {
            if self
                .query(PG_CLAIM, space, key, Some(value))
                .await?
                .is_some()
            {
                return Ok(None);
            }
            // A new statement, a new snapshot: the row that refused the
            // claim is visible now.
            Ok(Some(
                self.query(PG_GET, space, key, None)
                    .await?
                    .unwrap_or_default(),
            ))
        })
    }

    fn get<'a>(&'a self, space: Space, key: &'a str) -> FactFuture<'a, Option<String>> {
        FactFuture::boxed(self.query(PG_GET, space, key, None))
    }

    fn put<'a>(&'a self, space: Space, key: &'a str, value: &'a str) -> FactFuture<'a, ()> {
        FactFuture::boxed(async move {
            self.query(PG_PUT, space, key, Some(value)).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now<T>(f: FactFuture<'_, T>) -> Result<T, FactsError>
    where
        T: Unpin,
    {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(f)
    }

    /// Short facts (kept in the slot) and long ones (allocated), enough of
    /// them for every shard's table to grow several times: each claimed
    /// once, read back, replaced, and the spaces kept apart.
    #[test]
    fn memory_facts_keep_every_fact_of_any_length_apart() {
        let facts = MemoryFacts::default();
        let key = |i: usize| {
            if i.is_multiple_of(3) {
                format!("+44740{i:07}")
            } else {
                format!("{}:{}{}", i % 7 + 1, "app".repeat(i % 7 + 1), i)
            }
        };
        let value = |i: usize| "v".repeat(i % 40);
        for i in 0..5_000 {
            assert_eq!(
                now(facts.claim(Space::KiiVerified, &key(i), &value(i))),
                Ok(None)
            );
        }
        for i in 0..5_000 {
            let (k, v) = (key(i), value(i));
            assert_eq!(
                now(facts.claim(Space::KiiVerified, &k, "other")),
                Ok(Some(v.clone()))
            );
            assert_eq!(now(facts.get(Space::KiiVerified, &k)), Ok(Some(v)));
            assert_eq!(now(facts.get(Space::KgenLink, &k)), Ok(None));
        }
        for i in (0..5_000).step_by(7) {
            let k = key(i);
            assert_eq!(now(facts.put(Space::KiiVerified, &k, "é")), Ok(()));
            assert_eq!(
                now(facts.get(Space::KiiVerified, &k)),
                Ok(Some("é".to_owned()))
            );
        }
        // A key that is a prefix of another, and the empty key.
        assert_eq!(now(facts.claim(Space::KgenLink, "+4474", "a")), Ok(None));
        assert_eq!(now(facts.claim(Space::KgenLink, "+447", "b")), Ok(None));
        assert_eq!(now(facts.claim(Space::KgenLink, "", "")), Ok(None));
        assert_eq!(
            now(facts.get(Space::KgenLink, "+4474")),
            Ok(Some("a".to_owned()))
        );
        assert_eq!(now(facts.get(Space::KgenLink, "")), Ok(Some(String::new())));
    }
}
