//! A year of patient guessing at one number (issue 8, item 2).
//!
//! An attacker who does not receive the SMS tries codes against one subject
//! for 365 simulated days (`ManualClock`), using every budget the policy
//! leaves: it starts validations, resends, spends every check of every
//! code, and waits out every cooldown, send limit and lockout, coming back
//! the very second each `retry_after` names. It is never lucky (its guesses
//! are always wrong), which is the most wrong codes it can get compared.
//!
//! Under `Policy::default()` it gets at most 100 wrong codes compared in the
//! year, NIST SP 800-63B's ceiling; with the escalation and the hard cap
//! turned off, the same attacker gets over a hundred thousand, which is
//! what the test's second run shows.
//!
//! `cargo test --test attacks -- --nocapture` prints the counts; the second
//! run covers 30 days unless `OTPFLOW_ATTACK_DAYS` says otherwise (365 gives
//! the README's figure, in about 100 s of a debug build).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use otpflow::rand_core::SeedableRng;
use otpflow::*;
use rand_chacha::ChaCha20Rng;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

/// What the attacker got out of a year.
#[derive(Debug, Default)]
struct Year {
    /// Wrong codes that reached a comparison (`Event::CheckFailed`).
    compared: u64,
    /// Codes the service sent to the victim (starts and resends).
    sent: u64,
    /// Calls the attacker made.
    calls: u64,
    /// True if the subject ended blocked until an unlock.
    blocked: bool,
}

fn attack(policy: Policy, days: i64) -> Year {
    let clock = ManualClock::new(T0);
    let compared = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let (c, s) = (Arc::clone(&compared), Arc::clone(&sent));
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &[7; 32]).expect("a valid key"));
    let verifier =
        Verifier::new(policy, keys, MemoryStore::new(), clock.clone()).on_event(move |event| {
            match event {
                Event::CheckFailed { .. } => {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                Event::Sent { .. } | Event::Resent { .. } => {
                    s.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        });
    let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default()).expect("a number");
    let subject = SubjectKey::new(Purpose::Login, phone);
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let end = T0 + Duration::days(days);
    let mut year = Year::default();
    // The code the victim received, which the attacker never guesses.
    let mut code: Option<Code> = None;
    let mut guess = 0u32;
    let wait = |d: Duration| clock.advance(d.max(Duration::SECOND));

    while clock.now() < end {
        year.calls += 1;
        let Some(current) = code.clone() else {
            match verifier.start(&subject, Channel::Sms, &mut rng) {
                Ok(sent) => code = Some(sent.code),
                Err(Error::Blocked) => {
                    year.blocked = true;
                    break;
                }
                Err(e) => wait(e.retry_after().expect("a start refused by time")),
            }
            continue;
        };
        // A wrong guess: the next six-digit number that is not the code.
        guess = (guess + 1) % 1_000_000;
        let mut typed = format!("{guess:06}");
        if typed == current.as_str() {
            guess = (guess + 1) % 1_000_000;
            typed = format!("{guess:06}");
        }
        match verifier.verify(&subject, &typed) {
            Ok(_) => panic!("the attacker guessed a code it never tries"),
            Err(Error::CodeMismatch { .. }) => {}
            Err(Error::AttemptsExhausted) => {
                // A resend gives no fresh checks under `SameCode`; try it
                // anyway, then start again.
                year.calls += 1;
                if let Ok(sent) = verifier.resend(&subject, None, &mut rng) {
                    code = Some(sent.code);
                } else {
                    code = None;
                }
            }
            Err(Error::Locked { retry_after }) => {
                wait(retry_after);
                code = None;
            }
            Err(Error::Blocked) => {
                year.blocked = true;
                break;
            }
            Err(Error::Expired | Error::Canceled | Error::AlreadyValidated) => code = None,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    year.compared = compared.load(Ordering::Relaxed);
    year.sent = sent.load(Ordering::Relaxed);
    year
}

#[test]
fn a_year_of_guessing_compares_at_most_100_wrong_codes() {
    let year = attack(Policy::default(), 365);
    println!(
        "default policy, 365 days: {} wrong codes compared, {} codes sent, {} calls, blocked: {}",
        year.compared, year.sent, year.calls, year.blocked
    );
    assert!(year.compared <= 100, "{year:?}");
    // The attacker reached the hard cap, and no time lifted it.
    assert_eq!(year.compared, 100);
    assert!(year.blocked);
}

#[test]
fn without_escalation_and_hard_cap_the_same_attacker_leaks() {
    let policy = Policy::builder()
        .lockout_growth(1)
        .failure_hard_cap(1_000_000)
        .build()
        .expect("a valid policy");
    // 30 days by default (a debug build takes some 8 s); the README's
    // figure for a year: OTPFLOW_ATTACK_DAYS=365.
    let days = std::env::var("OTPFLOW_ATTACK_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(30);
    let year = attack(policy, days);
    println!(
        "no escalation, no hard cap, {days} days: {} wrong codes compared, {} codes sent",
        year.compared, year.sent
    );
    // 20 failures, then an hour's lockout, around the clock (480 a day):
    // the leak the escalation and the hard cap close.
    assert!(
        year.compared >= 470 * u64::try_from(days).unwrap_or(0),
        "{year:?}"
    );
    assert!(year.compared > 100);
    assert!(!year.blocked);
}
