//! Every transition and every budget of the validation life cycle, through
//! the public API: `Verifier` over `MemoryStore` and a `ManualClock`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{T0, key, world, wrong};
use otpflow::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn subject(purpose: Purpose) -> SubjectKey {
    SubjectKey::new(
        purpose,
        PhoneNumber::parse("+447401101801", &PhonePolicy::default()).unwrap(),
    )
}

fn login() -> SubjectKey {
    subject(Purpose::Login)
}

#[test]
fn start_wrong_right_reuse() {
    let mut w = world(Policy::default());
    let s = login();
    let sent = w.start(&s).unwrap();
    assert_eq!(sent.code.len(), 6);
    assert_eq!(sent.generation, 1);
    assert_eq!(sent.expires_at, T0 + Duration::minutes(10));
    assert_eq!(sent.sends_left, 4);
    assert!(!sent.resent);
    assert_eq!(w.state(&s), State::Sent);

    let err = w.verifier.verify(&s, &wrong(&sent.code)).unwrap_err();
    assert!(
        matches!(err, Error::CodeMismatch { attempts_left: 4 }),
        "{err:?}"
    );
    assert_eq!(err.http_status(), 403);
    assert_eq!(w.verifier.status(&s).unwrap().attempts_left, 4);

    let ok = w.verifier.verify(&s, sent.code.as_str()).unwrap();
    assert_eq!(ok.generation, 1);
    assert_eq!(ok.validated_at, T0);
    assert_eq!(w.state(&s), State::Validated);

    let again = w.verifier.verify(&s, sent.code.as_str()).unwrap_err();
    assert!(matches!(again, Error::AlreadyValidated));
    assert_eq!(again.code(), "already_validated");

    let events = w.take_events();
    assert!(matches!(
        events[0],
        Event::Sent {
            generation: 1,
            channel: Channel::Sms,
            ..
        }
    ));
    assert!(matches!(
        events[1],
        Event::CheckFailed {
            attempts_left: 4,
            ..
        }
    ));
    assert!(matches!(events[2], Event::Validated { generation: 1, .. }));
    assert_eq!(
        events.len(),
        3,
        "a refused reuse changes nothing and emits nothing"
    );
}

#[test]
fn code_input_is_forgiving_about_spaces_and_dashes_only() {
    let mut w = world(Policy::default());
    let s = login();
    let code = w.start(&s).unwrap().code;
    for bad in [
        "12345",
        "1234567",
        "12345a",
        "",
        "١٢٣٤٥٦",
        "12345\u{0}6",
        "123 45x",
    ] {
        assert!(
            matches!(w.verifier.verify(&s, bad), Err(Error::MalformedCode)),
            "{bad:?}"
        );
    }
    // Malformed input spends nothing.
    assert_eq!(w.verifier.status(&s).unwrap().attempts_left, 5);
    let (a, b) = code.as_str().split_at(3);
    w.verifier.verify(&s, &format!(" {a}-{b} ")).unwrap();
}

#[test]
fn expiry_is_exclusive_at_the_boundary() {
    let mut w = world(Policy::default());
    let s = login();
    let code = w.start(&s).unwrap().code;
    w.clock
        .advance(Duration::minutes(10) - Duration::NANOSECOND);
    assert_eq!(w.state(&s), State::Sent);
    w.clock.advance(Duration::NANOSECOND);
    // Status reads the passing of time without writing.
    assert_eq!(w.state(&s), State::Expired);
    let err = w.verifier.verify(&s, code.as_str()).unwrap_err();
    assert!(matches!(err, Error::Expired));
    assert_eq!(err.http_status(), 412);
    assert!(matches!(
        w.take_events().last(),
        Some(Event::Expired { generation: 1, .. })
    ));
    assert!(matches!(w.resend(&s), Err(Error::Expired)));
    // A new start after expiry is a new generation with a new code.
    let next = w.start(&s).unwrap();
    assert_eq!(next.generation, 2);
    assert!(!next.resent);
    w.verifier.verify(&s, next.code.as_str()).unwrap();
}

#[test]
fn unknown_subject_and_cancel() {
    let mut w = world(Policy::default());
    let s = login();
    assert!(matches!(
        w.verifier.verify(&s, "123456"),
        Err(Error::NotFound)
    ));
    assert!(matches!(w.verifier.status(&s), Err(Error::NotFound)));
    assert!(matches!(w.verifier.cancel(&s), Err(Error::NotFound)));
    assert!(matches!(w.resend(&s), Err(Error::NotFound)));
    assert!(
        w.verifier.store().is_empty(),
        "refusals for unknown subjects write nothing"
    );

    let code = w.start(&s).unwrap().code;
    w.verifier.cancel(&s).unwrap();
    assert_eq!(w.state(&s), State::Canceled);
    w.verifier.cancel(&s).unwrap(); // idempotent
    assert!(matches!(
        w.verifier.verify(&s, code.as_str()),
        Err(Error::Canceled)
    ));
    assert!(matches!(w.resend(&s), Err(Error::Canceled)));
    assert_eq!(Error::Canceled.public(), PublicError::InvalidCode);
    let next = w.start(&s).unwrap();
    assert_eq!(next.generation, 2);
}

#[test]
fn checks_per_code_are_counted_before_the_comparison() {
    let mut w = world(Policy::default());
    let s = login();
    let code = w.start(&s).unwrap().code;
    let bad = wrong(&code);
    for left in (1..5).rev() {
        let err = w.verifier.verify(&s, &bad).unwrap_err();
        assert!(matches!(err, Error::CodeMismatch { attempts_left } if attempts_left == left));
    }
    // The fifth failure spends the budget and locks the validation.
    assert!(matches!(
        w.verifier.verify(&s, &bad),
        Err(Error::AttemptsExhausted)
    ));
    assert_eq!(w.state(&s), State::Locked);
    // Even the right code is refused now.
    assert!(matches!(
        w.verifier.verify(&s, code.as_str()),
        Err(Error::AttemptsExhausted)
    ));
    assert!(matches!(w.resend(&s), Err(Error::AttemptsExhausted)));
    let events = w.take_events();
    assert!(matches!(
        events.last(),
        Some(Event::Locked { until: None, .. })
    ));
}

#[test]
fn same_code_resend_cooldown_and_send_budget() {
    let mut w = world(Policy::default());
    let s = login();
    let first = w.start(&s).unwrap();
    assert_eq!(
        w.verifier.status(&s).unwrap().resend_after,
        Some(Duration::seconds(30))
    );
    let err = w.resend(&s).unwrap_err();
    assert!(matches!(err, Error::ResendTooSoon { .. }));
    assert_eq!(err.retry_after(), Some(Duration::seconds(30)));
    assert_eq!(err.http_status(), 429);
    w.clock.advance(Duration::seconds(12));
    assert_eq!(
        w.resend(&s).unwrap_err().retry_after(),
        Some(Duration::seconds(18))
    );
    w.clock.advance(Duration::seconds(18));
    for sends_left in (0..4).rev() {
        let again = w.resend(&s).unwrap();
        assert!(again.resent && !again.new_code);
        assert_eq!(again.code, first.code, "SameCode resends the same code");
        assert_eq!(again.expires_at, first.expires_at, "and keeps its lifetime");
        assert_eq!(again.sends_left, sends_left);
        w.clock.advance(Duration::seconds(30));
    }
    // Five sends in all: no resend can succeed any more, so the error says
    // to start again once the code expired.
    let now_elapsed = Duration::seconds(30 + 4 * 30);
    let err = w.resend(&s).unwrap_err();
    let left = Duration::minutes(10) - now_elapsed;
    assert!(matches!(err, Error::ResendsSpent { start_after } if start_after == left));
    assert_eq!(err.next_call(), Some("start"));
    // `start` on a live validation is a resend, under the same budget; its
    // `retry_after` is when `start` succeeds.
    let err = w.start(&s).unwrap_err();
    assert!(matches!(err, Error::SendLimit { .. }));
    assert_eq!(err.retry_after(), Some(left));
    w.clock.advance(left - Duration::SECOND);
    assert!(matches!(w.start(&s), Err(Error::SendLimit { .. })));
    w.clock.advance(Duration::SECOND);
    let next = w.start(&s).unwrap();
    assert_eq!(next.generation, 2);
}

#[test]
fn a_resend_that_would_come_after_expiry_says_start() {
    let policy = Policy::builder()
        .code_lifetime(Duration::seconds(40))
        .resend_cooldown(Duration::seconds(30))
        .build()
        .unwrap();
    let mut w = world(policy);
    let s = login();
    w.start(&s).unwrap();
    w.clock.advance(Duration::seconds(30));
    w.resend(&s).unwrap();
    // The next resend would be due at 60 s; the code expires at 40 s.
    let err = w.resend(&s).unwrap_err();
    assert!(
        matches!(err, Error::ResendsSpent { start_after } if start_after == Duration::seconds(10))
    );
    w.clock.advance(Duration::seconds(10));
    assert!(matches!(w.resend(&s), Err(Error::Expired)));
    assert!(w.start(&s).is_ok());
}

#[test]
fn start_on_a_live_validation_resends_and_can_switch_channel() {
    let mut w = world(Policy::default());
    let s = login();
    let first = w.start(&s).unwrap();
    w.clock.advance(Duration::seconds(30));
    let again = w.verifier.start(&s, Channel::Whatsapp, &mut w.rng).unwrap();
    assert!(again.resent);
    assert_eq!(again.generation, 1);
    assert_eq!(again.code, first.code);
    assert_eq!(again.channel, Channel::Whatsapp);
    assert!(matches!(
        w.take_events().last(),
        Some(Event::Resent {
            channel: Channel::Whatsapp,
            ..
        })
    ));
}

#[test]
fn new_code_resend_retires_the_old_code() {
    let policy = Policy::builder()
        .resend_mode(ResendMode::NewCode)
        .build()
        .unwrap();
    let mut w = world(policy);
    let s = login();
    let first = w.start(&s).unwrap();
    // Spend two checks on the first code.
    for _ in 0..2 {
        let _ = w.verifier.verify(&s, &wrong(&first.code));
    }
    w.clock.advance(Duration::seconds(30));
    let second = w.resend(&s).unwrap();
    assert!(second.new_code);
    assert_ne!(second.code, first.code);
    assert_eq!(
        second.expires_at,
        T0 + Duration::seconds(30) + Duration::minutes(10)
    );
    // A fresh code gets fresh checks…
    assert_eq!(w.verifier.status(&s).unwrap().attempts_left, 5);
    // …and the old code is now just a wrong code.
    let err = w.verifier.verify(&s, first.code.as_str()).unwrap_err();
    assert!(matches!(err, Error::CodeMismatch { attempts_left: 4 }));
    w.verifier.verify(&s, second.code.as_str()).unwrap();
}

#[test]
fn failure_cap_survives_resends_and_restarts_then_lockout_ends() {
    let policy = Policy::builder()
        .max_checks(3)
        .failure_cap(7)
        .lockout(Duration::minutes(15))
        .resend_mode(ResendMode::NewCode)
        .build()
        .unwrap();
    let mut w = world(policy);
    let s = login();
    let mut failures = 0;
    let mut code = w.start(&s).unwrap().code;
    // 2 failures, resend (new code, fresh checks), 2 failures, cancel,
    // start again, 2 failures: 6 failures, none of the three moves reset them.
    for round in 0..3 {
        for _ in 0..2 {
            let err = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
            assert!(matches!(err, Error::CodeMismatch { .. }), "{err:?}");
            failures += 1;
        }
        w.clock.advance(Duration::seconds(30));
        code = match round {
            0 => w.resend(&s).unwrap().code,
            1 => {
                w.verifier.cancel(&s).unwrap();
                w.start(&s).unwrap().code
            }
            _ => code,
        };
    }
    assert_eq!(failures, 6);
    // The seventh locks the subject.
    let err = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::minutes(15)));
    let until = T0 + Duration::seconds(90) + Duration::minutes(15);
    assert!(
        matches!(w.take_events().last(), Some(Event::Locked { until: Some(u), .. }) if *u == until)
    );
    assert_eq!(w.verifier.status(&s).unwrap().locked_until, Some(until));
    // Locked: no start, no resend, no check, whatever the code.
    assert!(matches!(w.start(&s), Err(Error::Locked { .. })));
    assert!(matches!(w.resend(&s), Err(Error::Locked { .. })));
    assert!(matches!(
        w.verifier.verify(&s, code.as_str()),
        Err(Error::Locked { .. })
    ));
    assert_eq!(w.start(&s).unwrap_err().public().http_status(), 429);
    // Another purpose for the same number has its own ledger.
    let onboarding = subject(Purpose::Onboarding);
    let other = w.start(&onboarding).unwrap();
    w.verifier.verify(&onboarding, other.code.as_str()).unwrap();
    // The lockout ends; a new validation works and the count starts again.
    w.clock.advance(Duration::minutes(15));
    let fresh = w.start(&s).unwrap();
    assert!(!fresh.resent);
    let err = w.verifier.verify(&s, &wrong(&fresh.code)).unwrap_err();
    assert!(matches!(err, Error::CodeMismatch { attempts_left: 2 }));
    w.verifier.verify(&s, fresh.code.as_str()).unwrap();
}

#[test]
fn failures_outside_the_window_are_forgotten() {
    let policy = Policy::builder()
        .failure_cap(3)
        .failure_window(Duration::hours(1))
        .build()
        .unwrap();
    let mut w = world(policy);
    let s = login();
    let code = w.start(&s).unwrap().code;
    for _ in 0..2 {
        let _ = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
    }
    w.clock.advance(Duration::hours(1));
    let code = w.start(&s).unwrap().code;
    // An hour without a failure: the count was forgotten, so two more do
    // not reach the cap of three.
    for left in [4, 3] {
        let err = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
        assert!(matches!(err, Error::CodeMismatch { attempts_left } if attempts_left == left));
    }
}

#[test]
fn subject_send_budget_is_not_reset_by_cancel_and_restart() {
    let policy = Policy::builder()
        .max_sends(2)
        .subject_send_cap(3)
        .subject_send_window(Duration::hours(1))
        .build()
        .unwrap();
    // A burst of 2, then one every 30 minutes: no hour holds more than 3.
    let mut w = world(policy);
    let s = login();
    w.start(&s).unwrap();
    w.verifier.cancel(&s).unwrap();
    w.start(&s).unwrap();
    w.verifier.cancel(&s).unwrap();
    w.clock.advance(Duration::minutes(1));
    let err = w.start(&s).unwrap_err();
    assert!(matches!(err, Error::SendLimit { .. }));
    assert_eq!(err.retry_after(), Some(Duration::minutes(29)));
    w.clock.advance(Duration::minutes(29) - Duration::SECOND);
    assert!(matches!(w.start(&s), Err(Error::SendLimit { .. })));
    w.clock.advance(Duration::SECOND);
    w.start(&s).unwrap();
    w.verifier.cancel(&s).unwrap();
    // Three sends in [0, 30 min]; the fourth only at 60 min.
    let err = w.start(&s).unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::minutes(30)));
    w.clock.advance(Duration::minutes(30));
    w.start(&s).unwrap();
}

#[test]
fn key_rotation_keeps_codes_in_flight_and_removal_fails_cleanly() {
    let mut w = world(Policy::default());
    let a = login();
    let b = subject(Purpose::Onboarding);
    let code_a = w.start(&a).unwrap().code;
    let code_b = w.start(&b).unwrap().code;
    w.verifier.engine_mut().keys_mut().rotate(key(2)).unwrap();
    // A code derived with the retired key still verifies.
    w.verifier.verify(&a, code_a.as_str()).unwrap();
    // A same-code resend after rotation still sends the code in flight.
    w.clock.advance(Duration::seconds(30));
    assert_eq!(w.resend(&b).unwrap().code, code_b);
    // Once the old key is removed, its codes fail cleanly: expired, not a
    // mismatch, and no attempt or failure is spent.
    w.verifier.engine_mut().keys_mut().remove(KeyId(1)).unwrap();
    assert!(matches!(
        w.verifier.verify(&b, code_b.as_str()),
        Err(Error::Expired)
    ));
    assert_eq!(w.state(&b), State::Expired);
    // A new validation uses the new key.
    w.clock.advance(Duration::seconds(30));
    let fresh = w.start(&b).unwrap();
    w.verifier.verify(&b, fresh.code.as_str()).unwrap();
}

#[test]
fn same_code_resend_after_key_removal_draws_a_new_code() {
    let mut w = world(Policy::default());
    let s = login();
    let first = w.start(&s).unwrap();
    w.verifier.engine_mut().keys_mut().rotate(key(2)).unwrap();
    w.verifier.engine_mut().keys_mut().remove(KeyId(1)).unwrap();
    w.clock.advance(Duration::seconds(30));
    let second = w.resend(&s).unwrap();
    assert!(second.new_code);
    assert_ne!(second.code, first.code);
    w.verifier.verify(&s, second.code.as_str()).unwrap();
}

#[test]
fn purpose_binding() {
    let mut w = world(Policy::default());
    let login = login();
    let onboarding = subject(Purpose::Onboarding);
    let reset = subject(Purpose::custom("password-reset").unwrap());
    let code = w.start(&login).unwrap().code;
    let other = w.start(&onboarding).unwrap().code;
    let third = w.start(&reset).unwrap().code;
    assert_ne!(code, other);
    // A login code never validates an onboarding check (unless by the
    // 1-in-10^6 chance that both codes are equal, which this seed avoids).
    let err = w.verifier.verify(&onboarding, code.as_str()).unwrap_err();
    assert!(matches!(err, Error::CodeMismatch { .. }));
    assert!(matches!(
        w.verifier.verify(&reset, code.as_str()),
        Err(Error::CodeMismatch { .. })
    ));
    w.verifier.verify(&login, code.as_str()).unwrap();
    w.verifier.verify(&onboarding, other.as_str()).unwrap();
    w.verifier.verify(&reset, third.as_str()).unwrap();
}

#[test]
fn a_clock_that_jumps_back_never_revives_or_extends() {
    let mut w = world(Policy::default());
    let s = login();
    let code = w.start(&s).unwrap().code;
    w.clock.advance(Duration::minutes(11));
    assert!(matches!(
        w.verifier.verify(&s, code.as_str()),
        Err(Error::Expired)
    ));
    w.clock.advance(Duration::minutes(-11));
    assert!(matches!(
        w.verifier.verify(&s, code.as_str()),
        Err(Error::Expired)
    ));
}

#[test]
fn store_failures_surface_and_change_nothing() {
    #[derive(Debug)]
    struct Down;
    impl std::fmt::Display for Down {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connection refused")
        }
    }
    impl std::error::Error for Down {}
    /// Loads work; writes fail.
    struct ReadOnly(MemoryStore);
    impl Store for ReadOnly {
        type Error = Down;
        fn load(&self, k: &otpflow::RecordKey) -> Result<Option<(Record, Version)>, Down> {
            Ok(Store::load(&self.0, k).unwrap_or_else(|e| match e {}))
        }
        fn compare_and_swap(
            &self,
            _: &otpflow::RecordKey,
            _: Option<Version>,
            _: &Record,
        ) -> Result<Swap, Down> {
            Err(Down)
        }
    }
    let clock = ManualClock::new(T0);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let inner = Verifier::new(
        Policy::default(),
        KeyRing::new(key(1)),
        MemoryStore::new(),
        clock.clone(),
    );
    let s = login();
    let code = inner.start(&s, Channel::Sms, &mut rng).unwrap().code;
    let (record, _) = Store::load(inner.store(), &otpflow::RecordKey::from(&s))
        .unwrap()
        .unwrap();
    let broken_store = MemoryStore::new();
    assert!(matches!(
        Store::compare_and_swap(&broken_store, &otpflow::RecordKey::from(&s), None, &record),
        Ok(Swap::Done(_))
    ));
    let broken = Verifier::new(
        Policy::default(),
        KeyRing::new(key(1)),
        ReadOnly(broken_store),
        clock,
    );
    let err = broken.verify(&s, code.as_str()).unwrap_err();
    assert!(matches!(err, Error::Store(_)));
    assert_eq!(err.http_status(), 503);
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "connection refused"
    );
    // The failed write left the record as it was: still sent, nothing spent.
    let status = broken.status(&s).unwrap();
    assert_eq!((status.state, status.attempts_left), (State::Sent, 5));
}

#[test]
fn endless_conflicts_end_in_contention() {
    /// Every write conflicts.
    struct Busy(MemoryStore);
    impl Store for Busy {
        type Error = std::convert::Infallible;
        fn load(&self, k: &otpflow::RecordKey) -> Result<Option<(Record, Version)>, Self::Error> {
            Store::load(&self.0, k)
        }
        fn compare_and_swap(
            &self,
            _: &otpflow::RecordKey,
            _: Option<Version>,
            _: &Record,
        ) -> Result<Swap, Self::Error> {
            Ok(Swap::Conflict)
        }
    }
    let v = Verifier::new(
        Policy::default(),
        KeyRing::new(key(1)),
        Busy(MemoryStore::new()),
        ManualClock::new(T0),
    )
    .max_retries(3);
    let err = v
        .start(&login(), Channel::Sms, &mut ChaCha20Rng::seed_from_u64(4))
        .unwrap_err();
    assert!(matches!(err, Error::Contention));
    assert_eq!(err.public(), PublicError::Unavailable);
}

#[test]
fn records_round_trip_through_bytes_mid_flight() {
    let mut w = world(Policy::default());
    let s = login();
    let code = w.start(&s).unwrap().code;
    let _ = w.verifier.verify(&s, &wrong(&code));
    let (record, _) = Store::load(w.verifier.store(), &otpflow::RecordKey::from(&s))
        .unwrap()
        .unwrap();
    let bytes = record.to_bytes();
    assert_eq!(Record::from_bytes(&bytes).unwrap(), record);
    // A record holds neither the code nor its digits in any obvious form.
    assert!(!bytes.windows(6).any(|win| win == code.as_str().as_bytes()));
    let policy = Policy::default();
    assert_eq!(
        record.expires_at(&policy),
        T0 + Duration::days(365),
        "a failure is remembered for a year"
    );
    assert_eq!(
        w.verifier
            .store()
            .purge_expired(T0 + Duration::days(364), &policy),
        0
    );
    assert_eq!(
        w.verifier
            .store()
            .purge_expired(T0 + Duration::days(365), &policy),
        1
    );
    // A live validation's record, encoded, stays within 96 bytes.
    let other = subject(Purpose::Onboarding);
    w.start(&other).unwrap();
    let (record, _) = Store::load(w.verifier.store(), &otpflow::RecordKey::from(&other))
        .unwrap()
        .unwrap();
    assert!(record.to_bytes().len() <= 96);
}

#[test]
fn errors_serve_the_seed_apis() {
    // Verifik: 404 phone_validation_not_found, 403 otp_does_not_match,
    // 412 phoneValidation_has_expired, 409 missing/invalid parameters;
    // Kii: 400/409 already verified, 403 invalid code; Twilio-style 429s.
    let cases: [(Error, &str, u16); 8] = [
        (Error::NotFound, "validation_not_found", 404),
        (
            Error::CodeMismatch { attempts_left: 2 },
            "code_mismatch",
            403,
        ),
        (Error::Expired, "validation_expired", 412),
        (Error::AlreadyValidated, "already_validated", 409),
        (Error::AttemptsExhausted, "max_attempts_reached", 429),
        (
            Error::Locked {
                retry_after: Duration::minutes(5),
            },
            "subject_locked",
            429,
        ),
        (Error::MalformedCode, "malformed_code", 400),
        (Error::Contention, "contention", 503),
    ];
    for (err, code, status) in cases {
        assert_eq!((err.code(), err.http_status()), (code, status));
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        Error::SendLimit {
            retry_after: Duration::milliseconds(200)
        }
        .to_string(),
        "send limit reached; retry in 1s"
    );
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 has no threads")]
fn concurrent_checks_spend_each_attempt_once_and_validate_at_most_once() {
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicU32, Ordering};
    for round in 0..20u64 {
        // Events are emitted only for stored transitions: they count the
        // checks that were accepted (compared and recorded).
        let compared = Arc::new(AtomicU32::new(0));
        let validated = Arc::new(AtomicU32::new(0));
        let (c, v) = (Arc::clone(&compared), Arc::clone(&validated));
        let verifier = Verifier::new(
            Policy::default(),
            KeyRing::new(key(1)),
            MemoryStore::with_shards(1),
            ManualClock::new(T0),
        )
        .max_retries(64)
        .on_event(move |e| match e {
            Event::CheckFailed { .. } => {
                c.fetch_add(1, Ordering::SeqCst);
            }
            Event::Validated { .. } => {
                c.fetch_add(1, Ordering::SeqCst);
                v.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        });
        let s = login();
        let code = verifier
            .start(&s, Channel::Sms, &mut ChaCha20Rng::seed_from_u64(round))
            .unwrap()
            .code;
        let bad = wrong(&code);
        let threads = 8;
        let barrier = Barrier::new(threads);
        let oks = AtomicU32::new(0);
        std::thread::scope(|scope| {
            for t in 0..threads {
                let (verifier, s, code, bad, barrier, oks) =
                    (&verifier, &s, &code, &bad, &barrier, &oks);
                scope.spawn(move || {
                    barrier.wait();
                    for i in 0..4 {
                        // Mostly wrong codes, one right one per thread.
                        let input = if i == t % 4 {
                            code.as_str()
                        } else {
                            bad.as_str()
                        };
                        match verifier.verify(s, input) {
                            Ok(_) => {
                                oks.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(
                                Error::CodeMismatch { .. }
                                | Error::AttemptsExhausted
                                | Error::AlreadyValidated
                                | Error::Contention,
                            ) => {}
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                });
            }
        });
        let (oks, compared, validated) = (
            oks.into_inner(),
            compared.load(Ordering::SeqCst),
            validated.load(Ordering::SeqCst),
        );
        assert!(oks <= 1, "round {round}: {oks} successes");
        assert_eq!(oks, validated, "round {round}");
        assert!(
            compared <= 5,
            "round {round}: {compared} checks accepted, budget 5"
        );
        let status = verifier.status(&s).unwrap();
        let expected = if oks == 1 {
            State::Validated
        } else {
            State::Locked
        };
        assert_eq!(status.state, expected, "round {round}");
    }
}

#[test]
fn a_record_from_a_larger_budget_is_never_checked_past_the_current_one() {
    let generous = Policy::builder().max_checks(10).build().unwrap();
    let strict = Policy::builder().max_checks(3).build().unwrap();
    let clock = ManualClock::new(T0);
    let store = Arc::new(MemoryStore::new());
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let before = Verifier::new(
        generous,
        KeyRing::new(key(1)),
        Arc::clone(&store),
        clock.clone(),
    );
    let s = login();
    let code = before.start(&s, Channel::Sms, &mut rng).unwrap().code;
    for _ in 0..4 {
        let _ = before.verify(&s, &wrong(&code)).unwrap_err();
    }
    // A deploy lowers the budget: four checks are already spent, so even the
    // right code is refused without a comparison.
    let after = Verifier::new(strict, KeyRing::new(key(1)), store, clock);
    assert!(matches!(
        after.verify(&s, code.as_str()),
        Err(Error::AttemptsExhausted)
    ));
    assert_eq!(after.status(&s).unwrap().state, State::Locked);
}

// ---------------------------------------------------------------------------
// Clocks that jump (issue 15, items 1, 3 and 8).

#[test]
fn a_forward_clock_step_gives_no_code_a_year_of_life() {
    let mut w = world(Policy::default());
    let s = login();
    w.clock.advance(Duration::days(365));
    let code = w.start(&s).unwrap().code;
    // The correction, then half a year on: the code is dead.
    w.clock.set(T0 + Duration::minutes(1));
    assert!(matches!(
        w.verifier.status(&s).unwrap().state,
        State::Expired
    ));
    w.clock.set(T0 + Duration::days(200));
    assert!(matches!(
        w.verifier.verify(&s, code.as_str()),
        Err(Error::Expired)
    ));
    // The subject can start again at once: the send it owed was one send.
    let again = w.start(&s).unwrap();
    assert_eq!(
        again.expires_at,
        T0 + Duration::days(200) + Duration::minutes(10)
    );
    w.verifier.verify(&s, again.code.as_str()).unwrap();
}

#[test]
fn a_forward_clock_step_locks_no_one_for_a_year() {
    let policy = Policy::builder().failure_cap(1).build().unwrap();
    let mut w = world(policy);
    let s = login();
    w.clock.advance(Duration::days(365));
    let code = w.start(&s).unwrap().code;
    let err = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::hours(1)));
    w.clock.set(T0 + Duration::minutes(1));
    let err = w.start(&s).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }));
    assert!(err.retry_after().unwrap() <= Duration::hours(1), "{err:?}");
    // And the record a store keeps says so too (its TTL).
    let (record, _) = Store::load(w.verifier.store(), &otpflow::RecordKey::from(&s))
        .unwrap()
        .unwrap();
    let ttl = record.expires_at(w.verifier.engine().policy());
    assert!(
        ttl <= T0 + Duration::days(365) + Duration::days(366),
        "{ttl}"
    );
    w.clock.advance(Duration::hours(1));
    w.start(&s).unwrap();
}

#[test]
fn a_clock_stepped_back_after_a_status_revives_nothing_under_monotonic_clock() {
    let inner = ManualClock::new(T0);
    let clock = MonotonicClock::new(inner.clone());
    let keys = KeyRing::new(key(1));
    let verifier = Verifier::new(Policy::default(), keys, MemoryStore::new(), clock);
    let s = login();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let code = verifier.start(&s, Channel::Sms, &mut rng).unwrap().code;
    inner.advance(Duration::minutes(11));
    assert_eq!(verifier.status(&s).unwrap().state, State::Expired);
    inner.advance(Duration::minutes(-6));
    assert!(matches!(
        verifier.verify(&s, code.as_str()),
        Err(Error::Expired)
    ));
}

#[test]
fn without_a_monotonic_clock_only_a_written_expiry_holds() {
    // The guide's narrowed claim, pinned: a `status` writes nothing, so a
    // raw clock stepped back before any write lets the code work again;
    // once a call wrote the expiry, nothing revives it.
    let mut w = world(Policy::default());
    let s = login();
    let code = w.start(&s).unwrap().code;
    w.clock.advance(Duration::minutes(11));
    assert_eq!(w.verifier.status(&s).unwrap().state, State::Expired);
    w.clock.advance(Duration::minutes(-6));
    w.verifier.verify(&s, code.as_str()).unwrap();
}

#[test]
fn any_offset_and_any_instant_write_records_that_read_back() {
    let keys = KeyRing::new(key(1));
    let engine = Engine::new(Policy::default(), keys);
    let s = login();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for now in [
        datetime!(9999-12-31 23:59:59.999_999_999 -23:59:59),
        datetime!(-9999-01-01 0:00 +23:59:59),
        datetime!(2026-11-22 12:00:00.5 +05:30),
        OffsetDateTime::UNIX_EPOCH,
    ] {
        let step = engine.start(None, &s, Channel::Sms, now, &mut rng);
        let record = step.write.expect("written");
        assert_eq!(Record::from_bytes(&record.to_bytes()), Ok(record.clone()));
        let code = step.outcome.unwrap().code;
        let step = engine.verify(Some(&record), &s, code.as_str(), now);
        assert!(step.outcome.is_ok(), "{now}: {:?}", step.outcome);
        let record = step.write.expect("written");
        assert_eq!(Record::from_bytes(&record.to_bytes()), Ok(record));
    }
}

// ---------------------------------------------------------------------------
// The guessing budget (issue 8, item 1).

#[test]
fn lockouts_escalate_then_block_until_unlocked() {
    let policy = Policy::builder()
        .max_checks(100)
        .failure_cap(2)
        .lockout(Duration::minutes(1))
        .lockout_growth(3)
        .failure_hard_cap(6)
        .build()
        .unwrap();
    let mut w = world(policy);
    let s = login();
    let code = w.start(&s).unwrap().code;
    assert_eq!(w.verifier.status(&s).unwrap().failures_left, 2);
    let mut lockouts = Vec::new();
    let mut code = code;
    loop {
        let err = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
        match err {
            Error::CodeMismatch { .. } => {
                assert_eq!(w.verifier.status(&s).unwrap().failures_left, 1);
            }
            Error::Locked { retry_after } => {
                lockouts.push(retry_after);
                // Neither waiting it out nor a new validation resets the count.
                w.clock.advance(retry_after);
                code = w.start(&s).unwrap().code;
            }
            Error::Blocked => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lockouts, [Duration::minutes(1), Duration::minutes(3)]);
    assert!(matches!(
        w.take_events()
            .iter()
            .rev()
            .find(|e| matches!(e, Event::Blocked { .. })),
        Some(Event::Blocked { failures: 6, .. })
    ));
    let status = w.verifier.status(&s).unwrap();
    assert!(status.blocked && status.failures_left == 0);
    // No time lifts a block.
    w.clock.advance(Duration::days(3000));
    let err = w.start(&s).unwrap_err();
    assert!(matches!(err, Error::Blocked));
    assert_eq!(err.next_call(), Some("unlock"));
    assert_eq!(err.public(), PublicError::Blocked);
    let (record, _) = Store::load(w.verifier.store(), &otpflow::RecordKey::from(&s))
        .unwrap()
        .unwrap();
    assert!(record.expires_at(w.verifier.engine().policy()) > T0 + Duration::days(365 * 7000));
    // An operator unlocks; the count starts again.
    w.verifier.unlock(&s).unwrap();
    assert!(matches!(
        w.take_events()[..],
        [Event::Unlocked { failures: 6, .. }]
    ));
    let code = w.start(&s).unwrap().code;
    assert_eq!(w.verifier.status(&s).unwrap().failures_left, 2);
    let _ = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
    // A success resets the count and its escalation.
    w.verifier.verify(&s, code.as_str()).unwrap();
    let code = w.start(&s).unwrap().code;
    let _ = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
    let err = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::minutes(1)));
}

#[test]
fn a_locked_retry_after_is_when_start_succeeds() {
    let policy = Policy::builder()
        .failure_cap(1)
        .lockout(Duration::seconds(5))
        .build()
        .unwrap();
    let mut w = world(policy);
    let s = login();
    // Spend the send burst so that the send budget, not the lockout, binds.
    let mut code = w.start(&s).unwrap().code;
    for _ in 0..4 {
        w.verifier.cancel(&s).unwrap();
        code = w.start(&s).unwrap().code;
    }
    let err = w.verifier.verify(&s, &wrong(&code)).unwrap_err();
    let wait = err.retry_after().unwrap();
    assert_eq!(wait, Duration::minutes(10));
    assert_eq!(err.next_call(), Some("start"));
    w.clock.advance(wait - Duration::SECOND);
    assert!(w.start(&s).is_err());
    w.clock.advance(Duration::SECOND);
    w.start(&s).unwrap();
}

#[test]
fn unlocking_nothing_writes_nothing() {
    let w = world(Policy::default());
    let s = login();
    w.verifier.unlock(&s).unwrap();
    assert!(
        Store::load(w.verifier.store(), &otpflow::RecordKey::from(&s))
            .unwrap()
            .is_none()
    );
    assert!(w.take_events().is_empty());
}

// ---------------------------------------------------------------------------
// Answers to outsiders (issue 15, item 4).

#[test]
fn start_and_resend_answer_an_outsider_alike_for_a_live_validation_and_none() {
    let mut w = world(Policy::default());
    let victim = login();
    let stranger = subject(Purpose::Onboarding);
    w.start(&victim).unwrap();
    w.clock.advance(Duration::seconds(12));
    // What an outsider's calls get, through `public_send`: `Ok(())` is
    // "answered as a send".
    let answer = |r: Result<Sent, Error>| r.map(|_| ()).or_else(|e| e.public_send());
    let live_start = w.start(&victim);
    assert!(matches!(live_start, Err(Error::ResendTooSoon { .. })));
    assert_eq!(answer(live_start), Ok(()));
    assert_eq!(answer(w.resend(&victim)), Ok(()));
    assert_eq!(answer(w.resend(&stranger)), Ok(()));
    assert_eq!(answer(w.start(&stranger)), Ok(()));
    // Terminal states, spent sends and the send budget answer alike too.
    w.verifier.cancel(&stranger).unwrap();
    assert_eq!(answer(w.resend(&stranger)), Ok(()));
    for _ in 0..5 {
        let _ = w.start(&stranger);
        let _ = w.verifier.cancel(&stranger);
    }
    let spent = w.start(&stranger);
    assert!(matches!(spent, Err(Error::SendLimit { .. })), "{spent:?}");
    assert_eq!(answer(spent), Ok(()));
    // Where `public()` is used anyway, a cooldown's time comes in whole
    // minutes, not the second the code went out.
    let err = w.resend(&victim).unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::seconds(18)));
    assert_eq!(err.public().retry_after(), Some(Duration::minutes(1)));
    // The caller's own bad input and an unavailable store are refused.
    assert_eq!(
        Error::Contention.public_send(),
        Err(PublicError::Unavailable)
    );
}

/// A `Verifier` without a listener builds no events for a check; with one,
/// it does. Either way the outcomes and the stored records are the same,
/// through wrong codes, a lockout, a block and a right code.
#[test]
fn checks_without_a_listener_write_what_checks_with_one_write() {
    let policy = Policy::builder()
        .max_checks(3)
        .failure_cap(5)
        .build()
        .unwrap();
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let make = |listen: bool| {
        let clock = ManualClock::new(T0);
        let v = Verifier::new(
            policy.clone(),
            KeyRing::new(key(1)),
            MemoryStore::new(),
            clock.clone(),
        );
        let heard = Arc::clone(&heard);
        let v = if listen {
            v.on_event(move |e| heard.lock().unwrap().push(e.clone()))
        } else {
            v
        };
        (v, clock)
    };
    let (quiet, quiet_clock) = make(false);
    let (loud, loud_clock) = make(true);
    let s = login();
    let key = RecordKey::from(&s);
    let mut rngs = [ChaCha20Rng::seed_from_u64(7), ChaCha20Rng::seed_from_u64(7)];
    let mut checks = 0;
    let mut outcomes = String::new();
    for round in 0..4 {
        let [a, b] = &mut rngs;
        let sent = quiet.start(&s, Channel::Sms, a);
        assert_eq!(
            sent.as_ref().map(|x| x.code.as_str().to_owned()),
            loud.start(&s, Channel::Sms, b)
                .as_ref()
                .map(|x| x.code.as_str().to_owned())
        );
        let right = sent.map(|x| x.code).ok();
        for attempt in 0..4 {
            let typed = match (&right, round, attempt) {
                (Some(code), 3, 1) => code.as_str().to_owned(),
                (Some(code), _, _) => wrong(code),
                (None, _, _) => "000000".to_owned(),
            };
            let before = heard.lock().unwrap().len();
            let q = quiet.verify(&s, &typed);
            let l = loud.verify(&s, &typed);
            assert_eq!(
                format!("{q:?}"),
                format!("{l:?}"),
                "round {round}, check {attempt}"
            );
            outcomes.push_str(&format!("{l:?} "));
            checks += usize::from(heard.lock().unwrap().len() > before);
            let stored = |v: &Verifier<MemoryStore, ManualClock>| {
                Store::load(v.store(), &key).unwrap().map(|(r, _)| r)
            };
            assert_eq!(stored(&quiet), stored(&loud));
        }
        for clock in [&quiet_clock, &loud_clock] {
            clock.advance(Duration::hours(70));
        }
    }
    assert!(checks >= 4, "the listener heard the checks ({checks})");
    for seen in ["CodeMismatch", "AttemptsExhausted", "Ok(Validated"] {
        assert!(outcomes.contains(seen), "{seen} in {outcomes}");
    }
}
