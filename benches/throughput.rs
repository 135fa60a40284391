//! Throughput of whole validations (start, then verify with the right code)
//! over distinct subjects, on 1, 2 and 4 threads sharing one `Verifier` and
//! `MemoryStore`, in the same run. The ratio of the times per validation is
//! the scaling (goal: 1.85 or more on 2 cores; 4 threads on 2 cores shows
//! what oversubscription costs). Beside them, the floor for scaling: two
//! threads that share nothing (a `Verifier` and `MemoryStore` each), and
//! 1 and 2 threads over the store through `Store`'s provided `update`
//! (load, the engine outside any lock, compare-and-swap).
//!
//! `cargo bench --bench throughput`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, KeyId, KeyRing, ManualClock, MemoryStore, PhoneNumber, PhonePolicy, Policy, Purpose,
    Record, RecordKey, SecretKey, Store, SubjectKey, Swap, Verifier, Version,
};
use rand_chacha::ChaCha20Rng;
use time::macros::datetime;

/// Subjects per thread; each is validated over and over.
const POOL: usize = 5_000;

fn pools(threads: usize) -> Vec<Vec<SubjectKey>> {
    let policy = PhonePolicy::default();
    (0..threads)
        .map(|t| {
            (0..POOL)
                .map(|i| {
                    let number = format!("+4474{t}{i:07}");
                    let phone = PhoneNumber::parse(&number, &policy).expect("a UK mobile");
                    SubjectKey::new(Purpose::Login, phone)
                })
                .collect()
        })
        .collect()
}

/// `MemoryStore` through the `Store` trait's provided `update`: the record
/// is loaded (one lock), the engine runs outside any lock, and the result
/// is compared-and-swapped in (a second lock and hash).
struct OutsideLock(MemoryStore);

impl Store for OutsideLock {
    type Error = std::convert::Infallible;
    fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, Self::Error> {
        self.0.load(key)
    }
    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        self.0.compare_and_swap(key, expected, new)
    }
}

fn validate_all<S: Store>(
    verifier: &Verifier<S, ManualClock>,
    pool: &[SubjectKey],
    ops: u64,
    seed: u64,
) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    for (n, subject) in (0..ops).zip(pool.iter().cycle()) {
        let sent = verifier
            .start(subject, Channel::Sms, &mut rng)
            .expect("sent");
        let done = verifier.verify(subject, sent.code.as_str());
        assert!(done.is_ok(), "validation {n} failed: {done:?}");
        black_box(done.ok());
    }
}

/// `iters` validations over `threads` threads sharing `verifier`; the time
/// per validation, so rows of any thread count compare directly.
fn shared<S: Store + Sync>(
    verifier: &Verifier<S, ManualClock>,
    clock: &ManualClock,
    pools: &[Vec<SubjectKey>],
    threads: usize,
    iters: u64,
) -> Duration {
    // A new send window for everyone: the budgets are not what is measured
    // here.
    clock.advance(time::Duration::hours(2));
    let per_thread = iters.div_ceil(threads as u64);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for (t, pool) in pools.iter().take(threads).enumerate() {
            scope.spawn(move || validate_all(verifier, pool, per_thread, t as u64));
        }
    });
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_thread * threads as u64) as f64)
}

fn bench(c: &mut Criterion) {
    let policy = Policy::builder()
        .subject_send_cap(10_000)
        .build()
        .expect("a valid policy");
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42; 32]).expect("a valid key"));
    let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
    let verifier = Verifier::new(policy, keys, MemoryStore::new(), clock.clone());
    let pools = pools(4);

    let mut g = c.benchmark_group("throughput");
    for threads in [1usize, 2, 4] {
        g.bench_function(format!("start+verify, {threads} thread(s)"), |b| {
            b.iter_custom(|iters| shared(&verifier, &clock, &pools, threads, iters));
        });
    }
    {
        let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
        let policy = verifier.engine().policy().clone();
        let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42; 32]).expect("a valid key"));
        let store = OutsideLock(MemoryStore::new());
        let verifier = Verifier::new(policy, keys, store, clock.clone());
        for threads in [1usize, 2] {
            g.bench_function(
                format!("start+verify, {threads} thread(s), engine outside the lock"),
                |b| b.iter_custom(|iters| shared(&verifier, &clock, &pools, threads, iters)),
            );
        }
    }
    // The same two threads with nothing shared (a `Verifier`, store and
    // clock each): the scaling the machine allows this loop. The gap to the
    // shared rows is what sharing one store costs (lines both cores write).
    let apart: Vec<_> = (0..2)
        .map(|_| {
            let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
            let policy = verifier.engine().policy().clone();
            let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42; 32]).expect("a valid key"));
            let own = Verifier::new(policy, keys, MemoryStore::new(), clock.clone());
            (own, clock)
        })
        .collect();
    g.bench_function("start+verify, 2 thread(s), nothing shared", |b| {
        b.iter_custom(|iters| {
            for (_, clock) in &apart {
                clock.advance(time::Duration::hours(2));
            }
            let per_thread = iters.div_ceil(2);
            let start = Instant::now();
            std::thread::scope(|scope| {
                for (t, (pool, (own, _))) in pools.iter().zip(&apart).enumerate() {
                    scope.spawn(move || validate_all(own, pool, per_thread, t as u64));
                }
            });
            start
                .elapsed()
                .mul_f64(iters as f64 / (per_thread * 2) as f64)
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
