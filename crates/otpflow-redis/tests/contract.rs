//! The store test kit and the Redis specifics (key names, expiry, command
//! counts, corrupt values, a lost script cache, failing calls) against a
//! real `redis-server` started here.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use otpflow::testkit::{
    check_async_failed_calls, check_async_store, check_failed_calls, check_store,
};
use otpflow::{
    AsyncStore, AsyncVerifier, Channel, Error, KeyId, KeyRing, Policy, SecretKey, State, Store,
    SystemClock,
};
use otpflow_redis::{BlockingRedisStore, RedisStore, RedisStoreError};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use support::{RedisServer, options, subject};

fn keys() -> KeyRing {
    KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap())
}

#[test]
fn blocking_store_keeps_the_contract() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let report =
        check_store(|| BlockingRedisStore::connect(&url, options(Policy::default())).unwrap())
            .unwrap_or_else(|v| panic!("{v}"));
    assert!(report.not_exercised.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_store_keeps_the_contract() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let report = check_async_store(async || {
        RedisStore::connect(&url, options(Policy::default()))
            .await
            .unwrap()
    })
    .await
    .unwrap_or_else(|v| panic!("{v}"));
    assert!(report.not_exercised.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_dead_port_fail_and_change_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Port 0: every connection is refused at once.
    let dead = "redis://127.0.0.1:0/".to_owned();
    let opts = options(Policy::default());
    let healthy = RedisStore::connect(&server.url(), opts.clone())
        .await
        .unwrap();
    // The connection manager needs a live server to start: the failing
    // async handle is one whose server is then stopped for good. The
    // blocking store connects lazily, so it can point at a dead port.
    let doomed_server = RedisServer::start().unwrap();
    let doomed = RedisStore::connect(&doomed_server.url(), opts.clone())
        .await
        .unwrap();
    drop(doomed_server);
    check_async_failed_calls(&healthy, &doomed)
        .await
        .unwrap_or_else(|v| panic!("{v}"));
    let blocking = BlockingRedisStore::connect(&server.url(), opts.clone()).unwrap();
    let failing = BlockingRedisStore::connect(&dead, opts).unwrap();
    tokio::task::spawn_blocking(move || check_failed_calls(&blocking, &failing))
        .await
        .unwrap()
        .unwrap_or_else(|v| panic!("{v}"));
}

fn connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// `INFO commandstats` as command → calls.
fn command_calls(c: &mut redis::Connection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_hide_numbers_expire_with_the_record_and_each_call_costs_its_round_trips() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let policy = Policy::default();
    let opts = options(policy.clone());
    let store = RedisStore::connect(&server.url(), opts.clone())
        .await
        .unwrap();
    let verifier = AsyncVerifier::new(policy.clone(), keys(), store, SystemClock);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let s = subject(101_801);
    let sent = verifier.start(&s, Channel::Sms, &mut rng).await.unwrap();

    let mut c = connection(&server);
    let names: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert_eq!(names, vec![opts.key_name(&s)]);
    let dump: Vec<u8> = redis::cmd("GET").arg(&names[0]).query(&mut c).unwrap();
    for secret in [&b"101801"[..], b"+447911", sent.code.as_str().as_bytes()] {
        assert!(
            !names[0]
                .as_bytes()
                .windows(secret.len())
                .any(|w| w == secret)
        );
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret),
            "the value holds {secret:?}"
        );
    }
    // The key expires at the record's expires_at, to the millisecond.
    let (record, _) = AsyncStore::load(verifier.store(), &otpflow::RecordKey::from(&s))
        .await
        .unwrap()
        .unwrap();
    let expire_ms: i64 = redis::cmd("PEXPIRETIME")
        .arg(&names[0])
        .query(&mut c)
        .unwrap();
    let nanos = record.expires_at(&policy).unix_timestamp_nanos();
    let want = nanos / 1_000_000 + i128::from(nanos % 1_000_000 != 0);
    assert_eq!(i128::from(expire_ms), want);

    // verify: one GET and one EVALSHA (the server also counts the
    // script's own GET and SET); status: one GET.
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    verifier.verify(&s, sent.code.as_str()).await.unwrap();
    let calls = command_calls(&mut c);
    let count = |name: &str| calls.get(name).copied().unwrap_or(0);
    assert_eq!(count("evalsha"), 1, "{calls:?}");
    assert_eq!(
        count("get"),
        2,
        "one GET of ours, one in the script: {calls:?}"
    );
    assert_eq!(count("set"), 1, "the script's SET: {calls:?}");
    assert_eq!(
        calls.len(),
        4,
        "nothing else but CONFIG RESETSTAT: {calls:?}"
    );
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    assert_eq!(verifier.status(&s).await.unwrap().state, State::Validated);
    let calls = command_calls(&mut c);
    assert_eq!(calls.get("get"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("evalsha"), None, "{calls:?}");

    // The script cache lost (a restart, a failover, SCRIPT FLUSH): the
    // store loads it again and carries on.
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    let again = verifier.start(&s, Channel::Sms, &mut rng).await.unwrap();
    assert_eq!(again.generation, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_does_not_decode_is_a_typed_store_error() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let policy = Policy::default();
    let opts = options(policy.clone());
    let store = RedisStore::connect(&server.url(), opts.clone())
        .await
        .unwrap();
    let blocking = BlockingRedisStore::connect(&server.url(), opts.clone()).unwrap();
    let verifier = AsyncVerifier::new(policy, keys(), store, SystemClock);
    let mut c = connection(&server);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let garbage: [&[u8]; 4] = [
        b"",
        b"short",
        b"12345678",
        b"12345678\x01\xff\xff\xff\xff\x07",
    ];
    for (i, bytes) in garbage.into_iter().enumerate() {
        let s = subject(200_000 + u32::try_from(i).unwrap());
        let name = opts.key_name(&s);
        let _: () = redis::cmd("SET")
            .arg(&name)
            .arg(bytes)
            .query(&mut c)
            .unwrap();
        let err = AsyncStore::load(verifier.store(), &otpflow::RecordKey::from(&s))
            .await
            .unwrap_err();
        assert!(matches!(err, RedisStoreError::Corrupt(_)), "{err:?}");
        let err = Store::load(&blocking, &otpflow::RecordKey::from(&s)).unwrap_err();
        assert!(matches!(err, RedisStoreError::Corrupt(_)), "{err:?}");
        for result in [
            verifier.verify(&s, "123456").await.map(drop),
            verifier.start(&s, Channel::Sms, &mut rng).await.map(drop),
            verifier.status(&s).await.map(drop),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Store(_)), "{err:?}");
            assert_eq!(err.public().code(), "unavailable");
        }
        // Left as it was.
        let after: Vec<u8> = redis::cmd("GET").arg(&name).query(&mut c).unwrap();
        assert_eq!(after, bytes);
    }
}

#[test]
fn the_blocking_store_works_beside_the_async_one() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let policy = Policy::default();
    let opts = options(policy.clone());
    let blocking = BlockingRedisStore::connect(&server.url(), opts.clone()).unwrap();
    let verifier = otpflow::Verifier::new(policy.clone(), keys(), blocking, SystemClock);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let s = subject(300_000);
    let sent = verifier.start(&s, Channel::Sms, &mut rng).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = RedisStore::connect(&server.url(), opts).await.unwrap();
        let shared = AsyncVerifier::new(policy, keys(), store, SystemClock);
        assert_eq!(
            shared
                .verify(&s, sent.code.as_str())
                .await
                .unwrap()
                .generation,
            1
        );
    });
    assert!(matches!(
        verifier.verify(&s, sent.code.as_str()),
        Err(Error::AlreadyValidated)
    ));
}
