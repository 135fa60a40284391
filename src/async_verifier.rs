//! [`AsyncVerifier`]: the [`Engine`] driven over an [`AsyncStore`] and a
//! [`Clock`], with exactly [`Verifier`](crate::Verifier)'s semantics.

use core::fmt;

use rand_core::CryptoRng;

use crate::budget_key::{BudgetKey, Budgets, SpendTag};
use crate::clock::Clock;
use crate::delivery::{Delivery, SendId};
use crate::error::Error;
use crate::keys::KeyRing;
use crate::policy::Policy;
use crate::record::Record;
use crate::store::{AsyncStore, RecordKey, Swap, Version};
use crate::subject::{Channel, SubjectKey};
use crate::validation::{Engine, Event, Sent, Status, Step, Validated};
use crate::verifier::DEFAULT_MAX_RETRIES;

type Listener = Box<dyn Fn(&Event) + Send + Sync>;

/// Runs validations over an async store, for services on an async runtime
/// (tokio, async-std, a JavaScript host): each call reads the clock once,
/// awaits the record, runs the pure transition, and awaits the
/// compare-and-swap of the result, re-running the transition on a conflict
/// (at most [`DEFAULT_MAX_RETRIES`] times, then [`Error::Contention`]).
/// A store error surfaces as [`Error::Store`] and leaves the record as it
/// was. Events go to the listener only once their record is stored.
///
/// It is [`Verifier`](crate::Verifier) with `.await`: same methods, same
/// errors, same answers for the same store contents and clock. otpflow
/// brings no runtime; the futures are `Send` when the store, the clock and
/// the random source are, so a multi-threaded executor can run them.
///
/// ```
/// use otpflow::*;
/// use time::macros::datetime;
///
/// # futures_executor::block_on(async {
/// let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?);
/// let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
/// // Any `AsyncStore`: otpflow-redis, otpflow-postgres, or `MemoryStore`.
/// let verifier = AsyncVerifier::new(Policy::default(), keys, MemoryStore::new(), clock.clone());
/// let mut rng = otpflow::rand_core::UnwrapErr(getrandom::SysRng);
///
/// let phone = PhoneNumber::parse("+44 7401 101801", &PhonePolicy::default())?;
/// let subject = SubjectKey::new(Purpose::Login, phone);
/// let sent = verifier.start(&subject, Channel::Sms, &mut rng).await?;
///
/// clock.advance(time::Duration::seconds(40));
/// let done = verifier.verify(&subject, sent.code.as_str()).await?;
/// assert_eq!(done.generation, 1);
/// assert_eq!(verifier.status(&subject).await?.state, State::Validated);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct AsyncVerifier<S, C> {
    engine: Engine,
    store: S,
    clock: C,
    max_retries: u32,
    listener: Option<Listener>,
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for AsyncVerifier<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncVerifier")
            .field("engine", &self.engine)
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("max_retries", &self.max_retries)
            .field("listener", &self.listener.as_ref().map(|_| "Fn(&Event)"))
            .finish()
    }
}

impl<S: AsyncStore, C: Clock> AsyncVerifier<S, C> {
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
    /// It runs inside the call's future; keep it quick or hand off to a
    /// queue (a channel's `try_send`).
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
    pub async fn start<R: CryptoRng + ?Sized>(
        &self,
        subject: &SubjectKey,
        channel: Channel,
        rng: &mut R,
    ) -> Result<Sent, Error> {
        let now = self.clock.now();
        self.run(subject, |record| {
            self.engine.start(record, subject, channel, now, rng)
        })
        .await
    }

    /// Resends the live validation's code (a new one under
    /// [`ResendMode::NewCode`](crate::ResendMode::NewCode)), over `channel`
    /// if given.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::ResendTooSoon`], [`Error::SendLimit`],
    /// [`Error::Locked`], the terminal states' errors, [`Error::Store`],
    /// [`Error::Contention`].
    pub async fn resend<R: CryptoRng + ?Sized>(
        &self,
        subject: &SubjectKey,
        channel: Option<Channel>,
        rng: &mut R,
    ) -> Result<Sent, Error> {
        let now = self.clock.now();
        self.run(subject, |record| {
            self.engine.resend(record, subject, channel, now, rng)
        })
        .await
    }

    /// Checks the code the user typed.
    ///
    /// # Errors
    /// [`Error::MalformedCode`] (no attempt spent), [`Error::CodeMismatch`],
    /// [`Error::AttemptsExhausted`], [`Error::Locked`], [`Error::NotFound`],
    /// [`Error::Expired`], [`Error::AlreadyValidated`], [`Error::Canceled`],
    /// [`Error::Store`], [`Error::Contention`]. Answer outsiders with
    /// [`Error::public`].
    pub async fn verify(&self, subject: &SubjectKey, code: &str) -> Result<Validated, Error> {
        let now = self.clock.now();
        // Without a listener the events would be dropped: build none.
        let emit = self.listener.is_some();
        self.run(subject, |record| {
            self.engine
                .verify_emitting(record, subject, code, now, emit)
        })
        .await
    }

    /// Cancels the live validation.
    ///
    /// # Errors
    /// [`Error::NotFound`], the terminal states' errors, [`Error::Store`],
    /// [`Error::Contention`].
    pub async fn cancel(&self, subject: &SubjectKey) -> Result<(), Error> {
        let now = self.clock.now();
        self.run(subject, |record| self.engine.cancel(record, subject, now))
            .await
    }

    /// Unlocks the subject (an operator's action), as
    /// [`Verifier::unlock`](crate::Verifier::unlock).
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Contention`].
    pub async fn unlock(&self, subject: &SubjectKey) -> Result<(), Error> {
        let now = self.clock.now();
        self.run(subject, |record| self.engine.unlock(record, subject, now))
            .await
    }

    /// Records what the provider reported about a send
    /// ([`Engine::report_delivery`]): a failed delivery of the subject's
    /// latest send gives back its budgets and lifts its cooldown, once
    /// (`Ok(true)`); any other report changes nothing (`Ok(false)`). Call it
    /// only on the provider's word, never the user's.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Store`], [`Error::Contention`].
    pub async fn report_delivery(
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
        .await
    }

    /// [`start`](Self::start), spending also from the budget keys
    /// `budgets` names, as
    /// [`Verifier::start_within`](crate::Verifier::start_within).
    ///
    /// # Errors
    /// [`start`](Self::start)'s, [`Error::Denied`], and
    /// [`Error::BudgetSpent`] (with an [`Event::BudgetRefused`]).
    pub async fn start_within<R: CryptoRng + ?Sized>(
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
        .await
    }

    /// [`resend`](Self::resend), spending also from the budget keys
    /// `budgets` names, as
    /// [`Verifier::resend_within`](crate::Verifier::resend_within).
    ///
    /// # Errors
    /// [`resend`](Self::resend)'s, [`Error::Denied`], and
    /// [`Error::BudgetSpent`].
    pub async fn resend_within<R: CryptoRng + ?Sized>(
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
        .await
    }

    /// [`report_delivery`](Self::report_delivery) that also gives back the
    /// budget keys' places, as
    /// [`Verifier::report_delivery_within`](crate::Verifier::report_delivery_within).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Store`], [`Error::Contention`].
    pub async fn report_delivery_within(
        &self,
        budgets: &Budgets,
        subject: &SubjectKey,
        send: SendId,
        delivery: Delivery,
    ) -> Result<bool, Error> {
        let now = self.clock.now();
        let key = RecordKey::from(subject);
        for _ in 0..=self.max_retries {
            let loaded = self.store.load(&key).await.map_err(Error::store)?;
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
                    .await
                    .map_err(Error::store)?
                {
                    Swap::Done(_) => {}
                    Swap::Conflict => continue,
                }
            }
            if let (Ok(true), Some(tag)) = (&step.outcome, tag) {
                let keys = self.engine.budget_keys(subject, budgets);
                self.refund_all(&keys, tag, now).await;
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
    pub async fn status(&self, subject: &SubjectKey) -> Result<Status, Error> {
        let now = self.clock.now();
        let loaded = self
            .store
            .load(&RecordKey::from(subject))
            .await
            .map_err(Error::store)?;
        self.engine
            .status(loaded.as_ref().map(|(record, _)| record), now)
    }

    fn emit(&self, events: &[Event]) {
        if let Some(listener) = &self.listener {
            events.iter().for_each(listener);
        }
    }

    /// [`Verifier`](crate::Verifier)'s send over budget keys, awaited.
    async fn send(
        &self,
        subject: &SubjectKey,
        budgets: &Budgets,
        now: time::OffsetDateTime,
        mut transition: impl FnMut(Option<&Record>) -> Step<Sent>,
    ) -> Result<Sent, Error> {
        let keys = self.engine.budget_keys(subject, budgets);
        if keys.is_empty() {
            return self.run(subject, transition).await;
        }
        let key = RecordKey::from(subject);
        for _ in 0..=self.max_retries {
            let loaded = self.store.load(&key).await.map_err(Error::store)?;
            let step = transition(loaded.as_ref().map(|(r, _)| r));
            let expected = loaded.as_ref().map(|(_, v)| *v);
            let tag = step.write.as_ref().and_then(|r| self.engine.spend_tag(r));
            let (Ok(_), Some(new), Some(tag)) = (&step.outcome, &step.write, tag) else {
                if let Some(new) = &step.write {
                    let swap = self.store.compare_and_swap(&key, expected, new).await;
                    if swap.map_err(Error::store)? == Swap::Conflict {
                        continue;
                    }
                }
                self.emit(&step.events);
                return step.outcome;
            };
            if let Err(e) = self.check_all(&keys, now).await {
                self.refused(subject, &e);
                return Err(e);
            }
            let mut spent = Vec::with_capacity(keys.len());
            for budget in &keys {
                match self.spend(budget, tag, now).await {
                    Ok(()) => spent.push(budget.clone()),
                    Err(e) => {
                        self.refund_all(&spent, tag, now).await;
                        self.refused(subject, &e);
                        return Err(e);
                    }
                }
            }
            match self.store.compare_and_swap(&key, expected, new).await {
                Ok(Swap::Done(_)) => {
                    self.emit(&step.events);
                    return step.outcome;
                }
                Ok(Swap::Conflict) => self.refund_all(&spent, tag, now).await,
                Err(e) => {
                    self.refund_all(&spent, tag, now).await;
                    return Err(Error::store(e));
                }
            }
        }
        Err(Error::Contention)
    }

    async fn check_all(&self, keys: &[BudgetKey], now: time::OffsetDateTime) -> Result<(), Error> {
        let mut worst: Option<Error> = None;
        for budget in keys {
            let loaded = self
                .store
                .load(&RecordKey::from(budget.clone()))
                .await
                .map_err(Error::store)?;
            let record = loaded.as_ref().map(|(r, _)| r);
            if let Err(e) = self.engine.check_budget(record, budget, now) {
                worst = Some(crate::budget_key::allows_last(worst, e));
            }
        }
        worst.map_or(Ok(()), Err)
    }

    async fn spend(
        &self,
        budget: &BudgetKey,
        tag: SpendTag,
        now: time::OffsetDateTime,
    ) -> Result<(), Error> {
        let key = RecordKey::from(budget.clone());
        self.update(&key, |record| {
            self.engine.spend_budget(record, budget, tag, now)
        })
        .await
    }

    async fn refund_all(&self, keys: &[BudgetKey], tag: SpendTag, now: time::OffsetDateTime) {
        for budget in keys {
            let key = RecordKey::from(budget.clone());
            let _ = self
                .update(&key, |record| {
                    self.engine.refund_budget(record, budget, tag, now)
                })
                .await;
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

    /// The compare-and-swap loop: `transition` is pure and safe to re-run.
    async fn run<T>(
        &self,
        subject: &SubjectKey,
        transition: impl FnMut(Option<&Record>) -> Step<T>,
    ) -> Result<T, Error> {
        self.update(&RecordKey::from(subject), transition).await
    }

    /// [`run`](Self::run) for any record.
    async fn update<T>(
        &self,
        key: &RecordKey,
        mut transition: impl FnMut(Option<&Record>) -> Step<T>,
    ) -> Result<T, Error> {
        for _ in 0..=self.max_retries {
            let loaded = self.store.load(key).await.map_err(Error::store)?;
            let step = transition(loaded.as_ref().map(|(record, _)| record));
            if let Some(new) = &step.write {
                let expected: Option<Version> = loaded.as_ref().map(|(_, v)| *v);
                match self
                    .store
                    .compare_and_swap(key, expected, new)
                    .await
                    .map_err(Error::store)?
                {
                    Swap::Done(_) => {}
                    Swap::Conflict => continue,
                }
            }
            if let Some(listener) = &self.listener {
                step.events.iter().for_each(listener);
            }
            return step.outcome;
        }
        Err(Error::Contention)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use rand_core::SeedableRng;
    use time::macros::datetime;

    use super::*;
    use crate::{KeyId, ManualClock, MemoryStore, PhoneNumber, PhonePolicy, Purpose, SecretKey};

    fn subject() -> SubjectKey {
        let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default()).expect("a mobile");
        SubjectKey::new(Purpose::Login, phone)
    }

    fn keys() -> KeyRing {
        KeyRing::new(SecretKey::new(KeyId(1), &[7u8; 32]).expect("a valid key"))
    }

    fn clock() -> ManualClock {
        ManualClock::new(datetime!(2026-11-22 12:00 UTC))
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send() {
        let verifier = AsyncVerifier::new(Policy::default(), keys(), MemoryStore::new(), clock());
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let s = subject();
        assert_send(&verifier.start(&s, Channel::Sms, &mut rng));
        assert_send(&verifier.resend(&s, None, &mut rng));
        assert_send(&verifier.verify(&s, "123456"));
        assert_send(&verifier.cancel(&s));
        assert_send(&verifier.status(&s));
    }

    /// Loads from a `MemoryStore`; every write conflicts or fails.
    struct Refusing {
        inner: MemoryStore,
        fail: bool,
        loads: AtomicU32,
    }

    #[derive(Debug)]
    struct Down;
    impl fmt::Display for Down {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("down")
        }
    }
    impl std::error::Error for Down {}

    impl AsyncStore for Refusing {
        type Error = Down;
        async fn load(&self, key: &RecordKey) -> Result<Option<(Record, Version)>, Down> {
            self.loads.fetch_add(1, Ordering::Relaxed);
            Ok(crate::Store::load(&self.inner, key).unwrap_or_else(|e| match e {}))
        }
        async fn compare_and_swap(
            &self,
            _: &RecordKey,
            _: Option<Version>,
            _: &Record,
        ) -> Result<Swap, Down> {
            if self.fail {
                Err(Down)
            } else {
                Ok(Swap::Conflict)
            }
        }
    }

    #[test]
    fn conflicts_end_in_contention_and_failures_in_store_errors_with_no_events() {
        for fail in [false, true] {
            let events = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&events);
            let store = Refusing {
                inner: MemoryStore::new(),
                fail,
                loads: AtomicU32::new(0),
            };
            let verifier = AsyncVerifier::new(Policy::default(), keys(), store, clock())
                .max_retries(3)
                .on_event(move |e| seen.lock().expect("not poisoned").push(e.clone()));
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
            let got =
                futures_executor::block_on(verifier.start(&subject(), Channel::Sms, &mut rng));
            let loads = verifier.store().loads.load(Ordering::Relaxed);
            if fail {
                assert!(matches!(got, Err(Error::Store(_))), "{got:?}");
                assert_eq!(loads, 1);
            } else {
                assert!(matches!(got, Err(Error::Contention)), "{got:?}");
                assert_eq!(loads, 4, "one try and three retries");
            }
            assert!(events.lock().expect("not poisoned").is_empty());
        }
    }

    #[test]
    fn events_follow_the_write() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        let verifier = AsyncVerifier::new(Policy::default(), keys(), MemoryStore::new(), clock())
            .on_event(move |e| seen.lock().expect("not poisoned").push(e.clone()));
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let s = subject();
        let sent = futures_executor::block_on(verifier.start(&s, Channel::Sms, &mut rng))
            .expect("a fresh subject starts");
        assert!(
            crate::Store::load(verifier.store(), &RecordKey::from(&s))
                .unwrap_or_else(|e| match e {})
                .is_some()
        );
        let events = events.lock().expect("not poisoned");
        assert!(
            matches!(&events[..], [Event::Sent { code, .. }] if code.as_str() == sent.code.as_str())
        );
    }
}
