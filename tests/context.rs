//! Codes bound to what they approve (issue 8, item 5): a code issued for
//! one context validates with that context only, never with another or
//! with none, and the store learns nothing of the context.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use otpflow::*;
use proptest::prelude::*;
use time::Duration;

fn pay(amount: &str, payee: &str) -> SubjectKey {
    login("+447401101801").bound_to(Context::transaction(amount, payee))
}

#[test]
fn a_bound_code_validates_with_its_own_context_only() {
    let mut w = world(Policy::default());
    let acme = pay("12.50 EUR", "ACME Ltd");
    let sent = w.start(&acme).unwrap();
    let code = sent.code.as_str();
    // Relayed to another payee, another amount, or checked unbound: a
    // wrong code, each spending an attempt.
    for other in [
        pay("12.50 EUR", "Mallory"),
        pay("1250.00 EUR", "ACME Ltd"),
        login("+447401101801"),
    ] {
        assert!(
            matches!(
                w.verifier.verify(&other, code),
                Err(Error::CodeMismatch { .. })
            ),
            "{other:?}"
        );
    }
    assert_eq!(w.verifier.status(&acme).unwrap().attempts_left, 2);
    let ok = w.verifier.verify(&acme, code).unwrap();
    assert_eq!(ok.generation, sent.generation);
}

#[test]
fn an_unbound_code_does_not_validate_under_a_context() {
    let mut w = world(Policy::default());
    let plain = login("+447401101801");
    let sent = w.start(&plain).unwrap();
    let bound = plain.clone().bound_to(Context::session("s-1"));
    assert!(matches!(
        w.verifier.verify(&bound, sent.code.as_str()),
        Err(Error::CodeMismatch { .. })
    ));
    w.verifier.verify(&plain, sent.code.as_str()).unwrap();
}

#[test]
fn a_resend_keeps_the_code_for_the_same_binding_only() {
    let mut w = world(Policy::default());
    let acme = pay("9.99 GBP", "ACME Ltd");
    let first = w.start(&acme).unwrap();
    w.clock.advance(Duration::seconds(31));
    let again = w.verifier.resend(&acme, None, &mut w.rng).unwrap();
    assert!(!again.new_code);
    assert_eq!(again.code.as_str(), first.code.as_str());
    // A resend that names no context draws an unbound code: the bound one
    // is gone, and the new one validates only unbound.
    w.clock.advance(Duration::seconds(31));
    let plain = login("+447401101801");
    let unbound = w.verifier.resend(&plain, None, &mut w.rng).unwrap();
    assert!(unbound.new_code);
    assert!(w.verifier.verify(&acme, unbound.code.as_str()).is_err());
    w.verifier.verify(&plain, unbound.code.as_str()).unwrap();
}

#[test]
fn the_record_holds_nothing_of_the_context() {
    let engine = Engine::new(Policy::default(), KeyRing::new(key(1)));
    let context = Context::transaction("12.50 EUR", "ACME Ltd");
    let subject = login("+447401101801").bound_to(context);
    let mut rng =
        <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(3);
    let step = engine.start(None, &subject, Channel::Sms, T0, &mut rng);
    let bytes = step.write.unwrap().to_bytes();
    for needle in [&b"ACME"[..], b"12.50", &context.digest()[..8]] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
    // Same size as an unbound record: the binding is the derivation byte.
    let plain = engine
        .start(None, &login("+447401101801"), Channel::Sms, T0, &mut rng)
        .write
        .unwrap();
    assert_eq!(bytes.len(), plain.to_bytes().len());
    assert_eq!(Record::from_bytes(&bytes).unwrap().to_bytes(), bytes);
}

#[test]
fn not_found_under_a_context_answers_as_a_wrong_code() {
    // "Not found" for a bound subject runs the bound derivation (one
    // compression more), as its real check would: the answer is the same
    // as for a wrong code, in kind.
    let w = world(Policy::default());
    let acme = pay("1 EUR", "A");
    assert_eq!(
        w.verifier.verify(&acme, "123456").unwrap_err().public(),
        Error::CodeMismatch { attempts_left: 1 }.public()
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// For any two different transactions, a 10-digit code issued for one
    /// never validates for the other (a collision would be a 1-in-10¹⁰
    /// event per case).
    #[test]
    fn no_code_crosses_transactions(
        a in "[0-9]{1,6}\\.[0-9]{2} (EUR|GBP)", p in "[A-Za-z ]{1,12}",
        b in "[0-9]{1,6}\\.[0-9]{2} (EUR|GBP)", q in "[A-Za-z ]{1,12}",
        seed in any::<u64>(),
    ) {
        prop_assume!((&a, &p) != (&b, &q));
        let policy = Policy::builder().code_length(10).build().unwrap();
        let mut w = world_seeded(policy, seed);
        let first = pay(&a, &p);
        let sent = w.start(&first).unwrap();
        let other = pay(&b, &q);
        prop_assert!(w.verifier.verify(&other, sent.code.as_str()).is_err());
        prop_assert!(w.verifier.verify(&first, sent.code.as_str()).is_ok());
    }
}
