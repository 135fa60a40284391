//! [`AsyncVerifier`]: the [`Engine`] driven over an [`AsyncStore`] and a
//! [`Clock`], with exactly [`Verifier`](crate::Verifier)'s semantics.

use core::fmt;

use rand_core::CryptoRng;

use crate::clock::Clock;
use crate::delivery::{Delivery, SendId};
use crate::error::Error;
use crate::keys::KeyRing;
use crate::policy::Policy;
use crate::record::Record;
use crate::store::{AsyncStore, Swap, Version};
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
        self.run(subject, |record| {
            self.engine.verify(record, subject, code, now)
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

    /// The validation's state, budgets and timers as of now. Writes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Store`].
    pub async fn status(&self, subject: &SubjectKey) -> Result<Status, Error> {
        let now = self.clock.now();
        let loaded = self.store.load(subject).await.map_err(Error::store)?;
        self.engine
            .status(loaded.as_ref().map(|(record, _)| record), now)
    }

    /// The compare-and-swap loop: `transition` is pure and safe to re-run.
    async fn run<T>(
        &self,
        subject: &SubjectKey,
        mut transition: impl FnMut(Option<&Record>) -> Step<T>,
    ) -> Result<T, Error> {
        for _ in 0..=self.max_retries {
            let loaded = self.store.load(subject).await.map_err(Error::store)?;
            let step = transition(loaded.as_ref().map(|(record, _)| record));
            if let Some(new) = &step.write {
                let expected: Option<Version> = loaded.as_ref().map(|(_, v)| *v);
                match self
                    .store
                    .compare_and_swap(subject, expected, new)
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
        async fn load(&self, key: &SubjectKey) -> Result<Option<(Record, Version)>, Down> {
            self.loads.fetch_add(1, Ordering::Relaxed);
            Ok(crate::Store::load(&self.inner, key).unwrap_or_else(|e| match e {}))
        }
        async fn compare_and_swap(
            &self,
            _: &SubjectKey,
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
            crate::Store::load(verifier.store(), &s)
                .unwrap_or_else(|e| match e {})
                .is_some()
        );
        let events = events.lock().expect("not poisoned");
        assert!(
            matches!(&events[..], [Event::Sent { code, .. }] if code.as_str() == sent.code.as_str())
        );
    }
}
