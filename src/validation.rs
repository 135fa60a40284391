//! The pure layer: the [`Engine`] and its transitions.
//!
//! Every transition is a function of (record, input, `now`, keys, policy) to
//! a [`Step`]: the record to write (if anything changed), the outcome, and
//! the [`Event`]s to act on once the write has succeeded. Nothing here reads
//! a clock, touches a store or draws randomness except from the
//! `&mut impl CryptoRng` it is handed, so a transition can be re-run on a
//! compare-and-swap conflict and async callers can drive it themselves.
//!
//! # Every (state, input) pair
//!
//! "Live" is [`State::Sent`] before `expires_at`; a `Sent` record at or past
//! `expires_at` counts as [`State::Expired`]. A subject in a lockout answers
//! [`Error::Locked`], and a blocked one [`Error::Blocked`], to `start`,
//! `resend` and `verify` whatever its validation's state.
//!
//! | state | `start` | `resend` | `verify` | `cancel` |
//! |---|---|---|---|---|
//! | none | new validation | `NotFound` | `NotFound` (after a dummy derivation) | `NotFound` |
//! | live | acts as `resend` | resend, or `ResendTooSoon` / `SendLimit` / `ResendsSpent` | check | → `Canceled` |
//! | expired | new validation | `Expired` | `Expired` | `Expired` |
//! | validated | new validation | `AlreadyValidated` | `AlreadyValidated` | `AlreadyValidated` |
//! | locked | new validation | `AttemptsExhausted` | `AttemptsExhausted` | `AttemptsExhausted` |
//! | canceled | new validation | `Canceled` | `Canceled` | `Ok` (no change) |
//!
//! A new validation needs room in the subject's send budget
//! ([`Error::SendLimit`] otherwise). A check spends an attempt before the
//! comparison; a wrong code also counts as one more consecutive failure of
//! the subject, which can lock or block it (see [`budget`](crate::budget)).
//! Neither a resend, a new validation nor a lockout resets that count; a
//! success does, and so does [`Engine::unlock`].
//!
//! # Time
//!
//! Every transition first normalizes `now` (to UTC, and into the range a
//! record can hold) and bounds the stored record against it and the policy
//! (`Record::bounded`: no code lives longer than its lifetime from `now`,
//! no lockout longer than the longest, nothing happened after `now`). A
//! refusal carries a `retry_after` at which the same call succeeds, or
//! names the call to make instead ([`Error::next_call`]).

use rand_core::CryptoRng;
use time::{Duration, OffsetDateTime};

use crate::budget::{Guesses, LastSend, Penalty};
use crate::budget_key::{BudgetKey, BudgetKind, Budgets, SpendTag};
use crate::code::{self, Code, CodeInput, Derivation, NONCE_LEN};
use crate::delivery::{Delivery, SendId};
use crate::error::Error;
use crate::events::Events;
use crate::keys::{KeyRef, KeyRing};
use crate::policy::{Policy, ResendMode};
use crate::record::{At, Record, Secs, State, Validation, later, until};
use crate::subject::{Channel, SubjectKey};

/// The result of one transition.
#[derive(Debug)]
#[must_use]
pub struct Step<T> {
    /// The record to compare-and-swap into the store; `None` when nothing
    /// changed. A refusal can still write: a wrong code spends an attempt.
    pub write: Option<Record>,
    /// What the caller asked for, or why not.
    pub outcome: Result<T, Error>,
    /// What happened, in order. Act on them (send the SMS, fire webhooks)
    /// only once `write` is stored. Held inline (no allocation): a slice
    /// of [`Event`]s, see [`Events`].
    pub events: Events,
}

impl<T> Step<T> {
    fn refuse(error: Error) -> Self {
        Self {
            write: None,
            outcome: Err(error),
            events: Events::new(),
        }
    }
}

/// What happened in a transition, for message senders, webhooks and audit
/// logs. Only [`Event::Sent`] and [`Event::Resent`] carry a secret (the code).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new validation: deliver `code` to the subject's phone over `channel`.
    Sent {
        /// Who.
        subject: SubjectKey,
        /// The code to deliver (its `Debug` is redacted).
        code: Code,
        /// How.
        channel: Channel,
        /// The validation's number for this subject.
        generation: u32,
        /// When the code stops working.
        expires_at: OffsetDateTime,
        /// This send, for a delivery report.
        send: SendId,
        /// A test number's send: do NOT hand it to a provider.
        suppressed: bool,
    },
    /// A resend of the current validation: deliver `code` again.
    Resent {
        /// Who.
        subject: SubjectKey,
        /// The code to deliver: the same one, or a new one by policy.
        code: Code,
        /// How.
        channel: Channel,
        /// The validation's number for this subject.
        generation: u32,
        /// When the code stops working.
        expires_at: OffsetDateTime,
        /// True when the code is new and earlier ones stopped working.
        new_code: bool,
        /// This send, for a delivery report.
        send: SendId,
        /// A test number's send: do NOT hand it to a provider.
        suppressed: bool,
    },
    /// A wrong code was checked.
    CheckFailed {
        /// Who.
        subject: SubjectKey,
        /// The validation's number.
        generation: u32,
        /// Checks left on this code.
        attempts_left: u32,
    },
    /// The right code was checked; the validation succeeded.
    Validated {
        /// Who.
        subject: SubjectKey,
        /// The validation's number.
        generation: u32,
    },
    /// The validation's code expired (seen at the first call after it did).
    Expired {
        /// Who.
        subject: SubjectKey,
        /// The validation's number.
        generation: u32,
    },
    /// The validation was locked: its checks are spent (`until` is `None`),
    /// or the subject reached its failure cap and is locked `until`.
    Locked {
        /// Who.
        subject: SubjectKey,
        /// The validation's number.
        generation: u32,
        /// The end of the subject's lockout, if the subject is locked.
        until: Option<OffsetDateTime>,
    },
    /// The validation was canceled.
    Canceled {
        /// Who.
        subject: SubjectKey,
        /// The validation's number.
        generation: u32,
    },
    /// The subject reached its hard cap of consecutive failures: it is
    /// blocked until [`Engine::unlock`]. Alert someone.
    Blocked {
        /// Who.
        subject: SubjectKey,
        /// The validation the last failure ended.
        generation: u32,
        /// Its consecutive failures.
        failures: u32,
    },
    /// An operator unlocked the subject ([`Engine::unlock`]).
    Unlocked {
        /// Who.
        subject: SubjectKey,
        /// The consecutive failures that were cleared.
        failures: u32,
    },
    /// The provider reported that a send was not delivered
    /// ([`Engine::report_delivery`]). Many in a row are an outage: alert.
    DeliveryFailed {
        /// Who.
        subject: SubjectKey,
        /// The send reported.
        send: SendId,
        /// True when its budgets were given back (it was the subject's
        /// latest send, not reported before, of a validation not
        /// validated); false when the report changed nothing.
        refunded: bool,
    },
    /// A test number ([`Policy::test_numbers`](crate::Policy::test_numbers))
    /// was used: a send (suppressed) or a check. Alert on it in production.
    TestNumberUsed {
        /// Who.
        subject: SubjectKey,
        /// The validation's number.
        generation: u32,
    },
    /// The provider reported that a send was delivered.
    Delivered {
        /// Who.
        subject: SubjectKey,
        /// The send reported.
        send: SendId,
    },
    /// A send was refused because a budget key named on it had no room
    /// (see [`budget_key`](crate::budget_key)): many in a row from one
    /// range or country are a pumping attempt. Nothing was written.
    BudgetRefused {
        /// Who the send was for.
        subject: SubjectKey,
        /// The kind of key that refused (never its address or range).
        budget: BudgetKind,
        /// When every named key allows a send.
        retry_after: Duration,
    },
}

/// One line for a log, with the number masked (as in every `Debug` and
/// `Display` of a [`SubjectKey`]) and no code: `sent login:+44 7401 ••• 801
/// #1 by sms`.
impl core::fmt::Display for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Sent {
                subject,
                channel,
                generation,
                ..
            } => write!(f, "sent {subject} #{generation} by {channel}"),
            Self::Resent {
                subject,
                channel,
                generation,
                new_code,
                ..
            } => {
                let which = if *new_code { "a new code" } else { "the code" };
                write!(f, "resent {which} {subject} #{generation} by {channel}")
            }
            Self::CheckFailed {
                subject,
                generation,
                attempts_left,
            } => write!(
                f,
                "wrong code {subject} #{generation}, {attempts_left} attempts left"
            ),
            Self::Validated {
                subject,
                generation,
            } => write!(f, "validated {subject} #{generation}"),
            Self::Expired {
                subject,
                generation,
            } => write!(f, "expired {subject} #{generation}"),
            Self::Locked {
                subject,
                generation,
                until: Some(until),
            } => write!(f, "locked {subject} #{generation} until {until}"),
            Self::Locked {
                subject,
                generation,
                until: None,
            } => write!(f, "checks spent {subject} #{generation}"),
            Self::Canceled {
                subject,
                generation,
            } => write!(f, "canceled {subject} #{generation}"),
            Self::Blocked {
                subject,
                generation,
                failures,
            } => write!(
                f,
                "blocked {subject} #{generation} after {failures} failures"
            ),
            Self::Unlocked { subject, failures } => {
                write!(f, "unlocked {subject}, {failures} failures cleared")
            }
            Self::DeliveryFailed {
                subject,
                send,
                refunded,
            } => {
                let what = if *refunded {
                    "budgets given back"
                } else {
                    "nothing given back"
                };
                write!(f, "delivery failed {subject} send {send}, {what}")
            }
            Self::TestNumberUsed {
                subject,
                generation,
            } => write!(f, "test number used {subject} #{generation}"),
            Self::Delivered { subject, send } => {
                write!(f, "delivered {subject} send {send}")
            }
            Self::BudgetRefused {
                subject,
                budget,
                retry_after,
            } => write!(
                f,
                "send refused {subject}: {budget} budget spent, retry in {}s",
                crate::error::ceil_secs(*retry_after)
            ),
        }
    }
}

/// A code went out: what `start` and `resend` return.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sent {
    /// The code to deliver.
    pub code: Code,
    /// How to deliver it.
    pub channel: Channel,
    /// The validation's number for this subject.
    pub generation: u32,
    /// When the code stops working.
    pub expires_at: OffsetDateTime,
    /// True when this resent an active validation (also for a `start` that
    /// found one).
    pub resent: bool,
    /// True when the code differs from the one sent before.
    pub new_code: bool,
    /// Sends left for this validation (and within the subject's send budget).
    pub sends_left: u32,
    /// The earliest a resend will be accepted (after the cooldown, and when
    /// the subject's send budget allows).
    pub resend_at: OffsetDateTime,
    /// This send, to name in a delivery report
    /// ([`Verifier::report_delivery`](crate::Verifier::report_delivery)).
    pub send: SendId,
    /// True for a test number ([`Policy::test_numbers`](crate::Policy::test_numbers)):
    /// its code is the configured one, and the message must NOT be handed
    /// to a provider.
    pub suppressed: bool,
}

/// The right code: what `verify` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Validated {
    /// The validation's number for this subject.
    pub generation: u32,
    /// The channel the code went over.
    pub channel: Channel,
    /// When the check succeeded.
    pub validated_at: OffsetDateTime,
}

/// A validation as of an instant: what `status` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The state, with the passing of time applied.
    pub state: State,
    /// The validation's number for this subject.
    pub generation: u32,
    /// The channel of the last send.
    pub channel: Channel,
    /// When the current code expires (or expired).
    pub expires_at: OffsetDateTime,
    /// Checks left on the current code (0 in a terminal state).
    pub attempts_left: u32,
    /// Sends left for this validation within the subject's send budget (0
    /// in a terminal state).
    pub sends_left: u32,
    /// How long until a resend is accepted, if the cooldown is running.
    pub resend_after: Option<Duration>,
    /// The end of the subject's lockout, if it is locked.
    pub locked_until: Option<OffsetDateTime>,
    /// Failed checks the subject has left before its next lockout (or its
    /// block), counting across validations: warn the user when it is low.
    pub failures_left: u32,
    /// True when the subject is blocked until [`Engine::unlock`].
    pub blocked: bool,
}

/// The validation state machine: a [`Policy`] and a [`KeyRing`], and pure
/// transitions over [`Record`]s. [`Verifier`](crate::Verifier) drives it over a
/// synchronous [`Store`](crate::Store); drive it yourself for an async store:
/// load, call the transition, compare-and-swap `write`, retry on conflict.
///
/// ```
/// use otpflow::*;
/// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
/// use time::macros::datetime;
///
/// let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?);
/// let engine = Engine::new(Policy::default(), keys);
/// let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
/// let subject = SubjectKey::new(Purpose::Login, phone);
/// let now = datetime!(2026-11-22 12:00 UTC);
/// let mut rng = ChaCha20Rng::seed_from_u64(7);
///
/// let step = engine.start(None, &subject, Channel::Sms, now, &mut rng);
/// let record = step.write.expect("a new validation is written");
/// let code = step.outcome?.code;
///
/// let step = engine.verify(Some(&record), &subject, code.as_str(), now);
/// assert!(step.outcome.is_ok());
/// let record = step.write.expect("the success is written");
/// let again = engine.verify(Some(&record), &subject, code.as_str(), now);
/// assert_eq!(again.outcome.unwrap_err().code(), "already_validated");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    policy: Policy,
    keys: KeyRing,
}

impl Engine {
    /// An engine with this policy and these keys.
    pub fn new(policy: Policy, keys: KeyRing) -> Self {
        Self { policy, keys }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The key ring, to rotate or remove keys.
    pub fn keys_mut(&mut self) -> &mut KeyRing {
        &mut self.keys
    }

    /// Starts a validation, or resends the live one (switching to `channel`).
    pub fn start<R: CryptoRng + ?Sized>(
        &self,
        record: Option<&Record>,
        subject: &SubjectKey,
        channel: Channel,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Step<Sent> {
        let now = At::now(now);
        if self.policy.denies(subject.phone()) {
            return Step::refuse(Error::Denied);
        }
        // A budget key's record where a subject's should be (a confused
        // store) is no subject's: it is replaced, never carried along.
        let bounded = record
            .filter(|r| !r.is_budget())
            .map(|r| r.bounded(now, &self.policy));
        let step = self.start_bounded(bounded.clone(), subject, channel, now, rng);
        self.keep_bounds(record, bounded, step, subject, now)
    }

    fn start_bounded<R: CryptoRng + ?Sized>(
        &self,
        record: Option<Record>,
        subject: &SubjectKey,
        channel: Channel,
        now: At,
        rng: &mut R,
    ) -> Step<Sent> {
        let p = &self.policy;
        let mut record = record.unwrap_or_else(Record::empty);
        if let Some(refusal) = self.barred(&record, now) {
            return refusal;
        }
        if record.is_live(now) {
            return self.resend_live(record, subject, Some(channel), now, rng, true);
        }
        if !record.ledger.sends.allows(now, p) {
            return Step::refuse(Error::SendLimit {
                retry_after: self.until_send(&record, now),
            });
        }
        let mut events = Events::new();
        if let Some(v) = record.current.as_mut().filter(|v| v.state == State::Sent) {
            end(v, State::Expired, now);
            events.push(Event::Expired {
                subject: subject.clone(),
                generation: v.generation,
            });
        }
        let generation = record.generation().wrapping_add(1).max(1);
        let key = self.keys.current();
        let test = self.test_code(subject);
        let v = Validation {
            generation,
            state: State::Sent,
            channel,
            derivation: fresh_derivation(subject, test.is_some()),
            key_id: key.id(),
            nonce: nonce(rng),
            created_at: now.floor(),
            last_sent_at: now.ceil(),
            expires_at: now.plus(p.code_lifetime()).ceil(),
            ended_at: None,
            checks: 0,
            sends: 1,
        };
        let suppressed = test.is_some();
        let code = match test {
            Some(code) => code,
            None => code::derive_recorded(
                v.derivation,
                key,
                subject,
                &v.nonce,
                generation,
                p.code_length(),
            ),
        };
        record.ledger.sends.spend(now, p);
        let send = SendId::new(generation, record.ledger.last_send.next());
        record.written_at = now.floor();
        let sent = Sent {
            code: code.clone(),
            channel,
            generation,
            expires_at: v.expires_at.to_datetime(),
            resent: false,
            new_code: true,
            sends_left: self.sends_left(&v, &record, now),
            resend_at: self.resend_at(&v, &record).to_datetime(),
            send,
            suppressed,
        };
        events.push(Event::Sent {
            subject: subject.clone(),
            code,
            channel,
            generation,
            expires_at: v.expires_at.to_datetime(),
            send,
            suppressed,
        });
        if suppressed {
            events.push(Event::TestNumberUsed {
                subject: subject.clone(),
                generation,
            });
        }
        record.current = Some(v);
        Step {
            write: Some(record),
            outcome: Ok(sent),
            events,
        }
    }

    /// Resends the live validation's code, over `channel` if given (else the
    /// channel it went over before).
    pub fn resend<R: CryptoRng + ?Sized>(
        &self,
        record: Option<&Record>,
        subject: &SubjectKey,
        channel: Option<Channel>,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Step<Sent> {
        let now = At::now(now);
        if self.policy.denies(subject.phone()) {
            return Step::refuse(Error::Denied);
        }
        let Some(stored) = record.filter(|r| r.current.is_some()) else {
            return Step::refuse(Error::NotFound);
        };
        let record = stored.bounded(now, &self.policy);
        let step = if let Some(refusal) = self.barred(&record, now) {
            refusal
        } else {
            match self.settle(&record, subject, now) {
                None => self.resend_live(record.clone(), subject, channel, now, rng, false),
                Some(step) => step,
            }
        };
        self.keep_bounds(Some(stored), Some(record), step, subject, now)
    }

    /// Sends the live validation's code again. `via_start` says which call
    /// asked, so that a refusal names a time at which that call succeeds.
    fn resend_live<R: CryptoRng + ?Sized>(
        &self,
        mut record: Record,
        subject: &SubjectKey,
        channel: Option<Channel>,
        now: At,
        rng: &mut R,
        via_start: bool,
    ) -> Step<Sent> {
        let p = &self.policy;
        let generation = record.generation();
        let rate_ready = record.ledger.sends.ready_at(p).filter(|&at| now < at);
        let Some(v) = record.current.as_mut() else {
            return Step::refuse(Error::NotFound);
        };
        let cooldown_end = cooldown_end(v, &record.ledger.last_send, p).filter(|&at| now < at);
        let earliest = cooldown_end.max(rate_ready.map(Secs::at));
        if u32::from(v.sends) >= p.max_sends() || earliest.is_some_and(|at| at >= v.expires_at) {
            // This validation cannot send again: `start` can, once its code
            // expired and the subject's budget allows.
            let start_at = rate_ready.map_or(v.expires_at, |r| r.max(v.expires_at));
            let wait = until(now, start_at);
            return Step::refuse(if via_start {
                Error::SendLimit { retry_after: wait }
            } else {
                Error::ResendsSpent { start_after: wait }
            });
        }
        if let Some(at) = earliest {
            let retry_after = until(now, at);
            return Step::refuse(if cooldown_end == earliest {
                Error::ResendTooSoon { retry_after }
            } else {
                Error::SendLimit { retry_after }
            });
        }
        // `SameCode` re-derives the code already sent, unless its key was
        // removed (or its derivation is not this build's): then no one can
        // check that code, and a new one is drawn. So is one when the resend
        // names another binding than the validation's (bound to a context or
        // not): the code sent goes with the binding the call names.
        let same = match p.resend_mode() {
            ResendMode::SameCode => self
                .code_of(v, subject, generation)
                .filter(|_| binding_matches(v, subject)),
            ResendMode::NewCode => None,
        };
        let (code, new_code) = match same {
            Some(code) => (code, false),
            None => {
                let key = self.keys.current();
                let test = self.test_code(subject);
                v.key_id = key.id();
                v.derivation = fresh_derivation(subject, test.is_some());
                v.nonce = nonce(rng);
                v.checks = 0;
                v.expires_at = now.plus(p.code_lifetime()).ceil();
                let code = match test {
                    Some(code) => code,
                    None => code::derive_recorded(
                        v.derivation,
                        key,
                        subject,
                        &v.nonce,
                        generation,
                        p.code_length(),
                    ),
                };
                (code, true)
            }
        };
        let suppressed = v.derivation == DERIVATION_TEST;
        let channel = channel.unwrap_or(v.channel);
        v.channel = channel;
        v.sends = v.sends.saturating_add(1);
        v.last_sent_at = now.ceil();
        record.ledger.sends.spend(now, p);
        let send = SendId::new(generation, record.ledger.last_send.next());
        record.written_at = now.floor();
        let Some(v) = record.current.as_ref() else {
            return Step::refuse(Error::NotFound);
        };
        let sent = Sent {
            code: code.clone(),
            channel,
            generation,
            expires_at: v.expires_at.to_datetime(),
            resent: true,
            new_code,
            sends_left: self.sends_left(v, &record, now),
            resend_at: self.resend_at(v, &record).to_datetime(),
            send,
            suppressed,
        };
        let mut events = Events::one(Event::Resent {
            subject: subject.clone(),
            code,
            channel,
            generation,
            expires_at: v.expires_at.to_datetime(),
            new_code,
            send,
            suppressed,
        });
        if suppressed {
            events.push(Event::TestNumberUsed {
                subject: subject.clone(),
                generation,
            });
        }
        Step {
            write: Some(record),
            outcome: Ok(sent),
            events,
        }
    }

    /// Checks a code the user typed. Spaces and dashes are ignored; anything
    /// else that is not a digit, or the wrong number of digits, is
    /// [`Error::MalformedCode`] and spends no attempt.
    pub fn verify(
        &self,
        record: Option<&Record>,
        subject: &SubjectKey,
        input: &str,
        now: OffsetDateTime,
    ) -> Step<Validated> {
        self.verify_emitting(record, subject, input, now, true)
    }

    /// [`verify`](Self::verify); with `emit` false, a check (right or
    /// wrong, or the stand-in one of a refusal) builds no events: the step
    /// of a check holds none, the rarer refusals keep theirs. For
    /// [`Verifier`](crate::Verifier) without a listener, which would drop
    /// them: each copies the subject's key into a step that is moved
    /// twice. Records and outcomes are the same either way.
    pub(crate) fn verify_emitting(
        &self,
        record: Option<&Record>,
        subject: &SubjectKey,
        input: &str,
        now: OffsetDateTime,
        emit: bool,
    ) -> Step<Validated> {
        let now = At::now(now);
        let p = &self.policy;
        let Ok(input) = CodeInput::parse(input, p.code_length()) else {
            return Step::refuse(Error::MalformedCode);
        };
        // Every refusal below costs one derivation too, so "not found",
        // "expired" or "locked" take as long as a wrong code.
        let Some(stored) = record.filter(|r| r.current.is_some()) else {
            self.dummy_check(subject, &input, now, emit);
            return Step::refuse(Error::NotFound);
        };
        let mut record = stored.bounded(now, p);
        let refusal = self
            .barred(&record, now)
            .or_else(|| self.settle(&record, subject, now));
        if let Some(refusal) = refusal {
            self.dummy_check(subject, &input, now, emit);
            return self.keep_bounds(Some(stored), Some(record), refusal, subject, now);
        }
        let generation = record.generation();
        let Some(v) = record.current.as_mut() else {
            return Step::refuse(Error::NotFound);
        };
        if u32::from(v.checks) >= p.max_checks() {
            // Only a record written under a larger budget gets here: refuse
            // before comparing, so no code is ever checked past the budget.
            self.dummy_check(subject, &input, now, emit);
            end(v, State::Locked, now);
            record.written_at = now.floor();
            let events = Events::one(Event::Locked {
                subject: subject.clone(),
                generation,
                until: None,
            });
            return Step {
                write: Some(record),
                outcome: Err(Error::AttemptsExhausted),
                events,
            };
        }
        // The key is looked up once: the check derives with it.
        let Some(source) = self.source(v, subject) else {
            // The key was removed from the ring (or the code comes from a
            // derivation this build does not have): no one can check it.
            self.dummy_check(subject, &input, now, emit);
            end(v, State::Expired, now);
            record.written_at = now.floor();
            let events = Events::one(Event::Expired {
                subject: subject.clone(),
                generation,
            });
            return Step {
                write: Some(record),
                outcome: Err(Error::Expired),
                events,
            };
        };
        self.check_with(record, subject, &input, now, &source, emit)
    }

    /// The check itself on a live validation: spend an attempt, derive,
    /// compare in constant time, and count a failure. Also run, on a
    /// stand-in record, for every refusal of `verify`, so a refusal costs
    /// what a wrong code costs.
    fn check(
        &self,
        record: Record,
        subject: &SubjectKey,
        input: &CodeInput,
        now: At,
        emit: bool,
    ) -> Step<Validated> {
        let source = record
            .current
            .as_ref()
            .and_then(|v| self.source(v, subject));
        let Some(source) = source else {
            return Step::refuse(Error::Expired);
        };
        self.check_with(record, subject, input, now, &source, emit)
    }

    /// [`check`](Self::check) with the validation's code source looked up.
    fn check_with(
        &self,
        mut record: Record,
        subject: &SubjectKey,
        input: &CodeInput,
        now: At,
        source: &Source,
        emit: bool,
    ) -> Step<Validated> {
        let p = &self.policy;
        let generation = record.generation();
        record.written_at = now.floor();
        let Some(code) = record
            .current
            .as_ref()
            .map(|v| self.code_from(source, v, subject, generation))
        else {
            return Step::refuse(Error::NotFound);
        };
        let Some(v) = record.current.as_mut() else {
            return Step::refuse(Error::NotFound);
        };
        let test = (emit && v.derivation == DERIVATION_TEST).then(|| Event::TestNumberUsed {
            subject: subject.clone(),
            generation,
        });
        // The check is spent before the comparison. A check under another
        // binding than the validation's (a context, or none, where the code
        // was issued with the other) is a wrong code, whatever the digits.
        v.checks = v.checks.saturating_add(1);
        let bound_alike = binding_matches(v, subject);
        if code.matches(input) & bound_alike {
            end(v, State::Validated, now);
            let validated = Validated {
                generation,
                channel: v.channel,
                validated_at: now.to_datetime(),
            };
            record.ledger.guesses.succeed();
            let events = if emit {
                test.into_iter()
                    .chain([Event::Validated {
                        subject: subject.clone(),
                        generation,
                    }])
                    .collect()
            } else {
                Events::new()
            };
            return Step {
                write: Some(record),
                outcome: Ok(validated),
                events,
            };
        }
        let attempts_left = p.max_checks().saturating_sub(u32::from(v.checks));
        // Built in place: the usual step has this one event.
        let mut events = if emit {
            let failed = Event::CheckFailed {
                subject: subject.clone(),
                generation,
                attempts_left,
            };
            match test {
                None => Events::one(failed),
                Some(test) => Events::from_iter([test, failed]),
            }
        } else {
            Events::new()
        };
        let outcome = match record.ledger.guesses.fail(now, p) {
            Penalty::Block => {
                end(v, State::Locked, now);
                if emit {
                    events.push(Event::Blocked {
                        subject: subject.clone(),
                        generation,
                        failures: record.ledger.guesses.failures,
                    });
                }
                Err(Error::Blocked)
            }
            Penalty::Lock(lock_end) => {
                end(v, State::Locked, now);
                if emit {
                    events.push(Event::Locked {
                        subject: subject.clone(),
                        generation,
                        until: Some(lock_end.to_datetime()),
                    });
                }
                let start_at = record
                    .ledger
                    .sends
                    .ready_at(p)
                    .map_or(lock_end, |r| r.max(lock_end));
                Err(Error::Locked {
                    retry_after: until(now, start_at),
                })
            }
            Penalty::None if attempts_left == 0 => {
                end(v, State::Locked, now);
                if emit {
                    events.push(Event::Locked {
                        subject: subject.clone(),
                        generation,
                        until: None,
                    });
                }
                Err(Error::AttemptsExhausted)
            }
            Penalty::None => Err(Error::CodeMismatch { attempts_left }),
        };
        Step {
            write: Some(record),
            outcome,
            events,
        }
    }

    /// Cancels the live validation. Canceling a canceled one is a no-op.
    pub fn cancel(
        &self,
        record: Option<&Record>,
        subject: &SubjectKey,
        now: OffsetDateTime,
    ) -> Step<()> {
        let now = At::now(now);
        let Some(record) = record.filter(|r| r.current.is_some()) else {
            return Step::refuse(Error::NotFound);
        };
        if record.state() == Some(State::Canceled) {
            return Step {
                write: None,
                outcome: Ok(()),
                events: Events::new(),
            };
        }
        let stored = record;
        let mut record = stored.bounded(now, &self.policy);
        if let Some(step) = self.settle(&record, subject, now) {
            return self.keep_bounds(Some(stored), Some(record), step, subject, now);
        }
        let generation = record.generation();
        if let Some(v) = record.current.as_mut() {
            end(v, State::Canceled, now);
        }
        record.written_at = now.floor();
        let events = Events::one(Event::Canceled {
            subject: subject.clone(),
            generation,
        });
        Step {
            write: Some(record),
            outcome: Ok(()),
            events,
        }
    }

    /// Records what the provider reported about a send (see
    /// [`delivery`](crate::delivery)). For [`Delivery::Failed`], when `send`
    /// is the subject's latest send, not reported before, of a validation
    /// not validated, the send's place in the validation's sends and in the
    /// subject's send bucket is given back and its cooldown lifted:
    /// `Ok(true)`. Any other report changes nothing: `Ok(false)`. Each
    /// failure report yields an [`Event::DeliveryFailed`], each delivery an
    /// [`Event::Delivered`].
    ///
    /// ```
    /// use otpflow::*;
    /// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// use time::macros::datetime;
    ///
    /// let engine = Engine::new(Policy::default(), KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?));
    /// let subject = SubjectKey::new(Purpose::Login, PhoneNumber::parse("07401 101801", &PhonePolicy::default())?);
    /// let now = datetime!(2026-11-22 12:00 UTC);
    /// let mut rng = ChaCha20Rng::seed_from_u64(7);
    ///
    /// let step = engine.start(None, &subject, Channel::Sms, now, &mut rng);
    /// let (record, sent) = (step.write.expect("written"), step.outcome?);
    /// // The provider answers: undeliverable.
    /// let step = engine.report_delivery(Some(&record), &subject, sent.send, Delivery::Failed, now);
    /// assert!(step.outcome?);
    /// let record = step.write.expect("written");
    /// // No cooldown, and the send is counted no more: the user can ask again at once.
    /// let again = engine.resend(Some(&record), &subject, None, now, &mut rng).outcome?;
    /// assert_eq!(again.sends_left, 4);
    /// // A second report of the same send gives nothing back.
    /// let step = engine.report_delivery(Some(&record), &subject, sent.send, Delivery::Failed, now);
    /// assert!(!step.outcome?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`] when the subject has no validation.
    pub fn report_delivery(
        &self,
        record: Option<&Record>,
        subject: &SubjectKey,
        send: SendId,
        delivery: Delivery,
        now: OffsetDateTime,
    ) -> Step<bool> {
        let now = At::now(now);
        let Some(stored) = record.filter(|r| r.current.is_some()) else {
            return Step::refuse(Error::NotFound);
        };
        if delivery == Delivery::Delivered {
            return Step {
                write: None,
                outcome: Ok(false),
                events: Events::one(Event::Delivered {
                    subject: subject.clone(),
                    send,
                }),
            };
        }
        let mut record = stored.bounded(now, &self.policy);
        let last = record.ledger.last_send;
        let latest = send.generation() == record.generation()
            && send.send() == last.seq
            && last.seq > 0
            && !last.failed;
        let refunded = latest
            && record
                .current
                .as_ref()
                .is_some_and(|v| v.state != State::Validated);
        let event = Event::DeliveryFailed {
            subject: subject.clone(),
            send,
            refunded,
        };
        if !refunded {
            return Step {
                write: None,
                outcome: Ok(false),
                events: Events::one(event),
            };
        }
        if let Some(v) = record.current.as_mut() {
            v.sends = v.sends.saturating_sub(1);
        }
        record.ledger.sends.refund(now, &self.policy);
        record.ledger.last_send.failed = true;
        record.written_at = now.floor();
        Step {
            write: Some(record),
            outcome: Ok(true),
            events: Events::one(event),
        }
    }

    /// The budget keys a send to `subject` spends from, besides the
    /// subject's own, in spending order: those `budgets` names whose kind
    /// has a rate in the policy, in the subject's tenant (see
    /// [`budget_key`](crate::budget_key)).
    pub fn budget_keys(&self, subject: &SubjectKey, budgets: &Budgets) -> Vec<BudgetKey> {
        budgets.keys(subject, &self.policy)
    }

    /// The tag of the subject's latest send, which its budget keys' spends
    /// carry: what [`spend_budget`](Self::spend_budget) and
    /// [`refund_budget`](Self::refund_budget) take. `None` before any send.
    /// Take it from the record a `start` or `resend` writes.
    pub fn spend_tag(&self, record: &Record) -> Option<SpendTag> {
        let v = record.current.as_ref()?;
        let seq = record.ledger.last_send.seq;
        (seq > 0).then(|| SpendTag::derive(&v.nonce, record.generation(), seq))
    }

    /// Whether `key`'s bucket (its `record`) allows a send at `now`.
    /// Reads only: check every key before spending from any, so that a
    /// refusal spends nothing.
    ///
    /// # Errors
    /// [`Error::BudgetSpent`] with the time at which it allows one.
    pub fn check_budget(
        &self,
        record: Option<&Record>,
        key: &BudgetKey,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        self.check_budget_at(record, key, At::now(now))
    }

    fn check_budget_at(
        &self,
        record: Option<&Record>,
        key: &BudgetKey,
        now: At,
    ) -> Result<(), Error> {
        let Some(rate) = self.policy.budget_rate(key.kind()) else {
            return Ok(());
        };
        let bucket = self.bucket_of(record, key, now);
        let tat = bucket.bucket.and_then(|b| b.tat);
        if rate.allows(tat, now) {
            return Ok(());
        }
        let ready = rate.ready_at(tat).map_or(now, Secs::at);
        Err(Error::BudgetSpent {
            budget: key.kind(),
            retry_after: until(now, ready),
        })
    }

    /// Spends one send from `key`'s bucket at `now`, tagged `tag` (the
    /// send's [`spend_tag`](Self::spend_tag)), or refuses with
    /// [`Error::BudgetSpent`] and writes nothing. A kind the policy gives
    /// no rate spends nothing.
    ///
    /// ```
    /// use otpflow::*;
    /// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// use time::macros::datetime;
    ///
    /// let engine = Engine::new(Policy::default(), KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?));
    /// let subject = SubjectKey::new(Purpose::Login, PhoneNumber::parse("07401 101801", &PhonePolicy::default())?);
    /// let now = datetime!(2026-11-22 12:00 UTC);
    /// let mut rng = ChaCha20Rng::seed_from_u64(7);
    /// let key = engine.budget_keys(&subject, &Budgets::new().range()).remove(0);
    ///
    /// let sent = engine.start(None, &subject, Channel::Sms, now, &mut rng);
    /// let tag = engine.spend_tag(sent.write.as_ref().expect("written")).expect("a send");
    /// // The default range budget: 20 at once.
    /// let mut bucket = None;
    /// for _ in 0..20 {
    ///     bucket = engine.spend_budget(bucket.as_ref(), &key, tag, now).write;
    /// }
    /// let refused = engine.spend_budget(bucket.as_ref(), &key, tag, now);
    /// assert_eq!(refused.outcome.unwrap_err().code(), "budget_exhausted");
    /// // Its latest spend can be given back, once.
    /// let back = engine.refund_budget(bucket.as_ref(), &key, tag, now);
    /// assert!(back.outcome?);
    /// let again = engine.refund_budget(back.write.as_ref(), &key, tag, now);
    /// assert!(!again.outcome?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spend_budget(
        &self,
        record: Option<&Record>,
        key: &BudgetKey,
        tag: SpendTag,
        now: OffsetDateTime,
    ) -> Step<()> {
        let now = At::now(now);
        let Some(rate) = self.policy.budget_rate(key.kind()) else {
            return Step {
                write: None,
                outcome: Ok(()),
                events: Events::new(),
            };
        };
        if let Err(e) = self.check_budget_at(record, key, now) {
            return Step::refuse(e);
        }
        let mut record = self.bucket_of(record, key, now);
        if let Some(b) = record.bucket.as_mut() {
            rate.spend(&mut b.tat, now);
            b.last = tag.0;
            b.refunded = false;
        }
        record.written_at = now.floor();
        Step {
            write: Some(record),
            outcome: Ok(()),
            events: Events::new(),
        }
    }

    /// Gives back `key`'s spend tagged `tag`, if it is still the key's
    /// latest spend and was not given back before (`Ok(true)`); otherwise
    /// changes nothing (`Ok(false)`): a give-back is exact or nothing, so a
    /// bucket is never fuller than if the send had not happened (see
    /// [`budget_key`](crate::budget_key)).
    pub fn refund_budget(
        &self,
        record: Option<&Record>,
        key: &BudgetKey,
        tag: SpendTag,
        now: OffsetDateTime,
    ) -> Step<bool> {
        let now = At::now(now);
        let nothing = Step {
            write: None,
            outcome: Ok(false),
            events: Events::new(),
        };
        let Some(rate) = self.policy.budget_rate(key.kind()) else {
            return nothing;
        };
        let mut record = self.bucket_of(record, key, now);
        let Some(b) = record
            .bucket
            .as_mut()
            .filter(|b| b.last == tag.0 && !b.refunded)
        else {
            return nothing;
        };
        rate.refund(&mut b.tat, now);
        b.refunded = true;
        record.written_at = now.floor();
        Step {
            write: Some(record),
            outcome: Ok(true),
            events: Events::new(),
        }
    }

    /// `key`'s bucket as of `now`: the stored one bounded, or a full one
    /// when there is none (or the stored record is not this kind's bucket).
    fn bucket_of(&self, record: Option<&Record>, key: &BudgetKey, now: At) -> Record {
        record
            .filter(|r| r.bucket.as_ref().is_some_and(|b| b.kind == key.kind()))
            .map_or_else(
                || Record::bucket(key.kind()),
                |r| r.bounded(now, &self.policy),
            )
    }

    /// Unlocks the subject: an operator's action that clears its
    /// consecutive failures, any lockout and a block. The validation a
    /// lockout ended stays ended; the next `start` works. Unlocking a
    /// subject with nothing to clear writes nothing.
    ///
    /// ```
    /// use otpflow::*;
    /// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    /// use time::macros::datetime;
    ///
    /// let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?);
    /// let policy = Policy::builder().failure_hard_cap(1).build()?;
    /// let engine = Engine::new(policy, keys);
    /// let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
    /// let subject = SubjectKey::new(Purpose::Login, phone);
    /// let now = datetime!(2026-11-22 12:00 UTC);
    /// let mut rng = ChaCha20Rng::seed_from_u64(7);
    ///
    /// let step = engine.start(None, &subject, Channel::Sms, now, &mut rng);
    /// let record = step.write.expect("written");
    /// let wrong = if step.outcome?.code.as_str() == "000000" { "111111" } else { "000000" };
    /// let step = engine.verify(Some(&record), &subject, wrong, now);
    /// assert_eq!(step.outcome.unwrap_err().code(), "subject_blocked");
    /// let blocked = step.write.expect("written");
    ///
    /// let step = engine.unlock(Some(&blocked), &subject, now);
    /// assert!(matches!(step.events[..], [Event::Unlocked { failures: 1, .. }]));
    /// let open = step.write.expect("written");
    /// assert!(engine.start(Some(&open), &subject, Channel::Sms, now, &mut rng).outcome.is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unlock(
        &self,
        record: Option<&Record>,
        subject: &SubjectKey,
        now: OffsetDateTime,
    ) -> Step<()> {
        let now = At::now(now);
        let nothing = || Step {
            write: None,
            outcome: Ok(()),
            events: Events::new(),
        };
        let Some(record) = record else {
            return nothing();
        };
        let mut record = record.bounded(now, &self.policy);
        let failures = record.ledger.guesses.failures;
        if record.ledger.guesses == Guesses::default() {
            return nothing();
        }
        record.ledger.guesses = Guesses::default();
        record.written_at = now.floor();
        Step {
            write: Some(record),
            outcome: Ok(()),
            events: Events::one(Event::Unlocked {
                subject: subject.clone(),
                failures,
            }),
        }
    }

    /// The validation as of `now`. Reads only: a validation whose time ran
    /// out reports [`State::Expired`] without a write.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the subject has no validation.
    pub fn status(&self, record: Option<&Record>, now: OffsetDateTime) -> Result<Status, Error> {
        let now = At::now(now);
        let p = &self.policy;
        let record = record.ok_or(Error::NotFound)?.bounded(now, p);
        let v = record.current.as_ref().ok_or(Error::NotFound)?;
        let is_live = record.is_live(now);
        let state = if v.state == State::Sent && !is_live {
            State::Expired
        } else {
            v.state
        };
        let resend_at = self.resend_at(v, &record);
        let g = &record.ledger.guesses;
        Ok(Status {
            state,
            generation: record.generation(),
            channel: v.channel,
            expires_at: v.expires_at.to_datetime(),
            attempts_left: if is_live {
                p.max_checks().saturating_sub(u32::from(v.checks))
            } else {
                0
            },
            sends_left: if is_live {
                self.sends_left(v, &record, now)
            } else {
                0
            },
            resend_after: (is_live && now < resend_at).then(|| until(now, resend_at)),
            locked_until: g.locked_at(now).map(Secs::to_datetime),
            failures_left: if g.blocked(p) {
                0
            } else {
                g.left_before_lock(now, p)
            },
            blocked: g.blocked(p),
        })
    }

    /// Stores the bounded record when a refusal would write nothing but
    /// bounding changed the record (a clock that was ahead and has been set
    /// back): otherwise a lockout or a send budget bounded from `now` would
    /// move with `now` at every read. A `Sent` validation that bounding
    /// killed is stored as expired.
    fn keep_bounds<T>(
        &self,
        stored: Option<&Record>,
        bounded: Option<Record>,
        mut step: Step<T>,
        subject: &SubjectKey,
        now: At,
    ) -> Step<T> {
        let (Some(stored), Some(mut record)) = (stored, bounded) else {
            return step;
        };
        if step.write.is_some() || *stored == record {
            return step;
        }
        let live = record.is_live(now);
        let generation = record.generation();
        if let Some(v) = record
            .current
            .as_mut()
            .filter(|v| v.state == State::Sent && !live)
        {
            end(v, State::Expired, now);
            step.events.push(Event::Expired {
                subject: subject.clone(),
                generation,
            });
        }
        record.written_at = now.floor();
        step.write = Some(record);
        step
    }

    /// The refusal for a blocked subject, or one in a lockout at `now`.
    fn barred<T>(&self, record: &Record, now: At) -> Option<Step<T>> {
        let g = &record.ledger.guesses;
        if g.blocked(&self.policy) {
            return Some(Step::refuse(Error::Blocked));
        }
        let lock_end = g.locked_at(now)?;
        let start_at = record
            .ledger
            .sends
            .ready_at(&self.policy)
            .map_or(lock_end, |r| r.max(lock_end));
        Some(Step::refuse(Error::Locked {
            retry_after: until(now, start_at),
        }))
    }

    /// Refuses every state but live, writing `Expired` for a `Sent` record
    /// whose time ran out.
    /// `None` when live.
    fn settle<T>(&self, record: &Record, subject: &SubjectKey, now: At) -> Option<Step<T>> {
        let v = record.current.as_ref()?;
        if record.is_live(now) {
            return None;
        }
        Some(match v.state {
            State::Sent => {
                let mut record = record.clone();
                if let Some(v) = record.current.as_mut() {
                    end(v, State::Expired, now);
                }
                record.written_at = now.floor();
                let generation = record.generation();
                let events = Events::one(Event::Expired {
                    subject: subject.clone(),
                    generation,
                });
                Step {
                    write: Some(record),
                    outcome: Err(Error::Expired),
                    events,
                }
            }
            State::Validated => Step::refuse(Error::AlreadyValidated),
            State::Expired => Step::refuse(Error::Expired),
            State::Locked => Step::refuse(Error::AttemptsExhausted),
            State::Canceled => Step::refuse(Error::Canceled),
        })
    }

    /// The work of a wrong-code check, on a stand-in validation, whose
    /// result is thrown away: a refusal of `verify` (no validation, expired,
    /// locked…) costs what a check costs, so its timing does not tell an
    /// outsider which refusal it was.
    fn dummy_check(&self, subject: &SubjectKey, input: &CodeInput, now: At, emit: bool) {
        let mut stand_in = Record::empty();
        stand_in.current = Some(Validation {
            generation: 1,
            state: State::Sent,
            channel: Channel::Sms,
            // As the subject's own check would derive (a bound subject's
            // costs one compression more).
            derivation: fresh_derivation(subject, false),
            key_id: self.keys.current().id(),
            nonce: [0; NONCE_LEN],
            created_at: now.floor(),
            last_sent_at: now.floor(),
            // `check` does not read the expiry.
            expires_at: now.floor(),
            ended_at: None,
            checks: 0,
            sends: 1,
        });
        let _ = core::hint::black_box(self.check(stand_in, subject, input, now, emit));
    }

    /// The fixed code, when `subject` is a test number under the policy.
    fn test_code(&self, subject: &SubjectKey) -> Option<Code> {
        self.policy
            .test_numbers()
            .filter(|t| t.contains(subject.phone()))
            .map(|t| Code::fixed(t.code()))
    }

    /// Where the validation's code comes from, if it can be computed: its
    /// key, when it is in the ring, or, for a test number, the fixed code
    /// while the number is still one. `None`: no one can check it.
    fn source(&self, v: &Validation, subject: &SubjectKey) -> Option<Source> {
        match v.derivation {
            DERIVATION_TEST => self.test_code(subject).map(Source::Test),
            d if Derivation::from_u8(d).is_some() => self.keys.get(v.key_id).map(Source::Key),
            _ => None,
        }
    }

    /// The validation's code from its `source`.
    fn code_from(
        &self,
        source: &Source,
        v: &Validation,
        subject: &SubjectKey,
        generation: u32,
    ) -> Code {
        match source {
            Source::Key(key) => code::derive_recorded(
                v.derivation,
                &**key,
                subject,
                &v.nonce,
                generation,
                self.policy.code_length(),
            ),
            Source::Test(code) => code.clone(),
        }
    }

    /// The validation's code, if it can be computed (see `source`).
    fn code_of(&self, v: &Validation, subject: &SubjectKey, generation: u32) -> Option<Code> {
        self.source(v, subject)
            .map(|source| self.code_from(&source, v, subject, generation))
    }

    fn sends_left(&self, v: &Validation, record: &Record, now: At) -> u32 {
        let p = &self.policy;
        let subject = record.ledger.sends.left(now, p);
        p.max_sends()
            .saturating_sub(u32::from(v.sends))
            .min(subject)
    }

    /// The earliest a resend can be accepted: after the cooldown and when
    /// the subject's send budget allows.
    fn resend_at(&self, v: &Validation, record: &Record) -> At {
        let cooldown_end =
            cooldown_end(v, &record.ledger.last_send, &self.policy).unwrap_or(v.created_at.at());
        record
            .ledger
            .sends
            .ready_at(&self.policy)
            .map_or(cooldown_end, |r| r.at().max(cooldown_end))
    }

    fn until_send(&self, record: &Record, now: At) -> Duration {
        let ready = record
            .ledger
            .sends
            .ready_at(&self.policy)
            .map_or(now, Secs::at);
        until(now, ready)
    }
}

/// Where a validation's code comes from (see `Engine::source`).
enum Source {
    /// Derived with this key.
    Key(KeyRef),
    /// A test number's fixed code.
    Test(Code),
}

/// The derivation byte of a new validation's code: a test number's, one
/// bound to the subject's context, or the latest.
fn fresh_derivation(subject: &SubjectKey, test: bool) -> u8 {
    if test {
        DERIVATION_TEST
    } else if subject.context().is_some() {
        Derivation::V2Bound.to_u8()
    } else {
        Derivation::LATEST.to_u8()
    }
}

/// True when a call names the binding the validation was issued under: a
/// context for a bound code, none for any other. A test number's fixed code
/// is never bound.
fn binding_matches(v: &Validation, subject: &SubjectKey) -> bool {
    match v.derivation {
        DERIVATION_TEST => true,
        d if d == Derivation::V2Bound.to_u8() => subject.context().is_some(),
        _ => subject.context().is_none(),
    }
}

/// The derivation byte of a test number's validation: its code is the
/// policy's fixed test code, no key derives it.
pub(crate) const DERIVATION_TEST: u8 = 0xFE;

/// The end of the cooldown the validation's latest send started; `None`
/// when that send was reported failed (a failed send starts no cooldown).
fn cooldown_end(v: &Validation, last: &LastSend, p: &Policy) -> Option<At> {
    (!last.failed).then(|| later(v.last_sent_at, p.resend_cooldown()))
}

fn end(v: &mut Validation, state: State, now: At) {
    v.state = state;
    v.ended_at = Some(now.floor());
}

fn nonce<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut n);
    n
}
