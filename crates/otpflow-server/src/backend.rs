//! The store abstraction: the calls the routes make, over whichever store
//! the service runs on. Each call is `async` so a store reached over the
//! network plugs in as one more variant without touching the routes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use otpflow::budget_key::Budgets;
use otpflow::{
    AsyncVerifier, Channel, Clock as _, Delivery, Error, MemoryStore, Policy, SendId, Sent, Status,
    SubjectKey, Validated, Verifier,
};
use otpflow_postgres::PgStore;
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
    /// In PostgreSQL (`--store postgres://user@host:port/db`), shared by
    /// every instance that has the same keys.
    Postgres(AsyncVerifier<PgStore, ServiceClock>),
}

/// Time spent inside otpflow's calls, for the load run's CPU share: wall
/// time around every call, and (test builds only, when switched on with
/// [`CallStats::set_cpu_timing`]) the calling thread's CPU time around the
/// calls that do not wait for a store over the network. The CPU clock is a
/// system call on each side of a call, so it is off unless a measurement
/// asks for it, and then read around one call in [`CPU_SAMPLE_EVERY`] only
/// (the total is estimated from that sample: the calls are alike, and
/// timing every one cost ~9 % of the service's CPU).
#[derive(Debug, Default)]
pub struct CallStats {
    nanos: AtomicU64,
    /// Thread CPU time inside the sampled calls.
    cpu_nanos: AtomicU64,
    /// Calls that could be CPU-timed (timing on, on this thread).
    cpu_eligible: AtomicU64,
    /// Calls that were CPU-timed.
    cpu_sampled: AtomicU64,
    /// Wall time inside the CPU-timed calls (read inside their CPU
    /// interval, so comparable with the other calls' wall time).
    sampled_wall_nanos: AtomicU64,
    calls: AtomicU64,
    cpu_timing: AtomicBool,
}

/// One call in this many is CPU-timed when the CPU timing is on.
pub const CPU_SAMPLE_EVERY: u64 = 16;

/// When a call began: the wall clock, and the thread's CPU clock in test
/// builds.
struct Started {
    wall: Instant,
    #[cfg(feature = "test-hooks")]
    cpu: Option<u64>,
}

/// The calling thread's CPU time, nanoseconds (test builds only).
#[cfg(feature = "test-hooks")]
fn thread_cpu_nanos() -> Option<u64> {
    use nix::time::{ClockId, clock_gettime};
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    let secs = u64::try_from(t.tv_sec()).ok()?;
    let nanos = u64::try_from(t.tv_nsec()).ok()?;
    Some(secs * 1_000_000_000 + nanos)
}

impl CallStats {
    /// Starts timing a call; `on_thread` when the call runs start to end on
    /// this thread (no await inside), so its thread CPU time is its own.
    fn begin(&self, on_thread: bool) -> Started {
        let _ = on_thread;
        // A sampled call reads the thread CPU clock first and the wall
        // clock last (in `record`, the other way round): its wall time is
        // then the call's alone, as an unsampled call's is, so the two can
        // be compared (what the system calls around a sampled call cost
        // it shows as a longer wall time inside).
        #[cfg(feature = "test-hooks")]
        let cpu = if on_thread
            && self.cpu_timing.load(Ordering::Relaxed)
            && self
                .cpu_eligible
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(CPU_SAMPLE_EVERY)
        {
            thread_cpu_nanos()
        } else {
            None
        };
        Started {
            #[cfg(feature = "test-hooks")]
            cpu,
            wall: Instant::now(),
        }
    }

    fn record(&self, started: &Started) {
        let nanos = u64::try_from(started.wall.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // The clock is read after the call only when it was read before it
        // (a sampled call): reading it unconditionally cost every call a
        // system call (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`), timing on
        // or off, in every test build the load run measured.
        #[cfg(feature = "test-hooks")]
        if let Some(before) = started.cpu
            && let Some(after) = thread_cpu_nanos()
        {
            // The interval also holds part of the two clock reads' own
            // system calls: an empty interval, read right after, is taken
            // off (without it the estimate came out above the wall time).
            let empty = match (thread_cpu_nanos(), thread_cpu_nanos()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => 0,
            };
            self.cpu_nanos.fetch_add(
                after.saturating_sub(before).saturating_sub(empty),
                Ordering::Relaxed,
            );
            self.cpu_sampled.fetch_add(1, Ordering::Relaxed);
            self.sampled_wall_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// (wall nanoseconds inside otpflow, calls) since start.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.nanos.load(Ordering::Relaxed),
            self.calls.load(Ordering::Relaxed),
        )
    }

    /// (wall nanoseconds inside the CPU-timed calls, CPU-timed calls)
    /// since start: beside [`CallStats::snapshot`], whether the thread CPU
    /// clock's system calls around a sampled call slow the call itself
    /// (then the sampled CPU time overstates the unsampled calls').
    pub fn sampled_wall(&self) -> (u64, u64) {
        (
            self.sampled_wall_nanos.load(Ordering::Relaxed),
            self.cpu_sampled.load(Ordering::Relaxed),
        )
    }

    /// Switches the thread CPU timing on or off (test builds only).
    pub fn set_cpu_timing(&self, on: bool) {
        self.cpu_timing.store(on, Ordering::Relaxed);
    }

    /// Thread CPU nanoseconds inside otpflow's calls on the memory store
    /// since start (0 outside test builds, and for the network stores,
    /// whose calls wait on other threads' time).
    /// (Estimated from the sampled calls: their CPU time × eligible calls /
    /// sampled calls.)
    pub fn cpu_nanos(&self) -> u64 {
        let sampled = self.cpu_sampled.load(Ordering::Relaxed);
        if sampled == 0 {
            return 0;
        }
        let total = u128::from(self.cpu_nanos.load(Ordering::Relaxed))
            * u128::from(self.cpu_eligible.load(Ordering::Relaxed))
            / u128::from(sampled);
        u64::try_from(total).unwrap_or(u64::MAX)
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

    /// True when the backend's calls run on the calling thread.
    fn on_thread(&self) -> bool {
        matches!(self.backend, Backend::Memory(_))
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
        let t = self.stats.begin(self.on_thread());
        let out = match &self.backend {
            Backend::Memory(v) => v.start_within(&budgets(), subject, channel, &mut rng()),
            Backend::Redis(v) => {
                v.start_within(&budgets(), subject, channel, &mut rng())
                    .await
            }
            Backend::Postgres(v) => {
                v.start_within(&budgets(), subject, channel, &mut rng())
                    .await
            }
        };
        self.stats.record(&t);
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
        let t = self.stats.begin(self.on_thread());
        let out = match &self.backend {
            Backend::Memory(v) => v.resend_within(&budgets(), subject, channel, &mut rng()),
            Backend::Redis(v) => {
                v.resend_within(&budgets(), subject, channel, &mut rng())
                    .await
            }
            Backend::Postgres(v) => {
                v.resend_within(&budgets(), subject, channel, &mut rng())
                    .await
            }
        };
        self.stats.record(&t);
        out
    }

    /// Reports that `send` never reached the subject (the sender failed):
    /// its place in the subject's budgets and in the budget keys it spent
    /// is given back, once.
    ///
    /// # Errors
    /// As [`Verifier::report_delivery_within`].
    pub async fn report_failed(&self, subject: &SubjectKey, send: SendId) -> Result<bool, Error> {
        let failed = Delivery::Failed;
        match &self.backend {
            Backend::Memory(v) => v.report_delivery_within(&budgets(), subject, send, failed),
            Backend::Redis(v) => {
                v.report_delivery_within(&budgets(), subject, send, failed)
                    .await
            }
            Backend::Postgres(v) => {
                v.report_delivery_within(&budgets(), subject, send, failed)
                    .await
            }
        }
    }

    /// Checks a code.
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub async fn verify(&self, subject: &SubjectKey, code: &str) -> Result<Validated, Error> {
        let t = self.stats.begin(self.on_thread());
        let out = match &self.backend {
            Backend::Memory(v) => v.verify(subject, code),
            Backend::Redis(v) => v.verify(subject, code).await,
            Backend::Postgres(v) => v.verify(subject, code).await,
        };
        self.stats.record(&t);
        out
    }

    /// The validation's status.
    ///
    /// # Errors
    /// As [`Verifier::status`].
    pub async fn status(&self, subject: &SubjectKey) -> Result<Status, Error> {
        let t = self.stats.begin(self.on_thread());
        let out = match &self.backend {
            Backend::Memory(v) => v.status(subject),
            Backend::Redis(v) => v.status(subject).await,
            Backend::Postgres(v) => v.status(subject).await,
        };
        self.stats.record(&t);
        out
    }
}

/// The budget keys a send spends from besides the subject's: the client's
/// address (when the connection tells it), the number's range and country,
/// and the service's ceiling. Kinds the policy gives no rate (the
/// `--budget-*` flags left unset) are not counted.
fn budgets() -> Budgets {
    let named = Budgets::new().range().country().global();
    match crate::app::client_address() {
        Some(ip) => named.address(ip),
        None => named,
    }
}
