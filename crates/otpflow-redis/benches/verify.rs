//! `verify` over a localhost Redis at 1, 8 and 64 concurrent tasks, beside
//! a baseline making the same round trips with no otpflow in between: a
//! `GET` and the same compare-and-swap script's `EVALSHA` on a value of
//! the same size, over a connection of the same kind. Each measured
//! operation writes (a right code validating a fresh validation); the
//! validations are started, and the baseline's keys set, outside the
//! timing.
//!
//! Under `cargo bench` it also runs paired rounds (baseline and otpflow
//! alternating, the order swapped every round, so load from elsewhere on a
//! shared machine hits both alike) and prints the median throughputs and
//! the median of the per-round ratios:
//!
//! ```sh
//! cargo bench -p otpflow-redis --bench verify -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Instructions per operation, one arm at a time (see [`callgrind`]):
//!
//! ```sh
//! OTPFLOW_REDIS_CALLGRIND=store:1000 valgrind --tool=callgrind \
//!   --toggle-collect='*callgrind_measured*' target/release/deps/verify-<hash> --bench
//! ```

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otpflow::{
    AsyncStore, AsyncVerifier, Channel, KeyId, KeyRing, Policy, RecordKey, SecretKey, SubjectKey,
    SystemClock,
};
use otpflow_redis::{CAS_SCRIPT, RedisStore};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use redis::aio::ConnectionManager;

const CONCURRENCY: [u64; 3] = [1, 8, 64];
const PAIRED_ROUNDS: usize = 21;

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

type Verifier = AsyncVerifier<RedisStore, SystemClock>;

/// What both sides need.
struct Fixture {
    /// The measured verifier.
    verifier: Arc<Verifier>,
    /// Starts the validations the measured one verifies, untimed.
    starter: Arc<Verifier>,
    raw: ConnectionManager,
    script: Arc<redis::Script>,
    /// A stored value's length (version and record).
    value_len: usize,
    /// An hour from now, in Unix milliseconds (`PXAT`'s argument).
    far_ms: i64,
    prefix: String,
}

impl Fixture {
    /// Both sides' connections to `server`, and a record's size.
    async fn new(server: &support::RedisServer) -> Arc<Self> {
        let policy = Policy::default();
        let prefix = format!("t{:x}", support::random());
        let verifier_on = |store| {
            let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap());
            Arc::new(AsyncVerifier::new(policy.clone(), keys, store, SystemClock))
        };
        // Two stores on the same keys, each with its own options, so each
        // its own memo of recent key names: the measured verifier's load
        // never finds a name its starter's untimed `start` left (a busy
        // service's case, where many subjects pass between a start and its
        // verify), only the name its own load left for its write.
        let opts = || support::options_with_prefix(policy.clone(), &prefix);
        let store = RedisStore::connect(&server.url(), opts()).await.unwrap();
        let verifier = verifier_on(store);
        let store = RedisStore::connect(&server.url(), opts()).await.unwrap();
        let starter = verifier_on(store);
        let client = redis::Client::open(server.url()).unwrap();
        let raw = ConnectionManager::new(client).await.unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        let s = support::subject(999_999);
        verifier.start(&s, Channel::Sms, &mut rng).await.unwrap();
        let (record, _) = AsyncStore::load(verifier.store(), &RecordKey::from(&s))
            .await
            .unwrap()
            .unwrap();
        let far_ms = i64::try_from(
            (std::time::SystemTime::now() + Duration::from_secs(3600))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        Arc::new(Self {
            verifier,
            starter,
            raw,
            script: Arc::new(redis::Script::new(CAS_SCRIPT)),
            value_len: 8 + record.to_bytes().len(),
            far_ms,
            prefix: format!("baseline{}", support::random()),
        })
    }

    /// `ops` verifies of fresh validations (started untimed) over `tasks`
    /// tasks: the timed part is the verifies alone.
    async fn otpflow(&self, tasks: u64, ops: u64) -> Duration {
        let items = self.otpflow_items(tasks, ops).await;
        self.otpflow_run(tasks, items).await
    }

    /// `ops` fresh validations: each subject and its code.
    async fn otpflow_items(&self, tasks: u64, ops: u64) -> Vec<(SubjectKey, String)> {
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (v, sink) = (Arc::clone(&self.starter), Arc::clone(&started));
        concurrently(numbers(ops), tasks, move |n| {
            let (v, sink) = (Arc::clone(&v), Arc::clone(&sink));
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
        std::mem::take(&mut *started.lock().unwrap())
    }

    async fn otpflow_run(&self, tasks: u64, items: Vec<(SubjectKey, String)>) -> Duration {
        let v = Arc::clone(&self.verifier);
        concurrently(items, tasks, move |(s, code)| {
            let v = Arc::clone(&v);
            async move {
                v.verify(&s, &code).await.unwrap();
            }
        })
        .await
    }

    /// The store alone, no engine: `ops` loads and compare-and-swaps
    /// (writing the loaded record back) of records started untimed.
    async fn store_only(&self, tasks: u64, ops: u64) -> Duration {
        let items = self.store_items(tasks, ops).await;
        self.store_run(tasks, items).await
    }

    async fn store_items(&self, tasks: u64, ops: u64) -> Vec<RecordKey> {
        self.otpflow_items(tasks, ops)
            .await
            .into_iter()
            .map(|(s, _)| RecordKey::from(&s))
            .collect()
    }

    async fn store_run(&self, tasks: u64, items: Vec<RecordKey>) -> Duration {
        let v = Arc::clone(&self.verifier);
        concurrently(items, tasks, move |key| {
            let v = Arc::clone(&v);
            async move {
                let (record, version) = AsyncStore::load(v.store(), &key).await.unwrap().unwrap();
                let swap = AsyncStore::compare_and_swap(v.store(), &key, Some(version), &record)
                    .await
                    .unwrap();
                assert!(matches!(swap, otpflow::Swap::Done(_)));
            }
        })
        .await
    }

    /// `ops` times a `GET` and the script's `EVALSHA` writing a value of a
    /// record's size over `tasks` tasks, on keys set untimed.
    async fn baseline(&self, tasks: u64, ops: u64) -> Duration {
        let keys = self.baseline_items(ops).await;
        self.baseline_run(tasks, keys).await
    }

    async fn baseline_items(&self, ops: u64) -> Vec<String> {
        let keys: Vec<String> = numbers(ops)
            .into_iter()
            .map(|n| format!("{}:{{{n}}}", self.prefix))
            .collect();
        let mut setup = self.raw.clone();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.set(key, vec![1u8; self.value_len]).ignore();
        }
        let () = pipe.query_async(&mut setup).await.unwrap();
        keys
    }

    async fn baseline_run(&self, tasks: u64, keys: Vec<String>) -> Duration {
        let (raw, script) = (self.raw.clone(), Arc::clone(&self.script));
        let (value_len, far_ms) = (self.value_len, self.far_ms);
        concurrently(keys, tasks, move |key| {
            let (mut raw, script) = (raw.clone(), Arc::clone(&script));
            async move {
                let current: Vec<u8> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                let mut value = vec![2u8; value_len];
                for (new, old) in value.iter_mut().zip(&current[..8]) {
                    *new = old ^ 3;
                }
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
}

/// The part of a callgrind run to count: `valgrind --tool=callgrind
/// --toggle-collect='*callgrind_measured*'` counts this call alone, the
/// server's start, the connections and the untimed setup left out.
#[inline(never)]
fn callgrind_measured<F: Future<Output = Duration>>(
    runtime: &tokio::runtime::Runtime,
    run: F,
) -> Duration {
    runtime.block_on(run)
}

/// `OTPFLOW_REDIS_CALLGRIND=<arm>[:<ops>[:<tasks>]]` (`baseline`, `store`
/// or `verify`; 1,000 operations on 1 task by default): that arm alone on
/// a current-thread runtime (all of the client in one thread, for
/// valgrind), then exit. Under callgrind, divide the instructions counted
/// by the operations.
fn callgrind(spec: &str, server: &support::RedisServer) {
    let mut parts = spec.split(':');
    let arm = parts.next().unwrap_or_default();
    let ops: u64 = parts.next().map_or(1000, |n| n.parse().unwrap());
    let tasks: u64 = parts.next().map_or(1, |n| n.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fixture = runtime.block_on(Fixture::new(server));
    // One round untimed first: the script cached, the connection warm.
    runtime.block_on(async {
        fixture.baseline(1, 10).await;
        fixture.otpflow(1, 10).await;
    });
    let took = match arm {
        "baseline" => {
            let items = runtime.block_on(fixture.baseline_items(ops));
            callgrind_measured(&runtime, fixture.baseline_run(tasks, items))
        }
        "store" => {
            let items = runtime.block_on(fixture.store_items(tasks, ops));
            callgrind_measured(&runtime, fixture.store_run(tasks, items))
        }
        "verify" => {
            let items = runtime.block_on(fixture.otpflow_items(tasks, ops));
            callgrind_measured(&runtime, fixture.otpflow_run(tasks, items))
        }
        other => panic!("OTPFLOW_REDIS_CALLGRIND: no arm {other:?} (baseline, store, verify)"),
    };
    println!("callgrind arm {arm}: {ops} operations over {tasks} tasks in {took:?}");
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn bench(c: &mut Criterion) {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    if let Ok(spec) = std::env::var("OTPFLOW_REDIS_CALLGRIND") {
        callgrind(&spec, &server);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = runtime.block_on(Fixture::new(&server));

    let mut group = c.benchmark_group("redis_verify");
    group.throughput(Throughput::Elements(1));
    for tasks in CONCURRENCY {
        for (name, baseline) in [("baseline_get_evalsha", true), ("otpflow", false)] {
            group.bench_function(BenchmarkId::new(name, tasks), |b| {
                b.to_async(&runtime).iter_custom(|ops| {
                    let fixture = Arc::clone(&fixture);
                    async move {
                        if baseline {
                            fixture.baseline(tasks, ops).await
                        } else {
                            fixture.otpflow(tasks, ops).await
                        }
                    }
                });
            });
        }
    }
    group.finish();
    // Paired rounds, under `cargo bench` only (`cargo test` runs each
    // benchmark once).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // `OTPFLOW_REDIS_TASKS=64` (a comma-separated list) and
    // `OTPFLOW_REDIS_ROUNDS=100` narrow or lengthen the paired rounds (for
    // a profiler).
    let concurrency: Vec<u64> = std::env::var("OTPFLOW_REDIS_TASKS").map_or_else(
        |_| CONCURRENCY.to_vec(),
        |list| list.split(',').map(|t| t.trim().parse().unwrap()).collect(),
    );
    let rounds =
        std::env::var("OTPFLOW_REDIS_ROUNDS").map_or(PAIRED_ROUNDS, |r| r.parse().unwrap());
    runtime.block_on(async {
        for tasks in concurrency {
            let ops = 400 * tasks.clamp(1, 8);
            let (mut baseline, mut otpflow, mut store) = (Vec::new(), Vec::new(), Vec::new());
            let (mut ratios, mut store_ratios) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                // 0: baseline, 1: otpflow, 2: the store alone; the order
                // rotates every round.
                let mut times = [Duration::ZERO; 3];
                for k in 0..3 {
                    let arm = (round + k) % 3;
                    times[arm] = match arm {
                        0 => fixture.baseline(tasks, ops).await,
                        1 => fixture.otpflow(tasks, ops).await,
                        _ => fixture.store_only(tasks, ops).await,
                    };
                }
                let per_second = |d: Duration| ops as f64 / d.as_secs_f64();
                baseline.push(per_second(times[0]));
                otpflow.push(per_second(times[1]));
                store.push(per_second(times[2]));
                ratios.push(times[0].as_secs_f64() / times[1].as_secs_f64());
                store_ratios.push(times[0].as_secs_f64() / times[2].as_secs_f64());
            }
            println!(
                "paired, {tasks} tasks: baseline {:.0} op/s, otpflow {:.0} op/s, store alone {:.0} op/s \
                 (medians); otpflow/baseline median {:.3}, range {:.3}-{:.3}; \
                 store alone/baseline median {:.3}; {rounds} rounds of {ops}",
                median(&mut baseline),
                median(&mut otpflow),
                median(&mut store),
                median(&mut ratios),
                ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratios.iter().copied().fold(0.0, f64::max),
                median(&mut store_ratios),
            );
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
