//! The subject's budgets that outlive any one validation: the guessing
//! ledger (consecutive failures, escalating lockouts, the hard cap) and the
//! send rate (a GCRA bucket). Data, and pure functions of `now` and the
//! [`Policy`]; the engine decides when to call them.
//!
//! # Guessing
//!
//! Failed checks count consecutively, across validations, resends, lockouts
//! and restarts, until a success or an operator's unlock (NIST SP 800-63B:
//! "consecutive failed authentication attempts"). Every
//! [`failure_cap`](Policy::failure_cap)-th failure locks the subject, first
//! for [`lockout`](Policy::lockout), each later lockout
//! [`lockout_growth`](Policy::lockout_growth) times longer, up to
//! [`max_lockout`](Policy::max_lockout). At
//! [`failure_hard_cap`](Policy::failure_hard_cap) failures the subject is
//! blocked until it is unlocked. A count is forgotten only after
//! [`failure_window`](Policy::failure_window) without a failure, and never
//! once the subject is blocked.
//!
//! # Sending
//!
//! The subject's sends are a GCRA bucket (as in `governor`): a burst of
//! `b` = max(⌈cap / 2⌉, `max_sends`) (at most the cap) sends, then one every
//! `T` = ⌈window / (cap − b + 1)⌉ (whole seconds). Any interval of
//! [`subject_send_window`](Policy::subject_send_window) then holds at most
//! [`subject_send_cap`](Policy::subject_send_cap) sends: the `k`th send
//! after the first in an interval starting at `s` conforms only at or after
//! `s + (k − b)·T`, and `(cap − b + 1)·T ≥ window`. The state is one instant,
//! the theoretical arrival time (TAT).

use time::Duration;

use crate::policy::Policy;
use crate::record::{At, Secs, later};

/// The subject's guessing ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Guesses {
    /// Consecutive failed checks since the last success or unlock.
    pub(crate) failures: u32,
    /// When the last of them happened (rounded up); `None` when `failures`
    /// is 0.
    pub(crate) last_failure_at: Option<Secs>,
    /// The end of the current lockout, if one was set.
    pub(crate) locked_until: Option<Secs>,
}

/// What one more failure did to the subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Penalty {
    /// Nothing beyond the count.
    None,
    /// Locked until the instant.
    Lock(Secs),
    /// Blocked until an operator unlocks the subject.
    Block,
}

impl Guesses {
    /// The consecutive failures that still count at `now`: all of them,
    /// unless [`failure_window`](Policy::failure_window) passed since the
    /// last one and the subject is not blocked.
    pub(crate) fn failures_at(&self, now: At, policy: &Policy) -> u32 {
        if self.failures >= policy.failure_hard_cap() {
            return self.failures;
        }
        match self.last_failure_at {
            Some(last) if now < later(last, policy.failure_window()) => self.failures,
            _ => 0,
        }
    }

    /// True when the subject reached the hard cap: only an unlock opens it.
    pub(crate) fn blocked(&self, policy: &Policy) -> bool {
        self.failures >= policy.failure_hard_cap()
    }

    /// The end of the lockout running at `now`, if any.
    pub(crate) fn locked_at(&self, now: At) -> Option<Secs> {
        self.locked_until.filter(|&until| now < until)
    }

    /// Failures left before the next lockout (or the block), at `now`.
    pub(crate) fn left_before_lock(&self, now: At, policy: &Policy) -> u32 {
        let n = self.failures_at(now, policy);
        let cap = policy.failure_cap();
        let to_lock = cap - n % cap;
        to_lock.min(policy.failure_hard_cap().saturating_sub(n))
    }

    /// Counts one failure at `now` and applies the penalty it earns.
    pub(crate) fn fail(&mut self, now: At, policy: &Policy) -> Penalty {
        self.failures = self.failures_at(now, policy).saturating_add(1);
        self.last_failure_at = Some(now.ceil());
        if self.failures >= policy.failure_hard_cap() {
            self.locked_until = None;
            return Penalty::Block;
        }
        if !self.failures.is_multiple_of(policy.failure_cap()) {
            return Penalty::None;
        }
        let nth = self.failures / policy.failure_cap();
        let until = now.plus(lockout(policy, nth)).ceil();
        self.locked_until = Some(until);
        Penalty::Lock(until)
    }

    /// A success: the count and its escalation start again.
    pub(crate) fn succeed(&mut self) {
        *self = Self::default();
    }
}

/// The length of the `nth` lockout (1-based): `lockout · growthⁿ⁻¹`, at most
/// `max_lockout`.
pub(crate) fn lockout(policy: &Policy, nth: u32) -> Duration {
    let max = policy.max_lockout();
    let mut d = policy.lockout();
    for _ in 1..nth {
        if d >= max {
            break;
        }
        d = d.saturating_mul(i32::try_from(policy.lockout_growth()).unwrap_or(i32::MAX));
    }
    d.min(max)
}

/// The subject's send rate: a GCRA bucket's theoretical arrival time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SendRate {
    pub(crate) tat: Option<Secs>,
}

/// The subject's latest send, for delivery reports (see
/// [`delivery`](crate::delivery)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LastSend {
    /// The subject's number for its latest send (1 for the first); 0 before
    /// any send was numbered. Never goes down.
    pub(crate) seq: u32,
    /// The latest send was reported failed and its budgets given back.
    pub(crate) failed: bool,
}

impl LastSend {
    /// Numbers a new send.
    pub(crate) fn next(&mut self) -> u32 {
        self.seq = self.seq.saturating_add(1);
        self.failed = false;
        self.seq
    }
}

/// The bucket's burst and emission interval for a policy (computed when the
/// policy is built: read it with `Policy::subject_rate`).
pub(crate) fn send_rate(policy: &Policy) -> (u32, Duration) {
    let cap = policy.subject_send_cap();
    let burst = cap.div_ceil(2).max(policy.max_sends()).min(cap);
    let steps = cap - burst + 1;
    // The window divided in nanoseconds (as `Duration / u32` does), then in
    // whole seconds, rounded up: a longer interval only sends less. In
    // 64 bits: every window a policy accepts fits (`Duration / u32`
    // divides 128-bit integers, a library call on the hot path).
    let window = policy.subject_send_window();
    let whole = match i64::try_from(window.whole_nanoseconds()) {
        Ok(nanos) => {
            let per = nanos / i64::from(steps);
            per / 1_000_000_000 + i64::from(per % 1_000_000_000 > 0)
        }
        Err(_) => {
            let interval = window / steps;
            interval.whole_seconds() + i64::from(interval.subsec_nanoseconds() > 0)
        }
    };
    (burst, Duration::seconds(whole.max(1)))
}

impl SendRate {
    /// The earliest instant at which a send conforms.
    pub(crate) fn ready_at(&self, policy: &Policy) -> Option<Secs> {
        Rate::of_subject(policy).ready_at(self.tat)
    }

    /// True when a send at `now` conforms.
    pub(crate) fn allows(&self, now: At, policy: &Policy) -> bool {
        Rate::of_subject(policy).allows(self.tat, now)
    }

    /// Sends that would conform at `now`, one after the other.
    pub(crate) fn left(&self, now: At, policy: &Policy) -> u32 {
        Rate::of_subject(policy).left(self.tat, now)
    }

    /// Gives back the latest send: the TAT goes back the one interval that
    /// send moved it on. Only for the send that spent last, so the bucket
    /// is never fuller than if that send had not happened.
    /// A TAT that goes back to `now` or before means a full bucket, which is
    /// what no TAT means: it is dropped, so no instant before `now` (nor
    /// before the records' range) is ever stored.
    pub(crate) fn refund(&mut self, now: At, policy: &Policy) {
        Rate::of_subject(policy).refund(&mut self.tat, now);
    }

    /// Spends one send at `now` (which must conform).
    pub(crate) fn spend(&mut self, now: At, policy: &Policy) {
        Rate::of_subject(policy).spend(&mut self.tat, now);
    }
}

/// A GCRA rate, as `governor`'s quota: a burst of sends, then one every
/// `interval`. Any interval of length `L` then holds at most
/// `burst + ⌊L / interval⌋` sends (the bucket is full after `burst ·
/// interval` without a send). Build one with [`Rate::new`]; the budget
/// keys' rates live in the [`Policy`]
/// ([`PolicyBuilder::budget_rate`](crate::PolicyBuilder::budget_rate)).
///
/// ```
/// use otpflow::budget::Rate;
/// use time::Duration;
/// // 20 at once, then one every 3 minutes (20 an hour once drained).
/// let rate = Rate::new(20, Duration::minutes(3))?;
/// assert_eq!((rate.burst(), rate.interval()), (20, Duration::minutes(3)));
/// assert!(Rate::new(0, Duration::minutes(3)).is_err());
/// # Ok::<(), otpflow::PolicyError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    burst: u32,
    interval: Duration,
}

/// The largest burst of a budget key's rate.
pub const MAX_BURST: u32 = 1_000_000;
/// The longest a budget key's bucket takes to fill from empty
/// (`burst · interval`): a year.
pub const MAX_FILL: Duration = Duration::days(366);

impl Rate {
    /// A burst of `burst` sends, then one every `interval` (rounded up to
    /// whole seconds).
    ///
    /// # Errors
    /// [`PolicyError::OutOfRange`](crate::PolicyError::OutOfRange)`("rate")`
    /// unless `burst` is 1–1 000 000, `interval` 1 s – 30 days, and the
    /// bucket fills from empty within [`MAX_FILL`].
    pub fn new(burst: u32, interval: Duration) -> Result<Self, crate::PolicyError> {
        let out = crate::PolicyError::OutOfRange("rate");
        if !(1..=MAX_BURST).contains(&burst)
            || interval < Duration::SECOND
            || interval > crate::policy::MAX_WINDOW
        {
            return Err(out);
        }
        let whole = interval.whole_seconds() + i64::from(interval.subsec_nanoseconds() > 0);
        let interval = Duration::seconds(whole);
        let fill = i64::from(burst).saturating_mul(whole);
        if fill > MAX_FILL.whole_seconds() {
            return Err(out);
        }
        Ok(Self { burst, interval })
    }

    /// A rate known to be valid (the policy's defaults).
    pub(crate) const fn const_new(burst: u32, interval: Duration) -> Self {
        Self { burst, interval }
    }

    /// The subject's own send bucket under `policy` (see the module docs).
    pub(crate) fn of_subject(policy: &Policy) -> Self {
        policy.subject_rate()
    }

    /// Sends that conform at once on a full bucket.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The steady interval between sends once the burst is spent.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long a bucket takes to fill from empty: `burst · interval`, the
    /// furthest a TAT ever runs ahead of now.
    pub fn fill(&self) -> Duration {
        self.interval
            .saturating_mul(i32::try_from(self.burst).unwrap_or(i32::MAX))
    }

    fn tolerance(&self) -> Duration {
        self.interval
            .saturating_mul(i32::try_from(self.burst - 1).unwrap_or(i32::MAX))
    }

    /// The earliest instant at which a send conforms to a bucket at `tat`.
    pub(crate) fn ready_at(&self, tat: Option<Secs>) -> Option<Secs> {
        // Whole seconds (the interval is): the floor is exact.
        tat.map(|tat| tat.plus(-self.tolerance()).floor())
    }

    /// True when a send at `now` conforms. Records hold whole seconds, so a
    /// spend counts its arrival at the next whole second (never earlier,
    /// which could let an interval hold one send more than the rate);
    /// `now` itself is compared unrounded. So within the second of a
    /// burst's first send, one place of the burst is not yet open: it opens
    /// at the next whole second.
    pub(crate) fn allows(&self, tat: Option<Secs>, now: At) -> bool {
        self.ready_at(tat).is_none_or(|ready| now >= ready)
    }

    /// Sends that would conform at `now`, one after the other.
    pub(crate) fn left(&self, tat: Option<Secs>, now: At) -> u32 {
        let Some(tat) = tat.filter(|&tat| tat > now) else {
            return self.burst;
        };
        // A send conforms while TAT − (burst − 1)·T ≤ now, and each one
        // moves the TAT one interval on.
        let backlog = crate::record::until(now, tat).whole_nanoseconds();
        let step = self.interval.whole_nanoseconds().max(1);
        let used = u32::try_from((backlog + step - 1) / step).unwrap_or(u32::MAX);
        self.burst.saturating_sub(used)
    }

    /// Spends one send at `now` (which must conform).
    pub(crate) fn spend(&self, tat: &mut Option<Secs>, now: At) {
        let arrival = now.ceil();
        let from = tat.map_or(arrival, |tat| tat.max(arrival));
        *tat = Some(from.plus(self.interval).ceil());
    }

    /// Gives back the latest spend: the TAT goes back one interval. Only for
    /// the spend that was the bucket's latest (so the bucket is never fuller
    /// than if it had not happened: the TAT before it was at most this). A
    /// TAT at `now` or before is a full bucket, stored as none.
    pub(crate) fn refund(&self, tat: &mut Option<Secs>, now: At) {
        *tat = tat
            .map(|tat| tat.plus(-self.interval).floor())
            .filter(|&tat| tat > now.ceil());
    }
}

/// A budget key's bucket (see [`budget_key`](crate::budget_key)): its TAT
/// and which send spent from it last, so that only that send's refund
/// gives its place back, and only once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyBucket {
    /// Which kind of key this bucket counts (its rate comes from the
    /// policy).
    pub(crate) kind: crate::budget_key::BudgetKind,
    /// The theoretical arrival time; `None`: full.
    pub(crate) tat: Option<Secs>,
    /// The latest spend's tag; 0 before any.
    pub(crate) last: u64,
    /// The latest spend was given back.
    pub(crate) refunded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 64-bit division agrees with `Duration / u32` on every window
    /// shape and step count.
    #[test]
    fn send_interval_is_the_durations_division() {
        let windows = [
            Duration::seconds(1),
            Duration::seconds(7) + Duration::nanoseconds(1),
            Duration::seconds(3_601),
            Duration::hours(24) - Duration::nanoseconds(1),
            crate::policy::MAX_WINDOW,
        ];
        for window in windows {
            for caps in [(1, 1), (5, 3), (10, 5), (100, 5), (10_000, 5)] {
                let policy = Policy::builder()
                    .subject_send_cap(caps.0)
                    .max_sends(caps.1)
                    .subject_send_window(window)
                    .build();
                let Ok(policy) = policy else { continue };
                let cap = policy.subject_send_cap();
                let burst = cap.div_ceil(2).max(policy.max_sends()).min(cap);
                let interval = window / (cap - burst + 1);
                let whole = interval.whole_seconds() + i64::from(interval.subsec_nanoseconds() > 0);
                assert_eq!(send_rate(&policy), (burst, Duration::seconds(whole.max(1))));
                // The policy keeps what it computed when it was built.
                let kept = policy.subject_rate();
                assert_eq!((kept.burst(), kept.interval()), send_rate(&policy));
            }
        }
    }

    /// Whole-second records: a burst's first send counts at the next whole
    /// second, so its last place opens then (a conservative second, which
    /// keeps every real-time interval within the rate).
    #[test]
    fn a_bursts_last_place_opens_at_the_next_whole_second() {
        let rate = Rate::new(3, Duration::hours(1)).unwrap_or_else(|e| panic!("{e}"));
        let t0 = t(0) + Duration::milliseconds(300);
        let mut tat = None;
        for ms in [0, 100] {
            let now = t0 + Duration::milliseconds(ms);
            assert!(rate.allows(tat, now));
            rate.spend(&mut tat, now);
        }
        assert!(!rate.allows(tat, t0 + Duration::milliseconds(200)));
        assert!(rate.allows(tat, t(1)));
        rate.spend(&mut tat, t(1));
        assert!(!rate.allows(tat, t(2)));
    }

    fn t(secs: i64) -> At {
        Secs::new(20_000 * 86_400 + secs).at()
    }

    #[test]
    fn default_send_bucket() {
        let p = Policy::default();
        assert_eq!(send_rate(&p), (5, Duration::minutes(10)));
        assert_eq!(p.subject_rate(), Rate::const_new(5, Duration::minutes(10)));
        let mut r = SendRate::default();
        for i in 0..5 {
            assert!(r.allows(t(0), &p), "send {i}");
            assert_eq!(r.left(t(0), &p), 5 - i);
            r.spend(t(0), &p);
        }
        assert!(!r.allows(t(0), &p));
        assert_eq!(r.left(t(0), &p), 0);
        assert_eq!(r.ready_at(&p), Some(t(600).floor()));
        assert!(r.allows(t(600), &p));
    }

    #[test]
    fn escalation_and_block() {
        let p = Policy::default();
        let mut g = Guesses::default();
        let mut locks = Vec::new();
        for i in 0..100 {
            match g.fail(t(i), &p) {
                Penalty::None => {}
                Penalty::Lock(until) => locks.push(crate::record::until(t(i), until)),
                Penalty::Block => {
                    assert_eq!(i, 99);
                    assert!(g.blocked(&p));
                }
            }
        }
        assert_eq!(
            locks,
            [
                Duration::hours(1),
                Duration::hours(4),
                Duration::hours(16),
                Duration::hours(64)
            ]
        );
        // Blocked forever: the memory does not forget it.
        assert_eq!(g.failures_at(t(1_000_000_000), &p), 100);
        g.succeed();
        assert_eq!(g.failures_at(t(100), &p), 0);
    }

    proptest::proptest! {
        /// No interval of the window's length ever holds more sends than the
        /// cap, whatever the times of the attempts (sub-second ones too).
        #[test]
        fn no_window_holds_more_than_the_cap(
            cap in 1u32..=12,
            max_sends in 1u32..=12,
            window in 1i64..=7200,
            gaps in proptest::collection::vec(0i64..900_000, 1..200),
        ) {
            let max_sends = max_sends.min(cap);
            let p = Policy::builder()
                .max_sends(max_sends)
                .subject_send_cap(cap)
                .subject_send_window(Duration::seconds(window))
                .resend_cooldown(Duration::ZERO)
                .build()
                .expect("a valid policy");
            let mut bucket = SendRate::default();
            let mut now = t(0);
            let mut sent = Vec::new();
            for gap in gaps {
                // Gaps in milliseconds: bursts, and long quiet spells.
                now += Duration::milliseconds(gap % 4 * (gap / 4 % 1000));
                if bucket.allows(now, &p) {
                    let before = bucket.left(now, &p);
                    proptest::prop_assert!(before >= 1);
                    bucket.spend(now, &p);
                    sent.push(now);
                } else {
                    proptest::prop_assert_eq!(bucket.left(now, &p), 0);
                    // The refusal's time is when a send conforms.
                    let ready = bucket.ready_at(&p).expect("a send was made");
                    proptest::prop_assert!(ready > now);
                    proptest::prop_assert!(bucket.allows(ready.at(), &p));
                }
            }
            let w = Duration::seconds(window);
            for (i, &start) in sent.iter().enumerate() {
                let inside = sent[i..].iter().take_while(|&&s| s < start + w).count();
                proptest::prop_assert!(
                    inside <= usize::try_from(cap).expect("small"),
                    "{} sends in a window from {:?}", inside, start
                );
            }
        }
    }

    #[test]
    fn lockouts_stop_growing_at_the_maximum() {
        let p = Policy::builder()
            .lockout(Duration::hours(1))
            .lockout_growth(16)
            .max_lockout(Duration::days(2))
            .build()
            .expect("a valid policy");
        assert_eq!(lockout(&p, 1), Duration::hours(1));
        assert_eq!(lockout(&p, 2), Duration::hours(16));
        assert_eq!(lockout(&p, 3), Duration::days(2));
        assert_eq!(lockout(&p, u32::MAX), Duration::days(2));
    }
}
