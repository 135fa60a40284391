//! Test numbers: off by default; a fixed code of the policy's length for the
//! numbers named; sends suppressed; every use an event; budgets unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use otpflow::policy::{NumberRange, OFCOM_DRAMA_MOBILES, TestNumbers};
use otpflow::*;
use time::Duration;

/// 07401 101800 to 07401 101899: numbers that parse under the default
/// phone policy, beside the drama range.
fn range() -> NumberRange {
    NumberRange::new(&phone("07401 101800"), &phone("07401 101899")).unwrap()
}

fn with_drama() -> Policy {
    Policy::builder()
        .test_numbers(
            TestNumbers::new("271828")
                .range(OFCOM_DRAMA_MOBILES)
                .range(range()),
        )
        .build()
        .unwrap()
}

fn used(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::TestNumberUsed { .. }))
        .count()
}

#[test]
fn off_by_default() {
    assert!(Policy::default().test_numbers().is_none());
    assert!(format!("{:?}", Policy::default()).contains("test_numbers: None"));
    let mut w = world(Policy::default());
    let s = login("07401 101823");
    let sent = w.start(&s).unwrap();
    assert!(!sent.suppressed);
    assert_ne!(sent.code.as_str(), "271828");
    assert_eq!(used(&w.take_events()), 0);
}

#[test]
fn a_test_number_has_the_fixed_code_and_a_suppressed_send() {
    let mut w = world(with_drama());
    assert!(format!("{:?}", w.verifier.engine()).contains("TestNumbers { on: true"));
    let s = login("07401 101823");
    let sent = w.start(&s).unwrap();
    assert!(sent.suppressed);
    assert_eq!(sent.code.as_str(), "271828");
    let events = w.take_events();
    assert!(matches!(
        events[..],
        [
            Event::Sent {
                suppressed: true,
                ..
            },
            Event::TestNumberUsed { generation: 1, .. }
        ]
    ));
    // Resends too (same code by policy), and a check is a use.
    w.clock.advance(Duration::seconds(30));
    let again = w.resend(&s).unwrap();
    assert!(again.suppressed);
    assert_eq!(again.code.as_str(), "271828");
    let err = w.verifier.verify(&s, "271829").unwrap_err();
    assert!(matches!(err, Error::CodeMismatch { attempts_left: 4 }));
    w.verifier.verify(&s, "271828").unwrap();
    let events = w.take_events();
    assert_eq!(used(&events), 3);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Resent {
            suppressed: true,
            ..
        }
    )));

    // A number outside the range is an ordinary one.
    let real = login("07401 101900");
    let sent = w.start(&real).unwrap();
    assert!(!sent.suppressed);
    assert_eq!(used(&w.take_events()), 0);
}

#[test]
fn budgets_still_apply_to_test_numbers() {
    let mut w = world(with_drama());
    let s = login("07401 101801");
    w.start(&s).unwrap();
    assert!(matches!(w.resend(&s), Err(Error::ResendTooSoon { .. })));
    for _ in 0..4 {
        let err = w.verifier.verify(&s, "000001").unwrap_err();
        assert!(matches!(err, Error::CodeMismatch { .. }));
    }
    let err = w.verifier.verify(&s, "000001").unwrap_err();
    assert!(matches!(err, Error::AttemptsExhausted));
    // The validation is over: the fixed code does not revive it.
    let err = w.verifier.verify(&s, "271828").unwrap_err();
    assert!(matches!(err, Error::AttemptsExhausted));
}

#[test]
fn turning_test_numbers_off_ends_their_validations() {
    let mut w = world(with_drama());
    let s = login("07401 101850");
    w.start(&s).unwrap();
    let (record, _) = Store::load(w.verifier.store(), &otpflow::RecordKey::from(&s))
        .unwrap()
        .unwrap();
    // The same record under a policy without test numbers: the fixed code
    // does not validate, and the validation ends as expired.
    let engine = Engine::new(Policy::default(), KeyRing::new(key(1)));
    let step = engine.verify(Some(&record), &s, "271828", T0);
    assert!(matches!(step.outcome, Err(Error::Expired)));
    // And a record of a test number round-trips the byte codec.
    assert_eq!(Record::from_bytes(&record.to_bytes()).unwrap(), record);
}

#[test]
fn named_numbers_and_ranges_are_checked() {
    let one = phone("+447401101801");
    let policy = Policy::builder()
        .test_numbers(TestNumbers::new("135790").number(&one))
        .build()
        .unwrap();
    assert!(policy.test_numbers().unwrap().contains(&one));
    assert!(
        !policy
            .test_numbers()
            .unwrap()
            .contains(&phone("+447401101802"))
    );
    for bad in ["13579", "1357900", "13579a", "111111", "999999"] {
        let r = Policy::builder()
            .test_numbers(TestNumbers::new(bad).number(&one))
            .build();
        assert!(matches!(r, Err(PolicyError::TestNumbers(_))), "{bad}");
    }
    let none = Policy::builder()
        .test_numbers(TestNumbers::new("135790"))
        .build();
    assert!(matches!(none, Err(PolicyError::TestNumbers(_))));
    // An eight-digit code for an eight-digit policy.
    assert!(
        Policy::builder()
            .code_length(8)
            .test_numbers(TestNumbers::new("13579024").number(&one))
            .build()
            .is_ok()
    );
    let (a, b) = (phone("07401 101800"), phone("07401 101899"));
    assert_eq!(
        (range().first(), range().last()),
        (447401101800, 447401101899)
    );
    assert!(range().contains(&a) && range().contains(&b));
    assert!(!range().contains(&phone("07401 101900")));
    assert!(NumberRange::new(&b, &a).is_err());
    assert_eq!(
        (OFCOM_DRAMA_MOBILES.first(), OFCOM_DRAMA_MOBILES.last()),
        (447_700_900_000, 447_700_900_999)
    );
    assert!(NumberRange::new(&a, &phone("+1 202 555 0123")).is_err());
}

/// Ofcom's drama mobiles parse once the phone policy admits them, and then
/// work as test numbers end to end: the fixed code, a suppressed send, an
/// event per use.
#[test]
fn the_drama_range_is_usable_as_test_numbers() {
    let phones = PhonePolicy::default().admit_drama_numbers(true);
    assert!(PhoneNumber::parse("07700 900123", &PhonePolicy::default()).is_err());
    let mut w = world(with_drama());
    for text in ["07700 900000", "+44 7700 900512", "447700900999"] {
        let s = SubjectKey::new(Purpose::Login, PhoneNumber::parse(text, &phones).unwrap());
        let sent = w.start(&s).unwrap();
        assert!(sent.suppressed, "{text}");
        assert_eq!(sent.code.as_str(), "271828");
        w.verifier.verify(&s, "271828").unwrap();
    }
    assert_eq!(used(&w.take_events()), 6);
    // The same form under the split API.
    let split = PhoneNumber::from_parts("+44", "07700 900321", &phones).unwrap();
    assert_eq!(split.e164(), "+447700900321");
    assert!(OFCOM_DRAMA_MOBILES.contains(&split));
}
