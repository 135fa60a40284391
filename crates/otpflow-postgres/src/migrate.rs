//! The embedded schema migrations, applied by
//! [`PgStore::migrate`](crate::PgStore::migrate).
//!
//! Each migration runs once, in order, inside one transaction that holds a
//! transaction-scoped advisory lock, so several processes may call
//! `migrate()` at once: one applies, the others wait and then find nothing
//! to do. Applied versions are listed in `otpflow_schema`.

use tokio_postgres::Client;

use crate::error::PgStoreError;

/// One step of the schema.
struct Migration {
    version: i32,
    sql: &'static str,
}

/// The schema, oldest first. Never edit a published step: add a new one.
///
/// Version 1: the records table. `subject` is the keyed hash of the subject
/// (see [`SubjectHasher`](crate::SubjectHasher)); `record` is
/// [`Record::to_bytes`](otpflow::Record::to_bytes); `version` comes from a
/// sequence, so a subject deleted by the purge and created again never gets
/// back a version a stale caller still holds; `expires_at` is
/// [`Record::expires_at`](otpflow::Record::expires_at), indexed for the
/// purge.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: "
        CREATE SEQUENCE otpflow_record_versions AS bigint MINVALUE 1 NO CYCLE;
        CREATE TABLE otpflow_records (
            subject bytea PRIMARY KEY CHECK (octet_length(subject) = 32),
            version bigint NOT NULL,
            record bytea NOT NULL,
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX otpflow_records_expires_at ON otpflow_records (expires_at);
    ",
}];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 1;

/// The advisory lock `migrate` holds (the bytes of "otpflow\0" as a
/// big-endian integer): one per database, shared by every schema in it.
const MIGRATION_LOCK: i64 = 0x6f74_7066_6c6f_7700;

/// Brings the schema on `client`'s `search_path` up to [`SCHEMA_VERSION`];
/// returns how many migrations it applied (0 when it was up to date).
pub(crate) async fn migrate(client: &mut Client) -> Result<u32, PgStoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS otpflow_schema (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM otpflow_schema", &[])
        .await?
        .try_get(0)?;
    if found > SCHEMA_VERSION {
        return Err(PgStoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    let mut applied = 0;
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO otpflow_schema (version) VALUES ($1)",
            &[&migration.version],
        )
        .await?;
        applied += 1;
    }
    tx.commit().await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_run_from_one_without_gaps_to_the_newest() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(m.version).ok(), Some(i + 1));
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }
}
