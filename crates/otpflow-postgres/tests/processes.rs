//! Many processes, one PostgreSQL: 4 OS processes × 8 tasks hammer one
//! subject with right and wrong codes through otpflow's `AsyncVerifier`.
//! Each task loops: a subject with no live validation gets a new one (its
//! code published in a side table for the others), a live one gets the
//! right code or a wrong one. Each process reports the events of every
//! acknowledged write (the verifier emits them only after the write); this
//! process then checks that every validation was started once and ended
//! with exactly one success or with its checks spent, that no validation
//! took more checks than its budget or spent an attempt twice, and that no
//! write was lost (the stored record holds what the last events say).
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

use std::sync::Mutex;

use otpflow::store::AsyncStore;
use otpflow::{
    AsyncVerifier, Channel, Error, Event, KeyId, KeyRing, PhoneNumber, PhonePolicy, Purpose,
    SecretKey, State, SubjectKey, SystemClock,
};
use otpflow_postgres::{PgStore, SubjectHasher};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use support::{PgServer, engine, hammer_policy};
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
    let stored = runtime.block_on(async {
        store(server.port())
            .load(&otpflow::RecordKey::from(&subject()))
            .await
            .unwrap()
    });
    Some(check(&reports, stored.map(|(record, _)| record)))
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

fn check(reports: &[String], stored: Option<otpflow::Record>) -> String {
    let mut generations: BTreeMap<u32, Generation> = BTreeMap::new();
    let mut refusals = 0_u64;
    let mut events = 0_u64;
    for line in reports.iter().flat_map(|r| r.lines()) {
        let fields: Vec<&str> = line.split(' ').collect();
        if let ["refused", _] = fields.as_slice() {
            refusals += 1;
            continue;
        }
        let (kind, generation, detail) = match fields.as_slice() {
            [kind, generation] => (*kind, *generation, None),
            [kind, generation, detail] => (*kind, *generation, Some(*detail)),
            _ => panic!("unreadable report line {line:?}"),
        };
        events += 1;
        let entry = generations.entry(generation.parse().unwrap()).or_default();
        match kind {
            "sent" => entry.starts += 1,
            "validated" => entry.successes += 1,
            "failed" => entry.failed.push(detail.unwrap().parse().unwrap()),
            "locked" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    let max = hammer_policy().max_checks();
    let last = *generations.keys().last().expect("some validations ran");
    assert!(last >= 2, "only {last} validations ran");
    let expected: Vec<u32> = (1..=last).collect();
    assert_eq!(generations.keys().copied().collect::<Vec<_>>(), expected);
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
    // No write lost: the stored record is the last validation, with every
    // check its events report.
    let record = stored.expect("the subject's record is stored");
    assert_eq!(record.generation(), last);
    let g = &generations[&last];
    let status = engine(hammer_policy())
        .status(Some(&record), OffsetDateTime::now_utc())
        .unwrap();
    let state = match (g.successes, g.failed.contains(&0)) {
        (1, _) => State::Validated,
        (_, true) => State::Locked,
        _ => State::Sent,
    };
    assert_eq!(status.state, state);
    // A live validation tells its attempts left: every acknowledged check
    // is counted. An ended one tells 0 whatever it took (`Status` docs);
    // its state above is what its last write says.
    if state == State::Sent {
        let checks = u32::try_from(g.failed.len()).unwrap();
        assert_eq!(
            status.attempts_left,
            max - checks,
            "checks of the last validation lost"
        );
    } else {
        assert_eq!(status.attempts_left, 0);
    }
    let successes: u32 = generations.values().map(|g| g.successes).sum();
    format!(
        "{PROCESSES} processes × {TASKS} tasks: {last} validations ({successes} validated), \
         {events} events of acknowledged writes, {refusals} refusals"
    )
}

/// One worker process: `TASKS` tasks sharing one `AsyncVerifier` on a
/// multi-thread runtime; prints the events of its writes and its refusals.
fn worker(id: &str) {
    let id: u64 = id.parse().unwrap();
    let port: u16 = std::env::var("OTPFLOW_PG_PORT").unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = lines.clone();
    let shared = lines.clone();
    runtime.block_on(async move {
        let lines = shared;
        let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap());
        let verifier = AsyncVerifier::new(hammer_policy(), keys, store(port), SystemClock)
            .on_event(move |event| {
                let line = match event {
                    Event::Sent { generation, .. } => format!("sent {generation}"),
                    Event::CheckFailed {
                        generation,
                        attempts_left,
                        ..
                    } => format!("failed {generation} {attempts_left}"),
                    Event::Validated { generation, .. } => format!("validated {generation}"),
                    Event::Locked { generation, .. } => format!("locked {generation}"),
                    other => format!("{other:?}"),
                };
                log.lock().unwrap().push(line);
            });
        let verifier = Arc::new(verifier);
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
                let (verifier, codes, lines) = (verifier.clone(), codes.clone(), lines.clone());
                tokio::spawn(async move {
                    hammer(&verifier, &codes, &lines, id * 100 + task).await;
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    println!("{}", lines.lock().unwrap().join("\n"));
}

type Verifier = AsyncVerifier<PgStore, SystemClock>;

/// One task's loop.
async fn hammer(
    verifier: &Verifier,
    codes: &tokio_postgres::Client,
    lines: &Mutex<Vec<String>>,
    seed: u64,
) {
    let subject = subject();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let refused = |error: Error| {
        assert!(!matches!(error, Error::Store(_)), "{error}");
        lines
            .lock()
            .unwrap()
            .push(format!("refused {}", error.code()));
    };
    let deadline = Instant::now() + RUN_LIMIT;
    while Instant::now() < deadline {
        let status = verifier.status(&subject).await;
        if let Ok(s) = &status
            && s.state == State::Sent
        {
            let mut code = format!("{:06}", rng.next_u32() % 1_000_000);
            if rng.next_u32() % 4 != 0 {
                let published = codes
                    .query_opt(
                        &format!("SELECT code FROM {SCHEMA}.codes WHERE generation = $1"),
                        &[&i32::try_from(s.generation).unwrap()],
                    )
                    .await
                    .unwrap();
                if let Some(row) = published {
                    code = row.get(0);
                }
            }
            if let Err(error) = verifier.verify(&subject, &code).await
                && !matches!(error, Error::CodeMismatch { .. } | Error::AttemptsExhausted)
            {
                refused(error);
            }
            continue;
        }
        match status {
            Ok(s) if s.generation >= GENERATIONS => break,
            Ok(_) | Err(Error::NotFound) => {}
            Err(other) => panic!("status: {other}"),
        }
        // A new validation; when another task was first, this acts as a
        // resend and is refused (too soon).
        match verifier.start(&subject, Channel::Sms, &mut rng).await {
            Ok(sent) if !sent.resent => {
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
            }
            Ok(_) => panic!("a resend within the cooldown"),
            Err(error) => refused(error),
        }
    }
}
