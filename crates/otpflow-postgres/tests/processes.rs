//! Many processes, one PostgreSQL: 4 OS processes × 8 tasks hammer one
//! subject with right and wrong codes. Each task loops: a subject with no
//! live validation gets a new one (its code published in a side table for
//! the others), a live one gets the right code or a wrong one. Each process
//! reports every acknowledged write; this process then checks that every
//! validation ended with exactly one success or with its checks spent,
//! that no validation took more checks than its budget, and that no write
//! was lost (versions unique, the stored record the last one written).
//!
//! This file is its own test harness: run without `OTPFLOW_PG_WORKER` it is
//! the coordinator, which starts PostgreSQL and runs itself four times as
//! workers.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otpflow::{AsyncStore, Channel, Error, PhoneNumber, PhonePolicy, Purpose, State, SubjectKey};
use otpflow_postgres::{PgStore, SubjectHasher};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use support::{PgServer, drive, engine, hammer_policy};
use time::OffsetDateTime;

const PROCESSES: usize = 4;
const TASKS: usize = 8;
/// Validations to run through before the workers stop.
const GENERATIONS: u32 = 40;
/// The longest a worker runs, whatever it reached.
const RUN_LIMIT: Duration = Duration::from_secs(60);
const SCHEMA: &str = "hammer";

fn main() {
    if let Ok(id) = std::env::var("OTPFLOW_PG_WORKER") {
        worker(&id);
        return;
    }
    let started = Instant::now();
    match coordinator() {
        Some(summary) => {
            println!("{summary} ({:.1} s)", started.elapsed().as_secs_f64());
            println!("processes: 1 passed, 0 failed");
        }
        None => println!("processes: 0 passed, 0 failed, 1 skipped"),
    }
}

fn subject() -> SubjectKey {
    let phone = PhoneNumber::parse("+447401101899", &PhonePolicy::default()).unwrap();
    SubjectKey::new(Purpose::Login, phone)
}

fn store(port: u16) -> PgStore {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .options(format!("-c search_path={SCHEMA}"));
    PgStore::builder(
        config,
        SubjectHasher::new(&support::HASH_KEY).unwrap(),
        hammer_policy(),
    )
    .max_connections(TASKS)
    .build()
    .unwrap()
}

/// Starts the server, runs the workers, checks what they report.
fn coordinator() -> Option<String> {
    let server = PgServer::start()?;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        support::create_schema(&server, SCHEMA).await;
        assert_eq!(store(server.port()).migrate().await.unwrap(), 1);
        server
            .admin()
            .await
            .batch_execute(&format!(
                "CREATE TABLE {SCHEMA}.codes (generation integer PRIMARY KEY, code text NOT NULL)"
            ))
            .await
            .unwrap();
    });
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|id| {
            Command::new(&exe)
                .env("OTPFLOW_PG_WORKER", id.to_string())
                .env("OTPFLOW_PG_PORT", server.port().to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    // Read each worker's report; a worker past the limit is killed by its
    // id. Every worker is waited for before any verdict.
    let deadline = Instant::now() + RUN_LIMIT + Duration::from_secs(30);
    let readers: Vec<_> = children
        .iter_mut()
        .map(|child| {
            let mut stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                let mut out = String::new();
                let _ = stdout.read_to_string(&mut out);
                out
            })
        })
        .collect();
    let mut failures = Vec::new();
    for child in &mut children {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if !status.success() {
                    failures.push(format!("a worker failed: {status}"));
                }
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                failures.push("a worker ran past its limit".to_owned());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let reports: Vec<String> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    let stored = runtime.block_on(async { store(server.port()).load(&subject()).await.unwrap() });
    Some(check(&reports, stored))
}

/// What one generation saw, over all processes.
#[derive(Default)]
struct Generation {
    starts: u32,
    successes: u32,
    /// `attempts_left` of each failed check (0 for the one that spent the
    /// last attempt).
    failed: Vec<u32>,
}

fn check(reports: &[String], stored: Option<(otpflow::Record, otpflow::Version)>) -> String {
    let mut generations: BTreeMap<u32, Generation> = BTreeMap::new();
    let mut versions = BTreeSet::new();
    let mut last_written: Option<(u64, String)> = None;
    let mut writes = 0_u64;
    let mut refusals = 0_u64;
    for line in reports.iter().flat_map(|r| r.lines()) {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["refused", _] => refusals += 1,
            [kind, generation, version, detail, bytes] => {
                let generation: u32 = generation.parse().unwrap();
                let version: u64 = version.parse().unwrap();
                assert!(versions.insert(version), "version {version} written twice");
                writes += 1;
                if last_written.as_ref().is_none_or(|(v, _)| version > *v) {
                    last_written = Some((version, (*bytes).to_owned()));
                }
                let entry = generations.entry(generation).or_default();
                match *kind {
                    "start" => entry.starts += 1,
                    "valid" => entry.successes += 1,
                    "failed" => entry.failed.push(detail.parse().unwrap()),
                    other => panic!("unknown report {other}"),
                }
            }
            _ => panic!("unreadable report line {line:?}"),
        }
    }
    let policy = hammer_policy();
    let max = policy.max_checks();
    let last = *generations.keys().last().expect("some validations ran");
    assert!(last >= 2, "only {last} validations ran");
    for (number, g) in &generations {
        assert_eq!(
            g.starts, 1,
            "validation {number} started {} times",
            g.starts
        );
        assert!(
            g.successes <= 1,
            "validation {number} succeeded {} times",
            g.successes
        );
        let checks = g.successes + u32::try_from(g.failed.len()).unwrap();
        assert!(checks <= max, "validation {number} took {checks} checks");
        let distinct: BTreeSet<_> = g.failed.iter().collect();
        assert_eq!(
            distinct.len(),
            g.failed.len(),
            "an attempt spent twice in {number}"
        );
        if *number < last {
            // Ended: by one success, or by its last attempt.
            let exhausted = g.failed.contains(&0);
            assert!(
                (g.successes == 1) != exhausted,
                "validation {number} ended neither by one success nor by its budget"
            );
        }
    }
    let expected: Vec<u32> = (1..=last).collect();
    assert_eq!(generations.keys().copied().collect::<Vec<_>>(), expected);
    // No write lost: the stored record is the last one acknowledged.
    let (record, version) = stored.expect("the subject's record is stored");
    let (last_version, last_bytes) = last_written.unwrap();
    assert_eq!(
        version.0, last_version,
        "the stored version is not the last written"
    );
    assert_eq!(
        hex(&record.to_bytes()),
        last_bytes,
        "the stored record is not the last written"
    );
    assert_eq!(record.generation(), last);
    let successes: u32 = generations.values().map(|g| g.successes).sum();
    format!(
        "{PROCESSES} processes × {TASKS} tasks: {last} validations ({successes} validated), \
         {writes} writes, {refusals} refusals without a write"
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One worker process: `TASKS` tasks on a multi-thread runtime.
fn worker(id: &str) {
    let id: u64 = id.parse().unwrap();
    let port: u16 = std::env::var("OTPFLOW_PG_PORT").unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lines = runtime.block_on(async move {
        let store = Arc::new(store(port));
        let (codes, connection) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let codes = Arc::new(codes);
        let tasks: Vec<_> = (0..TASKS as u64)
            .map(|task| {
                let (store, codes) = (store.clone(), codes.clone());
                tokio::spawn(async move { hammer(&store, &codes, id * 100 + task).await })
            })
            .collect();
        let mut lines = Vec::new();
        for task in tasks {
            lines.extend(task.await.unwrap());
        }
        lines
    });
    println!("{}", lines.join("\n"));
}

/// One task's loop; returns its report lines.
async fn hammer(store: &PgStore, codes: &tokio_postgres::Client, seed: u64) -> Vec<String> {
    let engine = engine(hammer_policy());
    let subject = subject();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut lines = Vec::new();
    let deadline = Instant::now() + RUN_LIMIT;
    while Instant::now() < deadline {
        let now = OffsetDateTime::now_utc();
        let (record, _) = store.load(&subject).await.unwrap().unzip();
        if record
            .as_ref()
            .is_some_and(|r| r.generation() >= GENERATIONS)
        {
            break;
        }
        let live = engine
            .status(record.as_ref(), now)
            .is_ok_and(|s| s.state == State::Sent);
        if !live {
            // A new validation, unless another task started one meanwhile.
            let mut start_rng = ChaCha20Rng::seed_from_u64(rng.next_u64());
            let driven = drive(store, &subject, 8, |r| {
                let live = engine.status(r, now).is_ok_and(|s| s.state == State::Sent);
                if live {
                    otpflow::Step {
                        write: None,
                        outcome: Err(Error::Contention),
                        events: Vec::new(),
                    }
                } else {
                    engine.start(r, &subject, Channel::Sms, now, &mut start_rng)
                }
            })
            .await
            .unwrap();
            match (driven.outcome, driven.written) {
                (Ok(sent), Some(version)) => {
                    codes
                        .execute(
                            &format!("INSERT INTO {SCHEMA}.codes VALUES ($1, $2)"),
                            &[
                                &i32::try_from(sent.generation).unwrap(),
                                &sent.code.as_str(),
                            ],
                        )
                        .await
                        .unwrap();
                    lines.push(line(
                        "start",
                        sent.generation,
                        version,
                        None,
                        driven.record.as_ref(),
                    ));
                }
                (outcome, written) => {
                    assert!(written.is_none(), "a refused start wrote: {outcome:?}");
                    lines.push(format!(
                        "refused {}",
                        outcome.err().map_or("ok", |e| e.code())
                    ));
                }
            }
            continue;
        }
        let generation = record.as_ref().map_or(0, |r| r.generation());
        let mut code = format!("{:06}", rng.next_u32() % 1_000_000);
        if rng.next_u32() % 4 != 0 {
            let published = codes
                .query_opt(
                    &format!("SELECT code FROM {SCHEMA}.codes WHERE generation = $1"),
                    &[&i32::try_from(generation).unwrap()],
                )
                .await
                .unwrap();
            if let Some(row) = published {
                code = row.get(0);
            }
        }
        let mut checked = 0;
        let driven = drive(store, &subject, 8, |r| {
            checked = r.map_or(0, |r| r.generation());
            engine.verify(r, &subject, &code, now)
        })
        .await
        .unwrap();
        let Some(version) = driven.written else {
            lines.push(format!(
                "refused {}",
                driven.outcome.err().map_or("ok", |e| e.code())
            ));
            continue;
        };
        let (kind, left) = match driven.outcome {
            Ok(_) => ("valid", None),
            Err(Error::CodeMismatch { attempts_left }) => ("failed", Some(attempts_left)),
            Err(Error::AttemptsExhausted) => ("failed", Some(0)),
            Err(other) => panic!("a check wrote and answered {other:?}"),
        };
        lines.push(line(kind, checked, version, left, driven.record.as_ref()));
    }
    lines
}

/// `kind generation version detail record-hex`: one acknowledged write.
fn line(
    kind: &str,
    generation: u32,
    version: otpflow::Version,
    attempts_left: Option<u32>,
    record: Option<&otpflow::Record>,
) -> String {
    let detail = attempts_left.map_or_else(|| "-".to_owned(), |a| a.to_string());
    let record = record.map_or_else(String::new, |r| hex(&r.to_bytes()));
    format!("{kind} {generation} {} {detail} {record}", version.0)
}
