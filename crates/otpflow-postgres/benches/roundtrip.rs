//! `AsyncVerifier::verify` over a localhost PostgreSQL at 1, 8 and 64 tasks,
//! beside a baseline that makes the same round trips with no otpflow in
//! between: the same `SELECT` and the same `UPDATE`, on the same rows, over
//! the same pool. Each verify is a wrong code on a live validation, so it
//! always loads, derives, compares and writes; validations are started
//! outside the timed part. Prints the statements each operation sent
//! (`pg_stat_statements`).
//!
//! `cargo bench -p otpflow-postgres --bench roundtrip -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use deadpool_postgres::Pool;
use otpflow::{
    AsyncVerifier, Channel, Error, KeyId, KeyRing, PhoneNumber, PhonePolicy, Policy, Purpose,
    SecretKey, SubjectKey, SystemClock,
};
use otpflow_postgres::{PgStore, SubjectHasher};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use support::PgServer;
use time::OffsetDateTime;

const CONCURRENCY: [usize; 3] = [1, 8, 64];
const LOAD: &str = "SELECT version, record FROM otpflow_records WHERE subject = $1";
const UPDATE: &str = "UPDATE otpflow_records \
     SET version = nextval('otpflow_record_versions'), record = $3, expires_at = $4 \
     WHERE subject = $1 AND version = $2 RETURNING version";

/// 100 checks per code: each validation takes 100 writing verifies.
fn policy() -> Policy {
    Policy::builder()
        .max_checks(100)
        .failure_cap(10_000)
        // 100 wrong codes in a row on a subject: under the hard cap, which
        // would block the subject (100 by default).
        .failure_hard_cap(1_000_000)
        .subject_send_cap(10_000)
        .build()
        .unwrap()
}

/// Subjects with live validations, and the verifier that checks them.
struct Subjects {
    verifier: AsyncVerifier<PgStore, SystemClock>,
    next: AtomicU64,
}

impl Subjects {
    /// A fresh subject with a live validation (100 writing checks), and a
    /// code that is not its code.
    async fn fresh(&self) -> (SubjectKey, &'static str) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let phone = PhoneNumber::parse(
            &format!("+447{:09}", 400_000_000 + n),
            &PhonePolicy::default(),
        )
        .unwrap();
        let key = SubjectKey::new(Purpose::Login, phone);
        let mut rng = ChaCha20Rng::seed_from_u64(n);
        let sent = self
            .verifier
            .start(&key, Channel::Sms, &mut rng)
            .await
            .unwrap();
        let wrong = if sent.code.as_str() == "000000" {
            "111111"
        } else {
            "000000"
        };
        (key, wrong)
    }
}

/// One task's subjects: (key, a wrong code, writing checks left).
type Lane = Vec<(SubjectKey, &'static str, u64)>;

/// Makes sure `lane` has `ops` writing checks left (untimed).
async fn refill(subjects: &Subjects, lane: &mut Lane, ops: u64) {
    lane.retain(|(_, _, left)| *left > 0);
    while lane.iter().map(|(_, _, left)| left).sum::<u64>() < ops {
        let (key, wrong) = subjects.fresh().await;
        lane.push((key, wrong, 100));
    }
}

/// Next subject of the lane to check, spending one check.
fn take(lane: &mut Lane) -> (SubjectKey, &'static str) {
    let slot = lane.iter_mut().find(|(_, _, left)| *left > 0).unwrap();
    slot.2 -= 1;
    (slot.0.clone(), slot.1)
}

/// A wrong code on a live validation with checks left: one load, one write.
async fn verify_one(subjects: &Subjects, key: &SubjectKey, wrong: &str) {
    match subjects.verifier.verify(key, wrong).await {
        Err(Error::CodeMismatch { .. } | Error::AttemptsExhausted) => {}
        other => panic!("{other:?}"),
    }
}

async fn baseline_one(pool: &Pool, hasher: &SubjectHasher, key: &SubjectKey) {
    let subject = hasher.hash(key);
    let client = pool.get().await.unwrap();
    let load = client.prepare_cached(LOAD).await.unwrap();
    let row = client
        .query_one(&load, &[&subject.as_slice()])
        .await
        .unwrap();
    let version: i64 = row.get(0);
    let record: &[u8] = row.get(1);
    let expires_at = OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let update = client.prepare_cached(UPDATE).await.unwrap();
    let written = client
        .query_opt(
            &update,
            &[&subject.as_slice(), &version, &record, &expires_at],
        )
        .await
        .unwrap();
    assert!(written.is_some());
}

/// Runs `ops` operations over `tasks` tasks; returns the wall time.
async fn run(
    subjects: &Arc<Subjects>,
    pool: &Pool,
    lanes: &mut [Lane],
    ops: u64,
    baseline: bool,
) -> Duration {
    let tasks = lanes.len() as u64;
    for (i, lane) in lanes.iter_mut().enumerate() {
        let share = ops / tasks + u64::from((i as u64) < ops % tasks);
        refill(subjects, lane, share).await;
    }
    let started = Instant::now();
    let handles: Vec<_> = lanes
        .iter_mut()
        .enumerate()
        .map(|(i, lane)| {
            let share = ops / tasks + u64::from((i as u64) < ops % tasks);
            let keys: Vec<_> = (0..share).map(|_| take(lane)).collect();
            let (subjects, pool) = (subjects.clone(), pool.clone());
            let hasher = SubjectHasher::new(&support::HASH_KEY).unwrap();
            tokio::spawn(async move {
                for (key, wrong) in &keys {
                    if baseline {
                        baseline_one(&pool, &hasher, key).await;
                    } else {
                        verify_one(&subjects, key, wrong).await;
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    started.elapsed()
}

const PAIRED_ROUNDS: usize = 15;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn roundtrip(c: &mut Criterion) {
    let Some(server) = PgServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(support::fresh_store_with(&server, "bench", policy(), |b| {
        b.max_connections(64)
    }));
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap());
    let subjects = Arc::new(Subjects {
        verifier: AsyncVerifier::new(policy(), keys, store.clone(), SystemClock),
        next: AtomicU64::new(0),
    });
    let pool = store.pool().clone();
    let mut group = c.benchmark_group("postgres_verify");
    group.throughput(Throughput::Elements(1));
    for tasks in CONCURRENCY {
        let mut lanes: Vec<Lane> = vec![Vec::new(); tasks];
        for (name, baseline) in [("baseline", true), ("otpflow", false)] {
            group.bench_function(format!("{name}/{tasks}"), |b| {
                b.iter_custom(|ops| {
                    runtime.block_on(run(&subjects, &pool, &mut lanes, ops, baseline))
                });
            });
        }
    }
    group.finish();
    // Statements per operation, counted by the server (under `cargo bench`
    // only: `cargo test` runs each benchmark once and the tests count them).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Paired rounds: baseline and otpflow alternate (order swapped every
    // round), so load from elsewhere on the machine hits both alike; the
    // ratio is otpflow's throughput over the baseline's, per round.
    runtime.block_on(async {
        for tasks in CONCURRENCY {
            let ops = 200 * tasks.clamp(2, 10) as u64;
            let mut lanes: Vec<Lane> = vec![Vec::new(); tasks];
            let (mut baseline, mut otpflow, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..PAIRED_ROUNDS {
                let mut pair = [Duration::ZERO; 2];
                for is_baseline in [round % 2 == 0, round % 2 != 0] {
                    let index = usize::from(!is_baseline);
                    pair[index] = run(&subjects, &pool, &mut lanes, ops, is_baseline).await;
                }
                baseline.push(ops as f64 / pair[0].as_secs_f64());
                otpflow.push(ops as f64 / pair[1].as_secs_f64());
                ratios.push(pair[0].as_secs_f64() / pair[1].as_secs_f64());
            }
            println!(
                "paired, {tasks} tasks: baseline {:.0} op/s, otpflow {:.0} op/s (medians); \
                 otpflow/baseline median {:.3}, range {:.3}–{:.3}, {PAIRED_ROUNDS} rounds of {ops}",
                median(&mut baseline),
                median(&mut otpflow),
                median(&mut ratios),
                ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratios.iter().copied().fold(0.0, f64::max),
            );
        }
    });
    runtime.block_on(async {
        let admin = server.admin().await;
        admin
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .unwrap();
        let mut lanes: Vec<Lane> = vec![Vec::new(); 8];
        for (name, baseline) in [("baseline", true), ("otpflow verify", false)] {
            let ops = 400;
            for lane in &mut lanes {
                refill(&subjects, lane, ops / 8).await;
            }
            admin
                .batch_execute("SELECT pg_stat_statements_reset()")
                .await
                .unwrap();
            run(&subjects, &pool, &mut lanes, ops, baseline).await;
            let rows = admin
                .query(
                    "SELECT query, calls FROM pg_stat_statements WHERE query LIKE '%otpflow_records%'",
                    &[],
                )
                .await
                .unwrap();
            let mut counts = [0_i64; 2];
            for row in rows {
                let query: String = row.get(0);
                let calls: i64 = row.get(1);
                counts[usize::from(!query.starts_with("SELECT"))] += calls;
            }
            println!(
                "{name}: {:.2} SELECT and {:.2} writes per operation ({ops} operations)",
                counts[0] as f64 / ops as f64,
                counts[1] as f64 / ops as f64
            );
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = roundtrip
}
criterion_main!(benches);
