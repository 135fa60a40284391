//! Where time comes from. otpflow never reads a clock of its own: the
//! [`Verifier`](crate::Verifier) asks its [`Clock`] once per call, and the
//! pure layer takes `now` as an argument.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// A source of UTC instants.
pub trait Clock {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

/// The operating system's clock (feature `std`, on by default). Not for
/// `wasm32-unknown-unknown`, which has no clock: there, inject one that asks
/// the host (for instance `Date.now()` through the host's bindings).
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[cfg(feature = "std")]
impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told, for tests and simulations. Clones share
/// one time, so a test can hand a clone to a [`Verifier`](crate::Verifier) and
/// [`advance`](Self::advance) the original. Resolution is one nanosecond.
///
/// ```
/// use otpflow::{Clock, ManualClock};
/// use time::{Duration, macros::datetime};
///
/// let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
/// let shared = clock.clone();
/// clock.advance(Duration::minutes(10));
/// assert_eq!(shared.now(), datetime!(2026-01-01 0:10 UTC));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    /// Nanoseconds since the Unix epoch. An `i64` covers the years 1678–2262.
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start` (clamped to the years 1678–2262).
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            nanos: Arc::new(AtomicI64::new(to_nanos(start))),
        }
    }

    /// Moves the shared time by `by` (which may be negative: clocks do jump
    /// back, and otpflow must cope).
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.whole_nanoseconds()).unwrap_or(if by.is_negative() {
            i64::MIN
        } else {
            i64::MAX
        });
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the shared time.
    pub fn set(&self, to: OffsetDateTime) {
        self.nanos.store(to_nanos(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let nanos = self.nanos.load(Ordering::SeqCst);
        // Every i64 count of nanoseconds is a valid `OffsetDateTime`. Split
        // in 64 bits (`from_unix_timestamp_nanos` divides 128-bit integers).
        let secs = nanos.div_euclid(1_000_000_000);
        let subsec = u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0);
        OffsetDateTime::from_unix_timestamp(secs)
            .and_then(|t| t.replace_nanosecond(subsec))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// A clock that never goes back: it answers the latest instant its inner
/// clock has given, so within a process an NTP step backwards cannot revive
/// a code that a `status` already reported expired. Clones share the
/// high-water mark. Wrap [`SystemClock`] in it:
/// `Verifier::new(policy, keys, store, MonotonicClock::new(SystemClock))`.
///
/// A step backwards holds time still until the inner clock catches up; a
/// step forwards is taken as is (the engine bounds every stored instant
/// against the policy, so a forward step that is corrected later gives no
/// code or lockout more than its length). Across processes, each record
/// remembers the instant it was last written (see the [guide](crate::guide)).
/// Instants are kept to the nanosecond within the years 1678–2262.
///
/// ```
/// use otpflow::{Clock, ManualClock, MonotonicClock};
/// use time::{Duration, macros::datetime};
///
/// let inner = ManualClock::new(datetime!(2026-01-01 0:11 UTC));
/// let clock = MonotonicClock::new(inner.clone());
/// assert_eq!(clock.now(), datetime!(2026-01-01 0:11 UTC));
/// inner.advance(Duration::minutes(-6));
/// assert_eq!(clock.now(), datetime!(2026-01-01 0:11 UTC));
/// ```
#[derive(Clone, Debug)]
pub struct MonotonicClock<C> {
    inner: C,
    /// The latest instant given, in nanoseconds since the Unix epoch.
    latest: Arc<AtomicI64>,
}

impl<C: Clock> MonotonicClock<C> {
    /// Wraps `inner`.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            latest: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// The wrapped clock.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C: Clock> Clock for MonotonicClock<C> {
    fn now(&self) -> OffsetDateTime {
        let now = to_nanos(self.inner.now());
        let before = self.latest.fetch_max(now, Ordering::SeqCst);
        let nanos = i128::from(before.max(now));
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

fn to_nanos(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_time_and_go_both_ways() {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let a = ManualClock::new(start);
        let b = a.clone();
        a.advance(Duration::seconds(90));
        assert_eq!(b.now(), start + Duration::seconds(90));
        b.advance(Duration::seconds(-100));
        assert_eq!(a.now(), start - Duration::seconds(10));
        a.advance(Duration::MAX);
        assert!(a.now() > start);
    }

    /// The 64-bit split gives what the 128-bit conversion gives, before
    /// and after the epoch, at whole seconds and between them.
    #[test]
    fn now_is_the_stored_instant_to_the_nanosecond() {
        for nanos in [
            0i64,
            1,
            -1,
            999_999_999,
            -999_999_999,
            1_000_000_000,
            -1_000_000_001,
            1_795_000_000_123_456_789,
            i64::MAX,
            i64::MIN,
        ] {
            let want = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ManualClock::new(want).now(), want, "{nanos}");
        }
    }
}
