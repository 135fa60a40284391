//! [`PgStoreError`]: everything the PostgreSQL store can fail with.

use core::fmt;

use otpflow::RecordError;

/// Why a call to the PostgreSQL store failed. otpflow's drivers surface it
/// as [`otpflow::Error::Store`], whose public form is `store_unavailable`
/// (503): none of these messages names a subject, a key or a phone number.
///
/// After an error from [`load`](otpflow::store::AsyncStore::load) nothing was
/// written. After an error from
/// [`compare_and_swap`](otpflow::store::AsyncStore::compare_and_swap) the record is
/// as it was, except after [`Timeout`](Self::Timeout) or a broken
/// connection ([`Database`](Self::Database)) while the `UPDATE` was on its
/// way: then the server may have applied it, exactly as sent. Either way
/// the stored record is one a caller wrote whole, and a retry sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum PgStoreError {
    /// The call did not finish within the store's call timeout: the server
    /// is hung, overloaded or unreachable. The connection it used is closed.
    Timeout,
    /// No connection could be had from the pool (it is closed, or a
    /// connection could not be opened).
    Pool(deadpool_postgres::PoolError),
    /// The server refused a statement or the connection broke.
    Database(tokio_postgres::Error),
    /// A stored row's record bytes are not a record this build can read.
    /// The row is left as it is.
    BadRecord(RecordError),
    /// A stored row's version is not a positive number.
    BadVersion,
    /// The database's schema is newer than this build knows: run a newer
    /// build, never an older one, against it.
    SchemaTooNew {
        /// The schema version found in the database.
        found: i32,
        /// The newest schema version this build knows.
        known: i32,
    },
    /// A blocking call was made on a thread that runs async tasks, where
    /// blocking would stall the executor (or deadlock it). Use the async
    /// [`PgStore`](crate::PgStore) there.
    InsideRuntime,
    /// The runtime handed to [`PgStore::blocking`](crate::PgStore::blocking)
    /// is a current-thread runtime, whose timers and sockets only run inside
    /// its own `block_on`: use a multi-thread runtime.
    CurrentThreadRuntime,
}

impl PgStoreError {
    /// True when the call may succeed if tried again later (a timeout, a
    /// connection that could not be had or broke): the server, not the data,
    /// is at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout | Self::Pool(_) => true,
            Self::Database(e) => match e.as_db_error() {
                None => true,
                Some(db) => transient_state(db.code().code()),
            },
            _ => false,
        }
    }
}

/// SQLSTATEs of a server that is restarting, shutting down, out of
/// resources or that canceled the statement: the same call may succeed
/// later. Class 08 is a connection exception, 53 insufficient resources,
/// 57 operator intervention (57014: canceled, as by `statement_timeout`;
/// 57P01–57P03: shutting down, crashed, starting up); 40001 and 40P01 are
/// serialization failures and deadlocks.
fn transient_state(code: &str) -> bool {
    ["08", "53", "57"]
        .iter()
        .any(|class| code.starts_with(class))
        || matches!(code, "40001" | "40P01")
}

/// The client's error, with the server's SQLSTATE and message when it sent
/// one (its messages about these statements name no subject: rows are
/// keyed by a hash), or the cause below the client's error otherwise.
fn describe(e: &tokio_postgres::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if let Some(db) = e.as_db_error() {
        return write!(f, "postgres error {}: {}", db.code().code(), db.message());
    }
    write!(f, "postgres error: {e}")?;
    if let Some(cause) = std::error::Error::source(e) {
        write!(f, ": {cause}")?;
    }
    Ok(())
}

impl fmt::Display for PgStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("postgres call timed out"),
            Self::Pool(e) => write!(f, "no postgres connection: {e}"),
            Self::Database(e) => describe(e, f),
            Self::BadRecord(e) => write!(f, "a stored row is not a record: {e}"),
            Self::BadVersion => f.write_str("a stored row has a version below 1"),
            Self::SchemaTooNew { found, known } => write!(
                f,
                "the database schema is version {found}; this build knows up to {known}"
            ),
            Self::InsideRuntime => {
                f.write_str("blocking postgres call made on an async runtime thread")
            }
            Self::CurrentThreadRuntime => {
                f.write_str("the blocking postgres store needs a multi-thread runtime")
            }
        }
    }
}

impl std::error::Error for PgStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pool(e) => Some(e),
            Self::Database(e) => Some(e),
            Self::BadRecord(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for PgStoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(e)
    }
}

impl From<deadpool_postgres::PoolError> for PgStoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Timeout(_) => Self::Timeout,
            deadpool_postgres::PoolError::Backend(e) => Self::Database(e),
            e => Self::Pool(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_no_subject() {
        let errors = [
            PgStoreError::Timeout,
            PgStoreError::BadRecord(RecordError::Truncated),
            PgStoreError::BadVersion,
            PgStoreError::SchemaTooNew { found: 9, known: 1 },
            PgStoreError::InsideRuntime,
            PgStoreError::CurrentThreadRuntime,
        ];
        for e in errors {
            let text = e.to_string();
            assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
            assert!(!text.contains('+'), "{text}");
        }
        assert!(PgStoreError::Timeout.is_transient());
        assert!(!PgStoreError::BadVersion.is_transient());
        assert!(
            PgStoreError::BadRecord(RecordError::Truncated)
                .to_string()
                .contains("end early")
        );
    }
}
