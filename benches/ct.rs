//! Constant time, measured the dudect way (`dudect-bencher`): two classes of
//! input, interleaved at random, timed call by call; Welch's t statistic
//! says whether the two timing distributions differ (|t| > 5 is a leak).
//!
//! - `verify_first_vs_last_digit`: a code wrong in its first digit against
//!   one wrong in its last. A byte-by-byte comparison that stops early would
//!   show here.
//! - `verify_known_vs_unknown`: a wrong code for a subject with a live
//!   validation against a subject with none. Both answer `invalid_code` to
//!   an outsider (`Error::public`); this says whether their timing does too.
//!
//! Both run on the pure `Engine`, so store latency (which a real store adds,
//! and which differs between a read-only miss and a write) is not measured.
//!
//! `cargo bench --bench ct` runs 200,000 samples per class per bench
//! (`OTPFLOW_CT_SAMPLES` overrides); `cargo bench --bench ct -- --continuous`
//! runs until interrupted. Under `cargo test` it runs a short smoke.

use std::sync::atomic::{AtomicUsize, Ordering};

use dudect_bencher::ctbench::{BenchMetadata, BenchName, BenchOpts, run_benches_console};
use dudect_bencher::rand::RngExt;
use dudect_bencher::{BenchRng, Class, CtRunner};
use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, Engine, KeyId, KeyRing, PhoneNumber, PhonePolicy, Policy, Purpose, Record, SecretKey,
    SubjectKey,
};
use rand_chacha::ChaCha20Rng;
use time::OffsetDateTime;
use time::macros::datetime;

static SAMPLES: AtomicUsize = AtomicUsize::new(2_000);
const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

struct Setup {
    engine: Engine,
    known: SubjectKey,
    unknown: SubjectKey,
    record: Record,
    code: String,
}

fn setup() -> Setup {
    let policy = Policy::builder()
        .max_checks(100)
        .failure_cap(10_000)
        .build()
        .expect("a valid policy");
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42; 32]).expect("a valid key"));
    let engine = Engine::new(policy, keys);
    let phones = PhonePolicy::default();
    let subject = |n: &str| {
        SubjectKey::new(
            Purpose::Login,
            PhoneNumber::parse(n, &phones).expect("a UK mobile"),
        )
    };
    let known = subject("+447401101801");
    let unknown = subject("+447401101802");
    let step = engine.start(
        None,
        &known,
        Channel::Sms,
        NOW,
        &mut ChaCha20Rng::seed_from_u64(3),
    );
    let record = step.write.expect("a record");
    let code = step.outcome.expect("sent").code.as_str().to_owned();
    Setup {
        engine,
        known,
        unknown,
        record,
        code,
    }
}

/// The code with the digit at `position` changed.
fn wrong_at(code: &str, position: usize) -> String {
    code.bytes()
        .enumerate()
        .map(|(i, b)| {
            char::from(if i == position {
                b'0' + (b - b'0' + 5) % 10
            } else {
                b
            })
        })
        .collect()
}

/// A random interleaving of the two classes: `true` is left.
fn classes(rng: &mut BenchRng) -> Vec<bool> {
    (0..SAMPLES.load(Ordering::Relaxed))
        .map(|_| rng.random::<bool>())
        .collect()
}

fn class(left: bool) -> Class {
    if left { Class::Left } else { Class::Right }
}

fn verify_first_vs_last_digit(runner: &mut CtRunner, rng: &mut BenchRng) {
    let s = setup();
    let first = wrong_at(&s.code, 0);
    let last = wrong_at(&s.code, s.code.len() - 1);
    for left in classes(rng) {
        let input = if left { &first } else { &last };
        runner.run_one(class(left), || {
            s.engine
                .verify(Some(&s.record), &s.known, input, NOW)
                .outcome
                .is_err()
        });
    }
}

fn verify_known_vs_unknown(runner: &mut CtRunner, rng: &mut BenchRng) {
    let s = setup();
    let wrong = wrong_at(&s.code, 2);
    for left in classes(rng) {
        let (record, subject) = if left {
            (Some(&s.record), &s.known)
        } else {
            (None, &s.unknown)
        };
        runner.run_one(class(left), || {
            s.engine
                .verify(record, subject, &wrong, NOW)
                .outcome
                .is_err()
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") {
        let samples = std::env::var("OTPFLOW_CT_SAMPLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        SAMPLES.store(samples, Ordering::Relaxed);
    }
    let opts = BenchOpts {
        continuous: args.iter().any(|a| a == "--continuous"),
        filter: None,
        file_out: None,
    };
    let benches = vec![
        BenchMetadata {
            name: BenchName("verify_first_vs_last_digit"),
            seed: Some(1),
            benchfn: verify_first_vs_last_digit,
        },
        BenchMetadata {
            name: BenchName("verify_known_vs_unknown"),
            seed: Some(2),
            benchfn: verify_known_vs_unknown,
        },
    ];
    run_benches_console(opts, benches).expect("the console is writable");
}
