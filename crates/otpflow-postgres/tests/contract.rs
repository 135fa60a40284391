//! The `Store` contract against a real PostgreSQL: compare-and-swap atomic
//! under 16 tasks, fresh versions across delete and re-create, no
//! resurrected writes, expiry not before `expires_at`, an error leaves the
//! record unchanged; bad rows; the migration; statements per operation; the
//! table lists no phone number. One server per run of this file, one schema
//! per test.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use otpflow::store::AsyncStore;
use otpflow::{
    Channel, Error, PhoneNumber, PhonePolicy, Policy, Purpose, Record, State, SubjectKey, Swap,
    Version,
};
use otpflow_postgres::{PgStoreError, SCHEMA_VERSION};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use support::{drive, engine, fresh_store, shared_server};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

fn subject(phone: &str) -> SubjectKey {
    SubjectKey::new(
        Purpose::Login,
        PhoneNumber::parse(phone, &PhonePolicy::default()).unwrap(),
    )
}

/// A record as `start` writes it for a fresh subject, its nonce drawn
/// from `seed`: different seeds give different records.
fn started(seed: u64, subject: &SubjectKey) -> Record {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    engine(Policy::default())
        .start(None, subject, Channel::Sms, NOW, &mut rng)
        .write
        .unwrap()
}

/// `compare_and_swap` of `record` under `subject`'s key, expecting no error.
async fn cas(
    store: &otpflow_postgres::PgStore,
    subject: &SubjectKey,
    version: Option<Version>,
    record: &Record,
) -> Swap {
    store
        .compare_and_swap(&otpflow::RecordKey::from(subject), version, record)
        .await
        .unwrap()
}

/// `load` of `subject`'s key, expecting no error.
async fn load(
    store: &otpflow_postgres::PgStore,
    subject: &SubjectKey,
) -> Option<(Record, Version)> {
    store
        .load(&otpflow::RecordKey::from(subject))
        .await
        .unwrap()
}

macro_rules! server_or_skip {
    () => {
        match shared_server() {
            Some(server) => server,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_is_atomic_under_16_tasks() {
    let server = server_or_skip!();
    let store = Arc::new(fresh_store(&server, "cas_16", Policy::default()).await);
    let key = subject("+447401101801");
    let Swap::Done(mut version) = cas(&store, &key, None, &started(0, &key)).await else {
        panic!("the first insert must succeed");
    };
    for round in 0..20_u64 {
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16_u64)
            .map(|task| {
                let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
                let record = started(round * 100 + task + 1, &key);
                tokio::spawn(async move {
                    barrier.wait().await;
                    let swap = cas(&store, &key, Some(version), &record).await;
                    (swap, record)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            if let (Swap::Done(v), record) = task.await.unwrap() {
                winners.push((v, record));
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one swap wins");
        let (won, record) = winners.pop().unwrap();
        assert!(won > version, "versions only grow");
        let (stored, stored_version) = load(&store, &key).await.unwrap();
        assert_eq!((stored, stored_version), (record, won));
        version = won;
    }
    // Sixteen inserts of a new subject at once: one wins.
    let fresh = subject("+447401101802");
    let tasks: Vec<_> = (0..16_u64)
        .map(|task| {
            let (store, fresh) = (store.clone(), fresh.clone());
            let record = started(10_000 + task, &fresh);
            tokio::spawn(async move {
                store
                    .compare_and_swap(&otpflow::RecordKey::from(&fresh), None, &record)
                    .await
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        if let Swap::Done(_) = task.await.unwrap().unwrap() {
            done += 1;
        }
    }
    assert_eq!(done, 1, "exactly one insert of a new subject wins");
}

#[tokio::test]
async fn versions_are_fresh_across_delete_and_re_create() {
    let server = server_or_skip!();
    let store = fresh_store(&server, "fresh_versions", Policy::default()).await;
    let key = subject("+447401101803");
    let first = started(1, &key);
    let Swap::Done(v1) = cas(&store, &key, None, &first).await else {
        panic!("insert");
    };
    let second = started(2, &key);
    let Swap::Done(v2) = cas(&store, &key, Some(v1), &second).await else {
        panic!("update");
    };
    assert!(v2 > v1);
    // The purge drops the row once it has expired.
    let expires_at = second.expires_at(store.policy());
    assert_eq!(store.purge_expired(expires_at).await.unwrap(), 1);
    assert_eq!(load(&store, &key).await, None);
    // A stale caller holding v2 (or v1) cannot write into the gap…
    assert_eq!(cas(&store, &key, Some(v2), &first).await, Swap::Conflict);
    // …and the re-created record gets a version never seen before, so the
    // stale caller cannot write over it either.
    let third = started(3, &key);
    let Swap::Done(v3) = cas(&store, &key, None, &third).await else {
        panic!("re-create");
    };
    assert!(v3 != v1 && v3 != v2, "{v3:?} reuses a version");
    for stale in [v1, v2] {
        assert_eq!(cas(&store, &key, Some(stale), &first).await, Swap::Conflict);
    }
    assert_eq!(load(&store, &key).await, Some((third, v3)));
}

#[tokio::test]
async fn no_resurrected_writes() {
    let server = server_or_skip!();
    let store = fresh_store(&server, "no_resurrection", Policy::default()).await;
    let key = subject("+447401101804");
    let mut version = None;
    let mut history = Vec::new();
    for seed in 0..10 {
        let record = started(seed, &key);
        let Swap::Done(v) = cas(&store, &key, version, &record).await else {
            panic!("write {seed}");
        };
        assert_eq!(load(&store, &key).await, Some((record.clone(), v)));
        history.push((version, record));
        version = Some(v);
    }
    // Every older version, replayed, conflicts and leaves the newest.
    let newest = load(&store, &key).await;
    for (old, record) in &history {
        assert_eq!(cas(&store, &key, *old, record).await, Swap::Conflict);
    }
    assert_eq!(load(&store, &key).await, newest);
    // A version no row can hold (past i64::MAX) is a conflict, not an error.
    assert_eq!(
        cas(&store, &key, Some(Version(u64::MAX)), &started(99, &key)).await,
        Swap::Conflict
    );
}

#[tokio::test]
async fn purge_never_drops_before_expires_at() {
    let server = server_or_skip!();
    let policy = Policy::default();
    let store = fresh_store(&server, "expiry", policy.clone()).await;
    let engine = engine(policy.clone());
    let key = subject("+447401101805");
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    // A record started at an instant with nanoseconds (PostgreSQL keeps
    // microseconds; the record may keep less).
    let now = NOW + Duration::nanoseconds(123_456_789);
    let record = engine
        .start(None, &key, Channel::Sms, now, &mut rng)
        .write
        .unwrap();
    let expires_at = record.expires_at(&policy);
    let Swap::Done(_) = cas(&store, &key, None, &record).await else {
        panic!("insert");
    };
    for early in [
        Duration::days(1),
        Duration::seconds(1),
        Duration::microseconds(1),
        Duration::nanoseconds(1),
    ] {
        assert_eq!(store.purge_expired(expires_at - early).await.unwrap(), 0);
        assert!(load(&store, &key).await.is_some(), "dropped {early} early");
    }
    // A clock before the epoch purges nothing.
    assert_eq!(
        store
            .purge_expired(OffsetDateTime::UNIX_EPOCH - Duration::days(1))
            .await
            .unwrap(),
        0
    );
    // PostgreSQL keeps microseconds: the row's expiry is rounded up, so it
    // goes at the first microsecond at or after `expires_at`.
    let below = i64::from(expires_at.nanosecond() % 1000);
    let stored_expiry = expires_at + Duration::nanoseconds((1000 - below) % 1000);
    assert_eq!(
        store
            .purge_expired(stored_expiry - Duration::nanoseconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.purge_expired(stored_expiry).await.unwrap(), 1);
    assert_eq!(load(&store, &key).await, None);
}

#[tokio::test]
async fn purge_works_in_batches_and_keeps_live_rows() {
    let server = server_or_skip!();
    let store = fresh_store(&server, "purge_batches", Policy::default()).await;
    let admin = server.admin().await;
    // 2 500 expired rows and 10 live ones, written directly.
    admin
        .batch_execute(
            "INSERT INTO purge_batches.otpflow_records (subject, version, record, expires_at)
             SELECT sha256(int4send(i)), i, '\\x00', timestamptz '2026-01-01' + i * interval '1 second'
             FROM generate_series(1, 2510) AS i",
        )
        .await
        .unwrap();
    let cut = datetime!(2026-01-01 0:00 UTC) + Duration::seconds(2500);
    assert_eq!(store.purge_expired(cut).await.unwrap(), 2500);
    let left: i64 = admin
        .query_one("SELECT count(*) FROM purge_batches.otpflow_records", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 10);
}

#[tokio::test]
async fn an_error_leaves_the_record_unchanged() {
    let server = server_or_skip!();
    let store = fresh_store(&server, "error_unchanged", Policy::default()).await;
    let admin = server.admin().await;
    let key = subject("+447401101806");
    let Swap::Done(v1) = cas(&store, &key, None, &started(1, &key)).await else {
        panic!("insert");
    };
    let before = load(&store, &key).await;
    // The server now refuses every write (a constraint no record meets).
    admin
        .batch_execute(
            "ALTER TABLE error_unchanged.otpflow_records
             ADD CONSTRAINT refuse CHECK (octet_length(record) < 2) NOT VALID",
        )
        .await
        .unwrap();
    let update = store
        .compare_and_swap(&otpflow::RecordKey::from(&key), Some(v1), &started(2, &key))
        .await;
    assert!(
        matches!(update, Err(PgStoreError::Database(_))),
        "{update:?}"
    );
    let other = subject("+447401101807");
    let insert = store
        .compare_and_swap(&otpflow::RecordKey::from(&other), None, &started(3, &other))
        .await;
    assert!(
        matches!(insert, Err(PgStoreError::Database(_))),
        "{insert:?}"
    );
    assert_eq!(load(&store, &key).await, before);
    assert_eq!(load(&store, &other).await, None);
    // Once the server accepts writes again, the old version still works.
    admin
        .batch_execute("ALTER TABLE error_unchanged.otpflow_records DROP CONSTRAINT refuse")
        .await
        .unwrap();
    let third = started(4, &key);
    let Swap::Done(v2) = cas(&store, &key, Some(v1), &third).await else {
        panic!("update after the refusal");
    };
    assert_eq!(load(&store, &key).await, Some((third, v2)));
}

#[tokio::test]
async fn bad_rows_are_typed_errors_and_stay_as_they_are() {
    let server = server_or_skip!();
    let policy = Policy::default();
    let store = fresh_store(&server, "bad_rows", policy.clone()).await;
    let admin = server.admin().await;
    let key = subject("+447401101808");
    let record = started(1, &key);
    let Swap::Done(_) = cas(&store, &key, None, &record).await else {
        panic!("insert");
    };
    let good = record.to_bytes();
    let mut trailing = good.clone();
    trailing.push(0);
    let mut unknown_version = good.clone();
    unknown_version[0] = 0xee; // the encoding's version byte
    let cases: [(Vec<u8>, i64); 6] = [
        (Vec::new(), 7),
        (vec![0xff; 10], 7),
        (good[..good.len() - 1].to_vec(), 7),
        (trailing, 7),
        (unknown_version, 7),
        (good.clone(), 0),
    ];
    for (bytes, version) in cases {
        admin
            .execute(
                "UPDATE bad_rows.otpflow_records SET record = $1, version = $2",
                &[&bytes, &version],
            )
            .await
            .unwrap();
        let loaded = store.load(&otpflow::RecordKey::from(&key)).await;
        match (&loaded, version) {
            (Err(PgStoreError::BadVersion), 0) | (Err(PgStoreError::BadRecord(_)), 7) => {}
            _ => panic!("{bytes:?} v{version}: {loaded:?}"),
        }
        let message = loaded.unwrap_err().to_string();
        assert!(!message.contains("7401"), "{message}");
        // Driven through the engine, a bad row is a store error, and the
        // row is left for someone to look at.
        let engine = engine(policy.clone());
        let driven = drive(&store, &key, 3, |r| engine.verify(r, &key, "123456", NOW)).await;
        assert!(driven.is_err());
        let row: Vec<u8> = admin
            .query_one("SELECT record FROM bad_rows.otpflow_records", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(row, bytes);
    }
    // Restored, it loads again.
    admin
        .execute(
            "UPDATE bad_rows.otpflow_records SET record = $1, version = 8",
            &[&good],
        )
        .await
        .unwrap();
    assert_eq!(load(&store, &key).await, Some((record, Version(8))));
}

#[tokio::test]
async fn migration_is_idempotent_concurrent_and_refuses_newer_schemas() {
    let server = server_or_skip!();
    let store = fresh_store(&server, "migration", Policy::default()).await;
    assert_eq!(store.migrate().await.unwrap(), 0);
    // Four stores migrating a fresh schema at once: one applies.
    support::create_schema(&server, "migration_race").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let config = server.config(Some("migration_race"));
        tasks.push(tokio::spawn(async move {
            let hasher = otpflow_postgres::SubjectHasher::new(&support::HASH_KEY).unwrap();
            let store = otpflow_postgres::PgStore::builder(config, hasher, Policy::default())
                .build()
                .unwrap();
            store.migrate().await.unwrap()
        }));
    }
    let mut applied = 0;
    for task in tasks {
        applied += task.await.unwrap();
    }
    assert_eq!(applied, 1);
    let admin = server.admin().await;
    admin
        .execute(
            "INSERT INTO migration.otpflow_schema (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    match store.migrate().await {
        Err(PgStoreError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("{other:?}"),
    }
}

/// Calls of this test's statements on the table: [SELECT, UPDATE, other].
async fn statements(admin: &tokio_postgres::Client) -> [i64; 3] {
    let rows = admin
        .query(
            "SELECT query, calls FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'statements')
             AND query LIKE '%otpflow_records%'",
            &[],
        )
        .await
        .unwrap();
    let mut by_kind = [0_i64; 3];
    for row in rows {
        let query: String = row.get(0);
        let calls: i64 = row.get(1);
        let kind = if query.starts_with("SELECT") {
            0
        } else if query.starts_with("UPDATE") {
            1
        } else {
            2
        };
        by_kind[kind] += calls;
    }
    by_kind
}

const RESET: &str = "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = 'statements'), 0)";

#[tokio::test]
async fn verify_is_one_select_and_one_update_status_one_select() {
    let server = server_or_skip!();
    let policy = Policy::default();
    // Its own database, so the counts are of this test's statements alone.
    let admin = server.admin().await;
    for sql in [
        "DROP DATABASE IF EXISTS statements",
        "CREATE DATABASE statements",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    let mut config = server.config(None);
    config.dbname("statements");
    let hasher = otpflow_postgres::SubjectHasher::new(&support::HASH_KEY).unwrap();
    let store = otpflow_postgres::PgStore::builder(config, hasher, policy.clone())
        .build()
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), 1);
    let engine = engine(policy);
    let key = subject("+447401101809");
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let sent = drive(&store, &key, 3, |r| {
        engine.start(r, &key, Channel::Sms, NOW, &mut rng)
    })
    .await
    .unwrap()
    .outcome
    .unwrap();
    admin.batch_execute(RESET).await.unwrap();
    // Ten wrong codes would lock; four wrong checks and the right one.
    for _ in 0..4 {
        let driven = drive(&store, &key, 3, |r| engine.verify(r, &key, "000000", NOW))
            .await
            .unwrap();
        if sent.code.as_str() != "000000" {
            assert!(matches!(driven.outcome, Err(Error::CodeMismatch { .. })));
        }
    }
    let driven = drive(&store, &key, 3, |r| {
        engine.verify(r, &key, sent.code.as_str(), NOW)
    })
    .await
    .unwrap();
    assert!(driven.outcome.is_ok());
    assert_eq!(
        statements(&admin).await,
        [5, 5, 0],
        "[SELECT, UPDATE, other] for 5 verifies"
    );
    admin.batch_execute(RESET).await.unwrap();
    let (record, _) = load(&store, &key).await.unwrap();
    let status = engine.status(Some(&record), NOW).unwrap();
    assert_eq!(status.state, State::Validated);
    assert_eq!(
        statements(&admin).await,
        [1, 0, 0],
        "[SELECT, UPDATE, other] for a status"
    );
}

#[tokio::test]
async fn the_table_lists_no_phone_number() {
    let server = server_or_skip!();
    let policy = Policy::default();
    let store = fresh_store(&server, "no_numbers", policy.clone()).await;
    let engine = engine(policy);
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let numbers = ["+447401101810", "+447401101811", "+12025550123"];
    for number in numbers {
        let key = subject(number);
        drive(&store, &key, 3, |r| {
            engine.start(r, &key, Channel::Sms, NOW, &mut rng)
        })
        .await
        .unwrap()
        .outcome
        .unwrap();
    }
    let admin = server.admin().await;
    let dump: String = admin
        .query_one(
            "SELECT string_agg(encode(subject, 'hex') || encode(record, 'hex') || encode(subject, 'escape') || encode(record, 'escape'), ' ')
             FROM no_numbers.otpflow_records",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for number in numbers {
        let digits = &number[1..];
        let hex: String = digits.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !dump.contains(digits) && !dump.contains(&hex),
            "{number} is in the table"
        );
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // A listener that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(port).user("postgres");
    let hasher = otpflow_postgres::SubjectHasher::new(&support::HASH_KEY).unwrap();
    let timeout = StdDuration::from_millis(300);
    let store = otpflow_postgres::PgStore::builder(config, hasher, Policy::default())
        .call_timeout(timeout)
        .connect_timeout(StdDuration::from_secs(30))
        .build()
        .unwrap();
    let key = subject("+447401101812");
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let loaded = store.load(&otpflow::RecordKey::from(&key)).await;
        let took = started.elapsed();
        assert!(matches!(loaded, Err(PgStoreError::Timeout)), "{loaded:?}");
        assert!(took < timeout * 3, "took {took:?}");
        let started = std::time::Instant::now();
        let swap = store
            .compare_and_swap(&otpflow::RecordKey::from(&key), None, &started_record(&key))
            .await;
        assert!(matches!(swap, Err(PgStoreError::Timeout)), "{swap:?}");
        assert!(started.elapsed() < timeout * 3);
        assert!(store.migrate().await.is_err());
        assert!(store.purge_expired(NOW).await.is_err());
    }
    held.abort();
}

fn started_record(key: &SubjectKey) -> Record {
    started(77, key)
}

#[test]
fn the_blocking_store_drives_verifier_and_refuses_runtime_threads() {
    let Some(server) = shared_server() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let policy = Policy::default();
    let store = runtime.block_on(fresh_store(&server, "blocking", policy.clone()));
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(matches!(
        store.blocking(current.handle().clone()),
        Err(PgStoreError::CurrentThreadRuntime)
    ));
    let blocking = store.blocking(runtime.handle().clone()).unwrap();
    assert_eq!(blocking.migrate().unwrap(), 0);
    let clock = otpflow::ManualClock::new(NOW);
    let keys =
        otpflow::KeyRing::new(otpflow::SecretKey::new(otpflow::KeyId(1), &[42u8; 32]).unwrap());
    let verifier = otpflow::Verifier::new(policy, keys, blocking.clone(), clock.clone());
    let key = subject("+447401101813");
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let sent = verifier.start(&key, Channel::Sms, &mut rng).unwrap();
    clock.advance(Duration::seconds(5));
    let done = verifier.verify(&key, sent.code.as_str()).unwrap();
    assert_eq!(done.generation, 1);
    assert_eq!(verifier.status(&key).unwrap().state, State::Validated);
    assert!(matches!(
        verifier.verify(&key, sent.code.as_str()),
        Err(Error::AlreadyValidated)
    ));
    // On a runtime thread the blocking store refuses instead of stalling.
    let inside = runtime
        .block_on(async { otpflow::Store::load(&blocking, &otpflow::RecordKey::from(&key)) });
    assert!(matches!(inside, Err(PgStoreError::InsideRuntime)));
    assert_eq!(blocking.purge_expired(NOW).unwrap(), 0);
}
