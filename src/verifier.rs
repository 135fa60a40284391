//! [`Verifier`]: the [`Engine`] driven over a synchronous [`Store`] and a
//! [`Clock`].

use core::fmt;

use rand_core::CryptoRng;

use crate::clock::Clock;
use crate::delivery::{Delivery, SendId};
use crate::error::Error;
use crate::keys::KeyRing;
use crate::policy::Policy;
use crate::record::Record;
use crate::store::{Store, Update};
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
        self.run(subject, |record| {
            self.engine.verify(record, subject, code, now)
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

    /// The validation's state, budgets and timers as of now. Writes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Store`].
    pub fn status(&self, subject: &SubjectKey) -> Result<Status, Error> {
        let now = self.clock.now();
        let loaded = self.store.load(subject).map_err(Error::store)?;
        self.engine
            .status(loaded.as_ref().map(|(record, _)| record), now)
    }

    /// The compare-and-swap loop, through [`Store::update`]: `transition` is
    /// pure and safe to re-run. The record to write is moved into the store;
    /// the outcome and events wait here until it is stored.
    fn run<T>(
        &self,
        subject: &SubjectKey,
        mut transition: impl FnMut(Option<&Record>) -> Step<T>,
    ) -> Result<T, Error> {
        for _ in 0..=self.max_retries {
            let mut step = None;
            let update = self
                .store
                .update(subject, &mut |record| {
                    let mut next = transition(record);
                    let write = next.write.take();
                    step = Some(next);
                    write
                })
                .map_err(Error::store)?;
            match (update, step) {
                (Update::Conflict, _) => continue,
                (Update::Written(_) | Update::Unchanged, Some(step)) => {
                    if let Some(listener) = &self.listener {
                        step.events.iter().for_each(listener);
                    }
                    return step.outcome;
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
