//! `verify` (wrong and right code) and `start` beside their floor, the
//! physical one: two SHA-256 compressions from the key's precomputed HMAC
//! states (one block of message, one of inner hash) and a constant-time
//! compare of the digits, which no check can do without. Beside it: the
//! same floor plus the stack scrub the derivation runs (its cost), the
//! library's derivations V2 and V1, and the old floor (HMAC keyed on every
//! call). Same group, same run.
//!
//! `cargo bench --bench verify`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use otpflow::code::Derivation;
use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, Engine, KeyId, KeyRing, ManualClock, MemoryStore, PhoneNumber, PhonePolicy, Policy,
    Purpose, SecretKey, SubjectKey, Verifier,
};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use sha2::block_api::compress256;
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

/// The old floor: HMAC-SHA256 keyed from the raw key on every call, over a
/// message the size of V1's, six digits out, one constant-time compare.
fn keyed_floor(key: &[u8; 32], message: &[u8], typed: &[u8; 6]) -> bool {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(message);
    let tag = mac.finalize().into_bytes();
    let mut digits = [0u8; 6];
    for (d, b) in digits.iter_mut().zip(tag.iter()) {
        *d = b'0' + b % 10;
    }
    bool::from(digits.ct_eq(typed))
}

/// HMAC's inner and outer midstates of `key`.
fn midstates(key: &[u8; 32]) -> ([u32; 8], [u32; 8]) {
    let h0 = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let state = |pad: u8| {
        let mut block = [pad; 64];
        block.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
        let mut s = h0;
        compress256(&mut s, &[block]);
        s
    };
    (state(0x36), state(0x5c))
}

/// The physical floor: the inner compression over one padded block (the
/// message already laid out in it), the outer one over the inner hash, six
/// digits out, one constant-time compare.
fn floor(states: &([u32; 8], [u32; 8]), block: &[u8; 64], typed: &[u8; 6]) -> bool {
    let mut inner = states.0;
    compress256(&mut inner, std::slice::from_ref(block));
    let mut outer_block = [0u8; 64];
    for (chunk, word) in outer_block.chunks_exact_mut(4).zip(inner) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    outer_block[32] = 0x80;
    outer_block[56..].copy_from_slice(&(96u64 * 8).to_be_bytes());
    let mut outer = states.1;
    compress256(&mut outer, &[outer_block]);
    let mut digits = [0u8; 6];
    for (d, b) in digits
        .iter_mut()
        .zip(outer[0].to_be_bytes().iter().chain(&outer[1].to_be_bytes()))
    {
        *d = b'0' + b % 10;
    }
    bool::from(digits.ct_eq(typed))
}

/// What the derivation adds after its compressions: 1 KiB of stack below
/// the caller overwritten (as `otpflow::code` does, in a frame of its own).
#[inline(never)]
fn scrub() {
    let mut area = [0u64; 128];
    black_box(&mut area);
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

    // V1's message: domain 15, purpose 1 + 5, E.164 1 + 13, nonce 16,
    // generation 4, block 1.
    let message = [7u8; 15 + 6 + 14 + 16 + 4 + 1];
    let typed = *b"123456";
    let states = midstates(&key);
    // V2's message for a login: 49 bytes, padded into one block.
    let mut block = [7u8; 64];
    block[49] = 0x80;
    block[50..56].fill(0);
    block[56..].copy_from_slice(&((64u64 + 49) * 8).to_be_bytes());
    let secret = SecretKey::new(KeyId(1), &key).expect("a valid key");
    let nonce = [9u8; 16];

    let mut g = c.benchmark_group("verify");
    g.bench_function("floor (2 compressions + ct compare)", |b| {
        b.iter(|| floor(black_box(&states), black_box(&block), black_box(&typed)));
    });
    g.bench_function("floor + stack scrub", |b| {
        b.iter(|| {
            let r = floor(black_box(&states), black_box(&block), black_box(&typed));
            scrub();
            r
        });
    });
    g.bench_function("derive V2 + ct compare", |b| {
        b.iter(|| {
            let code = Derivation::V2.derive(&secret, black_box(&alice), &nonce, 1, 6);
            bool::from(code.as_str().as_bytes().ct_eq(black_box(&typed[..])))
        });
    });
    g.bench_function("derive V1 + ct compare", |b| {
        b.iter(|| {
            let code = Derivation::V1.derive(&secret, black_box(&alice), &nonce, 1, 6);
            bool::from(code.as_str().as_bytes().ct_eq(black_box(&typed[..])))
        });
    });
    g.bench_function("old floor (HMAC keyed per call + ct compare)", |b| {
        b.iter(|| keyed_floor(black_box(&key), black_box(&message), black_box(&typed)));
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
