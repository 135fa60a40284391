//! Fuzzing harnesses (feature `fuzzing`): what the `cargo fuzz` targets in
//! `fuzz/` call, so each target is a few lines. Not part of the stable API.
//!
//! [`run_lifecycle`] drives a [`Verifier`] through an arbitrary list of
//! [`Operation`]s and asserts the invariants otpflow promises after every
//! step; [`check_code_input`] checks the code-input rules on any string.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arbitrary::Arbitrary;
use rand_core::{Infallible, TryCryptoRng, TryRng};
use time::{Duration, OffsetDateTime};

use crate::record::Secs;
use crate::subject::Tenant;
use crate::{
    Channel, Clock, Code, Delivery, Engine, Error, Event, KeyId, KeyRing, ManualClock, MemoryStore,
    PhoneNumber, PhonePolicy, Policy, Purpose, Record, ResendMode, SecretKey, SendId, State, Store,
    SubjectKey, Verifier,
};

/// The policy knobs, kept in range by construction (`build` still checks).
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct Params {
    /// Code length offset (4 + n % 7).
    pub code_length: u8,
    /// Checks per code (1 + n % 6).
    pub max_checks: u8,
    /// Sends per validation (1 + n % 6).
    pub max_sends: u8,
    /// Failure cap (1 + n % 12).
    pub failure_cap: u8,
    /// Cooldown in seconds (n % 61).
    pub cooldown: u8,
    /// Lifetime in minutes (1 + n % 20).
    pub lifetime: u8,
    /// Lockout in minutes (1 + n % 90).
    pub lockout: u8,
    /// `NewCode` resends when true.
    pub new_code: bool,
    /// Lockout growth (1 + n % 4).
    pub growth: u8,
    /// Hard cap of consecutive failures (1 + n % 40).
    pub hard_cap: u8,
}

/// One call, or the passing of time.
#[derive(Arbitrary, Clone, Debug)]
pub enum Operation {
    /// `start` for subject `s % 4`.
    Start(u8),
    /// `resend` for subject `s % 4`.
    Resend(u8),
    /// `verify` with the code last sent to the subject.
    VerifyLatest(u8),
    /// `verify` with an earlier code sent to the subject (the `n`th back).
    VerifyEarlier(u8, u8),
    /// `verify` with digits that are not the latest code.
    VerifyWrong(u8, u32),
    /// `verify` with a string over digits, separators and a few characters
    /// that must be refused (bytes index [`RAW_ALPHABET`]).
    VerifyRaw(u8, Vec<u8>),
    /// `cancel`.
    Cancel(u8),
    /// `status`.
    Status(u8),
    /// Moves the clock by `n` seconds (negative too: clocks jump back).
    Advance(i16),
    /// Moves the clock by `n` minutes.
    AdvanceMinutes(u8),
    /// Rotates in a new key.
    RotateKey,
    /// Removes the oldest retired key.
    RemoveOldestKey,
    /// An operator's `unlock` for subject `s % 4`.
    Unlock(u8),
    /// Moves the clock by `n` days, either way (a clock that jumps, and its
    /// correction).
    JumpDays(i16),
    /// The provider reports the `n`th-back send to the subject as failed.
    ReportFailed(u8, u8),
    /// `verify` the subject with the latest code of another subject (another
    /// purpose, number or tenant).
    VerifyOther(u8, u8),
    /// `start_within` for subject `s % 4` from client `c % 3`, naming its
    /// address, the number's range and the global key.
    StartWithin(u8, u8),
    /// `resend_within`, likewise.
    ResendWithin(u8, u8),
    /// `report_delivery_within` of the `n`th-back send as failed, naming
    /// client `c % 3`'s budgets.
    ReportFailedWithin(u8, u8, u8),
}

/// The budgets client `c` names: its address, the number's range, and the
/// global key.
fn client_budgets(c: u8) -> crate::Budgets {
    let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, c % 3));
    crate::Budgets::new().address(ip).range().global()
}

struct CountingRng(u64);

impl TryRng for CountingRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.try_next_u64()
            .map(|n| u32::try_from(n >> 32).unwrap_or_default())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        // SplitMix64: a fuzz run needs distinct nonces, not secrecy.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let n = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&n[..chunk.len()]);
        }
        Ok(())
    }
}

impl TryCryptoRng for CountingRng {}

/// (subject, generation, how many codes that generation had sent so far).
type CodeEpoch = (String, u32, usize);

/// What the harness remembers of one subject.
#[derive(Default)]
struct Seen {
    /// Every code sent, per generation, in order.
    codes: HashMap<u32, Vec<Code>>,
    /// Generations that validated.
    validated: Vec<u32>,
    /// Terminal states seen, per generation.
    terminal: HashMap<u32, State>,
    /// Every send's id, in order.
    sends: Vec<SendId>,
    /// Sends whose budgets a failure report gave back.
    given_back: Vec<SendId>,
}

/// Reads [`Params`] and then [`Operation`]s until `data` runs out, and
/// runs them with [`run_lifecycle`]. (`Vec<Operation>`'s own `Arbitrary`
/// stops after each element with probability ½, which keeps lists short.)
pub fn run_lifecycle_bytes(data: &[u8]) {
    let mut u = arbitrary::Unstructured::new(data);
    let Ok(params) = Params::arbitrary(&mut u) else {
        return;
    };
    let mut ops = Vec::new();
    while !u.is_empty() {
        match Operation::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    run_lifecycle(params, &ops);
}

/// Runs `ops` against a `Verifier` over a `MemoryStore` and panics if an
/// invariant breaks:
/// - a verify succeeds only with the latest code sent for that generation,
///   and at most once per generation;
/// - no more checks reach a comparison per code than the policy allows;
/// - a terminal state never goes back to `sent`;
/// - records survive their byte encoding unchanged;
/// - no call panics.
pub fn run_lifecycle(params: Params, ops: &[Operation]) {
    let policy = Policy::builder()
        .code_length(4 + params.code_length % 7)
        .max_checks(1 + u32::from(params.max_checks % 6))
        .max_sends(1 + u32::from(params.max_sends % 6))
        .failure_cap(1 + u32::from(params.failure_cap % 12))
        .resend_cooldown(Duration::seconds(i64::from(params.cooldown % 61)))
        .code_lifetime(Duration::minutes(1 + i64::from(params.lifetime % 20)))
        .lockout(Duration::minutes(1 + i64::from(params.lockout % 90)))
        .lockout_growth(1 + u32::from(params.growth % 4))
        .failure_hard_cap(1 + u32::from(params.hard_cap % 40))
        .resend_mode(if params.new_code {
            ResendMode::NewCode
        } else {
            ResendMode::SameCode
        })
        .budget_rate(
            crate::budget_key::BudgetKind::Address,
            crate::budget::Rate::new(1 + u32::from(params.cooldown % 4), Duration::seconds(20))
                .ok(),
        )
        .budget_rate(
            crate::budget_key::BudgetKind::Global,
            crate::budget::Rate::new(6, Duration::seconds(10)).ok(),
        )
        .build();
    let Ok(policy) = policy else {
        panic!("harness policy out of range: {policy:?}")
    };
    let max_checks = policy.max_checks();
    let Ok(first_key) = SecretKey::new(KeyId(0), &[0x5a; 32]) else {
        unreachable!()
    };
    let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::days(20_000));
    // Checks that reached a comparison, per (subject, generation, code epoch).
    let compared: Arc<Mutex<HashMap<CodeEpoch, u32>>> = Arc::default();
    let epochs: Arc<Mutex<HashMap<(String, u32), usize>>> = Arc::default();
    let (c, e) = (Arc::clone(&compared), Arc::clone(&epochs));
    let mut verifier = Verifier::new(
        policy,
        KeyRing::new(first_key),
        MemoryStore::with_shards(2),
        clock.clone(),
    )
    .on_event(move |event| {
        let mut epochs = e.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut compared = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::Sent {
                subject,
                generation,
                ..
            }
            | Event::Resent {
                subject,
                generation,
                new_code: true,
                ..
            } => {
                *epochs
                    .entry((subject.store_key(), *generation))
                    .or_default() += 1;
            }
            Event::CheckFailed {
                subject,
                generation,
                ..
            }
            | Event::Validated {
                subject,
                generation,
            } => {
                let epoch = epochs
                    .get(&(subject.store_key(), *generation))
                    .copied()
                    .unwrap_or_default();
                let n = compared
                    .entry((subject.store_key(), *generation, epoch))
                    .or_default();
                *n += 1;
                assert!(
                    *n <= max_checks,
                    "{n} checks compared on one code, budget {max_checks}"
                );
            }
            _ => {}
        }
    });
    let subjects = subjects();
    let mut seen: Vec<Seen> = subjects.iter().map(|_| Seen::default()).collect();
    let mut rng = CountingRng(7);
    let mut next_key = 1u32;
    for op in ops {
        let s = match op {
            Operation::Start(s)
            | Operation::Resend(s)
            | Operation::VerifyLatest(s)
            | Operation::VerifyEarlier(s, _)
            | Operation::VerifyWrong(s, _)
            | Operation::VerifyRaw(s, _)
            | Operation::Cancel(s)
            | Operation::Status(s)
            | Operation::Unlock(s)
            | Operation::ReportFailed(s, _)
            | Operation::VerifyOther(s, _)
            | Operation::StartWithin(s, _)
            | Operation::ResendWithin(s, _)
            | Operation::ReportFailedWithin(s, _, _) => usize::from(*s) % subjects.len(),
            _ => 0,
        };
        let subject = &subjects[s];
        let generation = load(&verifier, subject).map_or(0, |r| r.generation());
        let latest = seen[s]
            .codes
            .get(&generation)
            .and_then(|codes| codes.last())
            .cloned();
        let verified = match op {
            Operation::Start(_)
            | Operation::Resend(_)
            | Operation::StartWithin(..)
            | Operation::ResendWithin(..) => {
                let sent = match op {
                    Operation::Start(_) => verifier.start(subject, Channel::Sms, &mut rng),
                    Operation::StartWithin(_, c) => {
                        verifier.start_within(&client_budgets(*c), subject, Channel::Sms, &mut rng)
                    }
                    Operation::ResendWithin(_, c) => {
                        verifier.resend_within(&client_budgets(*c), subject, None, &mut rng)
                    }
                    _ => verifier.resend(subject, None, &mut rng),
                };
                match &sent {
                    Err(Error::BudgetSpent { retry_after, .. }) => {
                        // A key refused: it allows a send later, never now,
                        // and within its rate's fill time.
                        assert!(*retry_after > Duration::ZERO);
                        assert!(*retry_after <= Duration::minutes(61));
                    }
                    Err(Error::Denied) => panic!("no deny rule in the harness policy"),
                    _ => {}
                }
                if let Ok(sent) = sent {
                    seen[s].sends.push(sent.send);
                    seen[s]
                        .codes
                        .entry(sent.generation)
                        .or_default()
                        .push(sent.code);
                }
                None
            }
            Operation::VerifyLatest(_) => latest
                .as_ref()
                .map(|code| (verifier.verify(subject, code.as_str()), true)),
            Operation::VerifyEarlier(_, back) => {
                let codes = seen[s].codes.get(&generation).cloned().unwrap_or_default();
                let earlier = codes.iter().rev().nth(usize::from(*back)).cloned();
                earlier.map(|code| {
                    let is_latest = latest.as_ref() == Some(&code);
                    (verifier.verify(subject, code.as_str()), is_latest)
                })
            }
            Operation::VerifyWrong(_, digits) => {
                let len = usize::from(verifier.engine().policy().code_length());
                let input: String = format!("{digits:010}").chars().take(len).collect();
                let is_latest = latest.as_ref().is_some_and(|c| c.as_str() == input);
                Some((verifier.verify(subject, &input), is_latest))
            }
            Operation::VerifyRaw(_, bytes) => {
                let input: &str = &raw_input(bytes);
                let digits: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
                let is_latest = latest.as_ref().is_some_and(|c| c.as_str() == digits);
                Some((verifier.verify(subject, input), is_latest))
            }
            Operation::Cancel(_) => {
                let _ = verifier.cancel(subject);
                None
            }
            Operation::ReportFailed(_, back) | Operation::ReportFailedWithin(_, back, _) => {
                let id = seen[s].sends.iter().rev().nth(usize::from(*back)).copied();
                if let Some(id) = id {
                    let refunded = match op {
                        Operation::ReportFailedWithin(_, _, c) => verifier.report_delivery_within(
                            &client_budgets(*c),
                            subject,
                            id,
                            Delivery::Failed,
                        ),
                        _ => verifier.report_delivery(subject, id, Delivery::Failed),
                    };
                    if refunded.is_ok_and(|r| r) {
                        assert_eq!(
                            seen[s].sends.last(),
                            Some(&id),
                            "an earlier send given back"
                        );
                        assert!(!seen[s].given_back.contains(&id), "a send given back twice");
                        seen[s].given_back.push(id);
                    }
                }
                None
            }
            Operation::VerifyOther(_, t) => {
                let t = usize::from(*t) % subjects.len();
                let other = (t != s)
                    .then(|| {
                        let g = load(&verifier, &subjects[t]).map_or(0, |r| r.generation());
                        seen[t].codes.get(&g).and_then(|c| c.last()).cloned()
                    })
                    .flatten();
                other.map(|code| {
                    let is_latest = latest.as_ref().is_some_and(|c| c.as_str() == code.as_str());
                    (verifier.verify(subject, code.as_str()), is_latest)
                })
            }
            Operation::Status(_) => {
                if let Ok(status) = verifier.status(subject) {
                    let p = verifier.engine().policy();
                    assert!(status.failures_left <= p.failure_cap());
                    assert!(status.attempts_left <= p.max_checks());
                    assert!(status.sends_left <= p.max_sends());
                    // No stored instant outlives the policy, from now.
                    // As the engine sees it: not before the records' range.
                    let now = clock.now().max(OffsetDateTime::UNIX_EPOCH);
                    assert!(status.expires_at <= now + p.code_lifetime() + Duration::SECOND);
                    if let Some(until) = status.locked_until {
                        assert!(until <= now + p.max_lockout() + Duration::SECOND);
                    }
                }
                None
            }
            Operation::Unlock(_) => {
                assert!(verifier.unlock(subject).is_ok(), "unlock failed");
                None
            }
            Operation::JumpDays(days) => {
                clock.advance(Duration::days(i64::from(*days)));
                None
            }
            Operation::Advance(secs) => {
                clock.advance(Duration::seconds(i64::from(*secs)));
                None
            }
            Operation::AdvanceMinutes(mins) => {
                clock.advance(Duration::minutes(i64::from(*mins)));
                None
            }
            Operation::RotateKey => {
                if let Ok(key) = SecretKey::new(KeyId(next_key), &[next_key.to_le_bytes()[0]; 32]) {
                    let _ = verifier.engine_mut().keys_mut().rotate(key);
                }
                next_key += 1;
                None
            }
            Operation::RemoveOldestKey => {
                let ring = verifier.engine_mut().keys_mut();
                let oldest = (0..next_key).map(KeyId).find(|id| ring.get(*id).is_some());
                if let Some(id) = oldest {
                    let _ = ring.remove(id);
                }
                None
            }
        };
        if let Some((result, was_latest)) = verified {
            match result {
                Ok(done) => {
                    assert!(
                        was_latest,
                        "a verify succeeded with a code that is not the latest"
                    );
                    assert_eq!(done.generation, generation);
                    assert!(
                        !seen[s].validated.contains(&generation),
                        "generation {generation} validated twice"
                    );
                    seen[s].validated.push(generation);
                }
                Err(Error::Store(_) | Error::Contention) => panic!("MemoryStore never fails"),
                Err(Error::Locked { retry_after }) => {
                    let p = verifier.engine().policy();
                    // A lockout, or the send budget after it: never a
                    // clock's jump.
                    let most = p.max_lockout() + p.subject_send_window() * p.subject_send_cap();
                    assert!(retry_after <= most, "retry_after {retry_after}");
                }
                Err(_) => {}
            }
        }
        // Budget keys' records survive their encoding, and no bucket runs
        // further ahead than its rate fills it.
        for c in 0..3 {
            for key in verifier.engine().budget_keys(subject, &client_budgets(c)) {
                let loaded = verifier
                    .store()
                    .load(&crate::RecordKey::from(key))
                    .unwrap_or_else(|e| match e {});
                if let Some((record, _)) = loaded {
                    assert_eq!(
                        Record::from_bytes(&record.to_bytes()).ok().as_ref(),
                        Some(&record)
                    );
                    assert!(record.is_budget());
                }
            }
        }
        // Stored states: terminal stays terminal; records survive their
        // encoding. (`status` derives `expired` from the clock without a
        // write, so a clock jumping back can show `sent` again until the
        // first check stores the expiry; stored states are what count.)
        for (i, subject) in subjects.iter().enumerate() {
            let Some(record) = load(&verifier, subject) else {
                continue;
            };
            assert_eq!(
                Record::from_bytes(&record.to_bytes()).ok().as_ref(),
                Some(&record)
            );
            let Some(state) = record.state() else {
                continue;
            };
            if let Some(earlier) = seen[i].terminal.get(&record.generation()) {
                assert_eq!(state, *earlier, "a terminal state changed");
            }
            if state.is_terminal() {
                seen[i].terminal.insert(record.generation(), state);
            }
        }
    }
}

/// Checks `input` as a code against a live validation: it must be refused as
/// malformed exactly when it is not 4–10 digits (the policy's length) with
/// only spaces and dashes besides, within 64 bytes; otherwise it is compared.
pub fn check_code_input(input: &str) {
    let Ok(key) = SecretKey::new(KeyId(1), &[1; 32]) else {
        unreachable!()
    };
    let engine = Engine::new(Policy::default(), KeyRing::new(key));
    let subject = &subjects()[0];
    let now = OffsetDateTime::UNIX_EPOCH;
    let step = engine.start(None, subject, Channel::Sms, now, &mut CountingRng(1));
    let (Some(record), Ok(sent)) = (step.write, step.outcome) else {
        panic!("start failed")
    };
    let step = engine.verify(Some(&record), subject, input, now);
    let digits = input.bytes().filter(u8::is_ascii_digit).count();
    let well_formed = input.len() <= 64
        && input
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
        && digits == usize::from(engine.policy().code_length());
    match step.outcome {
        Err(Error::MalformedCode) => {
            assert!(!well_formed, "well-formed input refused as malformed");
            assert!(step.write.is_none(), "a malformed code spent an attempt");
        }
        Ok(_) => {
            let typed: String = input.chars().filter(char::is_ascii_digit).collect();
            assert_eq!(typed, sent.code.as_str());
        }
        Err(Error::CodeMismatch { attempts_left: 4 }) => assert!(well_formed),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// What [`Operation::VerifyRaw`] draws from: mostly digits, the two
/// separators a check skips, and characters it must refuse.
pub const RAW_ALPHABET: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ' ', '-', 'a', '+', '\u{663}', '\0',
];

fn raw_input(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| RAW_ALPHABET[usize::from(b % 16)])
        .collect()
}

fn subjects() -> Vec<SubjectKey> {
    let policy = PhonePolicy::default();
    ["+447401101801", "+447911123456"]
        .iter()
        .filter_map(|n| PhoneNumber::parse(n, &policy).ok())
        .flat_map(|phone| {
            [
                SubjectKey::new(Purpose::Login, phone),
                SubjectKey::new(Purpose::Onboarding, phone),
            ]
        })
        .take(3)
        .chain(
            // The first subject again, in a tenant: another subject.
            PhoneNumber::parse("+447401101801", &policy)
                .ok()
                .zip(Tenant::new("app-b").ok())
                .map(|(phone, t)| SubjectKey::new(Purpose::Login, phone).with_tenant(t)),
        )
        .collect()
}

fn load(verifier: &Verifier<MemoryStore, ManualClock>, subject: &SubjectKey) -> Option<Record> {
    verifier
        .store()
        .load(&crate::RecordKey::from(subject))
        .unwrap_or_else(|e| match e {})
        .map(|(record, _)| record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_runs_a_scripted_life() {
        let params = Params {
            code_length: 2,
            max_checks: 2,
            max_sends: 3,
            failure_cap: 5,
            cooldown: 0,
            lifetime: 9,
            lockout: 9,
            new_code: true,
            growth: 1,
            hard_cap: 7,
        };
        use Operation::*;
        let ops = [
            Start(0),
            VerifyWrong(0, 1),
            Resend(0),
            VerifyEarlier(0, 1),
            VerifyLatest(0),
            VerifyLatest(0),
            Start(1),
            RotateKey,
            VerifyRaw(1, vec![1, 2, 11, 3, 4, 10, 5, 6]),
            RemoveOldestKey,
            VerifyLatest(1),
            Advance(-30),
            AdvanceMinutes(200),
            Start(2),
            Cancel(2),
            Status(2),
            JumpDays(365),
            Start(0),
            VerifyWrong(0, 1),
            JumpDays(-365),
            Status(0),
            Start(0),
            Unlock(0),
        ];
        run_lifecycle(params, &ops);
        for input in ["", "123456", "12 34-56", "12345a", "١٢٣٤٥٦", "1234567"] {
            check_code_input(input);
        }
    }
}

/// Parses `input` as a phone number under several policies: nothing
/// panics, and a number that parses is canonical E.164 that parses back to
/// itself.
pub fn check_phone_parse(input: &str) {
    for policy in phone_policies() {
        check_phone(PhoneNumber::parse(input, &policy));
    }
}

/// Builds a phone number from a split form under several policies, with the
/// same checks as [`check_phone_parse`]; a split number that parses equals
/// the whole number written `+`, code, national digits.
pub fn check_phone_from_parts(country_code: &str, national: &str) {
    for policy in phone_policies() {
        let split = PhoneNumber::from_parts(country_code, national, &policy);
        if let Ok(number) = split {
            let digits: String = national.chars().filter(char::is_ascii_digit).collect();
            let whole = format!("{}{digits}", country_code.trim_matches(' '));
            assert_eq!(
                PhoneNumber::parse(&whole, &policy),
                Ok(number),
                "split and whole forms differ"
            );
        }
        check_phone(split);
    }
}

fn phone_policies() -> [PhonePolicy; 3] {
    [
        PhonePolicy::default(),
        PhonePolicy::default().require_mobile(false),
        PhonePolicy::uk_only().without_default_region(),
    ]
}

fn check_phone(result: Result<PhoneNumber, crate::PhoneError>) {
    match result {
        Ok(number) => {
            let e164 = number.e164();
            assert!(e164.starts_with('+'), "{e164}");
            assert!((3..=16).contains(&e164.len()), "{e164}");
            assert!(
                number.digits().bytes().all(|b| b.is_ascii_digit()),
                "{e164}"
            );
            assert!(
                number
                    .digits()
                    .starts_with(&number.country_code().to_string()),
                "{e164}"
            );
            assert!(number.digits().ends_with(number.national()), "{e164}");
            let any = PhonePolicy::default().require_mobile(false);
            assert_eq!(PhoneNumber::parse(e164, &any), Ok(number), "not canonical");
        }
        Err(e) => {
            assert!(e.code().starts_with("phone_"));
            assert!(!e.to_string().is_empty());
        }
    }
}

/// Decodes `bytes` as a stored record: never panics, and a record that
/// decodes encodes to bytes that decode to the same record (the encoding is
/// canonical after one round).
///
/// Bytes that start with `0xA5` are read instead as the fields of a record
/// ([`RecordFields`]) with instants near one another, encoded, and decoded:
/// that reaches the decoder's consistency checks, which random bytes seldom
/// get past the framing to. A record that decodes is then run through every
/// transition at instants around its own, and each record they write must
/// decode again.
pub fn check_record_bytes(bytes: &[u8]) {
    let owned;
    let bytes = match bytes.split_first() {
        Some((0xA5, rest)) => {
            let mut u = arbitrary::Unstructured::new(rest);
            let Ok(fields) = RecordFields::arbitrary(&mut u) else {
                return;
            };
            owned = fields.record().to_bytes();
            &owned[..]
        }
        _ => bytes,
    };
    let Ok(record) = Record::from_bytes(bytes) else {
        return;
    };
    let encoded = record.to_bytes();
    let again = Record::from_bytes(&encoded).expect("an encoded record decodes");
    assert_eq!(again, record, "the round trip changed the record");
    assert_eq!(again.to_bytes(), encoded, "the encoding is not canonical");
    run_transitions(&record);
}

/// A record's fields, drawn so that most draws sit near the edge of what
/// the decoder accepts: instants are minutes from one base.
#[derive(Arbitrary, Clone, Debug)]
pub struct RecordFields {
    generation: u8,
    validation: Option<ValidationFields>,
    failures: u8,
    last_failure: Option<i16>,
    locked_until: Option<i16>,
    tat: Option<i16>,
    written: i16,
    /// Pushes one instant far out (years), when set.
    far: Option<(u8, i32)>,
}

/// A validation's fields for [`RecordFields`].
#[derive(Arbitrary, Clone, Debug)]
pub struct ValidationFields {
    state: u8,
    derivation: u8,
    key: u8,
    created: i16,
    last_sent: i16,
    expires: i16,
    ended: Option<i16>,
    checks: u8,
    sends: u8,
}

impl RecordFields {
    fn record(&self) -> Record {
        use crate::budget::{Guesses, SendRate};
        use crate::record::{Ledger, Validation};
        let base = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let at = |minutes: i16| Secs::of(base + Duration::minutes(i64::from(minutes)));
        let mut record = Record {
            current: self.validation.as_ref().map(|v| Validation {
                generation: u32::from(self.generation % 4),
                state: [
                    State::Sent,
                    State::Validated,
                    State::Expired,
                    State::Locked,
                    State::Canceled,
                ][usize::from(v.state % 5)],
                channel: Channel::Sms,
                derivation: v.derivation % 5,
                key_id: KeyId(u32::from(v.key % 3)),
                nonce: [v.key; crate::code::NONCE_LEN],
                created_at: at(v.created),
                last_sent_at: at(v.last_sent),
                expires_at: at(v.expires),
                ended_at: v.ended.map(at),
                checks: v.checks % 104,
                sends: v.sends % 104,
            }),
            ledger: Ledger {
                guesses: Guesses {
                    failures: u32::from(self.failures % 110),
                    last_failure_at: self.last_failure.map(at),
                    locked_until: self.locked_until.map(at),
                },
                sends: SendRate {
                    tat: self.tat.map(at),
                },
                last_send: Default::default(),
            },
            written_at: at(self.written),
            bucket: None,
        };
        if let Some((which, days)) = self.far {
            let far =
                crate::record::later(Secs::of(base), Duration::days(i64::from(days % 3_000_000)))
                    .floor()
                    .clamp(Secs::EPOCH, Secs::new(crate::record::MAX_SECS));
            match which % 4 {
                0 => record.written_at = far,
                1 => record.ledger.guesses.locked_until = Some(far),
                2 => record.ledger.sends.tat = Some(far),
                _ => {
                    if let Some(v) = record.current.as_mut() {
                        v.expires_at = far;
                    }
                }
            }
        }
        record
    }
}

/// Runs every transition on `record` at instants around its own write,
/// under an extreme policy and the default one: nothing panics, and every
/// record written decodes back to itself.
fn run_transitions(record: &Record) {
    let Ok(key) = SecretKey::new(KeyId(1), &[1; 32]) else {
        unreachable!()
    };
    let strict = Policy::builder()
        .max_checks(1)
        .failure_cap(1)
        .failure_hard_cap(2)
        .budget_rate(
            crate::budget_key::BudgetKind::Global,
            crate::budget::Rate::new(2, Duration::seconds(60)).ok(),
        )
        .build();
    let policies = [Policy::default(), strict.unwrap_or_default()];
    let subject = &subjects()[0];
    let range = crate::budget_key::BudgetKey::range(subject.phone(), &Policy::default());
    let global = crate::budget_key::BudgetKey::global();
    // The tag a decoded bucket names, when it names one: its give-back.
    let tag = crate::budget_key::SpendTag(record.bucket.as_ref().map_or(1, |b| b.last.max(1)));
    for policy in policies {
        let engine = Engine::new(policy, KeyRing::new(key.clone()));
        for offset in [-86_400 * 400, -61, 0, 59, 601, 86_400 * 400] {
            // Saturating: a decoded record may be written up to the year 9999.
            let now =
                crate::record::later(record.written_at, Duration::seconds(offset)).to_datetime();
            let mut rng = CountingRng(3);
            let writes = [
                engine
                    .start(Some(record), subject, Channel::Sms, now, &mut rng)
                    .write,
                engine
                    .resend(Some(record), subject, None, now, &mut rng)
                    .write,
                engine.verify(Some(record), subject, "123456", now).write,
                engine.cancel(Some(record), subject, now).write,
                engine.unlock(Some(record), subject, now).write,
                engine.spend_budget(Some(record), &range, tag, now).write,
                engine.refund_budget(Some(record), &range, tag, now).write,
                engine.refund_budget(Some(record), &global, tag, now).write,
            ];
            let _ = engine.check_budget(Some(record), &range, now);
            let _ = engine.status(Some(record), now);
            for written in writes.into_iter().flatten() {
                assert_eq!(
                    Record::from_bytes(&written.to_bytes()).as_ref(),
                    Ok(&written),
                    "a transition wrote a record that does not read back"
                );
            }
        }
    }
}

#[cfg(test)]
mod phone_and_record_tests {
    use super::*;

    #[test]
    fn budget_records_go_through_every_transition() {
        // A range bucket (version 3) with a TAT and a given-back spend, and
        // the same without a TAT.
        let mut bytes = vec![3, 1, 3];
        bytes.extend_from_slice(&(20_000i64 * 86_400 + 600).to_be_bytes());
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&(20_000i64 * 86_400).to_be_bytes());
        assert!(Record::from_bytes(&bytes).is_ok_and(|r| r.is_budget()));
        check_record_bytes(&bytes);
        let full = [
            &[3u8, 1, 0][..],
            &7u64.to_be_bytes(),
            &(20_000i64 * 86_400).to_be_bytes(),
        ]
        .concat();
        check_record_bytes(&full);
    }

    #[test]
    fn phone_checks_hold_on_the_usual_forms() {
        for input in [
            "07401 101801",
            "+44 (0)7401 101801",
            "",
            "++44",
            "07401 1O18O1",
        ] {
            check_phone_parse(input);
        }
        check_phone_from_parts("+44", "07401 101801");
        check_phone_from_parts("+507", "6123 4567");
        check_phone_from_parts("", "");
    }

    #[test]
    fn record_checks_hold_on_real_and_broken_records() {
        let key = SecretKey::new(KeyId(1), &[1; 32]).expect("a valid key");
        let engine = Engine::new(Policy::default(), KeyRing::new(key));
        let step = engine.start(
            None,
            &subjects()[0],
            Channel::Sms,
            OffsetDateTime::UNIX_EPOCH,
            &mut CountingRng(7),
        );
        let bytes = step.write.expect("a record").to_bytes();
        check_record_bytes(&bytes);
        for n in 0..bytes.len() {
            check_record_bytes(&bytes[..n]);
        }
        check_record_bytes(&[0xff; 40]);
        // The structured form reaches the consistency checks.
        let mut seen_ok = false;
        let mut seen_contradiction = false;
        for seed in 0u8..=255 {
            let data: Vec<u8> = (0..120u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
                .collect();
            let mut u = arbitrary::Unstructured::new(&data);
            if let Ok(fields) = RecordFields::arbitrary(&mut u) {
                match Record::from_bytes(&fields.record().to_bytes()) {
                    Ok(_) => seen_ok = true,
                    Err(crate::RecordError::Contradiction(_)) => seen_contradiction = true,
                    Err(_) => {}
                }
            }
            let mut bytes = vec![0xA5];
            bytes.extend_from_slice(&data);
            check_record_bytes(&bytes);
        }
        assert!(seen_contradiction, "no draw reached a consistency check");
        // And a well-formed draw decodes.
        let valid = RecordFields {
            generation: 1,
            validation: Some(ValidationFields {
                state: 0,
                derivation: 1,
                key: 1,
                created: 0,
                last_sent: 0,
                expires: 10,
                ended: None,
                checks: 0,
                sends: 1,
            }),
            failures: 0,
            last_failure: None,
            locked_until: None,
            tat: Some(10),
            written: 0,
            far: None,
        };
        let decoded = Record::from_bytes(&valid.record().to_bytes());
        assert_eq!(decoded.as_ref(), Ok(&valid.record()));
        seen_ok |= decoded.is_ok();
        assert!(seen_ok);
    }

    #[test]
    fn the_committed_corpus_decodes_as_laid_out() {
        use crate::{Contradiction as C, RecordError as E};
        let decode = |bytes: &[u8]| Record::from_bytes(bytes).map(|r| r.to_bytes().len());
        let corpus = |name: &str| {
            let path = format!(
                "{}/fuzz/corpus/record_decode/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::read(path).expect("a committed seed")
        };
        assert_eq!(decode(&corpus("v2_live")), Ok(79));
        assert!(decode(&corpus("v2_locked")).is_ok());
        for v1 in ["v1_started", "v1_one_failure", "v1_locked", "v1_canceled"] {
            assert!(decode(&corpus(v1)).is_ok(), "{v1}");
        }
        assert_eq!(
            decode(&corpus("v2_sent_with_end")),
            Err(E::Contradiction(C::EndTime))
        );
        assert_eq!(
            decode(&corpus("v2_year_9999")),
            Err(E::Contradiction(C::Expiry))
        );
        assert_eq!(
            decode(&corpus("v2_generation_zero")),
            Err(E::Contradiction(C::ValidationAtGenerationZero))
        );
        // A budget key's bucket (version 3), and one further ahead than any
        // rate fills.
        assert_eq!(decode(&corpus("v3_range_bucket")), Ok(27));
        assert_eq!(
            decode(&corpus("v3_bucket_too_far")),
            Err(E::Contradiction(C::BudgetBucket))
        );
    }
}
