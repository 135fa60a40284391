//! `verify` (wrong and right code) and `start` beside their floor: one
//! HMAC-SHA256 derivation of the same size plus one constant-time compare,
//! which no verification can do without. Same group, same run.
//!
//! `cargo bench --bench verify`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, Engine, KeyId, KeyRing, ManualClock, MemoryStore, PhoneNumber, PhonePolicy, Policy,
    Purpose, SecretKey, SubjectKey, Verifier,
};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::macros::datetime;

/// A policy whose budgets never run out during a measurement.
fn roomy() -> Policy {
    Policy::builder()
        .max_checks(100)
        .failure_cap(10_000)
        .subject_send_cap(10_000)
        .failure_window(time::Duration::seconds(1))
        .subject_send_window(time::Duration::seconds(1))
        .build()
        .expect("a valid policy")
}

fn subject(number: &str) -> SubjectKey {
    let phone = PhoneNumber::parse(number, &PhonePolicy::default()).expect("a UK mobile");
    SubjectKey::new(Purpose::Login, phone)
}

/// The floor: the derivation's HMAC over a message of the same length
/// (domain, purpose, E.164, 16-byte nonce, generation, block), six digits
/// out, one constant-time compare.
fn floor(key: &[u8; 32], message: &[u8], typed: &[u8; 6]) -> bool {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(message);
    let tag = mac.finalize().into_bytes();
    let mut digits = [0u8; 6];
    for (d, b) in digits.iter_mut().zip(tag.iter()) {
        *d = b'0' + b % 10;
    }
    bool::from(digits.ct_eq(typed))
}

fn bench(c: &mut Criterion) {
    let key = [42u8; 32];
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &key).expect("a valid key"));
    let now = datetime!(2026-11-22 12:00 UTC);
    let alice = subject("+447401101801");
    let mut rng = ChaCha20Rng::seed_from_u64(1);

    // The pure engine: verify on a started record (each call sees the same
    // state, as a transition does not mutate its input).
    let engine = Engine::new(roomy(), keys.clone());
    let step = engine.start(None, &alice, Channel::Sms, now, &mut rng);
    let record = step.write.expect("a record");
    let code = step.outcome.expect("sent").code;
    let wrong = if code.as_str() == "000000" {
        "111111"
    } else {
        "000000"
    };

    // The Verifier over a MemoryStore.
    let clock = ManualClock::new(now);
    let verifier = Verifier::new(roomy(), keys, MemoryStore::new(), clock.clone());
    let sent = verifier
        .start(&alice, Channel::Sms, &mut rng)
        .expect("sent");
    let wrong_for_verifier = if sent.code.as_str() == "000000" {
        "111111"
    } else {
        "000000"
    };

    let message = [7u8; 16 + 5 + 13 + 16 + 4 + 1 + 2];
    let typed = *b"123456";

    let mut g = c.benchmark_group("verify");
    g.bench_function("floor (HMAC-SHA256 + ct compare)", |b| {
        b.iter(|| floor(black_box(&key), black_box(&message), black_box(&typed)));
    });
    g.bench_function("engine verify, wrong code", |b| {
        b.iter(|| engine.verify(Some(black_box(&record)), &alice, black_box(wrong), now));
    });
    let stranger = subject("+447401101802");
    g.bench_function("engine verify, unknown subject", |b| {
        b.iter(|| engine.verify(None, black_box(&stranger), black_box(wrong), now));
    });
    g.bench_function("engine verify, right code", |b| {
        b.iter(|| {
            engine.verify(
                Some(black_box(&record)),
                &alice,
                black_box(code.as_str()),
                now,
            )
        });
    });
    // Every 90 checks, the code expires and the validation starts again: the
    // budgets are not what is measured here.
    let checks = std::cell::Cell::new(0u64);
    let current_wrong = std::cell::RefCell::new(wrong_for_verifier.to_owned());
    g.bench_function("verifier verify, wrong code", |b| {
        b.iter(|| {
            checks.set(checks.get() + 1);
            if checks.get().is_multiple_of(90) {
                clock.advance(time::Duration::minutes(11));
                let sent = verifier
                    .start(
                        &alice,
                        Channel::Sms,
                        &mut ChaCha20Rng::seed_from_u64(checks.get()),
                    )
                    .expect("a new validation");
                let wrong = if sent.code.as_str() == "000000" {
                    "111111"
                } else {
                    "000000"
                };
                *current_wrong.borrow_mut() = wrong.to_owned();
            }
            let wrong = current_wrong.borrow();
            let _ = black_box(verifier.verify(&alice, black_box(wrong.as_str())));
        });
    });
    g.bench_function("verifier verify, right code", |b| {
        let mut n = 0u64;
        b.iter_batched(
            || {
                n += 1;
                let s = subject(&format!("+4474011{:05}", n % 100_000));
                let code = verifier
                    .start(&s, Channel::Sms, &mut ChaCha20Rng::seed_from_u64(n))
                    .map(|sent| sent.code)
                    .ok();
                (s, code)
            },
            |(s, code)| {
                if let Some(code) = code {
                    let _ = black_box(verifier.verify(&s, code.as_str()));
                }
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("engine start, UK mobile", |b| {
        b.iter(|| engine.start(None, black_box(&alice), Channel::Sms, now, &mut rng));
    });
    g.bench_function("parse + engine start, UK mobile", |b| {
        let policy = PhonePolicy::default();
        b.iter(|| {
            let phone =
                PhoneNumber::parse(black_box("07401 101801"), &policy).expect("a UK mobile");
            engine.start(
                None,
                &SubjectKey::new(Purpose::Login, phone),
                Channel::Sms,
                now,
                &mut rng,
            )
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
