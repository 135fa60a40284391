//! SMS pumping (toll fraud) against budget keys (issue 8, item 3).
//!
//! A pumper asks for codes to 10,000 numbers of one range (`+44 7911 12xx
//! xxx`: one 8-digit prefix, the default range) from 1,000 addresses, one
//! request a second, while a slow pumper stays under the per-address rate
//! (one request every 7 minutes, the address budget allows one every 6)
//! and legitimate users trickle in to other ranges. Every send names the
//! client's address and the number's range (`Budgets::new().address(ip)
//! .range()`), under `Policy::default()`.
//!
//! The range budget stops both pumpers: the SMS that reach the range over
//! the run stay within what the range's rate allows over the run
//! (`burst + run / interval`), whatever the number of addresses, and no
//! legitimate send is ever refused. `cargo test --test pumping --
//! --nocapture` prints the figures (the README's table).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use otpflow::budget::Rate;
use otpflow::budget_key::{BudgetKey, BudgetKind, SpendTag};
use otpflow::rand_core::SeedableRng;
use otpflow::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

fn keys() -> KeyRing {
    KeyRing::new(SecretKey::new(KeyId(1), &[7; 32]).expect("a valid key"))
}

fn subject(e164: &str) -> SubjectKey {
    let phone = PhoneNumber::parse(e164, &PhonePolicy::default()).expect("a UK mobile");
    SubjectKey::new(Purpose::Login, phone)
}

/// SMS that went out, by the 8-digit prefix of the number they went to.
type Sends = Arc<Mutex<HashMap<String, u64>>>;

fn verifier(policy: Policy, clock: &ManualClock) -> (Verifier<MemoryStore, ManualClock>, Sends) {
    let sends: Sends = Arc::default();
    let seen = Arc::clone(&sends);
    let verifier =
        Verifier::new(policy, keys(), MemoryStore::new(), clock.clone()).on_event(move |event| {
            if let Event::Sent { subject, .. } | Event::Resent { subject, .. } = event {
                let range = subject.phone().digits()[..8].to_owned();
                *seen.lock().expect("not poisoned").entry(range).or_default() += 1;
            }
        });
    (verifier, sends)
}

#[derive(Debug, Default)]
struct Run {
    attempts: u64,
    to_range: u64,
    refused_by: HashMap<&'static str, u64>,
    slow_attempts: u64,
    slow_refused_by_address: u64,
    legit: u64,
    legit_refused: u64,
    seconds: i64,
}

fn pump() -> Run {
    let clock = ManualClock::new(T0);
    let policy = Policy::default();
    let (verifier, sends) = verifier(policy.clone(), &clock);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut run = Run::default();
    let refuse = |run: &mut Run, e: &Error| match e {
        Error::BudgetSpent { budget, .. } => {
            *run.refused_by.entry(budget.as_str()).or_default() += 1;
        }
        other => *run.refused_by.entry(other.code()).or_default() += 1,
    };
    let (mut slow_next, mut legit_next) = (0, 0);
    for n in 0..10_000u32 {
        let t = i64::from(n);
        clock.set(T0 + Duration::seconds(t));
        // The fast pumper: number n of the range, from address n % 1000.
        let [.., hi, lo] = (n % 1000).to_be_bytes();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, hi, lo));
        let budgets = Budgets::new().address(ip).range();
        let target = subject(&format!("+44791112{n:04}"));
        run.attempts += 1;
        if let Err(e) = verifier.start_within(&budgets, &target, Channel::Sms, &mut rng) {
            refuse(&mut run, &e);
        }
        // The slow pumper: one address, one request every 7 minutes.
        if t >= slow_next {
            slow_next += 7 * 60;
            let budgets = Budgets::new()
                .address(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, 1)))
                .range();
            let target = subject(&format!("+44791112{:04}", 9_999 - n));
            run.slow_attempts += 1;
            match verifier.start_within(&budgets, &target, Channel::Sms, &mut rng) {
                Ok(_) => {}
                Err(Error::BudgetSpent {
                    budget: BudgetKind::Address,
                    ..
                }) => run.slow_refused_by_address += 1,
                Err(e) => refuse(&mut run, &e),
            }
        }
        // A legitimate user every 50 s: their own address, a number in one
        // of 100 other ranges (+44 7401 00.. to +44 7401 99..).
        if t >= legit_next {
            legit_next += 50;
            let ip = IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                1,
                u16::try_from(n / 50).expect("small"),
                0,
                0,
                0,
                1,
            ));
            let budgets = Budgets::new().address(ip).range();
            let user = subject(&format!("+447401{:02}{n:04}", n / 50 % 100));
            run.legit += 1;
            if verifier
                .start_within(&budgets, &user, Channel::Sms, &mut rng)
                .is_err()
            {
                run.legit_refused += 1;
            }
        }
    }
    run.seconds = 10_000;
    let sends = sends.lock().expect("not poisoned");
    run.to_range = sends.get("44791112").copied().unwrap_or(0);
    run
}

/// The most sends a GCRA bucket lets through over `seconds` (from full).
fn allowed(rate: Rate, seconds: i64) -> u64 {
    let steady = seconds / rate.interval().whole_seconds();
    u64::from(rate.burst()) + u64::try_from(steady).expect("a positive run")
}

#[test]
fn a_pumping_run_is_stopped_within_the_range_budget() {
    let run = pump();
    let rate = Policy::default()
        .budget_rate(BudgetKind::Range)
        .expect("a range rate by default");
    let budget = allowed(rate, run.seconds);
    println!(
        "pumping: {} requests to one range from 1000 addresses and {} from a slow one over {} s; \
         {} SMS reached the range (range budget over the run: {budget}); refused by {:?}; \
         slow pumper refused by its address budget {} times; \
         legitimate users: {} sends to other ranges, {} refused",
        run.attempts,
        run.slow_attempts,
        run.seconds,
        run.to_range,
        run.refused_by,
        run.slow_refused_by_address,
        run.legit,
        run.legit_refused,
    );
    assert!(
        run.to_range <= budget,
        "{} SMS to the range, budget {budget}",
        run.to_range
    );
    // The budget is used, not starved: the range got what its rate gives.
    assert!(run.to_range >= budget - 1, "{run:?}");
    assert_eq!(
        run.slow_refused_by_address, 0,
        "the slow pumper stays under its address rate"
    );
    assert!(run.refused_by.get("range").copied().unwrap_or(0) > 9_000);
    assert_eq!(run.legit_refused, 0, "a legitimate send was refused");
    assert_eq!(run.legit, 200);
}

#[test]
fn a_refusal_names_its_kind_and_a_true_retry_after_and_spends_nothing() {
    let clock = ManualClock::new(T0);
    let refused = Arc::new(Mutex::new(Vec::new()));
    let sends = Arc::new(Mutex::new(0u64));
    let (seen, sent) = (Arc::clone(&refused), Arc::clone(&sends));
    let verifier = Verifier::new(Policy::default(), keys(), MemoryStore::new(), clock.clone())
        .on_event(move |e| match e {
            Event::BudgetRefused { budget, .. } => {
                seen.lock().expect("not poisoned").push(*budget);
            }
            Event::Sent { .. } | Event::Resent { .. } => {
                *sent.lock().expect("not poisoned") += 1;
            }
            _ => {}
        });
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let ip: IpAddr = "203.0.113.9".parse().expect("an address");
    let budgets = Budgets::new().address(ip).range();
    for n in 0..10 {
        let s = subject(&format!("+44791112{n:04}"));
        verifier
            .start_within(&budgets, &s, Channel::Sms, &mut rng)
            .expect("within the address burst");
    }
    let s = subject("+447911129999");
    let e = verifier
        .start_within(&budgets, &s, Channel::Sms, &mut rng)
        .expect_err("the address burst is spent");
    assert_eq!(
        e,
        Error::BudgetSpent {
            budget: BudgetKind::Address,
            retry_after: Duration::minutes(6)
        }
    );
    assert_eq!(e.code(), "budget_exhausted");
    let text = e.to_string();
    assert!(
        !text.contains("203.0.113") && !text.contains("7911"),
        "{text}"
    );
    assert_eq!(
        *refused.lock().expect("not poisoned"),
        [BudgetKind::Address]
    );
    // Nothing was spent by the refusal: the range still has 10 places,
    // and the subject no record.
    assert!(verifier.status(&s).is_err());
    clock.advance(Duration::minutes(6) - Duration::SECOND);
    assert!(matches!(
        verifier.start_within(&budgets, &s, Channel::Sms, &mut rng),
        Err(Error::BudgetSpent { .. })
    ));
    clock.advance(Duration::SECOND);
    verifier
        .start_within(&budgets, &s, Channel::Sms, &mut rng)
        .expect("the retry_after was true");
    // Many clients, one range: 20 at once, and the two places six
    // minutes refilled.
    let mut n = 10u8;
    let e = loop {
        let client = Budgets::new()
            .address(IpAddr::V4(Ipv4Addr::new(198, 51, 100, n)))
            .range();
        let s = subject(&format!("+44791112{n:04}"));
        match verifier.start_within(&client, &s, Channel::Sms, &mut rng) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            e,
            Error::BudgetSpent {
                budget: BudgetKind::Range,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(*sends.lock().expect("not poisoned"), 22);
}

#[test]
fn a_failed_delivery_gives_back_its_budget_places_once() {
    let clock = ManualClock::new(T0);
    let (verifier, _) = verifier(Policy::default(), &clock);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let budgets = Budgets::new().address("203.0.113.9".parse().expect("an address"));
    let mut last = None;
    for n in 0..10 {
        let s = subject(&format!("+44791112{n:04}"));
        let sent = verifier
            .start_within(&budgets, &s, Channel::Sms, &mut rng)
            .expect("within the address burst");
        last = Some((s, sent.send));
    }
    let (s, send) = last.expect("ten sends");
    // An earlier send is not the key's latest spend: nothing comes back
    // from the key (its subject's budgets do come back).
    let first = subject("+447911120000");
    let first_send = SendId::new(1, 1);
    assert!(
        verifier
            .report_delivery_within(&budgets, &first, first_send, Delivery::Failed)
            .expect("reported")
    );
    assert!(
        verifier
            .start_within(&budgets, &subject("+447911129998"), Channel::Sms, &mut rng)
            .is_err()
    );
    // The latest send's failure gives its place back, once.
    assert!(
        verifier
            .report_delivery_within(&budgets, &s, send, Delivery::Failed)
            .expect("reported")
    );
    assert!(
        !verifier
            .report_delivery_within(&budgets, &s, send, Delivery::Failed)
            .expect("reported")
    );
    verifier
        .start_within(&budgets, &subject("+447911129998"), Channel::Sms, &mut rng)
        .expect("the failed send's place came back");
    assert!(
        verifier
            .start_within(&budgets, &subject("+447911129997"), Channel::Sms, &mut rng)
            .is_err()
    );
}

#[test]
fn denied_prefixes_and_countries_refuse_every_send() {
    let clock = ManualClock::new(T0);
    let policy = Policy::builder()
        .deny_prefix("4479111")
        .deny_country(1)
        .build()
        .expect("a valid policy");
    let (verifier, sends) = verifier(policy, &clock);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let s = subject("+447911123456");
    assert_eq!(
        verifier.start(&s, Channel::Sms, &mut rng),
        Err(Error::Denied)
    );
    assert_eq!(
        verifier.start_within(&Budgets::new().range(), &s, Channel::Sms, &mut rng),
        Err(Error::Denied)
    );
    assert_eq!(Error::Denied.code(), "destination_denied");
    assert!(
        verifier
            .start(&subject("+447401101801"), Channel::Sms, &mut rng)
            .is_ok()
    );
    assert_eq!(sends.lock().expect("not poisoned").values().sum::<u64>(), 1);
    assert!(Policy::builder().deny_prefix("44 79").build().is_err());
    assert!(Policy::builder().deny_prefix("").build().is_err());
}

#[test]
fn async_verifier_spends_and_refuses_alike() {
    let clock = ManualClock::new(T0);
    let verifier = AsyncVerifier::new(Policy::default(), keys(), MemoryStore::new(), clock);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let budgets = Budgets::new().address("203.0.113.9".parse().expect("an address"));
    futures_executor::block_on(async {
        for n in 0..10 {
            let s = subject(&format!("+44791112{n:04}"));
            verifier
                .start_within(&budgets, &s, Channel::Sms, &mut rng)
                .await
                .expect("within the burst");
        }
        let e = verifier
            .start_within(&budgets, &subject("+447911129999"), Channel::Sms, &mut rng)
            .await
            .expect_err("spent");
        assert!(matches!(
            e,
            Error::BudgetSpent {
                budget: BudgetKind::Address,
                ..
            }
        ));
    });
}

#[test]
fn tenants_and_ipv6_neighbours_share_or_not_as_documented() {
    let engine = Engine::new(Policy::default(), keys());
    let s = subject("+447911123456");
    let tenant = otpflow::subject::Tenant::new("shop").expect("a tenant");
    let in_shop = s.clone().with_tenant(tenant);
    let b = |ip: &str| {
        Budgets::new()
            .address(ip.parse().expect("an address"))
            .range()
    };
    let plain = engine.budget_keys(&s, &b("2001:db8:1:2::1"));
    // The same /64: the same key; the next /64: another.
    assert_eq!(plain, engine.budget_keys(&s, &b("2001:db8:1:2:ffff::9")));
    assert_ne!(plain[0], engine.budget_keys(&s, &b("2001:db8:1:3::1"))[0]);
    // An IPv4-mapped address is its IPv4 address.
    assert_eq!(
        engine.budget_keys(&s, &b("::ffff:203.0.113.9"))[0],
        BudgetKey::address("203.0.113.9".parse().expect("an address"))
    );
    // Tenants never share a bucket.
    let shop = engine.budget_keys(&in_shop, &b("2001:db8:1:2::1"));
    assert_ne!(plain, shop);
    assert!(shop[1].store_key().starts_with("#budget/shop/range:"));
    // A kind without a rate is not counted.
    assert!(
        engine
            .budget_keys(&s, &Budgets::new().global().country())
            .is_empty()
    );
    // The debug form names no address or number.
    let debug = format!("{plain:?}");
    assert!(
        !debug.contains("2001") && !debug.contains("4479"),
        "{debug}"
    );
}

/// Tags as the engine derives them, from real sends' records: one per
/// send of the property below (distinct, so each names one spend).
fn tags() -> &'static [SpendTag] {
    static TAGS: std::sync::OnceLock<Vec<SpendTag>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        let engine = Engine::new(Policy::default(), keys());
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        (0..160u32)
            .map(|i| {
                let s = subject(&format!("+44791112{i:04}"));
                let step = engine.start(None, &s, Channel::Sms, T0, &mut rng);
                engine
                    .spend_tag(step.write.as_ref().expect("written"))
                    .expect("a tag")
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the times of the sends and whichever of them are given
    /// back (the key's latest, an earlier one, twice), the sends that keep
    /// their place conform to the key's rate: no interval of `m` intervals
    /// holds more than `burst − 1 + m` of them.
    #[test]
    fn no_interval_holds_more_than_a_keys_cap(
        burst in 1u32..=8,
        interval in 1i64..=600,
        ops in proptest::collection::vec((0i64..900_000, 0u8..4, 0usize..64), 1..160),
    ) {
        let rate = Rate::new(burst, Duration::seconds(interval)).expect("a valid rate");
        let policy = Policy::builder()
            .budget_rate(BudgetKind::Global, Some(rate))
            .build()
            .expect("a valid policy");
        let engine = Engine::new(policy.clone(), keys());
        let key = BudgetKey::global();
        let mut record: Option<Record> = None;
        let mut now = T0;
        // (time, tag, kept)
        let mut spends: Vec<(OffsetDateTime, SpendTag, bool)> = Vec::new();
        let tags = tags();
        for (gap, op, which) in ops {
            now += Duration::milliseconds(gap % 4 * (gap / 4 % 1000));
            if op == 0 && !spends.is_empty() {
                // Give back some spend (the latest, or an earlier one).
                let i = which % spends.len();
                let tag = spends[i].1;
                let step = engine.refund_budget(record.as_ref(), &key, tag, now);
                if step.outcome == Ok(true) {
                    prop_assert!(spends[i].2, "a spend given back twice");
                    spends[i].2 = false;
                }
                if let Some(w) = step.write {
                    record = Some(Record::from_bytes(&w.to_bytes()).expect("round-trips"));
                }
            } else {
                let tag = tags[spends.len()];
                let step = engine.spend_budget(record.as_ref(), &key, tag, now);
                match step.outcome {
                    Ok(()) => {
                        spends.push((now, tag, true));
                        let w = step.write.expect("a spend writes");
                        prop_assert!(w.expires_at(&policy) > now);
                        record = Some(Record::from_bytes(&w.to_bytes()).expect("round-trips"));
                    }
                    Err(Error::BudgetSpent { retry_after, .. }) => {
                        prop_assert!(retry_after > Duration::ZERO);
                        prop_assert!(engine.check_budget(record.as_ref(), &key, now + retry_after).is_ok());
                    }
                    Err(e) => prop_assert!(false, "{e:?}"),
                }
            }
        }
        let kept: Vec<OffsetDateTime> = spends.iter().filter(|s| s.2).map(|s| s.0).collect();
        for m in [1i64, 2, 5] {
            let w = Duration::seconds(interval * m);
            let cap = usize::try_from(i64::from(burst) - 1 + m).expect("small");
            for (i, &start) in kept.iter().enumerate() {
                let inside = kept[i..].iter().take_while(|&&t| t < start + w).count();
                prop_assert!(inside <= cap, "{} sends in {} intervals from {}", inside, m, start);
            }
        }
    }
}

/// A store whose next compare-and-swap of a subject's record conflicts
/// (another process wrote it in between), once.
struct ConflictOnce {
    inner: MemoryStore,
    armed: std::sync::atomic::AtomicBool,
}

impl Store for ConflictOnce {
    type Error = std::convert::Infallible;
    fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, Self::Error> {
        Store::load(&self.inner, key)
    }
    fn compare_and_swap(
        &self,
        key: &RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        let subject = matches!(key, RecordKey::Subject(_));
        if subject && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(Swap::Conflict);
        }
        Store::compare_and_swap(&self.inner, key, expected, new)
    }
}

#[test]
fn a_conflict_on_the_subject_gives_back_what_the_keys_spent() {
    let store = ConflictOnce {
        inner: MemoryStore::new(),
        armed: std::sync::atomic::AtomicBool::new(true),
    };
    let verifier = Verifier::new(Policy::default(), keys(), store, ManualClock::new(T0));
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let budgets = Budgets::new().address("203.0.113.9".parse().expect("an address"));
    // The first send spends from the address key, meets the conflict,
    // gives the place back, and runs again: one place spent in all.
    verifier
        .start_within(&budgets, &subject("+447911120000"), Channel::Sms, &mut rng)
        .expect("sent on the second try");
    assert!(
        !verifier
            .store()
            .armed
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    for n in 1..10 {
        let s = subject(&format!("+44791112{n:04}"));
        verifier
            .start_within(&budgets, &s, Channel::Sms, &mut rng)
            .expect("nine more places: the conflicted spend came back");
    }
    assert!(matches!(
        verifier.start_within(&budgets, &subject("+447911120010"), Channel::Sms, &mut rng),
        Err(Error::BudgetSpent {
            budget: BudgetKind::Address,
            ..
        })
    ));
}
