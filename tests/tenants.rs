//! Tenants: the same number in two tenants is two independent subjects —
//! codes bound to the tenant, records stored apart, budgets counted apart.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use otpflow::subject::Tenant;
use otpflow::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use time::Duration;

fn in_tenant(name: &str) -> SubjectKey {
    login("+447401101801").with_tenant(Tenant::new(name).unwrap())
}

#[test]
fn a_code_from_tenant_a_never_validates_in_tenant_b() {
    // The same nonce and generation in both tenants (same seeded random
    // source): the codes differ only because the tenant is bound.
    let engine = Engine::new(Policy::default(), KeyRing::new(key(1)));
    let (a, b) = (in_tenant("app-a"), in_tenant("app-b"));
    let step_a = engine.start(
        None,
        &a,
        Channel::Sms,
        T0,
        &mut ChaCha20Rng::seed_from_u64(9),
    );
    let step_b = engine.start(
        None,
        &b,
        Channel::Sms,
        T0,
        &mut ChaCha20Rng::seed_from_u64(9),
    );
    let (code_a, code_b) = (step_a.outcome.unwrap().code, step_b.outcome.unwrap().code);
    assert_ne!(code_a.as_str(), code_b.as_str());
    let none = engine.start(
        None,
        &login("+447401101801"),
        Channel::Sms,
        T0,
        &mut ChaCha20Rng::seed_from_u64(9),
    );
    assert_ne!(none.outcome.unwrap().code.as_str(), code_a.as_str());

    // Through a verifier: A's code is a wrong code in B, and B's record is
    // untouched by A's validation.
    let mut w = world(Policy::default());
    let (a, b) = (in_tenant("app-a"), in_tenant("app-b"));
    let sent_a = w.start(&a).unwrap();
    assert!(matches!(
        w.verifier.verify(&b, sent_a.code.as_str()),
        Err(Error::NotFound)
    ));
    let sent_b = w.start(&b).unwrap();
    assert_eq!(sent_b.generation, 1);
    assert!(matches!(
        w.verifier.verify(&b, sent_a.code.as_str()),
        Err(Error::CodeMismatch { attempts_left: 4 })
    ));
    w.verifier.verify(&a, sent_a.code.as_str()).unwrap();
    assert_eq!(w.verifier.status(&b).unwrap().state, State::Sent);
}

#[test]
fn exhausting_budgets_in_a_leaves_b_untouched() {
    let policy = Policy::builder().failure_cap(5).build().unwrap();
    let mut w = world(policy);
    let (a, b, plain) = (
        in_tenant("app-a"),
        in_tenant("app-b"),
        login("+447401101801"),
    );
    // A spends its sends and locks itself out.
    let sent = w.start(&a).unwrap();
    for _ in 0..4 {
        w.clock.advance(Duration::seconds(30));
        w.resend(&a).unwrap();
    }
    for _ in 0..5 {
        let _ = w.verifier.verify(&a, &wrong(&sent.code));
    }
    assert!(matches!(w.start(&a), Err(Error::Locked { .. })));
    // B and the subject without a tenant have every budget.
    for s in [&b, &plain] {
        let sent = w.start(s).unwrap();
        assert_eq!((sent.generation, sent.sends_left), (1, 4));
        let status = w.verifier.status(s).unwrap();
        assert_eq!((status.attempts_left, status.failures_left), (5, 5));
        assert_eq!(status.locked_until, None);
        w.verifier.verify(s, sent.code.as_str()).unwrap();
    }
}

#[test]
fn the_memory_store_keeps_tenants_apart() {
    let mut w = world(Policy::default());
    let (a, b, plain) = (
        in_tenant("app-a"),
        in_tenant("app-b"),
        login("+447401101801"),
    );
    w.start(&a).unwrap();
    let store = w.verifier.store();
    assert!(
        Store::load(store, &otpflow::RecordKey::from(&a))
            .unwrap()
            .is_some()
    );
    assert!(
        Store::load(store, &otpflow::RecordKey::from(&b))
            .unwrap()
            .is_none()
    );
    assert!(
        Store::load(store, &otpflow::RecordKey::from(&plain))
            .unwrap()
            .is_none()
    );
    w.start(&plain).unwrap();
    w.verifier.cancel(&plain).unwrap();
    assert_eq!(w.verifier.status(&a).unwrap().state, State::Sent);
    // Names, displays and store keys say which tenant.
    assert_eq!(a.store_key(), "app-a/login:+447401101801");
    assert_eq!(plain.store_key(), "login:+447401101801");
    assert_eq!(a.to_string(), "app-a/login:+44 7401 ••• 801");
    assert_eq!(a.tenant().map(Tenant::as_str), Some("app-a"));
    assert!(Tenant::new("app/a").is_err() && Tenant::new("").is_err());
}
