//! [`Policy`]: code length, lifetimes, budgets, cooldowns and lockouts.
//!
//! A policy is checked once, when it is built: every [`Policy`] that exists is
//! one the state machine can run without overflow or surprise. The defaults
//! follow NIST SP 800-63B and the limits hosted verification services use.

use core::fmt;

use time::Duration;

/// What a resend does to the code already sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResendMode {
    /// Resend the same code (the default). SMS can arrive out of order or late;
    /// with one code per validation, whichever message arrives works.
    #[default]
    SameCode,
    /// Draw a new code on every resend; earlier codes stop working and the new
    /// code gets a fresh lifetime and a fresh check budget. The subject's
    /// failure cap still counts every failed check.
    NewCode,
}

/// The rules a [`Verifier`](crate::Verifier) enforces. Build one with
/// [`Policy::builder`]; [`Policy::default`] gives the safe defaults.
///
/// | setting | default | allowed |
/// |---|---|---|
/// | [`code_length`](Self::code_length) | 6 | 4–10 |
/// | [`code_lifetime`](Self::code_lifetime) | 10 min | 1 s – 24 h |
/// | [`max_checks`](Self::max_checks) per code | 5 | 1–100 |
/// | [`max_sends`](Self::max_sends) per validation | 5 | 1–100 |
/// | [`resend_cooldown`](Self::resend_cooldown) | 30 s | 0 – code lifetime |
/// | [`failure_cap`](Self::failure_cap) per subject | 20 | 1–10 000 |
/// | [`failure_window`](Self::failure_window) | 24 h | 1 s – 30 days |
/// | [`lockout`](Self::lockout) | 1 h | 1 s – 30 days |
/// | [`subject_send_cap`](Self::subject_send_cap) | 10 | ≥ `max_sends`, ≤ 10 000 |
/// | [`subject_send_window`](Self::subject_send_window) | 1 h | 1 s – 30 days |
/// | [`resend_mode`](Self::resend_mode) | `SameCode` | |
///
/// Windows are fixed: a window opens at the first event counted in it and
/// closes `window` later, when the count starts again from zero.
///
/// ```
/// use otpflow::{Policy, ResendMode};
/// use time::Duration;
///
/// let policy = Policy::builder()
///     .code_length(8)
///     .code_lifetime(Duration::minutes(5))
///     .resend_mode(ResendMode::NewCode)
///     .build()?;
/// assert_eq!(policy.code_length(), 8);
///
/// // Nonsense is refused, never clamped.
/// assert!(Policy::builder().code_length(3).build().is_err());
/// # Ok::<(), otpflow::PolicyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    code_length: u8,
    code_lifetime: Duration,
    max_checks: u32,
    max_sends: u32,
    resend_cooldown: Duration,
    failure_cap: u32,
    failure_window: Duration,
    lockout: Duration,
    subject_send_cap: u32,
    subject_send_window: Duration,
    resend_mode: ResendMode,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            code_length: 6,
            code_lifetime: Duration::minutes(10),
            max_checks: 5,
            max_sends: 5,
            resend_cooldown: Duration::seconds(30),
            failure_cap: 20,
            failure_window: Duration::hours(24),
            lockout: Duration::hours(1),
            subject_send_cap: 10,
            subject_send_window: Duration::hours(1),
            resend_mode: ResendMode::SameCode,
        }
    }
}

/// The longest a code may live.
pub const MAX_CODE_LIFETIME: Duration = Duration::hours(24);
/// The longest failure window, lockout or send window.
pub const MAX_WINDOW: Duration = Duration::days(30);
const MAX_BUDGET: u32 = 100;
const MAX_SUBJECT_BUDGET: u32 = 10_000;

impl Policy {
    /// A builder that starts from the defaults.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            policy: Self::default(),
        }
    }

    /// Digits in a code.
    pub fn code_length(&self) -> u8 {
        self.code_length
    }
    /// How long a code can be checked after it was sent.
    pub fn code_lifetime(&self) -> Duration {
        self.code_lifetime
    }
    /// Checks allowed per code; the check is counted before the comparison.
    pub fn max_checks(&self) -> u32 {
        self.max_checks
    }
    /// Sends (the first one included) allowed per validation.
    pub fn max_sends(&self) -> u32 {
        self.max_sends
    }
    /// The least time between two sends of one validation.
    pub fn resend_cooldown(&self) -> Duration {
        self.resend_cooldown
    }
    /// Failed checks per subject, across validations and resends, within
    /// [`failure_window`](Self::failure_window), before the subject is locked.
    pub fn failure_cap(&self) -> u32 {
        self.failure_cap
    }
    /// The window in which failed checks are counted.
    pub fn failure_window(&self) -> Duration {
        self.failure_window
    }
    /// How long a subject stays locked once it reaches the failure cap.
    pub fn lockout(&self) -> Duration {
        self.lockout
    }
    /// Sends per subject, across validations, within
    /// [`subject_send_window`](Self::subject_send_window): canceling and
    /// starting again never buys more messages than this.
    pub fn subject_send_cap(&self) -> u32 {
        self.subject_send_cap
    }
    /// The window in which sends per subject are counted.
    pub fn subject_send_window(&self) -> Duration {
        self.subject_send_window
    }
    /// What a resend does to the code.
    pub fn resend_mode(&self) -> ResendMode {
        self.resend_mode
    }
}

/// Builds a [`Policy`]; every setting is checked in [`build`](Self::build).
#[derive(Clone, Debug)]
#[must_use]
pub struct PolicyBuilder {
    policy: Policy,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.policy.$name = value;
                self
            }
        )*
    };
}

impl PolicyBuilder {
    setters! {
        /// Digits per code, 4–10.
        code_length: u8;
        /// How long a code lives, 1 s – 24 h.
        code_lifetime: Duration;
        /// Checks per code, 1–100.
        max_checks: u32;
        /// Sends per validation, 1–100.
        max_sends: u32;
        /// Time between sends, from zero up to the code lifetime.
        resend_cooldown: Duration;
        /// Failed checks per subject before a lockout, 1–10 000.
        failure_cap: u32;
        /// Window for counting failures, 1 s – 30 days.
        failure_window: Duration;
        /// Length of a lockout, 1 s – 30 days.
        lockout: Duration;
        /// Sends per subject per window, from `max_sends` to 10 000.
        subject_send_cap: u32;
        /// Window for counting sends per subject, 1 s – 30 days.
        subject_send_window: Duration;
        /// Same or new code on resend.
        resend_mode: ResendMode;
    }

    /// Checks every setting and returns the policy.
    ///
    /// # Errors
    /// A [`PolicyError`] naming the first setting out of range.
    pub fn build(self) -> Result<Policy, PolicyError> {
        let p = self.policy;
        let second = Duration::SECOND;
        let checks: [(bool, PolicyError); 10] = [
            (
                (4..=10).contains(&p.code_length),
                PolicyError::CodeLength(p.code_length),
            ),
            (
                p.code_lifetime >= second && p.code_lifetime <= MAX_CODE_LIFETIME,
                PolicyError::OutOfRange("code_lifetime"),
            ),
            (
                (1..=MAX_BUDGET).contains(&p.max_checks),
                PolicyError::OutOfRange("max_checks"),
            ),
            (
                (1..=MAX_BUDGET).contains(&p.max_sends),
                PolicyError::OutOfRange("max_sends"),
            ),
            (
                !p.resend_cooldown.is_negative() && p.resend_cooldown <= p.code_lifetime,
                PolicyError::OutOfRange("resend_cooldown"),
            ),
            (
                (1..=MAX_SUBJECT_BUDGET).contains(&p.failure_cap),
                PolicyError::OutOfRange("failure_cap"),
            ),
            (
                in_window(p.failure_window),
                PolicyError::OutOfRange("failure_window"),
            ),
            (in_window(p.lockout), PolicyError::OutOfRange("lockout")),
            (
                (p.max_sends..=MAX_SUBJECT_BUDGET).contains(&p.subject_send_cap),
                PolicyError::OutOfRange("subject_send_cap"),
            ),
            (
                in_window(p.subject_send_window),
                PolicyError::OutOfRange("subject_send_window"),
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, err)) => Err(err),
            None => Ok(p),
        }
    }
}

fn in_window(d: Duration) -> bool {
    d >= Duration::SECOND && d <= MAX_WINDOW
}

/// A policy setting out of its allowed range.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The code length is not 4–10 digits.
    CodeLength(u8),
    /// The named setting is out of its range (see [`Policy`]).
    OutOfRange(&'static str),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CodeLength(n) => write!(f, "code length {n} is not between 4 and 10 digits"),
            Self::OutOfRange(name) => write!(f, "policy setting `{name}` is out of range"),
        }
    }
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build() {
        assert_eq!(Policy::builder().build(), Ok(Policy::default()));
    }

    #[test]
    fn nonsense_is_refused() {
        let b = Policy::builder;
        assert_eq!(b().code_length(3).build(), Err(PolicyError::CodeLength(3)));
        assert_eq!(
            b().code_length(11).build(),
            Err(PolicyError::CodeLength(11))
        );
        assert!(b().code_length(4).build().is_ok());
        assert!(b().code_length(10).build().is_ok());
        let range = |r: Result<Policy, PolicyError>, name| {
            assert_eq!(r, Err(PolicyError::OutOfRange(name)));
        };
        range(b().max_checks(0).build(), "max_checks");
        range(b().max_sends(0).build(), "max_sends");
        range(b().failure_cap(0).build(), "failure_cap");
        range(
            b().code_lifetime(Duration::hours(25)).build(),
            "code_lifetime",
        );
        range(b().code_lifetime(Duration::ZERO).build(), "code_lifetime");
        range(
            b().resend_cooldown(Duration::seconds(-1)).build(),
            "resend_cooldown",
        );
        range(
            b().resend_cooldown(Duration::hours(1)).build(),
            "resend_cooldown",
        );
        range(b().lockout(Duration::ZERO).build(), "lockout");
        range(
            b().failure_window(Duration::days(31)).build(),
            "failure_window",
        );
        range(b().max_sends(20).build(), "subject_send_cap");
        assert!(b().code_lifetime(Duration::hours(24)).build().is_ok());
    }
}
