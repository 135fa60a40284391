//! `WriteMode::WaitForReplicas` against a real primary and its replica
//! (two `redis-server` processes, the second started with `--replicaof`):
//! a write is acknowledged only once the replica has it; with the replica
//! hung (SIGSTOP) a write fails as `RedisStoreError::NotReplicated` within
//! the timeout, and its effect stands on the primary (as the crate docs
//! say), for both stores.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use otpflow::{
    AsyncStore, AsyncVerifier, Channel, Error, KeyId, KeyRing, Policy, Record, RecordKey,
    SecretKey, State, Store, SubjectKey, SystemClock,
};
use otpflow_redis::{BlockingRedisStore, RedisOptions, RedisStore, RedisStoreError, WriteMode};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use redis::aio::MultiplexedConnection;
use support::{RedisServer, options, subject};

/// The stores' timeout.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How long `WAIT` may block.
const WAIT: Duration = Duration::from_millis(300);
/// What a call may take beyond its bound (a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(700);

fn keys() -> KeyRing {
    KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap())
}

fn waiting(policy: Policy) -> RedisOptions {
    options(policy)
        .timeout(TIMEOUT)
        .write_mode(WriteMode::WaitForReplicas {
            replicas: 1,
            timeout: WAIT,
        })
}

/// A primary and a replica that has finished its first sync, or `None`
/// where the tests skip.
async fn pair() -> Option<(RedisServer, RedisServer)> {
    let primary = RedisServer::start()?;
    let port = primary.port.to_string();
    let replica = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--replicaof",
        "127.0.0.1",
        &port,
    ])?;
    let mut c = node(&primary).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut c)
            .await
            .unwrap();
        if info.contains("connected_slaves:1") && info.contains("state=online") {
            return Some((primary, replica));
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not sync: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn node(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The raw value of `s`'s key on one server.
async fn raw(c: &mut MultiplexedConnection, opts: &RedisOptions, s: &SubjectKey) -> Vec<u8> {
    redis::cmd("GET")
        .arg(opts.key_name(s))
        .query_async(c)
        .await
        .unwrap()
}

/// The record in a raw value (after its 8 bytes of version).
fn record(value: &[u8]) -> Record {
    Record::from_bytes(&value[8..]).unwrap()
}

/// The store's error inside an `Error::Store`.
fn store_error(e: &Error) -> &RedisStoreError {
    match e {
        Error::Store(inner) => inner.inner().downcast_ref().unwrap(),
        other => panic!("a store error expected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_acknowledged_only_once_the_replica_has_it() {
    let Some((primary, replica)) = pair().await else {
        return;
    };
    let policy = Policy::default();
    let opts = waiting(policy.clone());
    let store = RedisStore::connect(&primary.url(), opts.clone())
        .await
        .unwrap();
    let verifier = AsyncVerifier::new(policy, keys(), store, SystemClock);
    let (mut on_primary, mut on_replica) = (node(&primary).await, node(&replica).await);
    let mut rng = ChaCha20Rng::seed_from_u64(31);

    // Every acknowledged write is already on the replica, byte for byte.
    for n in 0..20 {
        let s = subject(700_000 + n);
        let sent = verifier.start(&s, Channel::Sms, &mut rng).await.unwrap();
        let copy = raw(&mut on_replica, &opts, &s).await;
        assert_eq!(copy, raw(&mut on_primary, &opts, &s).await, "start {n}");
        assert_eq!(record(&copy).state(), Some(State::Sent));
        verifier.verify(&s, sent.code.as_str()).await.unwrap();
        let copy = raw(&mut on_replica, &opts, &s).await;
        assert_eq!(copy, raw(&mut on_primary, &opts, &s).await, "verify {n}");
        assert_eq!(record(&copy).state(), Some(State::Validated));
    }

    // A replica that stalls, then comes back within WAIT's timeout: the
    // write waits for it, so its acknowledgement comes after the replica
    // resumed, and the replica has it.
    let opts = options(Policy::default())
        .timeout(TIMEOUT)
        .write_mode(WriteMode::WaitForReplicas {
            replicas: 1,
            timeout: Duration::from_secs(5),
        });
    let store = RedisStore::connect(&primary.url(), opts.clone())
        .await
        .unwrap();
    let verifier = AsyncVerifier::new(Policy::default(), keys(), store, SystemClock);
    let s = subject(700_100);
    replica.signal("STOP");
    let started = Instant::now();
    let resume = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Taken before the signal: no acknowledgement can come before it.
        let resuming = Instant::now();
        replica.signal("CONT");
        (replica, resuming)
    });
    verifier.start(&s, Channel::Sms, &mut rng).await.unwrap();
    let acknowledged = Instant::now();
    let (replica, resuming) = resume.await.unwrap();
    assert!(
        acknowledged >= resuming,
        "acknowledged {:?} after the start, the replica resumed at {:?}",
        acknowledged - started,
        resuming - started
    );
    let mut on_replica = node(&replica).await;
    assert_eq!(
        raw(&mut on_replica, &opts, &s).await,
        raw(&mut on_primary, &opts, &s).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_replica_fails_the_write_within_the_timeout_and_the_write_stands() {
    let Some((primary, replica)) = pair().await else {
        return;
    };
    let policy = Policy::default();
    let opts = waiting(policy.clone());
    let store = RedisStore::connect(&primary.url(), opts.clone())
        .await
        .unwrap();
    let blocking = BlockingRedisStore::connect(&primary.url(), opts.clone()).unwrap();
    let verifier = AsyncVerifier::new(policy.clone(), keys(), store, SystemClock);
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let (s, other) = (subject(710_000), subject(710_001));
    let sent = verifier.start(&s, Channel::Sms, &mut rng).await.unwrap();
    let mut on_primary = node(&primary).await;

    replica.signal("STOP");
    // The right code: the verify fails, typed, after WAIT's timeout and
    // within the call's bound.
    let started = Instant::now();
    let err = verifier.verify(&s, sent.code.as_str()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            store_error(&err),
            RedisStoreError::NotReplicated {
                acknowledged: 0,
                wanted: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.public().code(), "unavailable");
    assert!(
        elapsed >= WAIT && elapsed < TIMEOUT + WAIT + SLACK,
        "took {elapsed:?}"
    );
    // The write stands on the primary: the validation succeeded though the
    // caller was told "unavailable"; the same code again is refused as
    // already used (a false refusal, never a second success).
    let (stored, _) = AsyncStore::load(verifier.store(), &RecordKey::from(&s))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state(), Some(State::Validated));
    assert!(matches!(
        verifier.verify(&s, sent.code.as_str()).await,
        Err(Error::AlreadyValidated)
    ));
    // A start fails the same way and leaves a validation whose code the
    // caller never got: the next start resends it (after the cooldown).
    let err = verifier
        .start(&other, Channel::Sms, &mut rng)
        .await
        .unwrap_err();
    assert!(
        matches!(store_error(&err), RedisStoreError::NotReplicated { .. }),
        "{err:?}"
    );
    let (stored, _) = AsyncStore::load(verifier.store(), &RecordKey::from(&other))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state(), Some(State::Sent));
    assert!(matches!(
        verifier.start(&other, Channel::Sms, &mut rng).await,
        Err(Error::ResendTooSoon { .. })
    ));
    // The blocking store refuses alike; its write stands too.
    let (b, key) = (blocking.clone(), RecordKey::from(&s));
    let (elapsed, result) = tokio::task::spawn_blocking(move || {
        let (record, version) = Store::load(&b, &key).unwrap().unwrap();
        let started = Instant::now();
        let result = Store::compare_and_swap(&b, &key, Some(version), &record);
        (started.elapsed(), result)
    })
    .await
    .unwrap();
    assert!(
        matches!(result, Err(RedisStoreError::NotReplicated { .. })),
        "{result:?}"
    );
    assert!(
        elapsed >= WAIT && elapsed < TIMEOUT + WAIT + SLACK,
        "blocking took {elapsed:?}"
    );
    // Reads need no replica...
    assert_eq!(
        verifier.status(&s).await.unwrap().state,
        State::Validated,
        "status reads the primary"
    );
    // ...but WAIT holds the connection it runs on: a read sent on the same
    // (multiplexed) connection behind a write that waits for the hung
    // replica waits with it.
    let (record, version) = AsyncStore::load(verifier.store(), &RecordKey::from(&s))
        .await
        .unwrap()
        .unwrap();
    let (store, key) = (verifier.store().clone(), RecordKey::from(&s));
    let write = tokio::spawn(async move {
        AsyncStore::compare_and_swap(&store, &key, Some(version), &record).await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    AsyncStore::load(verifier.store(), &RecordKey::from(&s))
        .await
        .unwrap();
    let read = started.elapsed();
    assert!(
        matches!(
            write.await.unwrap(),
            Err(RedisStoreError::NotReplicated { .. })
        ),
        "the write waited in vain"
    );
    assert!(
        read >= WAIT / 2,
        "the read took {read:?}: it did not wait behind WAIT"
    );

    // Once the replica is back it catches up, and writes are acknowledged.
    replica.signal("CONT");
    let mut on_replica = node(&replica).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw(&mut on_replica, &opts, &other).await != raw(&mut on_primary, &opts, &other).await {
        assert!(Instant::now() < deadline, "the replica did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = subject(710_002);
    let sent = verifier
        .start(&third, Channel::Sms, &mut rng)
        .await
        .unwrap();
    verifier.verify(&third, sent.code.as_str()).await.unwrap();
    for key in [&s, &other, &third] {
        assert_eq!(
            raw(&mut on_replica, &opts, key).await,
            raw(&mut on_primary, &opts, key).await,
            "the replica caught up"
        );
    }
}
