//! No `Debug` or `Display` output of a subject, an event, a status or an
//! error carries a whole phone number: over random valid numbers of several
//! countries, every event variant, status and refusal a validation can
//! produce is printed both ways and searched for the national number.
#![allow(clippy::unwrap_used)]

use otpflow::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

/// Valid numbers: a mobile prefix of one of several countries and random
/// digits, kept when the phone parser accepts them.
fn numbers() -> impl Strategy<Value = PhoneNumber> {
    let prefixes = prop::sample::select(vec![
        ("+447", 9usize),
        ("+1202", 7),
        ("+336", 8),
        ("+4915", 9),
        ("+5076", 7),
        ("+919", 9),
        ("+353 8", 8),
        ("+614", 8),
    ]);
    (prefixes, prop::collection::vec(0u8..10, 9)).prop_filter_map(
        "a valid number",
        |((prefix, n), digits)| {
            let tail: String = digits[..n].iter().map(|d| char::from(b'0' + d)).collect();
            let policy = PhonePolicy::default().require_mobile(false);
            PhoneNumber::parse(&format!("{prefix}{tail}"), &policy).ok()
        },
    )
}

fn wrong(code: &Code) -> String {
    code.as_str()
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}

/// Every output a service could print for this subject: each event
/// variant, statuses and refusals, in `Debug` and `Display`.
fn printed(subject: &SubjectKey) -> Vec<String> {
    let policy = Policy::builder()
        .max_checks(2)
        .failure_cap(3)
        .failure_hard_cap(6)
        .resend_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let engine = Engine::new(
        policy,
        KeyRing::new(SecretKey::new(KeyId(1), &[7; 32]).unwrap()),
    );
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut out = vec![format!("{subject}"), format!("{subject:?}")];
    let mut record: Option<Record> = None;
    let mut now = T0;
    macro_rules! step {
        ($step:expr) => {{
            let step = $step;
            for e in &step.events {
                out.push(format!("{e}"));
                out.push(format!("{e:?}"));
            }
            if let Some(w) = step.write.clone() {
                record = Some(w);
            }
            match &step.outcome {
                Ok(_) => {}
                Err(e) => {
                    out.push(format!("{e}"));
                    out.push(format!("{e:?}"));
                    out.push(format!("{}", e.public()));
                    out.push(format!("{:?}", e.public()));
                }
            }
            out.push(format!("{:?}", step.outcome.as_ref().err()));
            step.outcome
        }};
    }
    let sent = step!(engine.start(record.as_ref(), subject, Channel::Sms, now, &mut rng)).unwrap();
    step!(engine.resend(
        record.as_ref(),
        subject,
        Some(Channel::Voice),
        now,
        &mut rng
    ))
    .unwrap();
    let bad = wrong(&sent.code);
    let _ = step!(engine.verify(record.as_ref(), subject, &bad, now));
    let _ = step!(engine.verify(record.as_ref(), subject, &bad, now)); // checks spent
    let status = engine.status(record.as_ref(), now).unwrap();
    out.push(format!("{status:?}"));
    let sent = step!(engine.start(record.as_ref(), subject, Channel::Sms, now, &mut rng)).unwrap();
    let _ = step!(engine.verify(record.as_ref(), subject, &wrong(&sent.code), now)); // locked
    let _ = step!(engine.start(record.as_ref(), subject, Channel::Sms, now, &mut rng));
    now += Duration::hours(2);
    for _ in 0..2 {
        let sent =
            step!(engine.start(record.as_ref(), subject, Channel::Sms, now, &mut rng)).unwrap();
        let bad = wrong(&sent.code);
        let _ = step!(engine.verify(record.as_ref(), subject, &bad, now));
        let _ = step!(engine.verify(record.as_ref(), subject, &bad, now)); // spent, blocked
    }
    let _ = step!(engine.start(record.as_ref(), subject, Channel::Sms, now, &mut rng));
    let _ = step!(engine.unlock(record.as_ref(), subject, now));
    now += Duration::hours(2);
    let sent =
        step!(engine.start(record.as_ref(), subject, Channel::Whatsapp, now, &mut rng)).unwrap();
    let _ = step!(engine.cancel(record.as_ref(), subject, now));
    let _ = step!(engine.verify(record.as_ref(), subject, sent.code.as_str(), now));
    now += Duration::hours(2);
    let sent = step!(engine.start(record.as_ref(), subject, Channel::Sms, now, &mut rng)).unwrap();
    step!(engine.verify(record.as_ref(), subject, sent.code.as_str(), now)).unwrap();
    let _ = step!(engine.verify(record.as_ref(), subject, sent.code.as_str(), now));
    now += Duration::hours(2);
    step!(engine.start(record.as_ref(), subject, Channel::Sms, now, &mut rng)).unwrap();
    now += Duration::hours(1);
    let _ = step!(engine.verify(record.as_ref(), subject, "000000", now)); // expired
    let status = engine.status(record.as_ref(), now).unwrap();
    out.push(format!("{status:?}"));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_output_carries_a_whole_number(phone in numbers()) {
        let subject = SubjectKey::new(Purpose::Login, phone);
        let national = phone.national();
        let outputs = printed(&subject);
        // Every event variant a validation can produce is in there.
        for kind in ["sent", "resent", "wrong code", "locked", "checks spent", "blocked",
                     "unlocked", "canceled", "validated", "expired"] {
            prop_assert!(outputs.iter().any(|o| o.starts_with(kind)), "no {} event", kind);
        }
        for o in &outputs {
            prop_assert!(!o.contains(national), "{} in {}", national, o);
            prop_assert!(!o.contains(phone.digits()), "{} in {}", phone.digits(), o);
        }
        // The masked form still names the country and part of the number.
        let prefix = format!("login:+{} ", phone.country_code());
        prop_assert!(subject.to_string().starts_with(&prefix));
        prop_assert!(subject.store_key().ends_with(phone.e164()));
    }
}
