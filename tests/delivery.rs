//! Delivery reports: a failed send gives back its budgets and lifts its
//! cooldown, exactly once and only for the subject's latest send, so a
//! provider outage costs users nothing and reporting failures never buys
//! more delivered messages than the budgets allow.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use otpflow::*;
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

fn refunds(events: &[Event]) -> Vec<bool> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::DeliveryFailed { refunded, .. } => Some(*refunded),
            _ => None,
        })
        .collect()
}

/// What a user can do with a fresh budget: the outcome of each of seven
/// sends 30 s apart (the first a `start`).
fn seven_sends(w: &mut World, s: &SubjectKey) -> Vec<Result<u32, &'static str>> {
    (0..7)
        .map(|i| {
            if i > 0 {
                w.clock.advance(Duration::seconds(30));
            }
            let sent = if i == 0 { w.start(s) } else { w.resend(s) };
            sent.map(|s| s.sends_left).map_err(|e| e.code())
        })
        .collect()
}

#[test]
fn a_provider_outage_of_fifty_failed_sends_leaves_budgets_as_they_were() {
    let mut w = world(Policy::default());
    let s = login("+447401101801");
    for i in 0..50 {
        // The user asks again a second later (a start on a live validation
        // resends); the provider fails every time.
        let sent = w.start(&s).unwrap_or_else(|e| panic!("send {i}: {e}"));
        assert!(
            w.verifier
                .report_delivery(&s, sent.send, Delivery::Failed)
                .unwrap()
        );
        w.clock.advance(Duration::seconds(1));
    }
    let events = w.take_events();
    assert_eq!(refunds(&events), vec![true; 50]);
    let status = w.verifier.status(&s).unwrap();
    assert_eq!((status.sends_left, status.resend_after), (5, None));

    // The provider is back: the user has exactly the budget of someone who
    // never met the outage.
    let mut fresh = world(Policy::default());
    let other = login("+447401101802");
    let expected = seven_sends(&mut fresh, &other);
    assert_eq!(
        expected,
        [
            Ok(4),
            Ok(3),
            Ok(2),
            Ok(1),
            Ok(0),
            Err("resend_limit_reached"),
            Err("resend_limit_reached")
        ]
    );
    w.verifier.cancel(&s).unwrap();
    assert_eq!(seven_sends(&mut w, &s), expected);
}

#[test]
fn a_failed_send_lifts_its_cooldown_and_is_given_back_once() {
    let mut w = world(Policy::default());
    let s = login("+447401101801");
    let first = w.start(&s).unwrap();
    assert_eq!(first.send, SendId::new(1, 1));
    assert!(matches!(w.resend(&s), Err(Error::ResendTooSoon { .. })));
    assert!(
        w.verifier
            .report_delivery(&s, first.send, Delivery::Failed)
            .unwrap()
    );
    // Exactly once.
    assert!(
        !w.verifier
            .report_delivery(&s, first.send, Delivery::Failed)
            .unwrap()
    );
    let status = w.verifier.status(&s).unwrap();
    assert_eq!((status.sends_left, status.resend_after), (5, None));
    // No cooldown: the resend goes at once, and is counted as the first.
    let second = w.resend(&s).unwrap();
    assert_eq!(second.send, SendId::new(1, 2));
    assert_eq!(second.sends_left, 4);
    assert_eq!(second.code, first.code, "same code: the validation goes on");
    // Its own cooldown runs.
    assert!(matches!(w.resend(&s), Err(Error::ResendTooSoon { .. })));
    // The first send is not the latest any more.
    assert!(
        !w.verifier
            .report_delivery(&s, first.send, Delivery::Failed)
            .unwrap()
    );
    // A delivery report changes nothing.
    assert!(
        !w.verifier
            .report_delivery(&s, second.send, Delivery::Delivered)
            .unwrap()
    );
    assert_eq!(w.verifier.status(&s).unwrap().sends_left, 4);
    let events = w.take_events();
    assert_eq!(refunds(&events), [true, false, false]);
    assert!(events.iter().any(|e| matches!(e,
        Event::Delivered { send, .. } if *send == second.send)));
    assert!(events.iter().any(|e| matches!(e,
        Event::Resent { send, .. } if *send == second.send)));
}

#[test]
fn only_the_latest_send_of_a_live_or_ended_unvalidated_validation_is_given_back() {
    let mut w = world(Policy::default());
    let s = login("+447401101801");
    // No validation: nothing to report on.
    let none = w
        .verifier
        .report_delivery(&s, SendId::new(1, 1), Delivery::Failed);
    assert!(matches!(none, Err(Error::NotFound)));

    let first = w.start(&s).unwrap();
    w.verifier.verify(&s, first.code.as_str()).unwrap();
    // Validated: the code arrived, whatever the report says.
    assert!(
        !w.verifier
            .report_delivery(&s, first.send, Delivery::Failed)
            .unwrap()
    );

    let second = w.start(&s).unwrap();
    assert_eq!(second.send, SendId::new(2, 2));
    // An id of another generation, or from the future, is not the latest.
    for id in [SendId::new(1, 2), SendId::new(2, 3), SendId::new(3, 2)] {
        assert!(
            !w.verifier
                .report_delivery(&s, id, Delivery::Failed)
                .unwrap()
        );
    }
    // Canceled but not validated: its send is given back to the subject.
    w.verifier.cancel(&s).unwrap();
    assert!(
        w.verifier
            .report_delivery(&s, second.send, Delivery::Failed)
            .unwrap()
    );
    // Records carrying a given-back send survive the byte codec.
    let (record, _) = Store::load(w.verifier.store(), &otpflow::RecordKey::from(&s))
        .unwrap()
        .unwrap();
    assert_eq!(Record::from_bytes(&record.to_bytes()).unwrap(), record);
}

#[derive(Clone, Debug)]
enum Op {
    Start,
    Resend,
    /// Report the send this many sends back from the latest (0: latest).
    Fail(usize),
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Start),
        3 => Just(Op::Resend),
        3 => Just(Op::Fail(0)),
        1 => (1usize..4).prop_map(Op::Fail),
        3 => (0i64..400).prop_map(Op::Wait),
    ]
}

struct Sent1 {
    at: OffsetDateTime,
    id: SendId,
    given_back: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over any interleaving of sends, failure reports (of the latest send
    /// and of earlier ones) and time, the sends that were not given back
    /// never exceed the budgets: per validation, and per subject in any
    /// window; and no send is given back twice or out of turn.
    #[test]
    fn reporting_failures_never_buys_more_delivered_sends(ops in prop::collection::vec(op(), 1..80)) {
        let policy = Policy::builder()
            .max_sends(3)
            .resend_cooldown(Duration::seconds(20))
            .code_lifetime(Duration::minutes(5))
            .subject_send_cap(4)
            .subject_send_window(Duration::minutes(10))
            .build()
            .unwrap();
        let mut w = world(policy.clone());
        let s = login("+447401101801");
        let mut sends: Vec<Sent1> = Vec::new();
        for op in ops {
            match op {
                Op::Start | Op::Resend => {
                    let r = if matches!(op, Op::Start) { w.start(&s) } else { w.resend(&s) };
                    if let Ok(sent) = r {
                        sends.push(Sent1 { at: w.clock.now(), id: sent.send, given_back: false });
                    }
                }
                Op::Fail(back) => {
                    let Some(i) = sends.len().checked_sub(back + 1) else { continue };
                    let id = sends[i].id;
                    let refunded = w.verifier.report_delivery(&s, id, Delivery::Failed).unwrap();
                    if refunded {
                        prop_assert_eq!(back, 0, "only the latest send is given back");
                        prop_assert!(!sends[i].given_back, "given back twice");
                        sends[i].given_back = true;
                    }
                }
                Op::Wait(secs) => w.clock.advance(Duration::seconds(secs)),
            }
        }
        let kept: Vec<&Sent1> = sends.iter().filter(|x| !x.given_back).collect();
        for (i, first) in kept.iter().enumerate() {
            let end = first.at + policy.subject_send_window();
            let in_window = kept[i..].iter().take_while(|x| x.at < end).count();
            prop_assert!(in_window <= 4, "{} sends in a window", in_window);
        }
        let mut per_generation = std::collections::HashMap::<u32, u32>::new();
        for x in &kept {
            *per_generation.entry(x.id.generation()).or_default() += 1;
        }
        prop_assert!(per_generation.values().all(|&n| n <= 3), "{:?}", per_generation);
        // Send numbers go up one at a time, across validations.
        for (n, x) in sends.iter().enumerate() {
            prop_assert_eq!(x.id.send() as usize, n + 1);
        }
    }
}
