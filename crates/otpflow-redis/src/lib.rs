//! otpflow's [`AsyncStore`] ([`RedisStore`]) and [`Store`](otpflow::Store)
//! ([`BlockingRedisStore`]) on Redis 7, Valkey 8 and Redis Cluster.
//!
//! # How records are kept
//!
//! - **One key per subject**, named `<prefix>:{<hash>}` where `<hash>` is a
//!   keyed hash (HMAC-SHA256, truncated to 128 bits, hex) of the subject
//!   (`login:+447401101801`) under a key of the store's own
//!   ([`RedisOptions::new`]). A dump of Redis or a `MONITOR` does not list
//!   the numbers being verified; whoever holds the naming key can still test
//!   whether a given number has a record, so keep it with your other
//!   secrets. The braces make the hash a Cluster hash tag: a subject's key
//!   lives in one slot. A store remembers the hashes of the last subjects
//!   it named (1,024 slots at most, each holding a subject's `store_key`
//!   and its hash, zeroized when replaced or dropped; a store's clones and
//!   options share them), so the write that follows a load reuses the
//!   load's hash instead of computing it again.
//! - **The value** is the record's version (8 bytes) followed by
//!   [`Record::to_bytes`]. Bytes that do not decode are a
//!   [`RedisStoreError::Corrupt`], never a panic.
//! - **Compare-and-swap is one Lua script** ([`CAS_SCRIPT`]) sent with
//!   `EVALSHA`: it compares the stored version with the expected one and
//!   writes the new value with `SET … PXAT`, atomically. A server that
//!   answers `NOSCRIPT` (restarted, a replica just promoted, `SCRIPT
//!   FLUSH`) gets the same call once more as `EVAL` with the script's
//!   body, which caches it there. A load is one `GET`. So `verify` costs
//!   one `GET` and one `EVALSHA`, `status` one `GET`.
//! - **Versions** are drawn at random (64 bits) for every write, from a
//!   ChaCha12 generator of the store's seeded from the operating system
//!   (and seeded afresh every 65,536 draws), so a record that expired and
//!   was created again never takes a version its predecessor had (a
//!   counter kept in the key would restart at zero): a stale writer can
//!   never match it.
//! - **Expiry** is the key's own: `PXAT` at [`Record::expires_at`], rounded
//!   up to the millisecond, so Redis drops the record no earlier than the
//!   contract allows. [`RedisOptions::new`] takes the [`Policy`] the
//!   verifier uses, which `expires_at` needs.
//! - **Every call has a timeout** ([`RedisOptions::timeout`], 1 s by
//!   default): a dead or hung server gives [`RedisStoreError::Timeout`] or
//!   a connection error, which the verifier surfaces as
//!   [`Error::Store`](otpflow::Error::Store).
//!
//! # What each write mode can lose
//!
//! Redis replicates asynchronously. With [`WriteMode::Plain`] a write is
//! acknowledged once the primary has run the script; if the primary dies
//! before a replica has it and the replica is promoted, the write is lost.
//! For otpflow that means, on failover only: a spent check comes back (one
//! more guess than the budget), a failure stops counting toward the cap, a
//! validation that succeeded reads as still `Sent` (its code can validate
//! once more), a cancel is undone. Versions stay safe: a lost write's
//! version is never reused, so no stale writer overwrites a newer record.
//!
//! [`WriteMode::WaitForReplicas`] sends `WAIT n timeout` right behind the
//! script, in the same pipeline (no extra round trip; on a Cluster both go
//! to the key's primary), and refuses ([`RedisStoreError::NotReplicated`])
//! when fewer than `n` replicas acknowledged in time. An acknowledged write
//! then survives the loss of the primary if one of those replicas is
//! promoted (Sentinel and Cluster promote the most up-to-date one).
//!
//! The refusal does not undo the write: it stands on the primary (and
//! reaches the replicas once they catch up). The call failed as
//! [`Error::Store`](otpflow::Error::Store), but its effect may stand, which
//! errs on the side of refusing: a `verify` whose code was right reads
//! `Validated` afterwards (the same code again gets
//! [`Error::AlreadyValidated`](otpflow::Error::AlreadyValidated), never a
//! second success), a check may be spent without an answer, and a `start`
//! leaves a validation whose code the caller never got (the next `start`
//! resends it once the cooldown has passed). If the primary dies before a
//! replica took such a write, it is lost, as it was never acknowledged.
//!
//! `WAIT` blocks the connection it runs on until it returns. [`RedisStore`]
//! multiplexes one connection, so while the replicas lag, every call sent
//! behind a waiting write waits with it (reads included): keep `WAIT`'s
//! timeout short. `WAIT` does not make Redis strongly consistent (a
//! replica can still lose the write in a crash of its own). For
//! durability across a crash of the whole server, run with `appendonly
//! yes` and `appendfsync always`.
//!
//! # Redis Cluster
//!
//! Pass a Cluster connection (the `redis` crate's `cluster-async`
//! feature) to [`RedisStore::with_connection`]. Keys are hash-tagged, so
//! each call goes to one primary. Give the client the store's timeout as
//! its `response_timeout` and a few `retries`: on failover it follows the
//! `MOVED` answers to the promoted replica and refreshes its slot map by
//! itself. What a failover costs, measured by `tests/cluster.rs` (6 nodes,
//! `cluster-node-timeout 1000`): calls to the lost primary's slots fail as
//! [`Error::Store`](otpflow::Error::Store) for about 2–3 s (the node
//! timeout, the election, the client's refresh), each within its timeout;
//! other slots are served throughout (but while the slots of a failed
//! primary have no owner, a cluster with the default
//! `cluster-require-full-coverage yes` refuses every key).
//!
//! A replica is promoted only if it was in sync recently: one that never
//! finished its first sync, or lost its link to the primary for longer
//! than `cluster-node-timeout × cluster-replica-validity-factor +
//! repl-ping-replica-period` (20 s by default with a 1 s node timeout), is
//! never promoted ("Currently unable to failover: Disconnected from master
//! for longer than allowed"), and the slots stay down until the primary
//! comes back. A fresh cluster is at risk until each replica has synced
//! (`INFO replication` on the primary lists it `state=online`); Redis 7
//! delays a first sync by `repl-diskless-sync-delay` (5 s by default).
//! With [`WriteMode::WaitForReplicas`], a promoted replica has no replica
//! of its own until the lost node comes back (as its replica) or another
//! is added: its slots refuse writes ([`RedisStoreError::NotReplicated`])
//! until then, while the other slots keep working.
//!
//! ```no_run
//! use otpflow::{AsyncVerifier, KeyId, KeyRing, Policy, SecretKey, SystemClock};
//! use otpflow_redis::{RedisOptions, RedisStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::default();
//! // 32+ random bytes from your secrets manager, kept apart from the code keys.
//! let naming_key = [7u8; 32];
//! let options = RedisOptions::new(&naming_key, policy.clone())?;
//! let store = RedisStore::connect("redis://127.0.0.1:6379", options).await?;
//! let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?);
//! let verifier = AsyncVerifier::new(policy, keys, store, SystemClock);
//! # let _ = verifier;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod blocking;
mod error;
mod naming;
mod value;
mod version;

use std::sync::Arc;
use std::time::Duration;

use otpflow::{AsyncStore, Policy, Record, RecordKey, SubjectKey, Swap, Version};
use redis::ServerErrorKind;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};

pub use blocking::BlockingRedisStore;
pub use error::RedisStoreError;

use naming::{KeyName, Naming};
use version::Versions;

/// The compare-and-swap script. `KEYS[1]`: the subject's key; `ARGV[1]`:
/// the expected version (8 bytes; empty for "no record"); `ARGV[2]`: the
/// new value (new version, then the record); `ARGV[3]`: the expiry in Unix
/// milliseconds. Returns 1 when written, 0 on a conflict.
pub const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local stored = string.sub(current, 1, 8)
  if stored ~= ARGV[1] or stored == string.sub(ARGV[2], 1, 8) then
    return 0
  end
elseif ARGV[1] ~= '' then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
";

/// The default timeout of every call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "otpflow";

/// How a write is acknowledged. See the [crate docs](crate#what-each-write-mode-can-lose)
/// for what each can lose on failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteMode {
    /// Acknowledged once the primary ran the script.
    #[default]
    Plain,
    /// Then `WAIT replicas timeout`: refused with
    /// [`RedisStoreError::NotReplicated`] unless `replicas` replicas
    /// acknowledged within `timeout`.
    WaitForReplicas {
        /// Replicas that must acknowledge (at least 1).
        replicas: u32,
        /// How long `WAIT` may block.
        timeout: Duration,
    },
}

/// How a store names, expires and sends its records.
#[derive(Clone)]
pub struct RedisOptions {
    naming: Naming,
    prefix: String,
    policy: Policy,
    timeout: Duration,
    write_mode: WriteMode,
    pool_size: u32,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("naming", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("write_mode", &self.write_mode)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl RedisOptions {
    /// Options with `naming_key` (32 to 64 bytes, secret) for key names and
    /// `policy` (the verifier's) for expiry; prefix `otpflow`, timeout 1 s,
    /// [`WriteMode::Plain`].
    ///
    /// # Errors
    /// [`RedisStoreError::Options`] for a key shorter than 32 or longer
    /// than 64 bytes.
    pub fn new(naming_key: &[u8], policy: Policy) -> Result<Self, RedisStoreError> {
        Ok(Self {
            naming: Naming::new(naming_key)?,
            prefix: DEFAULT_PREFIX.to_owned(),
            policy,
            timeout: DEFAULT_TIMEOUT,
            write_mode: WriteMode::Plain,
            pool_size: 16,
        })
    }

    /// The key prefix: 1–64 bytes of `a-z`, `A-Z`, `0-9`, `-`, `_`, `.`
    /// and `:` (no braces, which would move the Cluster hash tag).
    ///
    /// # Errors
    /// [`RedisStoreError::Options`] for any other prefix.
    pub fn prefix(mut self, prefix: &str) -> Result<Self, RedisStoreError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
        if prefix.is_empty() || prefix.len() > naming::MAX_PREFIX || !prefix.bytes().all(allowed) {
            return Err(RedisStoreError::Options(
                "a prefix is 1 to 64 bytes of a-z, A-Z, 0-9, '-', '_', '.' and ':'",
            ));
        }
        self.prefix = prefix.to_owned();
        Ok(self)
    }

    /// The timeout of every call (connecting included), at least 1 ms.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How writes are acknowledged.
    #[must_use]
    pub fn write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = match mode {
            WriteMode::WaitForReplicas { replicas, timeout } => WriteMode::WaitForReplicas {
                replicas: replicas.max(1),
                timeout,
            },
            WriteMode::Plain => WriteMode::Plain,
        };
        self
    }

    /// Connections of a [`BlockingRedisStore`]'s pool (16 by default, at
    /// least 1). [`RedisStore`] multiplexes one connection.
    #[must_use]
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long a compare-and-swap may take: the timeout, plus `WAIT`'s.
    fn write_timeout(&self) -> Duration {
        match self.write_mode {
            WriteMode::Plain => self.timeout,
            WriteMode::WaitForReplicas { timeout, .. } => self.timeout + timeout,
        }
    }

    /// The Redis key of `subject`'s record.
    pub fn key_name(&self, subject: &SubjectKey) -> String {
        self.record_key_name(&RecordKey::from(subject))
    }

    /// The Redis key of any record: a subject's (as
    /// [`key_name`](Self::key_name)) or a budget key's, hashed the same way
    /// (an address or a number range never reaches the server).
    pub fn record_key_name(&self, key: &RecordKey) -> String {
        String::from_utf8_lossy(self.name(key).as_bytes()).into_owned()
    }

    /// The name on the stack, as the stores send it.
    fn name(&self, key: &RecordKey) -> KeyName {
        self.naming.key_name(&self.prefix, key)
    }
}

/// What both stores share: options and the script's digest.
struct Shared {
    options: RedisOptions,
    script: redis::Script,
    versions: Versions,
}

/// How the script goes to the server: by its digest (`EVALSHA`), or with
/// its body (`EVAL`, which also caches it) after the server answered
/// `NOSCRIPT` (a restart, a failover to a node that never saw it, `SCRIPT
/// FLUSH`). `EVAL` carries the key, so a Cluster routes it to the key's
/// node, where a `SCRIPT LOAD` would go to every node and fail while one
/// of them is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScriptBy {
    Digest,
    Body,
}

/// The arguments of one compare-and-swap.
struct CasArgs {
    /// The key of the subject's record.
    name: KeyName,
    /// The expected version, `None` for "no record" (sent empty).
    expected: Option<[u8; 8]>,
    /// The new version, then the record.
    value: Vec<u8>,
    /// `PXAT`'s argument.
    expiry: i64,
}

/// What the server answered to a compare-and-swap.
enum CasReply {
    Swap(Swap),
    /// The server does not have the script cached: send it with its body.
    NoScript,
}

impl Shared {
    fn new(options: RedisOptions) -> Arc<Self> {
        Arc::new(Self {
            options,
            script: redis::Script::new(CAS_SCRIPT),
            versions: Versions::new(),
        })
    }

    fn write_timeout(&self) -> Duration {
        self.options.write_timeout()
    }

    /// A swap's arguments: the key, the expected version, the new value
    /// (under a fresh random version) and its expiry.
    fn cas_args(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<CasArgs, RedisStoreError> {
        let version = self.versions.next()?;
        Ok(CasArgs {
            name: self.options.name(key),
            expected: expected.map(|v| v.0.to_be_bytes()),
            value: value::encode(version, new),
            expiry: value::expiry_millis(new.expires_at(&self.options.policy)),
        })
    }

    /// The script's call, by digest or with its body.
    fn script_command(&self, by: ScriptBy, args: &CasArgs) -> redis::Cmd {
        let (name, script) = match by {
            ScriptBy::Digest => ("EVALSHA", self.script.get_hash()),
            ScriptBy::Body => ("EVAL", CAS_SCRIPT),
        };
        let expected: &[u8] = args.expected.as_ref().map_or(&[], |e| e);
        // Sized up front: one allocation each for the arguments' bytes and
        // their ends (the expiry's digits: at most 20).
        let bytes =
            name.len() + script.len() + 1 + args.name.as_bytes().len() + 8 + args.value.len() + 20;
        let mut command = redis::Cmd::with_capacity(7, bytes);
        command
            .arg(name)
            .arg(script)
            .arg(1)
            .arg(args.name.as_bytes())
            .arg(expected)
            .arg(&args.value)
            .arg(args.expiry);
        command
    }

    /// The compare-and-swap as one pipeline, one round trip: the script,
    /// then with [`WriteMode::WaitForReplicas`] a `WAIT` on the same
    /// connection (a Cluster sends the pipeline to the key's primary; a
    /// `WAIT` on its own would go to every primary). Errors of either
    /// command come back in the reply, not as the call's error.
    fn cas_request(&self, by: ScriptBy, args: &CasArgs) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.add_command(self.script_command(by, args));
        if let WriteMode::WaitForReplicas { replicas, timeout } = self.options.write_mode {
            let millis = u64::try_from(timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            pipe.cmd("WAIT").arg(replicas).arg(millis);
        }
        pipe.ignore_errors();
        pipe
    }

    /// Reads the pipeline's replies: the script's verdict, then (after a
    /// write) whether enough replicas took it. A conflict wrote nothing, so
    /// its `WAIT` does not matter.
    fn cas_reply(
        &self,
        replies: impl IntoIterator<Item = redis::RedisResult<i64>>,
        args: &CasArgs,
    ) -> Result<CasReply, RedisStoreError> {
        let mut replies = replies.into_iter();
        let swap = match replies.next() {
            Some(Ok(reply)) => swap_from(reply, &args.value)?,
            Some(Err(e)) if e.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) => {
                return Ok(CasReply::NoScript);
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(RedisStoreError::UnexpectedReply),
        };
        if let (Swap::Done(_), WriteMode::WaitForReplicas { replicas, .. }) =
            (swap, self.options.write_mode)
        {
            match replies.next() {
                Some(Ok(acknowledged)) => replicated(acknowledged, replicas)?,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(RedisStoreError::UnexpectedReply),
            }
        }
        Ok(CasReply::Swap(swap))
    }
}

/// The verdict of the script's reply.
fn swap_from(reply: i64, value: &[u8]) -> Result<Swap, RedisStoreError> {
    match reply {
        1 => value::version_of(value).map(Swap::Done),
        0 => Ok(Swap::Conflict),
        _ => Err(RedisStoreError::UnexpectedReply),
    }
}

/// A `WAIT` reply against the number wanted.
fn replicated(acknowledged: i64, wanted: u32) -> Result<(), RedisStoreError> {
    let acknowledged = u32::try_from(acknowledged.max(0)).unwrap_or(u32::MAX);
    if acknowledged >= wanted {
        Ok(())
    } else {
        Err(RedisStoreError::NotReplicated {
            acknowledged,
            wanted,
        })
    }
}

/// An [`AsyncStore`] over an async Redis connection: by default a
/// [`ConnectionManager`] (one multiplexed connection that reconnects by
/// itself); any other async connection with
/// [`with_connection`](Self::with_connection), a Cluster connection
/// included. Clones share the connection. Needs a tokio runtime.
#[derive(Clone)]
pub struct RedisStore<C = ConnectionManager> {
    connection: C,
    shared: Arc<Shared>,
}

impl<C> std::fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl RedisStore<ConnectionManager> {
    /// Connects to the Redis at `url` (`redis://host:port/db`,
    /// `rediss://` for TLS when the `redis` crate's TLS feature is on).
    /// The connection manager reconnects on its own; each attempt and each
    /// command is bounded by the options' timeout.
    ///
    /// # Errors
    /// [`RedisStoreError::Redis`] for a bad URL or a server that refuses;
    /// [`RedisStoreError::Timeout`] when it does not answer in time.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            // No response timeout of the client's: each call is bounded by
            // the store's own (a read by the timeout, a write by it plus
            // WAIT's), one timer per call instead of two. A timeout does
            // not make the manager reconnect either way; a reconnection is
            // bounded by the connection timeout, handshake included.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(options.timeout);
        let timeout = options.timeout;
        let connecting = ConnectionManager::new_with_config(client, config);
        let manager = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| RedisStoreError::Timeout(timeout))??;
        Ok(Self::with_connection(manager, options))
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisStore<C> {
    /// A store over an async connection of your own (a Cluster connection,
    /// a connection with TLS or credentials set up your way).
    pub fn with_connection(connection: C, options: RedisOptions) -> Self {
        Self {
            connection,
            shared: Shared::new(options),
        }
    }

    /// The options.
    pub fn options(&self) -> &RedisOptions {
        &self.shared.options
    }

    async fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, RedisStoreError> {
        let name = self.shared.options.name(key);
        let mut connection = self.connection.clone();
        let timeout = self.shared.options.timeout;
        let mut get = redis::cmd("GET");
        get.arg(name.as_bytes());
        let get = get.query_async::<Option<Vec<u8>>>(&mut connection);
        let bytes = tokio::time::timeout(timeout, get)
            .await
            .map_err(|_| RedisStoreError::Timeout(timeout))??;
        bytes.map(|b| value::decode(&b)).transpose()
    }

    async fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, RedisStoreError> {
        let shared = &self.shared;
        let args = shared.cas_args(key, expected, new)?;
        let mut connection = self.connection.clone();
        let timeout = shared.write_timeout();
        let write = async {
            let mut by = ScriptBy::Digest;
            loop {
                let reply = if shared.options.write_mode == WriteMode::Plain {
                    // One command, no pipeline to build (nor a vector of
                    // replies); its error, a server's (NOSCRIPT) or the
                    // connection's, is read below like a pipeline's.
                    let reply = shared
                        .script_command(by, &args)
                        .query_async::<i64>(&mut connection)
                        .await;
                    shared.cas_reply([reply], &args)?
                } else {
                    let replies: Vec<redis::RedisResult<i64>> = shared
                        .cas_request(by, &args)
                        .query_async(&mut connection)
                        .await?;
                    shared.cas_reply(replies, &args)?
                };
                match reply {
                    CasReply::Swap(swap) => return Ok(swap),
                    CasReply::NoScript if by == ScriptBy::Digest => by = ScriptBy::Body,
                    CasReply::NoScript => return Err(RedisStoreError::UnexpectedReply),
                }
            }
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| RedisStoreError::Timeout(timeout))?
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> AsyncStore for RedisStore<C> {
    type Error = RedisStoreError;

    fn load(
        &self,
        key: &RecordKey,
    ) -> impl Future<Output = Result<Option<(Record, Version)>, RedisStoreError>> + Send {
        RedisStore::load(self, key)
    }

    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> impl Future<Output = Result<Swap, RedisStoreError>> + Send {
        RedisStore::compare_and_swap(self, key, expected, new)
    }
}

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
