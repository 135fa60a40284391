//! [`Verifier`]: the [`Engine`] driven over a synchronous [`Store`] and a
//! [`Clock`].

use core::fmt;

use rand_core::CryptoRng;

use crate::budget_key::{BudgetKey, Budgets, SpendTag};
use crate::clock::Clock;
use crate::delivery::{Delivery, SendId};
use crate::error::Error;
use crate::keys::KeyRing;
use crate::policy::Policy;
use crate::record::Record;
use crate::store::{RecordKey, Store, Swap, Update};
use crate::subject::{Channel, SubjectKey};
use crate::validation::{Engine, Event, Sent, Status, Step, Validated};

/// How many times a call re-runs its transition after a compare-and-swap
/// conflict before it gives up with [`Error::Contention`], by default.
pub const DEFAULT_MAX_RETRIES: u32 = 8;

type Listener = Box<dyn Fn(&Event) + Send + Sync>;

/// Runs validations over a store: each call reads the clock once, loads the
/// record, runs the pure transition, and compare-and-swaps the result,
/// re-running the transition on a conflict (at most
/// [`DEFAULT_MAX_RETRIES`] times, then [`Error::Contention`]). A store error
/// surfaces as [`Error::Store`] and leaves the record as it was.
///
/// `Verifier` is `Sync` when its store and clock are: share one across
/// threads behind an `Arc`.
///
/// ```
/// use otpflow::*;
/// use time::macros::datetime;
///
/// let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?);
/// let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
/// let verifier = Verifier::new(Policy::default(), keys, MemoryStore::new(), clock.clone());
/// // Any `rand_core::CryptoRng`; here the operating system's.
/// let mut rng = otpflow::rand_core::UnwrapErr(getrandom::SysRng);
///
/// let phone = PhoneNumber::parse("+44 7401 101801", &PhonePolicy::default())?;
/// let subject = SubjectKey::new(Purpose::Login, phone);
/// let sent = verifier.start(&subject, Channel::Sms, &mut rng)?;
/// // … deliver `sent.code.as_str()` by SMS …
///
/// clock.advance(time::Duration::seconds(40));
/// let done = verifier.verify(&subject, sent.code.as_str())?;
/// assert_eq!(done.generation, 1);
/// assert_eq!(verifier.status(&subject)?.state, State::Validated);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Verifier<S, C> {
    engine: Engine,
    store: S,
    clock: C,
    max_retries: u32,
    listener: Option<Listener>,
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Verifier<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("engine", &self.engine)
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("max_retries", &self.max_retries)
            .field("listener", &self.listener.as_ref().map(|_| "Fn(&Event)"))
            .finish()
    }
}

impl<S: Store, C: Clock> Verifier<S, C> {
    /// A verifier with this policy, keys, store and clock.
    pub fn new(policy: Policy, keys: KeyRing, store: S, clock: C) -> Self {
        Self::with_engine(Engine::new(policy, keys), store, clock)
    }

    /// A verifier over an existing engine.
    pub fn with_engine(engine: Engine, store: S, clock: C) -> Self {
        Self {
            engine,
            store,
            clock,
            max_retries: DEFAULT_MAX_RETRIES,
            listener: None,
        }
    }

    /// Calls `listener` with every [`Event`], in order, once the record that
    /// produced it is stored: send messages, fire webhooks, write audit logs.
    /// It runs on the calling thread; keep it quick or hand off to a queue.
    #[must_use]
    pub fn on_event(mut self, listener: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// Sets how many conflicts a call retries before [`Error::Contention`].
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The engine (policy and keys).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to rotate keys.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Starts a validation and returns the code to deliver; a live validation
    /// is resent instead (over `channel`).
    ///
    /// # Errors
    /// [`Error::Locked`], [`Error::SendLimit`], [`Error::ResendTooSoon`] (when
    /// acting as a resend), [`Error::Store`], [`Error::Contention`].
    pub fn start<R: CryptoRng + ?Sized>(
        &self,
        subject: &SubjectKey,
        channel: Channel,
        rng: &mut R,
    ) -> Result<Sent, Error> {
        let now = self.clock.now();
        self.run(subject, |record| {
            self.engine.start(record, subject, channel, now, rng)
        })
    }

    /// Resends the live validation's code (a new one under
    /// [`ResendMode::NewCode`](crate::ResendMode::NewCode)), over `channel`
    /// if given.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::ResendTooSoon`], [`Error::SendLimit`],
    /// [`Error::Locked`], the terminal states' errors, [`Error::Store`],
    /// [`Error::Contention`].
    pub fn resend<R: CryptoRng + ?Sized>(
        &self,
        subject: &SubjectKey,
        channel: Option<Channel>,
        rng: &mut R,
    ) -> Result<Sent, Error> {
        let now = self.clock.now();
        self.run(subject, |record| {
            self.engine.resend(record, subject, channel, now, rng)
        })
    }

    /// Checks the code the user typed.
    ///
    /// # Errors
    /// [`Error::MalformedCode`] (no attempt spent), [`Error::CodeMismatch`],
    /// [`Error::AttemptsExhausted`], [`Error::Locked`], [`Error::NotFound`],
    /// [`Error::Expired`], [`Error::AlreadyValidated`], [`Error::Canceled`],
    /// [`Error::Store`], [`Error::Contention`]. Answer outsiders with
    /// [`Error::public`].
    pub fn verify(&self, subject: &SubjectKey, code: &str) -> Result<Validated, Error> {
        let now = self.clock.now();
        // Without a listener the events would be dropped: the check builds
        // none.
        let emit = self.listener.is_some();
        self.run(subject, |record| {
            self.engine
                .verify_emitting(record, subject, code, now, emit)
        })
    }

    /// Cancels the live validation.
    ///
    /// # Errors
    /// [`Error::NotFound`], the terminal states' errors, [`Error::Store`],
    /// [`Error::Contention`].
    pub fn cancel(&self, subject: &SubjectKey) -> Result<(), Error> {
        let now = self.clock.now();
        self.run(subject, |record| self.engine.cancel(record, subject, now))
    }

    /// Unlocks the subject (an operator's action): clears its consecutive
    /// failures, any lockout and a block ([`Engine::unlock`]), with an
    /// [`Event::Unlocked`].
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Contention`].
    pub fn unlock(&self, subject: &SubjectKey) -> Result<(), Error> {
        let now = self.clock.now();
        self.run(subject, |record| self.engine.unlock(record, subject, now))
    }

    /// Records what the provider reported about a send
    /// ([`Engine::report_delivery`]): a failed delivery of the subject's
    /// latest send gives back its budgets and lifts its cooldown, once
    /// (`Ok(true)`); any other report changes nothing (`Ok(false)`). Call it
    /// only on the provider's word, never the user's.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Store`], [`Error::Contention`].
    pub fn report_delivery(
        &self,
        subject: &SubjectKey,
        send: SendId,
        delivery: Delivery,
    ) -> Result<bool, Error> {
        let now = self.clock.now();
        self.run(subject, |record| {
            self.engine
                .report_delivery(record, subject, send, delivery, now)
        })
    }

    /// [`start`](Self::start), spending also from the budget keys
    /// `budgets` names (the client's address, the number's range…; see
    /// [`budget_key`](crate::budget_key)). Every key is checked first; a
    /// send goes out only when each has room, and spends one place in each.
    ///
    /// ```
    /// use otpflow::*;
    /// use time::macros::datetime;
    ///
    /// let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?);
    /// let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
    /// let verifier = Verifier::new(Policy::default(), keys, MemoryStore::new(), clock);
    /// let mut rng = otpflow::rand_core::UnwrapErr(getrandom::SysRng);
    /// let client = Budgets::new().address("203.0.113.7".parse()?).range();
    ///
    /// // The default address budget: 10 at once from one client.
    /// for i in 0..10 {
    ///     let phone = PhoneNumber::parse(&format!("07401 1018{i:02}"), &PhonePolicy::default())?;
    ///     verifier.start_within(&client, &SubjectKey::new(Purpose::Login, phone), Channel::Sms, &mut rng)?;
    /// }
    /// let phone = PhoneNumber::parse("07401 101899", &PhonePolicy::default())?;
    /// let refused = verifier.start_within(&client, &SubjectKey::new(Purpose::Login, phone), Channel::Sms, &mut rng);
    /// let Err(Error::BudgetSpent { budget, retry_after }) = refused else { panic!("{refused:?}") };
    /// assert_eq!((budget.as_str(), retry_after), ("address", time::Duration::minutes(6)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`start`](Self::start)'s, [`Error::Denied`], and
    /// [`Error::BudgetSpent`] (with an [`Event::BudgetRefused`]).
    pub fn start_within<R: CryptoRng + ?Sized>(
        &self,
        budgets: &Budgets,
        subject: &SubjectKey,
        channel: Channel,
        rng: &mut R,
    ) -> Result<Sent, Error> {
        let now = self.clock.now();
        self.send(subject, budgets, now, |record| {
            self.engine.start(record, subject, channel, now, rng)
        })
    }

    /// [`resend`](Self::resend), spending also from the budget keys
    /// `budgets` names (see [`start_within`](Self::start_within)).
    ///
    /// # Errors
    /// [`resend`](Self::resend)'s, [`Error::Denied`], and
    /// [`Error::BudgetSpent`].
    pub fn resend_within<R: CryptoRng + ?Sized>(
        &self,
        budgets: &Budgets,
        subject: &SubjectKey,
        channel: Option<Channel>,
        rng: &mut R,
    ) -> Result<Sent, Error> {
        let now = self.clock.now();
        self.send(subject, budgets, now, |record| {
            self.engine.resend(record, subject, channel, now, rng)
        })
    }

    /// [`report_delivery`](Self::report_delivery) for a send made with
    /// [`start_within`](Self::start_within) or
    /// [`resend_within`](Self::resend_within): a failed latest send also
    /// gives back its place in each key `budgets` names (name the same
    /// ones) whose latest spend it still is, once.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Store`], [`Error::Contention`].
    pub fn report_delivery_within(
        &self,
        budgets: &Budgets,
        subject: &SubjectKey,
        send: SendId,
        delivery: Delivery,
    ) -> Result<bool, Error> {
        let now = self.clock.now();
        let key = RecordKey::from(subject);
        for _ in 0..=self.max_retries {
            let loaded = self.store.load(&key).map_err(Error::store)?;
            let record = loaded.as_ref().map(|(r, _)| r);
            let step = self
                .engine
                .report_delivery(record, subject, send, delivery, now);
            let tag = step.write.as_ref().and_then(|r| self.engine.spend_tag(r));
            if let Some(new) = &step.write {
                let expected = loaded.as_ref().map(|(_, v)| *v);
                match self
                    .store
                    .compare_and_swap(&key, expected, new)
                    .map_err(Error::store)?
                {
                    Swap::Done(_) => {}
                    Swap::Conflict => continue,
                }
            }
            if let (Ok(true), Some(tag)) = (&step.outcome, tag) {
                let keys = self.engine.budget_keys(subject, budgets);
                self.refund_all(&keys, tag, now);
            }
            self.emit(&step.events);
            return step.outcome;
        }
        Err(Error::Contention)
    }

    /// The validation's state, budgets and timers as of now. Writes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Store`].
    pub fn status(&self, subject: &SubjectKey) -> Result<Status, Error> {
        let now = self.clock.now();
        let loaded = self
            .store
            .load(&RecordKey::from(subject))
            .map_err(Error::store)?;
        self.engine
            .status(loaded.as_ref().map(|(record, _)| record), now)
    }

    fn emit(&self, events: &[Event]) {
        if let Some(listener) = &self.listener {
            events.iter().for_each(listener);
        }
    }

    /// A send that spends from budget keys: the subject's transition is run
    /// on the loaded record; a refusal is stored (if it writes) and
    /// returned as it is. A send checks every key, spends from each in
    /// turn, then compare-and-swaps the subject's record; a key that
    /// refuses, or a conflict on the subject, gives back what was spent
    /// (exact or nothing: see [`budget_key`](crate::budget_key)), and a
    /// conflict runs it all again.
    fn send(
        &self,
        subject: &SubjectKey,
        budgets: &Budgets,
        now: time::OffsetDateTime,
        mut transition: impl FnMut(Option<&Record>) -> Step<Sent>,
    ) -> Result<Sent, Error> {
        let keys = self.engine.budget_keys(subject, budgets);
        if keys.is_empty() {
            return self.run(subject, transition);
        }
        let key = RecordKey::from(subject);
        for _ in 0..=self.max_retries {
            let loaded = self.store.load(&key).map_err(Error::store)?;
            let step = transition(loaded.as_ref().map(|(r, _)| r));
            let expected = loaded.as_ref().map(|(_, v)| *v);
            let tag = step.write.as_ref().and_then(|r| self.engine.spend_tag(r));
            let (Ok(_), Some(new), Some(tag)) = (&step.outcome, &step.write, tag) else {
                // A refusal: store what it writes, spend nothing.
                if let Some(new) = &step.write {
                    let swap = self.store.compare_and_swap(&key, expected, new);
                    if swap.map_err(Error::store)? == Swap::Conflict {
                        continue;
                    }
                }
                self.emit(&step.events);
                return step.outcome;
            };
            if let Err(e) = self.check_all(&keys, now) {
                self.refused(subject, &e);
                return Err(e);
            }
            let mut spent = Vec::with_capacity(keys.len());
            for budget in &keys {
                match self.spend(budget, tag, now) {
                    Ok(()) => spent.push(budget.clone()),
                    Err(e) => {
                        self.refund_all(&spent, tag, now);
                        self.refused(subject, &e);
                        return Err(e);
                    }
                }
            }
            match self.store.compare_and_swap(&key, expected, new) {
                Ok(Swap::Done(_)) => {
                    self.emit(&step.events);
                    return step.outcome;
                }
                Ok(Swap::Conflict) => self.refund_all(&spent, tag, now),
                Err(e) => {
                    self.refund_all(&spent, tag, now);
                    return Err(Error::store(e));
                }
            }
        }
        Err(Error::Contention)
    }

    /// Every key allows a send (reads only); else the refusal of the key
    /// that allows one last.
    fn check_all(&self, keys: &[BudgetKey], now: time::OffsetDateTime) -> Result<(), Error> {
        let mut worst: Option<Error> = None;
        for budget in keys {
            let loaded = self
                .store
                .load(&RecordKey::from(budget.clone()))
                .map_err(Error::store)?;
            let record = loaded.as_ref().map(|(r, _)| r);
            if let Err(e) = self.engine.check_budget(record, budget, now) {
                worst = Some(crate::budget_key::allows_last(worst, e));
            }
        }
        worst.map_or(Ok(()), Err)
    }

    /// Spends one place from `budget`, retrying on conflict.
    fn spend(
        &self,
        budget: &BudgetKey,
        tag: SpendTag,
        now: time::OffsetDateTime,
    ) -> Result<(), Error> {
        let key = RecordKey::from(budget.clone());
        self.update(&key, |record| {
            self.engine.spend_budget(record, budget, tag, now)
        })
    }

    /// Gives back what `tag` spent from each key, where it can. A store
    /// error leaves that place spent: the safe side.
    fn refund_all(&self, keys: &[BudgetKey], tag: SpendTag, now: time::OffsetDateTime) {
        for budget in keys {
            let key = RecordKey::from(budget.clone());
            let _ = self.update(&key, |record| {
                self.engine.refund_budget(record, budget, tag, now)
            });
        }
    }

    fn refused(&self, subject: &SubjectKey, e: &Error) {
        if let Error::BudgetSpent {
            budget,
            retry_after,
        } = e
        {
            self.emit(&[Event::BudgetRefused {
                subject: subject.clone(),
                budget: *budget,
                retry_after: *retry_after,
            }]);
        }
    }

    /// The compare-and-swap loop, through [`Store::update`]: `transition` is
    /// pure and safe to re-run. The record to write is moved into the store;
    /// the outcome and events wait here until it is stored.
    fn run<T>(
        &self,
        subject: &SubjectKey,
        transition: impl FnMut(Option<&Record>) -> Step<T>,
    ) -> Result<T, Error> {
        self.update(&RecordKey::from(subject), transition)
    }

    /// [`run`](Self::run) for any record.
    fn update<T>(
        &self,
        key: &RecordKey,
        mut transition: impl FnMut(Option<&Record>) -> Step<T>,
    ) -> Result<T, Error> {
        for _ in 0..=self.max_retries {
            let mut step = None;
            let listening = self.listener.is_some();
            let update = self
                .store
                .update(key, &mut |record| {
                    let Step {
                        write,
                        outcome,
                        events,
                    } = transition(record);
                    // Without a listener the events go now: only the
                    // outcome is moved out (a step is 280 bytes).
                    step = Some((outcome, listening.then_some(events)));
                    write
                })
                .map_err(Error::store)?;
            match (update, step) {
                (Update::Conflict, _) => continue,
                (Update::Written(_) | Update::Unchanged, Some((outcome, events))) => {
                    if let (Some(listener), Some(events)) = (&self.listener, &events) {
                        events.iter().for_each(listener);
                    }
                    return outcome;
                }
                // A store that reports an update without running the
                // transition breaks its contract: nothing is known to have
                // happened, so retry.
                (Update::Written(_) | Update::Unchanged, None) => continue,
            }
        }
        Err(Error::Contention)
    }
}
