//! [`BlockingRedisStore`]: the synchronous [`Store`], over a pool of
//! blocking connections.

use std::sync::Arc;
use std::time::Duration;

use otpflow::{Record, RecordKey, Store, Swap, Version};
use redis::ConnectionLike;

use crate::{CasReply, RedisOptions, RedisStoreError, ScriptBy, Shared, value};

/// A blocking connection, dropped from the pool after any failure other
/// than a server's error reply: after a timeout the reply may still arrive,
/// and must never be read as the answer to the next command.
struct Conn {
    inner: redis::Connection,
    broken: bool,
}

impl Conn {
    fn query<T: redis::FromRedisValue>(
        &mut self,
        run: impl FnOnce(&mut dyn ConnectionLike) -> redis::RedisResult<T>,
        timeout: Duration,
    ) -> Result<T, RedisStoreError> {
        run(&mut self.inner).map_err(|e| {
            if !matches!(e.kind(), redis::ErrorKind::Server(_)) {
                self.broken = true;
            }
            if e.is_timeout() {
                RedisStoreError::Timeout(timeout)
            } else {
                RedisStoreError::Redis(e)
            }
        })
    }
}

/// Opens blocking connections with every socket operation bounded by the
/// timeout.
#[derive(Debug)]
struct Connector {
    client: redis::Client,
    timeout: Duration,
}

impl r2d2::ManageConnection for Connector {
    type Connection = Conn;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<Conn, redis::RedisError> {
        let inner = self.client.get_connection_with_timeout(self.timeout)?;
        inner.set_read_timeout(Some(self.timeout))?;
        inner.set_write_timeout(Some(self.timeout))?;
        Ok(Conn {
            inner,
            broken: false,
        })
    }

    fn is_valid(&self, connection: &mut Conn) -> Result<(), redis::RedisError> {
        redis::cmd("PING")
            .query::<String>(&mut connection.inner)
            .map(drop)
    }

    fn has_broken(&self, connection: &mut Conn) -> bool {
        connection.broken || !connection.inner.is_open()
    }
}

/// A [`Store`] for synchronous code, over a pool of blocking connections
/// ([`RedisOptions::pool_size`], 16 by default). Same keys, script and
/// expiry as [`RedisStore`](crate::RedisStore); the two can share a Redis.
/// Clones share the pool.
#[derive(Clone)]
pub struct BlockingRedisStore {
    pool: r2d2::Pool<Connector>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BlockingRedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRedisStore")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl BlockingRedisStore {
    /// A store for the Redis at `url`. Connections open when first needed
    /// (so this succeeds with the server down), each bounded by the
    /// options' timeout, as is waiting for one from the pool.
    ///
    /// # Errors
    /// [`RedisStoreError::Redis`] for a bad URL.
    pub fn connect(url: &str, options: RedisOptions) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(url)?;
        let connector = Connector {
            client,
            timeout: options.timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size)
            .min_idle(Some(0))
            .connection_timeout(options.timeout)
            .test_on_check_out(false)
            .build_unchecked(connector);
        Ok(Self {
            pool,
            shared: crate::Shared::new(options),
        })
    }

    /// The options.
    pub fn options(&self) -> &RedisOptions {
        &self.shared.options
    }

    /// A connection whose socket timeouts fit `timeout`.
    fn connection(
        &self,
        timeout: Duration,
    ) -> Result<r2d2::PooledConnection<Connector>, RedisStoreError> {
        let mut connection = self.pool.get()?;
        if let Err(e) = connection.inner.set_read_timeout(Some(timeout)) {
            connection.broken = true;
            return Err(e.into());
        }
        Ok(connection)
    }
}

impl Store for BlockingRedisStore {
    type Error = RedisStoreError;

    fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, RedisStoreError> {
        let timeout = self.shared.options.timeout;
        let mut connection = self.connection(timeout)?;
        let name = self.shared.options.name(key);
        let mut get = redis::cmd("GET");
        get.arg(name.as_bytes());
        let bytes: Option<Vec<u8>> = connection.query(|c| get.query(c), timeout)?;
        bytes.map(|b| value::decode(&b)).transpose()
    }

    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, RedisStoreError> {
        let shared = &self.shared;
        let timeout = shared.write_timeout();
        let args = shared.cas_args(key, expected, new)?;
        let mut connection = self.connection(timeout)?;
        let mut by = ScriptBy::Digest;
        loop {
            let request = shared.cas_request(by, &args);
            let replies: Vec<redis::RedisResult<i64>> =
                connection.query(|c| request.query(c), timeout)?;
            match shared.cas_reply(replies, &args)? {
                CasReply::Swap(swap) => return Ok(swap),
                CasReply::NoScript if by == ScriptBy::Digest => by = ScriptBy::Body,
                CasReply::NoScript => return Err(RedisStoreError::UnexpectedReply),
            }
        }
    }
}
