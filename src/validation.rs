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
//! `expires_at` counts as [`State::Expired`]. A subject locked by its failure
//! cap answers [`Error::Locked`] to `start`, `resend` and `verify` whatever
//! its validation's state.
//!
//! | state | `start` | `resend` | `verify` | `cancel` |
//! |---|---|---|---|---|
//! | none | new validation | `NotFound` | `NotFound` (after a dummy derivation) | `NotFound` |
//! | live | acts as `resend` | resend, or `SendLimit` / `ResendTooSoon` | check | → `Canceled` |
//! | expired | new validation | `Expired` | `Expired` | `Expired` |
//! | validated | new validation | `AlreadyValidated` | `AlreadyValidated` | `AlreadyValidated` |
//! | locked | new validation | `AttemptsExhausted` | `AttemptsExhausted` | `AttemptsExhausted` |
//! | canceled | new validation | `Canceled` | `Canceled` | `Ok` (no change) |
//!
//! A new validation needs room in the subject's send window
//! ([`Error::SendLimit`] otherwise). A check spends an attempt before the
//! comparison; a wrong code also counts against the subject's failure cap,
//! and the failure that reaches it locks the subject for the lockout period.
//! Neither a resend nor a new validation resets either count.

use rand_core::CryptoRng;
use time::{Duration, OffsetDateTime};

use crate::code::{self, Code, CodeInput, NONCE_LEN};
use crate::error::Error;
use crate::keys::KeyRing;
use crate::policy::{Policy, ResendMode};
use crate::record::{Ledger, Record, State, Validation, later, until};
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
    /// only once `write` is stored.
    pub events: Vec<Event>,
}

impl<T> Step<T> {
    fn refuse(error: Error) -> Self {
        Self {
            write: None,
            outcome: Err(error),
            events: Vec::new(),
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
    /// Sends left for this validation (and within the subject's send window).
    pub sends_left: u32,
    /// The earliest a resend will be accepted.
    pub resend_at: OffsetDateTime,
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
    /// Sends left for this validation within the subject's send window (0 in
    /// a terminal state).
    pub sends_left: u32,
    /// How long until a resend is accepted, if the cooldown is running.
    pub resend_after: Option<Duration>,
    /// The end of the subject's lockout, if it is locked.
    pub locked_until: Option<OffsetDateTime>,
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
        let mut record = record.cloned().unwrap_or_else(empty_record);
        if let Some(refusal) = locked(&record.ledger, now) {
            return refusal;
        }
        if record.current.as_ref().is_some_and(|v| live(v, now)) {
            return self.resend_live(record, subject, Some(channel), now, rng);
        }
        let p = &self.policy;
        let subject_sends = record.ledger.sends.count_at(now, p.subject_send_window());
        if subject_sends >= p.subject_send_cap() {
            return Step::refuse(self.send_window_full(&record.ledger, now));
        }
        let mut events = Vec::new();
        if let Some(v) = record.current.as_mut().filter(|v| v.state == State::Sent) {
            end(v, State::Expired, now);
            events.push(Event::Expired {
                subject: subject.clone(),
                generation: record.generation,
            });
        }
        record.generation = record.generation.wrapping_add(1);
        let key = self.keys.current();
        let v = Validation {
            state: State::Sent,
            channel,
            key_id: key.id(),
            nonce: nonce(rng),
            created_at: now,
            last_sent_at: now,
            expires_at: later(now, p.code_lifetime()),
            ended_at: None,
            checks: 0,
            sends: 1,
        };
        let code = code::derive(key, subject, &v.nonce, record.generation, p.code_length());
        record.ledger.sends.add(now, p.subject_send_window());
        let sent = Sent {
            code: code.clone(),
            channel,
            generation: record.generation,
            expires_at: v.expires_at,
            resent: false,
            new_code: true,
            sends_left: self.sends_left(&v, &record.ledger, now),
            resend_at: later(now, p.resend_cooldown()),
        };
        events.push(Event::Sent {
            subject: subject.clone(),
            code,
            channel,
            generation: record.generation,
            expires_at: v.expires_at,
        });
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
        let Some(record) = record.filter(|r| r.current.is_some()) else {
            return Step::refuse(Error::NotFound);
        };
        if let Some(refusal) = locked(&record.ledger, now) {
            return refusal;
        }
        match self.settle(record, subject, now) {
            None => self.resend_live(record.clone(), subject, channel, now, rng),
            Some(step) => step,
        }
    }

    fn resend_live<R: CryptoRng + ?Sized>(
        &self,
        mut record: Record,
        subject: &SubjectKey,
        channel: Option<Channel>,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Step<Sent> {
        let p = &self.policy;
        let generation = record.generation;
        let Some(v) = record.current.as_mut() else {
            return Step::refuse(Error::NotFound);
        };
        if v.sends >= p.max_sends() {
            return Step::refuse(Error::SendLimit {
                retry_after: until(now, v.expires_at),
            });
        }
        let resend_at = later(v.last_sent_at, p.resend_cooldown());
        if now < resend_at {
            return Step::refuse(Error::ResendTooSoon {
                retry_after: until(now, resend_at),
            });
        }
        if record.ledger.sends.count_at(now, p.subject_send_window()) >= p.subject_send_cap() {
            return Step::refuse(self.send_window_full(&record.ledger, now));
        }
        // `SameCode` re-derives the code already sent, unless its key was
        // removed: then no one can check that code, and a new one is drawn.
        let same_key = self
            .keys
            .get(v.key_id)
            .filter(|_| p.resend_mode() == ResendMode::SameCode);
        let (key, new_code) = match same_key {
            Some(key) => (key, false),
            None => {
                let key = self.keys.current();
                v.key_id = key.id();
                v.nonce = nonce(rng);
                v.checks = 0;
                v.expires_at = later(now, p.code_lifetime());
                (key, true)
            }
        };
        let channel = channel.unwrap_or(v.channel);
        v.channel = channel;
        v.sends = v.sends.saturating_add(1);
        v.last_sent_at = now;
        let code = code::derive(key, subject, &v.nonce, generation, p.code_length());
        record.ledger.sends.add(now, p.subject_send_window());
        let sent = Sent {
            code: code.clone(),
            channel,
            generation,
            expires_at: v.expires_at,
            resent: true,
            new_code,
            sends_left: self.sends_left(v, &record.ledger, now),
            resend_at: later(now, p.resend_cooldown()),
        };
        let event = Event::Resent {
            subject: subject.clone(),
            code,
            channel,
            generation,
            expires_at: v.expires_at,
            new_code,
        };
        Step {
            write: Some(record),
            outcome: Ok(sent),
            events: vec![event],
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
        let p = &self.policy;
        let Ok(input) = CodeInput::parse(input, p.code_length()) else {
            return Step::refuse(Error::MalformedCode);
        };
        // Every refusal below costs one derivation too, so "not found",
        // "expired" or "locked" take as long as a wrong code.
        let Some(record) = record.filter(|r| r.current.is_some()) else {
            self.dummy_check(subject, &input, now);
            return Step::refuse(Error::NotFound);
        };
        let refusal = locked(&record.ledger, now).or_else(|| self.settle(record, subject, now));
        if let Some(refusal) = refusal {
            self.dummy_check(subject, &input, now);
            return refusal;
        }
        let mut record = record.clone();
        let generation = record.generation;
        let Some(v) = record.current.as_mut() else {
            return Step::refuse(Error::NotFound);
        };
        if v.checks >= p.max_checks() {
            // Only a record written under a larger budget gets here: refuse
            // before comparing, so no code is ever checked past the budget.
            self.dummy_check(subject, &input, now);
            end(v, State::Locked, now);
            let events = vec![Event::Locked {
                subject: subject.clone(),
                generation,
                until: None,
            }];
            return Step {
                write: Some(record),
                outcome: Err(Error::AttemptsExhausted),
                events,
            };
        }
        if self.keys.get(v.key_id).is_none() {
            // The key was removed from the ring: no one can check this code.
            self.dummy_check(subject, &input, now);
            end(v, State::Expired, now);
            let events = vec![Event::Expired {
                subject: subject.clone(),
                generation,
            }];
            return Step {
                write: Some(record),
                outcome: Err(Error::Expired),
                events,
            };
        }
        self.check(record, subject, &input, now)
    }

    /// The check itself on a live validation: spend an attempt, derive,
    /// compare in constant time, and count a failure. Also run, on a
    /// stand-in record, for every refusal of `verify`, so a refusal costs
    /// what a wrong code costs.
    fn check(
        &self,
        mut record: Record,
        subject: &SubjectKey,
        input: &CodeInput,
        now: OffsetDateTime,
    ) -> Step<Validated> {
        let p = &self.policy;
        let generation = record.generation;
        let Some(v) = record.current.as_mut() else {
            return Step::refuse(Error::NotFound);
        };
        let Some(key) = self.keys.get(v.key_id) else {
            return Step::refuse(Error::Expired);
        };
        // The check is spent before the comparison.
        v.checks = v.checks.saturating_add(1);
        let code = code::derive(key, subject, &v.nonce, generation, p.code_length());
        if code.matches(input) {
            end(v, State::Validated, now);
            let validated = Validated {
                generation,
                channel: v.channel,
                validated_at: now,
            };
            let events = vec![Event::Validated {
                subject: subject.clone(),
                generation,
            }];
            return Step {
                write: Some(record),
                outcome: Ok(validated),
                events,
            };
        }
        let attempts_left = p.max_checks().saturating_sub(v.checks);
        let mut events = vec![Event::CheckFailed {
            subject: subject.clone(),
            generation,
            attempts_left,
        }];
        record.ledger.failures.add(now, p.failure_window());
        let outcome = if record.ledger.failures.count >= p.failure_cap() {
            let lock_end = later(now, p.lockout());
            record.ledger.locked_until = Some(lock_end);
            // The lockout is the penalty for this window's failures; the
            // count starts again when it ends.
            record.ledger.failures = Default::default();
            end(v, State::Locked, now);
            events.push(Event::Locked {
                subject: subject.clone(),
                generation,
                until: Some(lock_end),
            });
            Err(Error::Locked {
                retry_after: until(now, lock_end),
            })
        } else if attempts_left == 0 {
            end(v, State::Locked, now);
            events.push(Event::Locked {
                subject: subject.clone(),
                generation,
                until: None,
            });
            Err(Error::AttemptsExhausted)
        } else {
            Err(Error::CodeMismatch { attempts_left })
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
        let Some(record) = record.filter(|r| r.current.is_some()) else {
            return Step::refuse(Error::NotFound);
        };
        if record.state() == Some(State::Canceled) {
            return Step {
                write: None,
                outcome: Ok(()),
                events: Vec::new(),
            };
        }
        if let Some(step) = self.settle(record, subject, now) {
            return step;
        }
        let mut record = record.clone();
        let generation = record.generation;
        if let Some(v) = record.current.as_mut() {
            end(v, State::Canceled, now);
        }
        let events = vec![Event::Canceled {
            subject: subject.clone(),
            generation,
        }];
        Step {
            write: Some(record),
            outcome: Ok(()),
            events,
        }
    }

    /// The validation as of `now`. Reads only: a validation whose time ran
    /// out reports [`State::Expired`] without a write.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the subject has no validation.
    pub fn status(&self, record: Option<&Record>, now: OffsetDateTime) -> Result<Status, Error> {
        let record = record.ok_or(Error::NotFound)?;
        let v = record.current.as_ref().ok_or(Error::NotFound)?;
        let p = &self.policy;
        let is_live = live(v, now);
        let state = if v.state == State::Sent && !is_live {
            State::Expired
        } else {
            v.state
        };
        let resend_at = later(v.last_sent_at, p.resend_cooldown());
        Ok(Status {
            state,
            generation: record.generation,
            channel: v.channel,
            expires_at: v.expires_at,
            attempts_left: if is_live {
                p.max_checks().saturating_sub(v.checks)
            } else {
                0
            },
            sends_left: if is_live {
                self.sends_left(v, &record.ledger, now)
            } else {
                0
            },
            resend_after: (is_live && now < resend_at).then(|| until(now, resend_at)),
            locked_until: record.ledger.locked_at(now),
        })
    }

    /// Refuses every state but live, writing `Expired` for a `Sent` record
    /// whose time ran out.
    /// `None` when live.
    fn settle<T>(
        &self,
        record: &Record,
        subject: &SubjectKey,
        now: OffsetDateTime,
    ) -> Option<Step<T>> {
        let Some(v) = record.current.as_ref() else {
            return Some(Step::refuse(Error::NotFound));
        };
        Some(match v.state {
            State::Sent if now < v.expires_at => return None,
            State::Sent => {
                let mut record = record.clone();
                if let Some(v) = record.current.as_mut() {
                    end(v, State::Expired, now);
                }
                let generation = record.generation;
                let events = vec![Event::Expired {
                    subject: subject.clone(),
                    generation,
                }];
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
    fn dummy_check(&self, subject: &SubjectKey, input: &CodeInput, now: OffsetDateTime) {
        let stand_in = Record {
            generation: 0,
            current: Some(Validation {
                state: State::Sent,
                channel: Channel::Sms,
                key_id: self.keys.current().id(),
                nonce: [0; NONCE_LEN],
                created_at: now,
                last_sent_at: now,
                // `check` does not read the expiry: no date arithmetic here.
                expires_at: now,
                ended_at: None,
                checks: 0,
                sends: 1,
            }),
            ledger: Ledger::default(),
        };
        let _ = core::hint::black_box(self.check(stand_in, subject, input, now));
    }

    fn sends_left(&self, v: &Validation, ledger: &Ledger, now: OffsetDateTime) -> u32 {
        let p = &self.policy;
        let window = p
            .subject_send_cap()
            .saturating_sub(ledger.sends.count_at(now, p.subject_send_window()));
        p.max_sends().saturating_sub(v.sends).min(window)
    }

    fn send_window_full(&self, ledger: &Ledger, now: OffsetDateTime) -> Error {
        let closes = ledger
            .sends
            .closes_at(self.policy.subject_send_window())
            .unwrap_or(now);
        Error::SendLimit {
            retry_after: until(now, closes),
        }
    }
}

fn empty_record() -> Record {
    Record {
        generation: 0,
        current: None,
        ledger: Ledger::default(),
    }
}

/// The refusal for a subject locked at `now`.
fn locked<T>(ledger: &Ledger, now: OffsetDateTime) -> Option<Step<T>> {
    let lock_end = ledger.locked_at(now)?;
    Some(Step::refuse(Error::Locked {
        retry_after: until(now, lock_end),
    }))
}

fn live(v: &Validation, now: OffsetDateTime) -> bool {
    v.state == State::Sent && now < v.expires_at
}

fn end(v: &mut Validation, state: State, now: OffsetDateTime) {
    v.state = state;
    v.ended_at = Some(now);
}

fn nonce<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut n);
    n
}
