//! Small proofs a service relies on, each on its own: a code is bound to its
//! number, an expired code answers outsiders exactly as a wrong one, and the
//! written form of a number does not matter.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use otpflow::*;
use time::Duration;

#[test]
fn a_code_started_for_one_number_is_refused_for_another() {
    let mut w = world(Policy::default());
    let alice = login("+447401101801");
    let bob = login("+447401101802");
    let alices = w.start(&alice).unwrap();

    // Bob has no validation: Alice's code finds nothing to validate.
    let err = w.verifier.verify(&bob, alices.code.as_str()).unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");

    // Bob has a live validation of his own: Alice's code is a wrong code
    // for it (and costs Bob's validation an attempt, like any wrong code).
    let bobs = w.start(&bob).unwrap();
    assert_ne!(bobs.code.as_str(), alices.code.as_str(), "seeded: distinct");
    let err = w.verifier.verify(&bob, alices.code.as_str()).unwrap_err();
    assert!(
        matches!(err, Error::CodeMismatch { attempts_left: 4 }),
        "{err:?}"
    );
    assert_eq!(w.verifier.status(&bob).unwrap().state, State::Sent);
    // Neither validation was completed by the other's code.
    assert_eq!(w.verifier.status(&alice).unwrap().state, State::Sent);
    w.verifier.verify(&alice, alices.code.as_str()).unwrap();
    w.verifier.verify(&bob, bobs.code.as_str()).unwrap();
}

#[test]
fn an_expired_code_answers_outsiders_exactly_as_a_wrong_one() {
    let mut w = world(Policy::default());
    let s = login("+447401101801");
    let sent = w.start(&s).unwrap();
    let mismatch = w.verifier.verify(&s, &wrong(&sent.code)).unwrap_err();
    assert!(matches!(mismatch, Error::CodeMismatch { .. }));

    w.clock.advance(Duration::minutes(11));
    let expired = w.verifier.verify(&s, sent.code.as_str()).unwrap_err();
    assert!(matches!(expired, Error::Expired));

    let (a, b) = (expired.public(), mismatch.public());
    assert_eq!(a, b);
    assert_eq!(a, Error::Expired.public());
    assert_eq!(
        (a.code(), a.http_status(), a.retry_after(), a.to_string()),
        (b.code(), b.http_status(), b.retry_after(), b.to_string()),
    );
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn a_validation_started_with_one_written_form_verifies_with_another() {
    let mut w = world(Policy::default());
    let national = login("07401 101801");
    let international = login("+44 7401 101801");
    assert_eq!(national, international);
    let sent = w.start(&national).unwrap();
    for form in ["0044 7401 101801", "+44 (0)7401 101801", "447401101801"] {
        assert_eq!(login(form), national, "{form}");
    }
    let done = w
        .verifier
        .verify(&international, sent.code.as_str())
        .unwrap();
    assert_eq!(done.generation, sent.generation);
}
