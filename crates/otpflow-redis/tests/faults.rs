//! Faults of a real `redis-server`: `kill -9` mid-run with an append-only
//! file synced on every write, then a restart; and a hung server (SIGSTOP).
//! Calls fail as `Error::Store` within the timeout, nothing panics, and
//! nothing acknowledged is lost.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use otpflow::{
    AsyncStore, AsyncVerifier, Channel, Error, KeyId, KeyRing, Policy, SecretKey, State, Store,
    SystemClock,
};
use otpflow_redis::{BlockingRedisStore, RedisStore, RedisStoreError};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use support::{RedisServer, options, subject};

/// The stores' timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(300);
/// What a failing call may take beyond it (a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(700);

fn keys() -> KeyRing {
    KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_loses_nothing_acknowledged() {
    let Some(mut server) = RedisServer::start_durable() else {
        return;
    };
    let policy = Policy::default();
    let store = RedisStore::connect(&server.url(), options(policy.clone()).timeout(TIMEOUT))
        .await
        .unwrap();
    let verifier = Arc::new(AsyncVerifier::new(policy, keys(), store, SystemClock));
    let outage = Arc::new(AtomicBool::new(false));

    let writer = {
        let (verifier, outage) = (Arc::clone(&verifier), Arc::clone(&outage));
        tokio::spawn(async move {
            let mut rng = ChaCha20Rng::seed_from_u64(11);
            // (subject, validated?) for every acknowledged write.
            let mut acknowledged = Vec::new();
            let (mut failures, mut slowest) = (0u32, Duration::ZERO);
            for n in 0..u32::MAX {
                let s = subject(500_000 + n);
                let started = Instant::now();
                let result = match verifier.start(&s, Channel::Sms, &mut rng).await {
                    Ok(sent) => {
                        acknowledged.push((n, false));
                        verifier.verify(&s, sent.code.as_str()).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        if let Some(last) = acknowledged.last_mut() {
                            last.1 = true;
                        }
                    }
                    Err(Error::Store(_)) => {
                        failures += 1;
                        slowest = slowest.max(started.elapsed());
                    }
                    Err(other) => panic!("only store errors expected, got {other:?}"),
                }
                if n % 16 == 0 && outage.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if acknowledged.len() >= 400 && !outage.load(Ordering::Relaxed) && failures > 0 {
                    return (acknowledged, failures, slowest);
                }
            }
            unreachable!()
        })
    };

    tokio::time::sleep(Duration::from_millis(400)).await;
    outage.store(true, Ordering::Relaxed);
    server.kill9();
    // Calls made while the server is dead fail as store errors, in time.
    for _ in 0..3 {
        let started = Instant::now();
        let err = verifier.status(&subject(1)).await.unwrap_err();
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        assert!(
            started.elapsed() < TIMEOUT + SLACK,
            "took {:?}",
            started.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.restart();
    outage.store(false, Ordering::Relaxed);
    let (acknowledged, failures, slowest) = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .unwrap()
        .unwrap();
    assert!(failures > 0, "the outage was seen");
    assert!(
        slowest < 2 * (TIMEOUT + SLACK),
        "a failing call took {slowest:?}"
    );

    // Everything acknowledged survived the kill: started, and validated
    // where the verify was acknowledged. A verify that failed may still
    // have written (the server ran the script, then died or answered after
    // the timeout: a failed call's effect is unknown), so its subject reads
    // `Sent` or `Validated`, never anything else.
    for (n, validated) in &acknowledged {
        let status = verifier.status(&subject(500_000 + n)).await.unwrap();
        if *validated {
            assert_eq!(status.state, State::Validated, "subject {n}");
        } else {
            assert!(
                matches!(status.state, State::Sent | State::Validated),
                "subject {n}: {:?}",
                status.state
            );
        }
        assert_eq!(status.generation, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_gives_errors_within_the_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let policy = Policy::default();
    let opts = options(policy.clone()).timeout(TIMEOUT);
    let store = RedisStore::connect(&server.url(), opts.clone())
        .await
        .unwrap();
    let blocking = BlockingRedisStore::connect(&server.url(), opts).unwrap();
    let verifier = AsyncVerifier::new(policy, keys(), store, SystemClock);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let s = subject(600_000);
    let sent = verifier.start(&s, Channel::Sms, &mut rng).await.unwrap();
    let before = AsyncStore::load(verifier.store(), &otpflow::RecordKey::from(&s))
        .await
        .unwrap();
    assert!(
        Store::load(&blocking, &otpflow::RecordKey::from(&s))
            .unwrap()
            .is_some(),
        "a pooled connection is open"
    );

    server.signal("STOP");
    for _ in 0..2 {
        let started = Instant::now();
        let err = verifier.verify(&s, sent.code.as_str()).await.unwrap_err();
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        assert!(
            started.elapsed() < TIMEOUT + SLACK,
            "async took {:?}",
            started.elapsed()
        );
    }
    let b = blocking.clone();
    let key = s.clone();
    let (elapsed, err) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let err = Store::load(&b, &otpflow::RecordKey::from(&key)).unwrap_err();
        (started.elapsed(), err)
    })
    .await
    .unwrap();
    assert!(matches!(err, RedisStoreError::Timeout(_)), "{err:?}");
    assert!(elapsed < TIMEOUT + SLACK, "blocking took {elapsed:?}");
    server.signal("CONT");

    // Once it answers again, both stores read the right record: a late
    // reply is never taken for the answer to a later call.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match AsyncStore::load(verifier.store(), &otpflow::RecordKey::from(&s)).await {
            Ok(loaded) => break loaded,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    };
    // The verify may or may not have reached the server before it stopped:
    // the record is the one before or the validated one, nothing else.
    let after = after.unwrap();
    let before = before.unwrap();
    assert!(
        after == before || after.0.state() == Some(State::Validated),
        "{after:?}"
    );
    let from_blocking =
        tokio::task::spawn_blocking(move || Store::load(&blocking, &otpflow::RecordKey::from(&s)))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    assert_eq!(from_blocking, after);
}
