//! The store abstraction: the calls the routes make, over whichever store
//! the service runs on. Each call is `async` so a store reached over the
//! network plugs in as one more variant without touching the routes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use otpflow::{
    AsyncVerifier, Channel, Clock as _, Error, MemoryStore, Policy, Sent, Status, SubjectKey,
    Validated, Verifier,
};
use otpflow_redis::RedisStore;
use time::OffsetDateTime;

use crate::clock::ServiceClock;

/// Where validation records live.
#[derive(Debug)]
#[non_exhaustive]
pub enum Backend {
    /// In this process (`--store memory`).
    Memory(Verifier<MemoryStore, ServiceClock>),
    /// In Redis (`--store redis://host:port/`), shared by every instance
    /// that has the same keys.
    Redis(AsyncVerifier<RedisStore, ServiceClock>),
}

/// Time spent inside otpflow's calls, for the load run's CPU share.
#[derive(Debug, Default)]
pub struct CallStats {
    nanos: AtomicU64,
    calls: AtomicU64,
}

impl CallStats {
    fn record(&self, started: Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// (nanoseconds inside otpflow, calls) since start.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.nanos.load(Ordering::Relaxed),
            self.calls.load(Ordering::Relaxed),
        )
    }
}

/// The backend and its call timings.
#[derive(Debug)]
pub struct Otp {
    backend: Backend,
    clock: ServiceClock,
    policy: Policy,
    stats: CallStats,
}

fn rng() -> otpflow::rand_core::UnwrapErr<getrandom::SysRng> {
    otpflow::rand_core::UnwrapErr(getrandom::SysRng)
}

impl Otp {
    /// Wraps a backend; `clock` must be the one the backend reads.
    pub fn new(backend: Backend, clock: ServiceClock, policy: Policy) -> Self {
        Self {
            backend,
            clock,
            policy,
            stats: CallStats::default(),
        }
    }

    /// The service clock's now.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The service clock.
    pub fn clock(&self) -> &ServiceClock {
        &self.clock
    }

    /// The policy every purpose runs under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Time spent inside otpflow.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// Starts (or, when live, resends) a validation.
    ///
    /// # Errors
    /// As [`Verifier::start`].
    pub async fn start(&self, subject: &SubjectKey, channel: Channel) -> Result<Sent, Error> {
        let t = Instant::now();
        let out = match &self.backend {
            Backend::Memory(v) => v.start(subject, channel, &mut rng()),
            Backend::Redis(v) => v.start(subject, channel, &mut rng()).await,
        };
        self.stats.record(t);
        out
    }

    /// Resends the live validation's code.
    ///
    /// # Errors
    /// As [`Verifier::resend`].
    pub async fn resend(
        &self,
        subject: &SubjectKey,
        channel: Option<Channel>,
    ) -> Result<Sent, Error> {
        let t = Instant::now();
        let out = match &self.backend {
            Backend::Memory(v) => v.resend(subject, channel, &mut rng()),
            Backend::Redis(v) => v.resend(subject, channel, &mut rng()).await,
        };
        self.stats.record(t);
        out
    }

    /// Checks a code.
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub async fn verify(&self, subject: &SubjectKey, code: &str) -> Result<Validated, Error> {
        let t = Instant::now();
        let out = match &self.backend {
            Backend::Memory(v) => v.verify(subject, code),
            Backend::Redis(v) => v.verify(subject, code).await,
        };
        self.stats.record(t);
        out
    }

    /// The validation's status.
    ///
    /// # Errors
    /// As [`Verifier::status`].
    pub async fn status(&self, subject: &SubjectKey) -> Result<Status, Error> {
        let t = Instant::now();
        let out = match &self.backend {
            Backend::Memory(v) => v.status(subject),
            Backend::Redis(v) => v.status(subject).await,
        };
        self.stats.record(t);
        out
    }
}
