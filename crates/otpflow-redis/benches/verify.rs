//! `verify` over a localhost Redis at 1, 8 and 64 concurrent tasks, beside
//! a baseline making the same round trips with no otpflow in between: a
//! `GET` and the same compare-and-swap script's `EVALSHA` on a value of
//! the same size. Each measured operation writes (a right code validating a
//! fresh validation); the validations are started outside the timing.
//!
//! ```sh
//! cargo bench -p otpflow-redis --bench verify -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otpflow::{AsyncVerifier, Channel, KeyId, KeyRing, Policy, SecretKey, SystemClock};
use otpflow_redis::{CAS_SCRIPT, RedisStore};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use redis::aio::ConnectionManager;

const CONCURRENCY: [u64; 3] = [1, 8, 64];

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `n` fresh subject numbers.
fn numbers(n: u64) -> Vec<u32> {
    let n = u32::try_from(n).unwrap();
    let first = NEXT.fetch_add(n, Ordering::Relaxed);
    (first..first + n).collect()
}

/// Runs `op` over `items` split between `tasks` concurrent tasks; returns
/// the wall time.
async fn concurrently<T, F, Fut>(items: Vec<T>, tasks: u64, op: F) -> Duration
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let tasks = usize::try_from(tasks).unwrap();
    let mut shares: Vec<Vec<T>> = (0..tasks).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        shares[i % tasks].push(item);
    }
    let started = Instant::now();
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let op = op.clone();
            tokio::spawn(async move {
                for item in share {
                    op(item).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let policy = Policy::default();
    let opts = support::options(policy.clone());
    let (verifier, raw) = runtime.block_on(async {
        let store = RedisStore::connect(&server.url(), opts.clone())
            .await
            .unwrap();
        let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap());
        let verifier = Arc::new(AsyncVerifier::new(policy, keys, store, SystemClock));
        let client = redis::Client::open(server.url()).unwrap();
        let raw = ConnectionManager::new(client).await.unwrap();
        (verifier, raw)
    });
    let script = Arc::new(redis::Script::new(CAS_SCRIPT));
    // An hour from now, in Unix milliseconds (PXAT's argument).
    let far_ms = i64::try_from(
        (std::time::SystemTime::now() + Duration::from_secs(3600))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    // A value of a stored record's size.
    let value_len = {
        let v = Arc::clone(&verifier);
        runtime.block_on(async move {
            let mut rng = ChaCha20Rng::seed_from_u64(0);
            let s = support::subject(999_999);
            v.start(&s, Channel::Sms, &mut rng).await.unwrap();
            let (record, _) = otpflow::AsyncStore::load(v.store(), &otpflow::RecordKey::from(&s))
                .await
                .unwrap()
                .unwrap();
            8 + record.to_bytes().len()
        })
    };

    let mut group = c.benchmark_group("redis_verify");
    group.throughput(Throughput::Elements(1));
    for tasks in CONCURRENCY {
        let v = Arc::clone(&verifier);
        group.bench_function(BenchmarkId::new("otpflow", tasks), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let v = Arc::clone(&v);
                async move {
                    // Start `iters` validations (not timed), then verify them.
                    let started = Arc::new(std::sync::Mutex::new(Vec::new()));
                    let (sv, sink) = (Arc::clone(&v), Arc::clone(&started));
                    concurrently(numbers(iters), tasks, move |n| {
                        let (v, sink) = (Arc::clone(&sv), Arc::clone(&sink));
                        async move {
                            let mut rng = ChaCha20Rng::seed_from_u64(u64::from(n));
                            let s = support::subject(n);
                            let sent = v.start(&s, Channel::Sms, &mut rng).await.unwrap();
                            sink.lock()
                                .unwrap()
                                .push((s, sent.code.as_str().to_owned()));
                        }
                    })
                    .await;
                    let items = std::mem::take(&mut *started.lock().unwrap());
                    concurrently(items, tasks, move |(s, code)| {
                        let v = Arc::clone(&v);
                        async move {
                            v.verify(&s, &code).await.unwrap();
                        }
                    })
                    .await
                }
            });
        });
        let (raw, script) = (raw.clone(), Arc::clone(&script));
        let prefix = format!("baseline{}", support::random());
        group.bench_function(BenchmarkId::new("baseline_get_evalsha", tasks), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (raw, script, prefix) = (raw.clone(), Arc::clone(&script), prefix.clone());
                async move {
                    let keys: Vec<String> = numbers(iters)
                        .into_iter()
                        .map(|n| format!("{prefix}:{{{n}}}"))
                        .collect();
                    let mut setup = raw.clone();
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        pipe.set(key, vec![1u8; value_len]).ignore();
                    }
                    let () = pipe.query_async(&mut setup).await.unwrap();
                    concurrently(keys, tasks, move |key| {
                        let (mut raw, script) = (raw.clone(), Arc::clone(&script));
                        async move {
                            let current: Vec<u8> = redis::cmd("GET")
                                .arg(&key)
                                .query_async(&mut raw)
                                .await
                                .unwrap();
                            let mut value = vec![2u8; value_len];
                            value[..8].copy_from_slice(
                                &current[..8].iter().map(|b| b ^ 3).collect::<Vec<_>>(),
                            );
                            let written: i64 = script
                                .key(&key)
                                .arg(&current[..8])
                                .arg(value)
                                .arg(far_ms)
                                .invoke_async(&mut raw)
                                .await
                                .unwrap();
                            assert_eq!(written, 1);
                        }
                    })
                    .await
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
