//! Faults of a real PostgreSQL: the server killed (`kill -9` of every server
//! process) mid-run and restarted, and a hung server (SIGSTOP). Calls during
//! the outage fail with the store's error within the timeout, nothing
//! acknowledged is lost, and the store works again once the server does.
//! Each test runs its own server.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use otpflow::store::AsyncStore;
use otpflow::{Channel, PhoneNumber, PhonePolicy, Purpose, Record, SubjectKey, Version};
use otpflow_postgres::{PgStore, PgStoreError};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use support::{PgServer, drive, engine, fresh_store_with, hammer_policy};
use time::OffsetDateTime;

const CALL_TIMEOUT: Duration = Duration::from_millis(700);
/// A driven operation makes two calls (load, compare-and-swap), each bounded
/// by the call timeout; the slack is for a loaded machine.
const OPERATION_LIMIT: Duration = Duration::from_millis(2 * 700 + 800);
const TASKS: u64 = 8;

fn subject(n: u64) -> SubjectKey {
    let phone = PhoneNumber::parse(&format!("+4474011{n:05}"), &PhonePolicy::default()).unwrap();
    SubjectKey::new(Purpose::Login, phone)
}

/// What one task knows of its subject's last writes.
#[derive(Default)]
struct Ledger {
    /// The last write acknowledged (`Swap::Done`).
    acknowledged: Option<(Record, Version)>,
    /// Writes whose outcome is unknown (an error after the statement may
    /// have reached the server), since the last acknowledged one.
    uncertain: Vec<Record>,
    ok: u64,
    /// Acknowledged after the server was back.
    ok_after_restart: u64,
    failed: u64,
}

/// One task: start and validate on its own subject, again and again.
/// After a failed call the task no longer knows whether its write landed:
/// it cancels whatever validation is live and starts again.
async fn run_task(
    store: Arc<PgStore>,
    n: u64,
    stop: Arc<AtomicBool>,
    restarted: Arc<AtomicBool>,
) -> Ledger {
    let engine = engine(hammer_policy());
    let key = subject(n);
    let mut rng = ChaCha20Rng::seed_from_u64(n);
    let mut ledger = Ledger::default();
    let mut code: Option<otpflow::Code> = None;
    let mut unsure = false;
    while !stop.load(Ordering::Relaxed) {
        let now = OffsetDateTime::now_utc();
        let started = Instant::now();
        let mut attempted = None;
        let result = if unsure {
            drive(&*store, &key, 8, |r| {
                let step = engine.cancel(r, &key, now);
                attempted.clone_from(&step.write);
                step
            })
            .await
            .map(|d| (d.outcome.map(|()| None), d.written, d.record))
        } else if let Some(c) = &code {
            drive(&*store, &key, 8, |r| {
                let step = engine.verify(r, &key, c.as_str(), now);
                attempted.clone_from(&step.write);
                step
            })
            .await
            .map(|d| (d.outcome.map(|_| None), d.written, d.record))
        } else {
            drive(&*store, &key, 8, |r| {
                let step = engine.start(r, &key, Channel::Sms, now, &mut rng);
                attempted.clone_from(&step.write);
                step
            })
            .await
            .map(|d| (d.outcome.map(|s| Some(s.code)), d.written, d.record))
        };
        let took = started.elapsed();
        match result {
            Ok((outcome, Some(version), Some(record))) => {
                ledger.ok += 1;
                if restarted.load(Ordering::Relaxed) {
                    ledger.ok_after_restart += 1;
                }
                ledger.acknowledged = Some((record, version));
                ledger.uncertain.clear();
                // A start gives the code; a verify or a cancel ends the
                // validation.
                code = outcome.unwrap();
                unsure = false;
            }
            Ok((outcome, _, _)) => {
                // Only a cancel of a validation that was not live writes
                // nothing.
                assert!(unsure, "an operation wrote nothing: {:?}", outcome.err());
                unsure = false;
                code = None;
            }
            Err(support::Failed(error)) => {
                assert!(
                    took < OPERATION_LIMIT,
                    "a failing call took {took:?}: {error}"
                );
                assert!(error.is_transient(), "{error}");
                ledger.failed += 1;
                if let Some(record) = attempted {
                    ledger.uncertain.push(record);
                }
                unsure = true;
                code = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    ledger
}

/// Checks that each subject holds its last acknowledged write, or a write
/// made after it whose outcome was unknown.
async fn nothing_acknowledged_lost(store: &PgStore, ledgers: &[Ledger]) {
    for (n, ledger) in ledgers.iter().enumerate() {
        let (record, version) = store
            .load(&otpflow::RecordKey::from(&subject(n as u64)))
            .await
            .unwrap()
            .expect("a record");
        let (acked, acked_version) = ledger
            .acknowledged
            .as_ref()
            .expect("writes were acknowledged");
        if version == *acked_version {
            assert_eq!(&record, acked);
        } else {
            assert!(
                version > *acked_version,
                "subject {n}: an older version is back"
            );
            assert!(
                ledger.uncertain.contains(&record),
                "subject {n}: the stored record is neither the acknowledged one nor an uncertain one"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_nothing_acknowledged() {
    // fsync and synchronous commit on: an acknowledged commit is on disk.
    let Some(mut server) = PgServer::start_with(&[]) else {
        return;
    };
    let store = Arc::new(
        fresh_store_with(&server, "crash", hammer_policy(), |b| {
            b.call_timeout(CALL_TIMEOUT)
                .connect_timeout(Duration::from_millis(500))
        })
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| tokio::spawn(run_task(store.clone(), n, stop.clone(), restarted.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.crash();
        std::thread::sleep(Duration::from_millis(1500));
        server.restart();
        server
    })
    .await
    .unwrap();
    restarted.store(true, Ordering::Relaxed);
    // Work again after the restart.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ledgers = Vec::new();
    for task in tasks {
        ledgers.push(task.await.unwrap());
    }
    let failed: u64 = ledgers.iter().map(|l| l.failed).sum();
    let ok: u64 = ledgers.iter().map(|l| l.ok).sum();
    assert!(failed > 0, "no call failed during the outage");
    for (n, ledger) in ledgers.iter().enumerate() {
        assert!(
            ledger.ok_after_restart > 0,
            "task {n} did not work after the restart"
        );
    }
    nothing_acknowledged_lost(&store, &ledgers).await;
    eprintln!("crash: {ok} operations acknowledged, {failed} failed during the outage");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_gives_timeouts_then_recovers() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let store = fresh_store_with(&server, "hung", hammer_policy(), |b| {
        b.call_timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
    })
    .await;
    let engine = engine(hammer_policy());
    let key = subject(99);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let now = OffsetDateTime::now_utc();
    drive(&store, &key, 3, |r| {
        engine.start(r, &key, Channel::Sms, now, &mut rng)
    })
    .await
    .unwrap()
    .outcome
    .unwrap();
    let before = store
        .load(&otpflow::RecordKey::from(&key))
        .await
        .unwrap()
        .unwrap();
    server.freeze();
    for _ in 0..3 {
        let started = Instant::now();
        let loaded = store.load(&otpflow::RecordKey::from(&key)).await;
        assert!(matches!(loaded, Err(PgStoreError::Timeout)), "{loaded:?}");
        assert!(started.elapsed() < CALL_TIMEOUT + Duration::from_millis(500));
        let started = Instant::now();
        let verified = drive(&store, &key, 3, |r| engine.verify(r, &key, "000000", now)).await;
        assert!(verified.is_err());
        assert!(started.elapsed() < OPERATION_LIMIT);
    }
    // Through otpflow's own driver the same failure is `Error::Store`,
    // `store_unavailable` to operators and `unavailable` (503) to outsiders,
    // within the timeout.
    let keys =
        otpflow::KeyRing::new(otpflow::SecretKey::new(otpflow::KeyId(1), &[42u8; 32]).unwrap());
    let verifier =
        otpflow::AsyncVerifier::new(hammer_policy(), keys, store.clone(), otpflow::SystemClock);
    let started = Instant::now();
    let error = verifier.verify(&key, "000000").await.unwrap_err();
    assert!(started.elapsed() < OPERATION_LIMIT);
    assert!(matches!(error, otpflow::Error::Store(_)), "{error:?}");
    assert_eq!(error.code(), "store_unavailable");
    assert_eq!(error.public().code(), "unavailable");
    assert_eq!(error.http_status(), 503);
    // A compare-and-swap during the hang times out. Its statement may
    // still reach the server and be applied when it wakes: whole, or not
    // at all; the timed-out calls before it wrote nothing.
    let frozen_write = engine
        .verify(Some(&before.0), &key, "000000", now)
        .write
        .unwrap();
    let started = Instant::now();
    let swap = store
        .compare_and_swap(
            &otpflow::RecordKey::from(&key),
            Some(before.1),
            &frozen_write,
        )
        .await;
    assert!(matches!(swap, Err(PgStoreError::Timeout)), "{swap:?}");
    assert!(started.elapsed() < CALL_TIMEOUT + Duration::from_millis(500));
    server.thaw();
    let mut loaded = store.load(&otpflow::RecordKey::from(&key)).await;
    for _ in 0..20 {
        if loaded.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        loaded = store.load(&otpflow::RecordKey::from(&key)).await;
    }
    let (record, version) = loaded.unwrap().expect("the record");
    let unchanged = record == before.0 && version == before.1;
    let applied = record == frozen_write && version > before.1;
    assert!(
        unchanged || applied,
        "the record is neither before nor after the write"
    );
}
