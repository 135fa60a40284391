//! [`RedisStoreError`].

use std::fmt;
use std::time::Duration;

use otpflow::RecordError;

/// A failure of a Redis store. otpflow wraps it in
/// [`Error::Store`](otpflow::Error::Store), whose public form says only
/// "unavailable"; this detail is for your logs. No variant holds a phone
/// number or a key name.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The connection or the server failed (refused, reset, a server error).
    Redis(redis::RedisError),
    /// No connection from the pool in time.
    Pool(r2d2::Error),
    /// The call did not finish within this timeout; a write may or may not
    /// have happened.
    Timeout(Duration),
    /// The stored value is not a record this build can read (with the
    /// record's own reason when the version prefix was there).
    Corrupt(Option<RecordError>),
    /// `WAIT` saw fewer replicas than asked for; the write stands on the
    /// primary but may be lost on failover.
    NotReplicated {
        /// Replicas that acknowledged.
        acknowledged: u32,
        /// Replicas asked for.
        wanted: u32,
    },
    /// The script answered something it never answers.
    UnexpectedReply,
    /// The operating system's random source failed (for a new version).
    Random,
    /// Options out of range.
    Options(&'static str),
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "redis failed: {e}"),
            Self::Pool(e) => write!(f, "no redis connection: {e}"),
            Self::Timeout(d) => write!(f, "redis did not answer within {} ms", d.as_millis()),
            Self::Corrupt(Some(e)) => write!(f, "a stored record does not decode: {e}"),
            Self::Corrupt(None) => f.write_str("a stored value is too short to be a record"),
            Self::NotReplicated {
                acknowledged,
                wanted,
            } => write!(
                f,
                "{acknowledged} of {wanted} replicas acknowledged the write in time"
            ),
            Self::UnexpectedReply => f.write_str("the compare-and-swap script answered oddly"),
            Self::Random => f.write_str("the operating system's random source failed"),
            Self::Options(why) => write!(f, "invalid redis store options: {why}"),
        }
    }
}

impl std::error::Error for RedisStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            Self::Pool(e) => Some(e),
            Self::Corrupt(Some(e)) => Some(e),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for RedisStoreError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

impl From<r2d2::Error> for RedisStoreError {
    fn from(e: r2d2::Error) -> Self {
        Self::Pool(e)
    }
}
