//! Many processes, one Redis: 4 OS processes (this test binary, re-run as
//! workers) × 8 tasks each hammer one subject with right and wrong codes.
//! Per validation: exactly one success when the right code can win, checks
//! never over budget, every check accounted for, no record lost.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;

use otpflow::{
    AsyncVerifier, Channel, Error, KeyId, KeyRing, Policy, SecretKey, State, SystemClock, Verifier,
};
use otpflow_redis::{BlockingRedisStore, RedisStore};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use support::{RedisServer, options_with_prefix, subject};

const PROCESSES: usize = 4;
const TASKS: usize = 8;
const MAX_CHECKS: u32 = 5;
const ROUNDS: u32 = 6;
const SUBJECT: u32 = 424_242;

fn policy() -> Policy {
    Policy::builder()
        .max_checks(MAX_CHECKS)
        .failure_cap(10_000)
        .subject_send_cap(10_000)
        .build()
        .unwrap()
}

fn keys() -> KeyRing {
    KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap())
}

/// What each task sends, by round kind. `Race`: every task sends the right
/// code, and the first task of each process a wrong one before it (4 wrong
/// codes, fewer than the budget: the right code must win exactly once).
/// `Drain`: every task sends two wrong codes (64 against a budget of 5).
fn plan(kind: &str, task: usize) -> Vec<bool> {
    match (kind, task) {
        ("race", 0) => vec![false, true],
        ("race", _) => vec![true],
        _ => vec![false, false],
    }
}

/// A worker process: run only by `many_processes_hammer_one_subject`.
#[test]
#[ignore = "a worker process, run by many_processes_hammer_one_subject"]
fn worker() {
    let Ok(url) = std::env::var("OTPFLOW_WORKER_URL") else {
        panic!("run by many_processes_hammer_one_subject only");
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let (prefix, kind, right, wrong) = (
        var("OTPFLOW_WORKER_PREFIX"),
        var("OTPFLOW_WORKER_KIND"),
        var("OTPFLOW_WORKER_RIGHT"),
        var("OTPFLOW_WORKER_WRONG"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let answers = runtime.block_on(async move {
        let store = RedisStore::connect(&url, options_with_prefix(policy(), &prefix))
            .await
            .unwrap();
        let verifier =
            Arc::new(AsyncVerifier::new(policy(), keys(), store, SystemClock).max_retries(64));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (verifier, kind) = (Arc::clone(&verifier), kind.clone());
                let (right, wrong) = (right.clone(), wrong.clone());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for is_right in plan(&kind, task) {
                        let code = if is_right { &right } else { &wrong };
                        // A client retries what was only contention.
                        let answer = loop {
                            match verifier.verify(&subject(SUBJECT), code).await {
                                Err(Error::Contention) => {}
                                Ok(_) => break "ok",
                                Err(e) => break e.code(),
                            }
                        };
                        answers.push(answer);
                    }
                    answers
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    for answer in answers {
        println!("answer {answer}");
    }
}

#[test]
fn many_processes_hammer_one_subject() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let prefix = format!("p{:x}", support::random());
    let store =
        BlockingRedisStore::connect(&server.url(), options_with_prefix(policy(), &prefix)).unwrap();
    let verifier = Verifier::new(policy(), keys(), store, SystemClock);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let s = subject(SUBJECT);
    let exe = std::env::current_exe().unwrap();
    for round in 0..ROUNDS {
        let kind = if round % 2 == 0 { "race" } else { "drain" };
        let sent = verifier.start(&s, Channel::Sms, &mut rng).unwrap();
        assert_eq!(sent.generation, round + 1, "no record lost");
        let right = sent.code.as_str().to_owned();
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                Command::new(&exe)
                    .args([
                        "worker",
                        "--exact",
                        "--ignored",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("OTPFLOW_WORKER_URL", server.url())
                    .env("OTPFLOW_WORKER_PREFIX", &prefix)
                    .env("OTPFLOW_WORKER_KIND", kind)
                    .env("OTPFLOW_WORKER_RIGHT", &right)
                    .env("OTPFLOW_WORKER_WRONG", wrong)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut answers: HashMap<String, usize> = HashMap::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "worker failed: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // libtest may print "test worker ... " on the first answer's line.
            let answers_of = |l: &str| l.split_once("answer ").map(|(_, a)| a.trim().to_owned());
            for answer in stdout.lines().filter_map(answers_of) {
                *answers.entry(answer).or_default() += 1;
            }
        }
        let total: usize = answers.values().sum();
        let count = |code: &str| answers.get(code).copied().unwrap_or(0);
        let checks = count("ok") + count("code_mismatch");
        let status = verifier.status(&s).unwrap();
        assert_eq!(
            status.generation,
            round + 1,
            "round {round}: no record lost"
        );
        match kind {
            "race" => {
                assert_eq!(total, PROCESSES * (TASKS + 1), "{answers:?}");
                assert_eq!(
                    count("ok"),
                    1,
                    "round {round}: exactly one success: {answers:?}"
                );
                assert!(count("code_mismatch") <= PROCESSES, "{answers:?}");
                assert_eq!(
                    count("ok") + count("code_mismatch") + count("already_validated"),
                    total,
                    "{answers:?}"
                );
                assert_eq!(status.state, State::Validated);
            }
            _ => {
                assert_eq!(total, PROCESSES * TASKS * 2, "{answers:?}");
                assert_eq!(count("ok"), 0, "{answers:?}");
                // The budget spent exactly: four mismatches, then the fifth
                // check locks the code; everything after is refused unspent.
                assert_eq!(
                    count("code_mismatch"),
                    usize::try_from(MAX_CHECKS - 1).unwrap(),
                    "round {round}: {answers:?}"
                );
                assert_eq!(count("max_attempts_reached"), total - 4, "{answers:?}");
                assert_eq!(status.state, State::Locked);
            }
        }
        assert!(
            checks <= usize::try_from(MAX_CHECKS).unwrap(),
            "over budget: {answers:?}"
        );
    }
}
