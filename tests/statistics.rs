//! The codes are uniform: a chi-square test over 10^6 codes from a seeded
//! CSPRNG shows every digit position (and every pair of adjacent positions)
//! uniform, so the digits carry no modulo bias. A control shows the same test
//! catches the bias of `byte % 10`.
//!
//! The thresholds are the chi-square quantiles at p = 10^-4: a correct
//! generator fails one position by chance about once in 10,000 runs, and the
//! seed is fixed, so the run is repeatable.

use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, Engine, KeyId, KeyRing, PhoneNumber, PhonePolicy, Policy, Purpose, SecretKey,
    SubjectKey,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng;
use time::macros::datetime;

/// Codes in the main test.
const CODES: usize = 1_000_000;
/// Chi-square quantile at 1 - 10^-4 with 9 degrees of freedom.
const CRITICAL_DF9: f64 = 33.72;
/// Chi-square quantile at 1 - 10^-4 with 99 degrees of freedom.
const CRITICAL_DF99: f64 = 160.0;

/// `count` codes of `length` digits, through the public API: the pure
/// `Engine::start` with a fresh 128-bit nonce from a seeded ChaCha20 each time.
fn codes(length: u8, count: usize, seed: u64) -> Vec<Vec<u8>> {
    let policy = Policy::builder()
        .code_length(length)
        .build()
        .expect("a valid policy");
    let key = SecretKey::new(KeyId(1), &[0x5a; 32]).expect("a valid key");
    let engine = Engine::new(policy, KeyRing::new(key));
    let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default()).expect("a UK mobile");
    let subject = SubjectKey::new(Purpose::Login, phone);
    let now = datetime!(2026-11-22 12:00 UTC);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let sent = engine
                .start(None, &subject, Channel::Sms, now, &mut rng)
                .outcome
                .expect("a fresh start sends");
            sent.code.as_str().bytes().map(|b| b - b'0').collect()
        })
        .collect()
}

/// Pearson's chi-square statistic of `counts` against a uniform expectation.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| {
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum()
}

/// Digit counts at each position.
fn per_position(codes: &[Vec<u8>], length: usize) -> Vec<[u64; 10]> {
    let mut counts = vec![[0u64; 10]; length];
    for code in codes {
        assert_eq!(code.len(), length);
        for (position, &digit) in code.iter().enumerate() {
            counts[position][usize::from(digit)] += 1;
        }
    }
    counts
}

#[test]
fn a_million_codes_are_uniform_at_every_position() {
    let codes = codes(6, CODES, 0x0709_2026);
    for (position, counts) in per_position(&codes, 6).iter().enumerate() {
        let stat = chi_square(counts);
        println!("position {position}: chi-square {stat:.2} (df 9, critical {CRITICAL_DF9})");
        assert!(
            stat < CRITICAL_DF9,
            "position {position} is not uniform: chi-square {stat:.2}, counts {counts:?}"
        );
    }
    // Adjacent pairs: 100 cells, which would show digits that depend on
    // their neighbour.
    for position in 0..5 {
        let mut cells = [0u64; 100];
        for code in &codes {
            cells[usize::from(code[position]) * 10 + usize::from(code[position + 1])] += 1;
        }
        let stat = chi_square(&cells);
        println!(
            "pair {position}-{}: chi-square {stat:.2} (df 99, critical {CRITICAL_DF99})",
            position + 1
        );
        assert!(
            stat < CRITICAL_DF99,
            "pair {position} is not uniform: {stat:.2}"
        );
    }
}

#[test]
fn other_lengths_are_uniform_too() {
    for length in [4u8, 10] {
        let codes = codes(length, 100_000, u64::from(length));
        for (position, counts) in per_position(&codes, usize::from(length)).iter().enumerate() {
            let stat = chi_square(counts);
            assert!(
                stat < CRITICAL_DF9,
                "length {length}, position {position}: chi-square {stat:.2}"
            );
        }
    }
}

/// The control: `byte % 10` over uniform bytes favours 0–5 (26/256 against
/// 25/256). Over 10^6 digits the expected statistic is about 366, so the
/// test above would catch a derivation with modulo bias.
#[test]
fn the_test_catches_modulo_bias() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut counts = [0u64; 10];
    for _ in 0..CODES {
        let byte = rng.next_u32() & 0xff;
        counts[usize::try_from(byte % 10).expect("a digit")] += 1;
    }
    let stat = chi_square(&counts);
    println!("byte % 10: chi-square {stat:.2}");
    assert!(stat > CRITICAL_DF9 * 3.0, "the control passed: {stat:.2}");
}
