//! Model-based property test: random sequences of calls against `Verifier` +
//! `MemoryStore` + `ManualClock` (and the same sequence against
//! `AsyncVerifier`, driven by a tiny executor), and against a small reference model written
//! here from the documented rules (the `Policy` table and the state table in
//! `otpflow::validation`). After every step the outcome, the status,
//! `attempts_left`, `sends_left` and every `retry_after` must agree.
//!
//! The model has delivery reports (a failed latest send gives back its
//! budgets and lifts its cooldown, once) and tenants (the same number and
//! purpose under two tenants are two independent subjects).
//!
//! `OTPFLOW_PROPTEST_CASES` sets the number of cases (default 4,000; use
//! 100,000 for a long run). Failing seeds are saved under
//! `proptest-regressions/` and committed.

use std::collections::{HashMap, HashSet};

use otpflow::Budgets;
use otpflow::budget::Rate;
use otpflow::budget_key::BudgetKind;
use otpflow::rand_core::SeedableRng;
use otpflow::{
    AsyncVerifier, Channel, Delivery, Engine, Error, KeyId, KeyRing, ManualClock, MemoryStore,
    PhoneNumber, PhonePolicy, Policy, Purpose, ResendMode, SecretKey, SendId, Sent, State, Status,
    SubjectKey, Tenant, Validated, Verifier,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rand_chacha::ChaCha20Rng;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// The policy knobs a case draws: small budgets, so that limits, lockouts
/// and expiry are all reached within a short sequence.
#[derive(Clone, Copy, Debug)]
struct Knobs {
    max_checks: u32,
    max_sends: u32,
    extra_subject_sends: u32,
    cooldown: i64,
    lifetime: i64,
    failure_cap: u32,
    failure_window: i64,
    lockout: i64,
    send_window: i64,
    new_code: bool,
    growth: u32,
    hard_cap: u32,
}

impl Knobs {
    fn policy(&self) -> Policy {
        Policy::builder()
            .max_checks(self.max_checks)
            .max_sends(self.max_sends)
            .subject_send_cap(self.max_sends + self.extra_subject_sends)
            .resend_cooldown(Duration::seconds(self.cooldown))
            .code_lifetime(Duration::seconds(self.lifetime))
            .failure_cap(self.failure_cap)
            .failure_window(Duration::seconds(self.failure_window))
            .lockout(Duration::seconds(self.lockout))
            .subject_send_window(Duration::seconds(self.send_window))
            .lockout_growth(self.growth)
            .failure_hard_cap(self.hard_cap)
            .resend_mode(if self.new_code {
                ResendMode::NewCode
            } else {
                ResendMode::SameCode
            })
            .budget_rate(
                BudgetKind::Address,
                Rate::new(ADDRESS_RATE.0, Duration::seconds(ADDRESS_RATE.1)).ok(),
            )
            .budget_rate(
                BudgetKind::Range,
                Rate::new(RANGE_RATE.0, Duration::seconds(RANGE_RATE.1)).ok(),
            )
            .build()
            .expect("the knobs are in range")
    }
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        (
            1u32..=4,
            1u32..=4,
            0u32..=3,
            prop_oneof![Just(0i64), Just(30), Just(45)],
        ),
        (prop_oneof![Just(60i64), Just(300)], 1u32..=8),
        (
            prop_oneof![Just(600i64), Just(3600)],
            prop_oneof![Just(120i64), Just(900)],
        ),
        (prop_oneof![Just(600i64), Just(3600)], any::<bool>()),
        (1u32..=3, 0u32..=12),
    )
        .prop_map(
            |(
                (max_checks, max_sends, extra_subject_sends, cooldown),
                (lifetime, failure_cap),
                (failure_window, lockout),
                (send_window, new_code),
                (growth, extra_hard_cap),
            )| Knobs {
                max_checks,
                max_sends,
                extra_subject_sends,
                cooldown,
                lifetime,
                failure_cap,
                failure_window,
                lockout,
                send_window,
                new_code,
                growth,
                hard_cap: 1 + extra_hard_cap * 2,
            },
        )
}

/// Subjects: 0 and 1 share a phone with different purposes, 2 is another
/// phone, 3 and 4 are subject 0 (same phone, same purpose) under two
/// tenants.
const SUBJECTS: usize = 5;

/// Which send a delivery report names.
#[derive(Clone, Copy, Debug)]
enum Report {
    /// The subject's latest send, failed.
    LatestFailed,
    /// The send before the latest, failed.
    EarlierFailed,
    /// The latest send number under the previous validation's number, failed.
    OtherValidationFailed,
    /// The latest send, delivered.
    LatestDelivered,
}

#[derive(Clone, Debug)]
enum Op {
    Start(usize, Channel),
    Resend(usize),
    VerifyRight(usize),
    /// The latest code with one digit changed (position, amount 1–9).
    VerifyWrong(usize, usize, u8),
    /// Subject `.0` checked with subject `.1`'s latest code.
    VerifyOther(usize, usize),
    VerifyMalformed(usize, &'static str),
    Cancel(usize),
    Unlock(usize),
    Report(usize, Report),
    Advance(i64),
    RotateKey,
    RemoveOldestKey,
    /// `start_within` from client `.2` (0 or 1), naming its address and
    /// the number's range.
    StartWithin(usize, Channel, u8),
}

/// The budget keys' rates in the model's policy: (burst, interval in s).
const ADDRESS_RATE: (u32, i64) = (2, 100);
const RANGE_RATE: (u32, i64) = (3, 200);

/// What client `c` names.
fn client_budgets(c: u8) -> Budgets {
    Budgets::new()
        .address(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            203, 0, 113, c,
        )))
        .range()
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..SUBJECTS;
    let channel = prop_oneof![
        Just(Channel::Sms),
        Just(Channel::Whatsapp),
        Just(Channel::Voice)
    ];
    prop_oneof![
        4 => (s.clone(), channel).prop_map(|(s, c)| Op::Start(s, c)),
        2 => s.clone().prop_map(Op::Resend),
        3 => s.clone().prop_map(Op::VerifyRight),
        5 => (s.clone(), 0usize..6, 1u8..=9).prop_map(|(s, p, d)| Op::VerifyWrong(s, p, d)),
        1 => (s.clone(), s.clone()).prop_map(|(s, t)| Op::VerifyOther(s, t)),
        1 => (s.clone(), prop_oneof![Just("12a456"), Just("12345"), Just("1234567"), Just(""), Just("12.456")])
            .prop_map(|(s, m)| Op::VerifyMalformed(s, m)),
        1 => s.clone().prop_map(Op::Cancel),
        1 => s.clone().prop_map(Op::Unlock),
        2 => (s.clone(), prop_oneof![
            4 => Just(Report::LatestFailed),
            1 => Just(Report::EarlierFailed),
            1 => Just(Report::OtherValidationFailed),
            1 => Just(Report::LatestDelivered),
        ]).prop_map(|(s, r)| Op::Report(s, r)),
        4 => prop_oneof![
            Just(1i64), Just(10), Just(29), Just(30), Just(31), Just(44), Just(45), Just(59),
            Just(60), Just(61), Just(119), Just(120), Just(299), Just(300), Just(600), Just(900),
            Just(3600), 0i64..4000
        ]
        .prop_map(Op::Advance),
        1 => Just(Op::RotateKey),
        1 => Just(Op::RemoveOldestKey),
        3 => (s.clone(), Just(Channel::Sms), 0u8..2).prop_map(|(s, c, a)| Op::StartWithin(s, c, a)),
    ]
}

// ---------------------------------------------------------------------------
// The reference model. Time is whole seconds since T0.

/// The subject's send bucket (GCRA), from the `Policy` docs: a burst of
/// max(⌈cap/2⌉, max_sends) (at most cap), then one every
/// ⌈window / (cap − burst + 1)⌉ seconds.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    tat: Option<i64>,
}

impl Bucket {
    fn shape(k: &Knobs) -> (i64, i64) {
        let cap = i64::from(k.max_sends + k.extra_subject_sends);
        let burst = ((cap + 1) / 2).max(i64::from(k.max_sends)).min(cap);
        let steps = cap - burst + 1;
        (burst, (k.send_window + steps - 1) / steps)
    }
    fn ready(&self, k: &Knobs) -> Option<i64> {
        let (burst, t) = Self::shape(k);
        self.tat.map(|tat| tat - (burst - 1) * t)
    }
    fn allows(&self, now: i64, k: &Knobs) -> bool {
        self.ready(k).is_none_or(|r| now >= r)
    }
    fn left(&self, now: i64, k: &Knobs) -> u32 {
        let (burst, t) = Self::shape(k);
        let used = match self.tat {
            Some(tat) if tat > now => (tat - now + t - 1) / t,
            _ => 0,
        };
        u32::try_from((burst - used).max(0)).expect("small")
    }
    fn spend(&mut self, now: i64, k: &Knobs) {
        let (_, t) = Self::shape(k);
        self.tat = Some(self.tat.map_or(now, |tat| tat.max(now)) + t);
    }
    /// Gives one send back: a TAT at or before `now` is a full bucket.
    fn refund(&mut self, now: i64, k: &Knobs) {
        let (_, t) = Self::shape(k);
        self.tat = self.tat.map(|tat| tat - t).filter(|&tat| tat > now);
    }
}

#[derive(Clone, Debug)]
struct Validation {
    state: State,
    channel: Channel,
    key: u32,
    code: String,
    expires_at: i64,
    last_sent_at: i64,
    checks: u32,
    sends: u32,
}

#[derive(Clone, Debug, Default)]
struct Subject {
    generation: u32,
    current: Option<Validation>,
    /// Consecutive failures, and when the last happened.
    failures: u32,
    last_failure: Option<i64>,
    sends: Bucket,
    locked_until: Option<i64>,
    /// The subject's latest send number (every counted send, across its
    /// validations), and whether that send was reported failed.
    send_seq: u32,
    last_failed: bool,
}

/// What the model expects of a call.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// A send: generation, resent, new_code, sends_left, expires_at,
    /// channel, the send's number.
    Sent(u32, bool, bool, u32, i64, Channel, u32),
    /// A delivery report: whether it gave budgets back.
    Reported(bool),
    Validated(u32),
    Canceled,
    Refused(Refusal),
}

/// The errors, with `retry_after` in seconds.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    NotFound,
    Malformed,
    Mismatch(u32),
    Expired,
    Canceled,
    AlreadyValidated,
    AttemptsExhausted,
    Locked(i64),
    Blocked,
    ResendTooSoon(i64),
    SendLimit(i64),
    ResendsSpent(i64),
    /// A budget key: its kind and `retry_after`.
    Budget(&'static str, i64),
}

/// A budget key's bucket (GCRA), from `otpflow::budget::Rate`'s docs.
#[derive(Clone, Copy, Debug, Default)]
struct KeyBucket {
    tat: Option<i64>,
}

impl KeyBucket {
    fn ready(&self, (burst, t): (u32, i64)) -> Option<i64> {
        self.tat.map(|tat| tat - (i64::from(burst) - 1) * t)
    }
    fn spend(&mut self, now: i64, (_, t): (u32, i64)) {
        self.tat = Some(self.tat.map_or(now, |tat| tat.max(now)) + t);
    }
}

struct Model {
    k: Knobs,
    subjects: Vec<Subject>,
    /// Keys in the ring: the current one last.
    keys: Vec<u32>,
    /// Budget keys' buckets: ("address", client, tenant) and ("range",
    /// number, tenant).
    buckets: HashMap<(&'static str, usize, usize), KeyBucket>,
}

impl Model {
    /// Failures that count at `now`: all, unless `failure_window` passed
    /// since the last one and the subject is not blocked.
    fn failures_at(&self, s: usize, now: i64) -> u32 {
        let sub = &self.subjects[s];
        if sub.failures >= self.k.hard_cap {
            return sub.failures;
        }
        match sub.last_failure {
            Some(last) if now < last + self.k.failure_window => sub.failures,
            _ => 0,
        }
    }

    fn lockout(&self, nth: u32) -> i64 {
        let max = 7 * 24 * 3600;
        let mut d = self.k.lockout;
        for _ in 1..nth {
            if d >= max {
                break;
            }
            d *= i64::from(self.k.growth);
        }
        d.min(max)
    }

    /// Blocked, or in a lockout: `Locked` names when `start` succeeds.
    fn locked(&self, s: usize, now: i64) -> Option<Refusal> {
        let sub = &self.subjects[s];
        if sub.failures >= self.k.hard_cap {
            return Some(Refusal::Blocked);
        }
        sub.locked_until.filter(|&until| now < until).map(|until| {
            let at = sub.sends.ready(&self.k).map_or(until, |r| r.max(until));
            Refusal::Locked(at - now)
        })
    }

    /// `None` when the validation is live; else the refusal for its state
    /// (marking a timed-out `Sent` as `Expired`).
    fn settle(&mut self, s: usize, now: i64) -> Option<Refusal> {
        let v = self.subjects[s].current.as_mut()?;
        match v.state {
            State::Sent if now < v.expires_at => None,
            State::Sent => {
                v.state = State::Expired;
                Some(Refusal::Expired)
            }
            State::Validated => Some(Refusal::AlreadyValidated),
            State::Expired => Some(Refusal::Expired),
            State::Locked => Some(Refusal::AttemptsExhausted),
            State::Canceled => Some(Refusal::Canceled),
        }
    }

    fn is_live(&self, s: usize, now: i64) -> bool {
        self.subjects[s]
            .current
            .as_ref()
            .is_some_and(|v| v.state == State::Sent && now < v.expires_at)
    }

    fn sends_left(&self, s: usize, now: i64) -> u32 {
        let sub = &self.subjects[s];
        let v = sub.current.as_ref().expect("a validation");
        let bucket = sub.sends.left(now, &self.k);
        self.k.max_sends.saturating_sub(v.sends).min(bucket)
    }

    fn bucket_empty(&self, s: usize, now: i64) -> Option<Refusal> {
        let sends = self.subjects[s].sends;
        (!sends.allows(now, &self.k))
            .then(|| Refusal::SendLimit(sends.ready(&self.k).expect("a send") - now))
    }

    fn resend_at(&self, s: usize) -> i64 {
        let sub = &self.subjects[s];
        let v = sub.current.as_ref().expect("a validation");
        // A send reported failed starts no cooldown.
        let cooldown_end = if sub.last_failed {
            v.last_sent_at
        } else {
            v.last_sent_at + self.k.cooldown
        };
        sub.sends
            .ready(&self.k)
            .map_or(cooldown_end, |r| r.max(cooldown_end))
    }

    /// `start`: the code comes from the implementation (`code`), as the
    /// model derives none; `None` if the implementation refused.
    fn start(&mut self, s: usize, channel: Channel, now: i64, code: Option<&str>) -> Expect {
        if let Some(r) = self.locked(s, now) {
            return Expect::Refused(r);
        }
        if self.is_live(s, now) {
            return self.resend_live(s, Some(channel), now, code, true);
        }
        if let Some(r) = self.bucket_empty(s, now) {
            return Expect::Refused(r);
        }
        let k = self.k;
        let key = *self.keys.last().expect("a current key");
        let sub = &mut self.subjects[s];
        if let Some(v) = sub.current.as_mut().filter(|v| v.state == State::Sent) {
            v.state = State::Expired;
        }
        sub.generation += 1;
        sub.current = Some(Validation {
            state: State::Sent,
            channel,
            key,
            code: code.unwrap_or_default().to_owned(),
            expires_at: now + k.lifetime,
            last_sent_at: now,
            checks: 0,
            sends: 1,
        });
        sub.sends.spend(now, &k);
        sub.send_seq += 1;
        sub.last_failed = false;
        let (generation, seq) = (sub.generation, sub.send_seq);
        Expect::Sent(
            generation,
            false,
            true,
            self.sends_left(s, now),
            now + k.lifetime,
            channel,
            seq,
        )
    }

    /// `start_within`: the subject decides first (its refusals stand, and
    /// spend nothing); a send then needs room in every named key, and is
    /// refused by the one that allows a send last (the first such in
    /// spending order: address, then range), with nothing written.
    fn start_within(
        &mut self,
        s: usize,
        channel: Channel,
        client: u8,
        now: i64,
        code: Option<&str>,
    ) -> Expect {
        let before = self.subjects[s].clone();
        let expect = self.start(s, channel, now, code);
        if !matches!(expect, Expect::Sent(..)) {
            return expect;
        }
        // Subjects 0, 1 share a number (one range), 2 has another; 3 and
        // 4 are subject 0's number in two tenants, whose keys are theirs.
        let tenant = s.saturating_sub(2);
        let keys = [
            (("address", usize::from(client), tenant), ADDRESS_RATE),
            (("range", usize::from(s == 2), tenant), RANGE_RATE),
        ];
        let mut worst: Option<(&'static str, i64)> = None;
        for (key, rate) in keys {
            let ready = self
                .buckets
                .get(&key)
                .copied()
                .unwrap_or_default()
                .ready(rate);
            if let Some(r) = ready.filter(|&r| now < r)
                && worst.is_none_or(|(_, w)| w < r - now)
            {
                worst = Some((key.0, r - now));
            }
        }
        if let Some((kind, wait)) = worst {
            self.subjects[s] = before;
            return Expect::Refused(Refusal::Budget(kind, wait));
        }
        for (key, rate) in keys {
            self.buckets.entry(key).or_default().spend(now, rate);
        }
        expect
    }

    fn resend(&mut self, s: usize, now: i64, code: Option<&str>) -> Expect {
        if self.subjects[s].current.is_none() {
            return Expect::Refused(Refusal::NotFound);
        }
        if let Some(r) = self.locked(s, now) {
            return Expect::Refused(r);
        }
        if let Some(r) = self.settle(s, now) {
            return Expect::Refused(r);
        }
        self.resend_live(s, None, now, code, false)
    }

    fn resend_live(
        &mut self,
        s: usize,
        channel: Option<Channel>,
        now: i64,
        code: Option<&str>,
        via_start: bool,
    ) -> Expect {
        let k = self.k;
        let sub = &self.subjects[s];
        let v = sub.current.as_ref().expect("live");
        let rate_ready = sub.sends.ready(&k).filter(|&r| now < r);
        let cooldown_end =
            Some(v.last_sent_at + k.cooldown).filter(|&c| now < c && !sub.last_failed);
        let earliest = match (cooldown_end, rate_ready) {
            (Some(c), Some(r)) => Some(c.max(r)),
            (c, r) => c.or(r),
        };
        if v.sends >= k.max_sends || earliest.is_some_and(|e| e >= v.expires_at) {
            let start_at = rate_ready.map_or(v.expires_at, |r| r.max(v.expires_at));
            return Expect::Refused(if via_start {
                Refusal::SendLimit(start_at - now)
            } else {
                Refusal::ResendsSpent(start_at - now)
            });
        }
        if let Some(e) = earliest {
            return Expect::Refused(if cooldown_end == Some(e) {
                Refusal::ResendTooSoon(e - now)
            } else {
                Refusal::SendLimit(e - now)
            });
        }
        let key_kept = self.keys.contains(&v.key);
        let current_key = *self.keys.last().expect("a current key");
        let sub = &mut self.subjects[s];
        let v = sub.current.as_mut().expect("live");
        let new_code = k.new_code || !key_kept;
        if new_code {
            v.key = current_key;
            v.code = code.unwrap_or_default().to_owned();
            v.checks = 0;
            v.expires_at = now + k.lifetime;
        }
        v.channel = channel.unwrap_or(v.channel);
        v.sends += 1;
        v.last_sent_at = now;
        let (expires_at, channel) = (v.expires_at, v.channel);
        sub.sends.spend(now, &k);
        sub.send_seq += 1;
        sub.last_failed = false;
        let (generation, seq) = (sub.generation, sub.send_seq);
        Expect::Sent(
            generation,
            true,
            new_code,
            self.sends_left(s, now),
            expires_at,
            channel,
            seq,
        )
    }

    fn verify(&mut self, s: usize, input: &str, now: i64) -> Expect {
        let digits: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Expect::Refused(Refusal::Malformed);
        }
        if self.subjects[s].current.is_none() {
            return Expect::Refused(Refusal::NotFound);
        }
        if let Some(r) = self.locked(s, now).or_else(|| self.settle(s, now)) {
            return Expect::Refused(r);
        }
        let k = self.k;
        let key_kept = self.subjects[s]
            .current
            .as_ref()
            .is_some_and(|v| self.keys.contains(&v.key));
        let sub = &mut self.subjects[s];
        let generation = sub.generation;
        let v = sub.current.as_mut().expect("live");
        if !key_kept {
            v.state = State::Expired;
            return Expect::Refused(Refusal::Expired);
        }
        v.checks += 1;
        if v.code == digits {
            v.state = State::Validated;
            sub.failures = 0;
            sub.last_failure = None;
            sub.locked_until = None;
            return Expect::Validated(generation);
        }
        let attempts_left = k.max_checks.saturating_sub(v.checks);
        let failures = self.failures_at(s, now) + 1;
        let lock = self.lockout(failures / k.failure_cap);
        let sub = &mut self.subjects[s];
        let v = sub.current.as_mut().expect("live");
        sub.failures = failures;
        sub.last_failure = Some(now);
        if failures >= k.hard_cap {
            sub.locked_until = None;
            v.state = State::Locked;
            Expect::Refused(Refusal::Blocked)
        } else if failures.is_multiple_of(k.failure_cap) {
            let until = now + lock;
            sub.locked_until = Some(until);
            v.state = State::Locked;
            let at = sub.sends.ready(&k).map_or(until, |r| r.max(until));
            Expect::Refused(Refusal::Locked(at - now))
        } else if attempts_left == 0 {
            v.state = State::Locked;
            Expect::Refused(Refusal::AttemptsExhausted)
        } else {
            Expect::Refused(Refusal::Mismatch(attempts_left))
        }
    }

    /// The send a report names: (validation number, send number).
    fn reported_send(&self, s: usize, which: Report) -> (u32, u32) {
        let sub = &self.subjects[s];
        match which {
            Report::LatestFailed | Report::LatestDelivered => (sub.generation, sub.send_seq),
            Report::EarlierFailed => (sub.generation, sub.send_seq.saturating_sub(1)),
            Report::OtherValidationFailed => (sub.generation.saturating_sub(1), sub.send_seq),
        }
    }

    /// A delivery report: a failed latest send, not yet reported, of a
    /// validation not validated gives back its place in the validation's
    /// sends and the subject's bucket, and lifts its cooldown.
    fn report(&mut self, s: usize, which: Report, now: i64) -> Expect {
        let (generation, seq) = self.reported_send(s, which);
        let k = self.k;
        let sub = &mut self.subjects[s];
        let Some(v) = sub.current.as_mut() else {
            return Expect::Refused(Refusal::NotFound);
        };
        if let Report::LatestDelivered = which {
            return Expect::Reported(false);
        }
        let latest =
            generation == sub.generation && seq == sub.send_seq && seq > 0 && !sub.last_failed;
        if !latest || v.state == State::Validated {
            return Expect::Reported(false);
        }
        v.sends = v.sends.saturating_sub(1);
        sub.sends.refund(now, &k);
        sub.last_failed = true;
        Expect::Reported(true)
    }

    fn unlock(&mut self, s: usize) {
        let sub = &mut self.subjects[s];
        sub.failures = 0;
        sub.last_failure = None;
        sub.locked_until = None;
    }

    fn cancel(&mut self, s: usize, now: i64) -> Expect {
        let Some(v) = self.subjects[s].current.as_ref() else {
            return Expect::Refused(Refusal::NotFound);
        };
        if v.state == State::Canceled {
            return Expect::Canceled;
        }
        if let Some(r) = self.settle(s, now) {
            return Expect::Refused(r);
        }
        if let Some(v) = self.subjects[s].current.as_mut() {
            v.state = State::Canceled;
        }
        Expect::Canceled
    }
}

// ---------------------------------------------------------------------------
// The implementation's answers in the model's terms.

fn refusal(e: &Error) -> Refusal {
    let secs = |d: Duration| {
        assert_eq!(d.subsec_nanoseconds(), 0, "retry_after in whole seconds");
        d.whole_seconds()
    };
    match e {
        Error::NotFound => Refusal::NotFound,
        Error::MalformedCode => Refusal::Malformed,
        Error::CodeMismatch { attempts_left } => Refusal::Mismatch(*attempts_left),
        Error::Expired => Refusal::Expired,
        Error::Canceled => Refusal::Canceled,
        Error::AlreadyValidated => Refusal::AlreadyValidated,
        Error::AttemptsExhausted => Refusal::AttemptsExhausted,
        Error::Locked { retry_after } => Refusal::Locked(secs(*retry_after)),
        Error::Blocked => Refusal::Blocked,
        Error::ResendTooSoon { retry_after } => Refusal::ResendTooSoon(secs(*retry_after)),
        Error::SendLimit { retry_after } => Refusal::SendLimit(secs(*retry_after)),
        Error::ResendsSpent { start_after } => Refusal::ResendsSpent(secs(*start_after)),
        Error::BudgetSpent {
            budget,
            retry_after,
        } => Refusal::Budget(budget.as_str(), secs(*retry_after)),
        other => panic!("unexpected error {other:?}"),
    }
}

const T0: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

fn subject_keys() -> Vec<SubjectKey> {
    let policy = PhonePolicy::default();
    let a = PhoneNumber::parse("+447401101801", &policy).expect("a UK mobile");
    let b = PhoneNumber::parse("07911 123456", &policy).expect("a UK mobile");
    let tenant = |name: &str| Tenant::new(name).expect("a valid tenant");
    vec![
        SubjectKey::new(Purpose::Login, a),
        SubjectKey::new(Purpose::Onboarding, a),
        SubjectKey::new(Purpose::Login, b),
        SubjectKey::new(Purpose::Login, a).with_tenant(tenant("shop")),
        SubjectKey::new(Purpose::Login, a).with_tenant(tenant("bank")),
    ]
}

fn key(id: u32) -> SecretKey {
    let byte = u8::try_from(id % 251).expect("fits");
    SecretKey::new(KeyId(id), &[byte; 32]).expect("a valid key")
}

fn wrong_code(code: &str, position: usize, delta: u8) -> String {
    let mut bytes: Vec<u8> = code.bytes().collect();
    if bytes.len() != 6 {
        return "000000".to_owned();
    }
    bytes[position] = b'0' + (bytes[position] - b'0' + delta) % 10;
    String::from_utf8(bytes).expect("digits")
}

/// The two drivers, seen the same way: `Verifier`, and `AsyncVerifier`
/// with each call run to completion by `futures_executor::block_on`.
trait Driver {
    fn new(policy: Policy, keys: KeyRing, clock: ManualClock) -> Self;
    fn start(&self, s: &SubjectKey, c: Channel, rng: &mut ChaCha20Rng) -> Result<Sent, Error>;
    fn start_within(
        &self,
        b: &Budgets,
        s: &SubjectKey,
        c: Channel,
        rng: &mut ChaCha20Rng,
    ) -> Result<Sent, Error>;
    fn resend(
        &self,
        s: &SubjectKey,
        c: Option<Channel>,
        rng: &mut ChaCha20Rng,
    ) -> Result<Sent, Error>;
    fn verify(&self, s: &SubjectKey, code: &str) -> Result<Validated, Error>;
    fn cancel(&self, s: &SubjectKey) -> Result<(), Error>;
    fn unlock(&self, s: &SubjectKey) -> Result<(), Error>;
    fn report(&self, s: &SubjectKey, send: SendId, d: Delivery) -> Result<bool, Error>;
    fn status(&self, s: &SubjectKey) -> Result<Status, Error>;
    fn engine_mut(&mut self) -> &mut Engine;
}

type SyncDriver = Verifier<MemoryStore, ManualClock>;
struct AsyncDriver(AsyncVerifier<MemoryStore, ManualClock>);

impl Driver for SyncDriver {
    fn new(policy: Policy, keys: KeyRing, clock: ManualClock) -> Self {
        Verifier::new(policy, keys, MemoryStore::new(), clock)
    }
    fn start(&self, s: &SubjectKey, c: Channel, rng: &mut ChaCha20Rng) -> Result<Sent, Error> {
        Verifier::start(self, s, c, rng)
    }
    fn start_within(
        &self,
        b: &Budgets,
        s: &SubjectKey,
        c: Channel,
        rng: &mut ChaCha20Rng,
    ) -> Result<Sent, Error> {
        Verifier::start_within(self, b, s, c, rng)
    }
    fn resend(
        &self,
        s: &SubjectKey,
        c: Option<Channel>,
        rng: &mut ChaCha20Rng,
    ) -> Result<Sent, Error> {
        Verifier::resend(self, s, c, rng)
    }
    fn verify(&self, s: &SubjectKey, code: &str) -> Result<Validated, Error> {
        Verifier::verify(self, s, code)
    }
    fn cancel(&self, s: &SubjectKey) -> Result<(), Error> {
        Verifier::cancel(self, s)
    }
    fn unlock(&self, s: &SubjectKey) -> Result<(), Error> {
        Verifier::unlock(self, s)
    }
    fn report(&self, s: &SubjectKey, send: SendId, d: Delivery) -> Result<bool, Error> {
        Verifier::report_delivery(self, s, send, d)
    }
    fn status(&self, s: &SubjectKey) -> Result<Status, Error> {
        Verifier::status(self, s)
    }
    fn engine_mut(&mut self) -> &mut Engine {
        Verifier::engine_mut(self)
    }
}

impl Driver for AsyncDriver {
    fn new(policy: Policy, keys: KeyRing, clock: ManualClock) -> Self {
        AsyncDriver(AsyncVerifier::new(policy, keys, MemoryStore::new(), clock))
    }
    fn start(&self, s: &SubjectKey, c: Channel, rng: &mut ChaCha20Rng) -> Result<Sent, Error> {
        futures_executor::block_on(self.0.start(s, c, rng))
    }
    fn start_within(
        &self,
        b: &Budgets,
        s: &SubjectKey,
        c: Channel,
        rng: &mut ChaCha20Rng,
    ) -> Result<Sent, Error> {
        futures_executor::block_on(self.0.start_within(b, s, c, rng))
    }
    fn resend(
        &self,
        s: &SubjectKey,
        c: Option<Channel>,
        rng: &mut ChaCha20Rng,
    ) -> Result<Sent, Error> {
        futures_executor::block_on(self.0.resend(s, c, rng))
    }
    fn verify(&self, s: &SubjectKey, code: &str) -> Result<Validated, Error> {
        futures_executor::block_on(self.0.verify(s, code))
    }
    fn cancel(&self, s: &SubjectKey) -> Result<(), Error> {
        futures_executor::block_on(self.0.cancel(s))
    }
    fn unlock(&self, s: &SubjectKey) -> Result<(), Error> {
        futures_executor::block_on(self.0.unlock(s))
    }
    fn report(&self, s: &SubjectKey, send: SendId, d: Delivery) -> Result<bool, Error> {
        futures_executor::block_on(self.0.report_delivery(s, send, d))
    }
    fn status(&self, s: &SubjectKey) -> Result<Status, Error> {
        futures_executor::block_on(self.0.status(s))
    }
    fn engine_mut(&mut self) -> &mut Engine {
        self.0.engine_mut()
    }
}

/// The case against both drivers.
fn run(k: Knobs, ops: &[Op]) -> Result<(), TestCaseError> {
    run_on::<SyncDriver>(k, ops)?;
    run_on::<AsyncDriver>(k, ops)
}

fn run_on<D: Driver>(k: Knobs, ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(T0);
    let mut verifier = D::new(k.policy(), KeyRing::new(key(1)), clock.clone());
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    let subjects = subject_keys();
    let mut model = Model {
        k,
        subjects: vec![Subject::default(); SUBJECTS],
        keys: vec![1],
        buckets: HashMap::new(),
    };
    let mut now = 0i64;
    let mut next_key = 2u32;
    // Invariants checked on the implementation alone.
    let mut validated: HashSet<(usize, u32)> = HashSet::new();
    let mut mismatches: HashMap<(usize, u32, String), u32> = HashMap::new();

    for (step, op) in ops.iter().enumerate() {
        let at = format!("step {step}: {op:?}");
        match op {
            Op::Advance(secs) => {
                now += secs;
                clock.advance(Duration::seconds(*secs));
            }
            Op::RotateKey => {
                verifier
                    .engine_mut()
                    .keys_mut()
                    .rotate(key(next_key))
                    .expect("a fresh id");
                model.keys.push(next_key);
                next_key += 1;
            }
            Op::RemoveOldestKey => {
                if model.keys.len() > 1 {
                    let oldest = model.keys.remove(0);
                    verifier
                        .engine_mut()
                        .keys_mut()
                        .remove(KeyId(oldest))
                        .expect("a retired key");
                }
            }
            Op::Start(s, channel) => {
                let got = verifier.start(&subjects[*s], *channel, &mut rng);
                let code = got.as_ref().ok().map(|sent| sent.code.as_str().to_owned());
                let expect = model.start(*s, *channel, now, code.as_deref());
                prop_assert_eq!(sent_or_refusal(&got, T0), expect, "{}", at);
                if let Ok(sent) = &got
                    && !sent.new_code
                {
                    let v = model.subjects[*s].current.as_ref().expect("live");
                    prop_assert_eq!(
                        sent.code.as_str(),
                        v.code.as_str(),
                        "same code resent: {}",
                        at
                    );
                }
            }
            Op::StartWithin(s, channel, client) => {
                let budgets = client_budgets(*client);
                let got = verifier.start_within(&budgets, &subjects[*s], *channel, &mut rng);
                let code = got.as_ref().ok().map(|sent| sent.code.as_str().to_owned());
                let expect = model.start_within(*s, *channel, *client, now, code.as_deref());
                prop_assert_eq!(sent_or_refusal(&got, T0), expect, "{}", at);
            }
            Op::Resend(s) => {
                let got = verifier.resend(&subjects[*s], None, &mut rng);
                let code = got.as_ref().ok().map(|sent| sent.code.as_str().to_owned());
                let expect = model.resend(*s, now, code.as_deref());
                prop_assert_eq!(sent_or_refusal(&got, T0), expect, "{}", at);
                if let Ok(sent) = &got {
                    let v = model.subjects[*s].current.as_ref().expect("live");
                    prop_assert_eq!(sent.code.as_str(), v.code.as_str(), "{}", at);
                }
            }
            Op::VerifyRight(s)
            | Op::VerifyWrong(s, ..)
            | Op::VerifyOther(s, _)
            | Op::VerifyMalformed(s, _) => {
                let latest = |m: &Model, i: usize| latest_code(m, i);
                let input = match op {
                    Op::VerifyRight(_) => latest(&model, *s),
                    Op::VerifyWrong(_, position, delta) => {
                        wrong_code(&latest(&model, *s), *position, *delta)
                    }
                    Op::VerifyOther(_, t) => latest(&model, *t),
                    Op::VerifyMalformed(_, m) => (*m).to_owned(),
                    _ => unreachable!(),
                };
                if let Op::VerifyWrong(..) = op {
                    prop_assert_ne!(&input, &latest(&model, *s), "the wrong code is wrong");
                }
                let generation = model.subjects[*s].generation;
                let got = verifier.verify(&subjects[*s], &input);
                let expect = model.verify(*s, &input, now);
                let got_view = match &got {
                    Ok(v) => Expect::Validated(v.generation),
                    Err(e) => Expect::Refused(refusal(e)),
                };
                prop_assert_eq!(&got_view, &expect, "{}", at);
                // At most one success per validation, ever.
                if got.is_ok() {
                    prop_assert!(
                        validated.insert((*s, generation)),
                        "validated twice: {}",
                        at
                    );
                }
                // A code answers "mismatch" fewer times than its check
                // budget: the last allowed failure ends the validation.
                if let Expect::Refused(Refusal::Mismatch(_)) = got_view {
                    let n = mismatches
                        .entry((*s, generation, latest(&model, *s)))
                        .or_default();
                    *n += 1;
                    prop_assert!(*n < k.max_checks, "over budget: {}", at);
                }
            }
            Op::Unlock(s) => {
                verifier
                    .unlock(&subjects[*s])
                    .expect("unlock never fails here");
                model.unlock(*s);
            }
            Op::Report(s, which) => {
                let (generation, seq) = model.reported_send(*s, *which);
                let delivery = match which {
                    Report::LatestDelivered => Delivery::Delivered,
                    _ => Delivery::Failed,
                };
                let got = verifier.report(&subjects[*s], SendId::new(generation, seq), delivery);
                let expect = model.report(*s, *which, now);
                let got_view = match &got {
                    Ok(refunded) => Expect::Reported(*refunded),
                    Err(e) => Expect::Refused(refusal(e)),
                };
                prop_assert_eq!(got_view, expect, "{}", at);
            }
            Op::Cancel(s) => {
                let got = verifier.cancel(&subjects[*s]);
                let expect = model.cancel(*s, now);
                let got_view = match &got {
                    Ok(()) => Expect::Canceled,
                    Err(e) => Expect::Refused(refusal(e)),
                };
                prop_assert_eq!(got_view, expect, "{}", at);
            }
        }
        // After every step, every subject's status agrees.
        for (s, subject) in subjects.iter().enumerate() {
            check_status(&verifier, &model, subject, s, now, &at)?;
        }
    }
    Ok(())
}

/// The code last sent to subject `i`, or a stand-in when it has none.
fn latest_code(model: &Model, i: usize) -> String {
    model.subjects[i]
        .current
        .as_ref()
        .map_or_else(|| "000000".to_owned(), |v| v.code.clone())
}

fn sent_or_refusal(got: &Result<otpflow::Sent, Error>, t0: OffsetDateTime) -> Expect {
    match got {
        Ok(sent) if sent.send.generation() != sent.generation => {
            panic!("a send names another validation: {sent:?}")
        }
        Ok(sent) => Expect::Sent(
            sent.generation,
            sent.resent,
            sent.new_code,
            sent.sends_left,
            (sent.expires_at - t0).whole_seconds(),
            sent.channel,
            sent.send.send(),
        ),
        Err(e) => Expect::Refused(refusal(e)),
    }
}

fn check_status(
    verifier: &impl Driver,
    model: &Model,
    subject: &SubjectKey,
    s: usize,
    now: i64,
    at: &str,
) -> Result<(), TestCaseError> {
    let got = verifier.status(subject);
    let sub = &model.subjects[s];
    let Some(v) = sub.current.as_ref() else {
        prop_assert!(
            matches!(got, Err(Error::NotFound)),
            "status of nothing: {at}: {got:?}"
        );
        return Ok(());
    };
    let status = got.map_err(|e| TestCaseError::fail(format!("status failed: {e}: {at}")))?;
    let live = v.state == State::Sent && now < v.expires_at;
    let state = if v.state == State::Sent && !live {
        State::Expired
    } else {
        v.state
    };
    prop_assert_eq!(status.state, state, "state: {}", at);
    prop_assert_eq!(status.generation, sub.generation, "generation: {}", at);
    prop_assert_eq!(status.channel, v.channel, "channel: {}", at);
    prop_assert_eq!(
        (status.expires_at - T0).whole_seconds(),
        v.expires_at,
        "expires_at: {}",
        at
    );
    let attempts_left = if live {
        model.k.max_checks.saturating_sub(v.checks)
    } else {
        0
    };
    prop_assert_eq!(status.attempts_left, attempts_left, "attempts_left: {}", at);
    let sends_left = if live { model.sends_left(s, now) } else { 0 };
    prop_assert_eq!(status.sends_left, sends_left, "sends_left: {}", at);
    let resend_at = model.resend_at(s);
    let resend_after = (live && now < resend_at).then(|| Duration::seconds(resend_at - now));
    prop_assert_eq!(status.resend_after, resend_after, "resend_after: {}", at);
    let k = &model.k;
    let blocked = sub.failures >= k.hard_cap;
    let n = model.failures_at(s, now);
    let failures_left = if blocked {
        0
    } else {
        (k.failure_cap - n % k.failure_cap).min(k.hard_cap.saturating_sub(n))
    };
    prop_assert_eq!(status.failures_left, failures_left, "failures_left: {}", at);
    prop_assert_eq!(status.blocked, blocked, "blocked: {}", at);
    let locked_until = sub
        .locked_until
        .filter(|&until| now < until)
        .map(|until| T0 + Duration::seconds(until));
    prop_assert_eq!(status.locked_until, locked_until, "locked_until: {}", at);
    Ok(())
}

fn cases() -> u32 {
    std::env::var("OTPFLOW_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_verifier_behaves_like_the_model(k in knobs(), ops in prop::collection::vec(op(), 1..80)) {
        run(k, &ops)?;
    }
}

/// A fixed sequence through lockout and its end, so the model is known to
/// reach the deep states without relying on the generator.
#[test]
fn a_scripted_run_reaches_lockout_and_back() {
    let k = Knobs {
        max_checks: 3,
        max_sends: 2,
        extra_subject_sends: 1,
        cooldown: 30,
        lifetime: 300,
        failure_cap: 4,
        failure_window: 3600,
        lockout: 900,
        send_window: 3600,
        new_code: false,
        growth: 2,
        hard_cap: 9,
    };
    let mut ops = vec![Op::Start(0, Channel::Sms)];
    ops.extend((0..3).map(|i| Op::VerifyWrong(0, i, 1)));
    ops.extend([
        Op::Advance(31),
        Op::Start(0, Channel::Sms),
        Op::VerifyWrong(0, 0, 2),
    ]);
    ops.extend([
        Op::Start(0, Channel::Sms),
        Op::Advance(899),
        Op::Start(0, Channel::Sms),
    ]);
    ops.extend([
        Op::Advance(1),
        Op::Start(0, Channel::Voice),
        Op::VerifyRight(0),
        Op::VerifyRight(0),
    ]);
    ops.extend([
        Op::RotateKey,
        Op::Start(2, Channel::Sms),
        Op::RotateKey,
        Op::RemoveOldestKey,
    ]);
    ops.extend([
        Op::RemoveOldestKey,
        Op::VerifyRight(2),
        Op::Cancel(2),
        Op::Cancel(2),
    ]);
    // A failed send given back once, then a resend at once (no cooldown);
    // the tenants' subjects stay apart from subject 0 and each other.
    ops.extend([
        Op::Start(3, Channel::Sms),
        Op::Report(3, Report::LatestFailed),
        Op::Report(3, Report::LatestFailed),
        Op::Resend(3),
        Op::Report(3, Report::EarlierFailed),
        Op::Report(3, Report::LatestDelivered),
        Op::VerifyOther(4, 3),
        Op::Start(4, Channel::Sms),
        Op::VerifyOther(4, 3),
        Op::VerifyOther(0, 4),
        Op::VerifyRight(3),
        Op::Report(3, Report::LatestFailed),
    ]);
    run(k, &ops).expect("the scripted run agrees with the model");
}

/// A fixed sequence through the budget keys: a client's address burst,
/// its refusal and `retry_after`, a range shared by two purposes, and
/// tenants kept apart.
#[test]
fn a_scripted_run_spends_and_refuses_budget_keys() {
    let k = Knobs {
        max_checks: 3,
        max_sends: 2,
        extra_subject_sends: 1,
        cooldown: 30,
        lifetime: 300,
        failure_cap: 4,
        failure_window: 3600,
        lockout: 900,
        send_window: 3600,
        new_code: false,
        growth: 2,
        hard_cap: 9,
    };
    let ops = vec![
        Op::StartWithin(0, Channel::Sms, 0),
        Op::StartWithin(2, Channel::Sms, 0),
        // The address burst (2) is spent: refused for 100 s.
        Op::StartWithin(1, Channel::Sms, 0),
        Op::StartWithin(1, Channel::Sms, 1),
        // Subjects 0 and 1 share a range: its third place goes to client 1.
        Op::Advance(31),
        Op::StartWithin(0, Channel::Sms, 1),
        // Tenants have their own keys.
        Op::StartWithin(3, Channel::Sms, 0),
        Op::StartWithin(4, Channel::Sms, 0),
        Op::Advance(69),
        Op::StartWithin(2, Channel::Sms, 0),
    ];
    run(k, &ops).expect("the scripted run agrees with the model");
}
