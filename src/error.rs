//! [`Error`]: one enum for every refusal, with stable machine codes, HTTP
//! status hints and `retry_after`, and [`PublicError`] for answers that must
//! not let a caller enumerate subjects.

use core::fmt;

use std::sync::Arc;

use time::Duration;

use crate::budget_key::BudgetKind;
use crate::phone::PhoneError;
use crate::subject::PurposeError;

/// Everything a [`Verifier`](crate::Verifier) or the pure
/// [`Engine`](crate::Engine) can refuse with.
///
/// [`code`](Self::code) is a stable machine string (it never changes between
/// releases), [`http_status`](Self::http_status) a hint for the status a web
/// service would answer with, [`retry_after`](Self::retry_after) when a retry
/// can succeed. `Display` never includes a code, a key or a stored value.
///
/// | variant | `code()` | HTTP |
/// |---|---|---|
/// | [`InvalidPhone`](Self::InvalidPhone) | the [`PhoneError`]'s code | 400 |
/// | [`InvalidPurpose`](Self::InvalidPurpose) | `invalid_purpose` | 400 |
/// | [`MalformedCode`](Self::MalformedCode) | `malformed_code` | 400 |
/// | [`NotFound`](Self::NotFound) | `validation_not_found` | 404 |
/// | [`CodeMismatch`](Self::CodeMismatch) | `code_mismatch` | 403 |
/// | [`Expired`](Self::Expired) | `validation_expired` | 412 |
/// | [`Canceled`](Self::Canceled) | `validation_canceled` | 410 |
/// | [`AlreadyValidated`](Self::AlreadyValidated) | `already_validated` | 409 |
/// | [`AttemptsExhausted`](Self::AttemptsExhausted) | `max_attempts_reached` | 429 |
/// | [`Locked`](Self::Locked) | `subject_locked` | 429 |
/// | [`Blocked`](Self::Blocked) | `subject_blocked` | 429 |
/// | [`ResendTooSoon`](Self::ResendTooSoon) | `resend_too_soon` | 429 |
/// | [`SendLimit`](Self::SendLimit) | `send_limit_reached` | 429 |
/// | [`ResendsSpent`](Self::ResendsSpent) | `resend_limit_reached` | 429 |
/// | [`BudgetSpent`](Self::BudgetSpent) | `budget_exhausted` | 429 |
/// | [`Denied`](Self::Denied) | `destination_denied` | 403 |
/// | [`Store`](Self::Store) | `store_unavailable` | 503 |
/// | [`Contention`](Self::Contention) | `contention` | 503 |
///
/// It is `Clone` and `PartialEq`, so tests compare it directly:
///
/// ```
/// use otpflow::Error;
/// let e = Error::CodeMismatch { attempts_left: 2 };
/// assert_eq!(e.clone(), Error::CodeMismatch { attempts_left: 2 });
/// assert_ne!(e, Error::Expired);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The phone number was refused; the inner error says why and where.
    InvalidPhone(PhoneError),
    /// The purpose label was refused.
    InvalidPurpose(PurposeError),
    /// The code input is not a code of the policy's length (only digits,
    /// spaces and dashes). No attempt was spent.
    MalformedCode,
    /// No validation exists for this subject.
    NotFound,
    /// The code is wrong; `attempts_left` more checks are allowed on this code.
    CodeMismatch {
        /// Checks left on this code.
        attempts_left: u32,
    },
    /// The code's lifetime is over (or the key that derived it was removed).
    Expired,
    /// The validation was canceled.
    Canceled,
    /// The validation already succeeded; its code cannot be used again.
    AlreadyValidated,
    /// The code's checks are spent; start a new validation.
    AttemptsExhausted,
    /// The subject's consecutive failures reached a lockout. Starting again
    /// or resending does not lift it. The validation it ended cannot be
    /// checked or resent again: once `retry_after` has passed, call
    /// `start` (which then succeeds, unless the send budget says otherwise).
    Locked {
        /// Time until the lockout ends and `start` succeeds.
        retry_after: Duration,
    },
    /// The subject's consecutive failures reached the hard cap
    /// ([`Policy::failure_hard_cap`](crate::Policy::failure_hard_cap)): no
    /// time lifts it, only an operator's
    /// [`unlock`](crate::Verifier::unlock).
    Blocked,
    /// A send came before the cooldown ended (or, from `start` on a live
    /// validation, before the subject's send budget allows one).
    ResendTooSoon {
        /// Time until the same call succeeds.
        retry_after: Duration,
    },
    /// The send budget is spent: the subject's (sliding, across
    /// validations), or from `start` on a live validation, that
    /// validation's.
    SendLimit {
        /// Time until the same call succeeds (for `start` on a live
        /// validation whose sends are spent: when its code expires and a new
        /// validation can start).
        retry_after: Duration,
    },
    /// A `resend` cannot succeed for this validation any more: its sends are
    /// spent, or the next allowed send would come after its code expires.
    /// Call `start` once `start_after` has passed.
    ResendsSpent {
        /// Time until `start` succeeds.
        start_after: Duration,
    },
    /// A budget key named on the send (see
    /// [`budget_key`](crate::budget_key)) has no room: nothing was sent and
    /// no budget spent. `budget` names its kind, never the address or the
    /// number.
    BudgetSpent {
        /// Which kind of key refused (the one that allows a send last).
        budget: BudgetKind,
        /// Time until every named key allows a send (others may spend in
        /// the meantime).
        retry_after: Duration,
    },
    /// The policy denies every send to this number's range or country
    /// ([`PolicyBuilder::deny_prefix`](crate::PolicyBuilder::deny_prefix)).
    Denied,
    /// The store failed; the record is as it was.
    Store(StoreError),
    /// The record kept changing under us: every compare-and-swap retry met a
    /// conflict. Nothing was written by this call.
    Contention,
}

impl Error {
    /// The stable machine code, e.g. `"code_mismatch"`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPhone(e) => e.code(),
            Self::InvalidPurpose(_) => "invalid_purpose",
            Self::MalformedCode => "malformed_code",
            Self::NotFound => "validation_not_found",
            Self::CodeMismatch { .. } => "code_mismatch",
            Self::Expired => "validation_expired",
            Self::Canceled => "validation_canceled",
            Self::AlreadyValidated => "already_validated",
            Self::AttemptsExhausted => "max_attempts_reached",
            Self::Locked { .. } => "subject_locked",
            Self::Blocked => "subject_blocked",
            Self::ResendTooSoon { .. } => "resend_too_soon",
            Self::SendLimit { .. } => "send_limit_reached",
            Self::ResendsSpent { .. } => "resend_limit_reached",
            Self::BudgetSpent { .. } => "budget_exhausted",
            Self::Denied => "destination_denied",
            Self::Store(_) => "store_unavailable",
            Self::Contention => "contention",
        }
    }

    /// The HTTP status a web service would answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidPhone(_) | Self::InvalidPurpose(_) | Self::MalformedCode => 400,
            Self::NotFound => 404,
            Self::Denied => 403,
            Self::CodeMismatch { .. } => 403,
            Self::Expired => 412,
            Self::Canceled => 410,
            Self::AlreadyValidated => 409,
            Self::AttemptsExhausted
            | Self::Locked { .. }
            | Self::Blocked
            | Self::ResendTooSoon { .. }
            | Self::SendLimit { .. }
            | Self::BudgetSpent { .. }
            | Self::ResendsSpent { .. } => 429,
            Self::Store(_) | Self::Contention => 503,
        }
    }

    /// When a retry can succeed, if time alone will do it: of the same call
    /// for [`ResendTooSoon`](Self::ResendTooSoon) and
    /// [`SendLimit`](Self::SendLimit), of `start` for
    /// [`Locked`](Self::Locked) and [`ResendsSpent`](Self::ResendsSpent)
    /// ([`next_call`](Self::next_call) says which).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Locked { retry_after }
            | Self::ResendTooSoon { retry_after }
            | Self::SendLimit { retry_after }
            | Self::BudgetSpent { retry_after, .. }
            | Self::ResendsSpent {
                start_after: retry_after,
            } => Some(*retry_after),
            _ => None,
        }
    }

    /// The call to make instead of repeating this one, when repeating it
    /// cannot succeed: `"start"` after the validation ended (expired,
    /// canceled, validated, its checks or sends spent, or a lockout), or
    /// `"unlock"` for a blocked subject (an operator's call).
    ///
    /// ```
    /// use otpflow::Error;
    /// use time::Duration;
    /// assert_eq!(Error::ResendsSpent { start_after: Duration::minutes(9) }.next_call(), Some("start"));
    /// assert_eq!(Error::Blocked.next_call(), Some("unlock"));
    /// assert_eq!(Error::CodeMismatch { attempts_left: 2 }.next_call(), None);
    /// ```
    pub fn next_call(&self) -> Option<&'static str> {
        match self {
            Self::Expired
            | Self::Canceled
            | Self::AlreadyValidated
            | Self::AttemptsExhausted
            | Self::Locked { .. }
            | Self::ResendsSpent { .. } => Some("start"),
            Self::Blocked => Some("unlock"),
            _ => None,
        }
    }

    /// The answer to give someone who may not hold the number: every variant
    /// that would tell whether a validation exists for a subject, or in what
    /// state, becomes [`PublicError::InvalidCode`].
    ///
    /// ```
    /// use otpflow::{Error, PublicError};
    /// assert_eq!(Error::NotFound.public(), PublicError::InvalidCode);
    /// assert_eq!(Error::CodeMismatch { attempts_left: 3 }.public(), PublicError::InvalidCode);
    /// assert_eq!(Error::AlreadyValidated.public().code(), "invalid_code");
    /// ```
    ///
    /// What it cannot hide: a subject locked by its failure cap answers
    /// [`PublicError::TooManyRequests`] (or [`PublicError::Blocked`]), and an
    /// unknown subject never does. Only someone who spent (or watched
    /// another spend) a lockout's worth of failures learns that it exists;
    /// rate-limit by client too. A `retry_after` from a cooldown or a send
    /// budget is rounded up to whole minutes, so it does not carry the
    /// instant a code went out.
    ///
    /// For `start` and `resend`, answer with
    /// [`public_send`](Self::public_send) instead: through `public()`, a
    /// resend on a live validation and on none differ.
    pub fn public(&self) -> PublicError {
        match self {
            Self::InvalidPhone(e) => PublicError::InvalidPhone(e.clone()),
            Self::InvalidPurpose(_) => PublicError::InvalidRequest,
            Self::MalformedCode => PublicError::MalformedCode,
            Self::NotFound
            | Self::CodeMismatch { .. }
            | Self::Expired
            | Self::Canceled
            | Self::AlreadyValidated
            | Self::AttemptsExhausted => PublicError::InvalidCode,
            Self::Locked { retry_after } => PublicError::TooManyRequests {
                retry_after: *retry_after,
            },
            Self::Blocked => PublicError::Blocked,
            Self::ResendTooSoon { retry_after }
            | Self::SendLimit { retry_after }
            | Self::ResendsSpent {
                start_after: retry_after,
            } => PublicError::TooManyRequests {
                retry_after: whole_minutes(*retry_after),
            },
            Self::BudgetSpent { retry_after, .. } => PublicError::TooManyRequests {
                retry_after: whole_minutes(*retry_after),
            },
            Self::Denied => PublicError::InvalidRequest,
            Self::Store(_) | Self::Contention => PublicError::Unavailable,
        }
    }

    /// The answer to give someone who may not hold the number, for a refused
    /// `start` or `resend`: `Ok(())` means "answer exactly as for a code
    /// sent" (the caller knows, from the error it keeps, that nothing went
    /// out and when to try again); `Err` is a refusal that is safe to show.
    ///
    /// Every refusal that depends on the subject's state — no validation, a
    /// live one inside its cooldown or with its sends spent, a terminal
    /// one, the subject's send budget, a lockout or a block — answers
    /// `Ok(())`, so nothing tells an outsider whether the number is
    /// mid-verification, nor when its code went out. Only the caller's own
    /// bad input, an unavailable service, a denied destination and a spent
    /// budget key (which are about the caller, the number's range or the
    /// service, not the subject) are refused.
    ///
    /// ```
    /// use otpflow::{Error, PublicError};
    /// use time::Duration;
    /// // A resend on no validation and one inside the cooldown answer alike:
    /// assert_eq!(Error::NotFound.public_send(), Ok(()));
    /// let soon = Error::ResendTooSoon { retry_after: Duration::seconds(18) };
    /// assert_eq!(soon.public_send(), Ok(()));
    /// assert_eq!(Error::Contention.public_send(), Err(PublicError::Unavailable));
    /// ```
    ///
    /// # Errors
    /// The [`public`](Self::public) form of a bad phone number or purpose
    /// (the caller's own input) or of an unavailable store.
    pub fn public_send(&self) -> Result<(), PublicError> {
        match self {
            Self::InvalidPhone(_)
            | Self::InvalidPurpose(_)
            | Self::MalformedCode
            | Self::BudgetSpent { .. }
            | Self::Denied
            | Self::Store(_)
            | Self::Contention => Err(self.public()),
            Self::NotFound
            | Self::CodeMismatch { .. }
            | Self::Expired
            | Self::Canceled
            | Self::AlreadyValidated
            | Self::AttemptsExhausted
            | Self::Locked { .. }
            | Self::Blocked
            | Self::ResendTooSoon { .. }
            | Self::SendLimit { .. }
            | Self::ResendsSpent { .. } => Ok(()),
        }
    }

    pub(crate) fn store<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        Self::Store(StoreError(Arc::new(e)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPhone(e) => write!(f, "invalid phone number: {e}"),
            Self::InvalidPurpose(e) => write!(f, "invalid purpose: {e}"),
            Self::MalformedCode => f.write_str("the code is not a code of the expected length"),
            Self::NotFound => f.write_str("no validation found"),
            Self::CodeMismatch { attempts_left } => {
                write!(f, "the code does not match; {attempts_left} attempts left")
            }
            Self::Expired => f.write_str("the validation has expired"),
            Self::Canceled => f.write_str("the validation was canceled"),
            Self::AlreadyValidated => f.write_str("the validation already succeeded"),
            Self::AttemptsExhausted => f.write_str("too many attempts on this code"),
            Self::Locked { retry_after } => {
                write!(
                    f,
                    "too many failed attempts; start again in {}s",
                    ceil_secs(*retry_after)
                )
            }
            Self::Blocked => f.write_str("too many failed attempts; the number must be unlocked"),
            Self::ResendTooSoon { retry_after } => {
                write!(f, "resend too soon; retry in {}s", ceil_secs(*retry_after))
            }
            Self::SendLimit { retry_after } => {
                write!(
                    f,
                    "send limit reached; retry in {}s",
                    ceil_secs(*retry_after)
                )
            }
            Self::ResendsSpent { start_after } => {
                write!(
                    f,
                    "no more resends for this code; start again in {}s",
                    ceil_secs(*start_after)
                )
            }
            Self::BudgetSpent {
                budget,
                retry_after,
            } => write!(
                f,
                "the {budget} budget is spent; retry in {}s",
                ceil_secs(*retry_after)
            ),
            Self::Denied => f.write_str("sends to this number's range are denied"),
            Self::Store(_) => f.write_str("the store failed"),
            Self::Contention => f.write_str("too many concurrent changes; try again"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidPhone(e) => Some(e),
            Self::InvalidPurpose(e) => Some(e),
            Self::Store(e) => Some(&*e.0),
            _ => None,
        }
    }
}

impl From<PhoneError> for Error {
    fn from(e: PhoneError) -> Self {
        Self::InvalidPhone(e)
    }
}

impl From<PurposeError> for Error {
    fn from(e: PurposeError) -> Self {
        Self::InvalidPurpose(e)
    }
}

/// `d` rounded up to whole minutes (what `public()` tells of a cooldown).
fn whole_minutes(d: Duration) -> Duration {
    Duration::minutes(ceil_secs(d).saturating_add(59) / 60)
}

/// Seconds, rounded up, for messages (a `retry_after` of 0.2 s says 1 s).
pub(crate) fn ceil_secs(d: Duration) -> i64 {
    let whole = d.whole_seconds();
    if d.subsec_nanoseconds() > 0 {
        whole + 1
    } else {
        whole
    }
}

/// A store's own error, shared (an `Arc`, so [`Error`] is `Clone`); reach
/// it through [`source`](std::error::Error::source) or
/// [`inner`](Self::inner). Two are equal when one is a clone of the other:
/// store errors have no equality of their own.
#[derive(Clone, Debug)]
pub struct StoreError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StoreError {}

impl StoreError {
    /// The store's error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An enumeration-safe answer: see [`Error::public`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicError {
    /// The phone number is malformed (the caller's own input; safe to echo).
    InvalidPhone(PhoneError),
    /// A request parameter other than the phone number is invalid.
    InvalidRequest,
    /// The code input is not a code.
    MalformedCode,
    /// The code is not valid for this number, whatever the reason.
    InvalidCode,
    /// Slow down.
    TooManyRequests {
        /// When to come back.
        retry_after: Duration,
    },
    /// Too many failed attempts: the number is blocked until the service
    /// unlocks it.
    Blocked,
    /// Try again later.
    Unavailable,
}

impl PublicError {
    /// `invalid_phone`'s family (the [`PhoneError`]'s code), `invalid_request`,
    /// `malformed_code`, `invalid_code`, `too_many_requests`, `blocked` or
    /// `unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPhone(e) => e.code(),
            Self::InvalidRequest => "invalid_request",
            Self::MalformedCode => "malformed_code",
            Self::InvalidCode => "invalid_code",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Blocked => "blocked",
            Self::Unavailable => "unavailable",
        }
    }

    /// 400, 403, 429 or 503.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidPhone(_) | Self::InvalidRequest | Self::MalformedCode => 400,
            Self::InvalidCode => 403,
            Self::TooManyRequests { .. } | Self::Blocked => 429,
            Self::Unavailable => 503,
        }
    }

    /// When to come back, for `TooManyRequests`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManyRequests { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl fmt::Display for PublicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPhone(e) => write!(f, "invalid phone number: {e}"),
            Self::InvalidRequest => f.write_str("invalid request"),
            Self::MalformedCode => f.write_str("the code is not a code of the expected length"),
            Self::InvalidCode => f.write_str("invalid code"),
            Self::TooManyRequests { retry_after } => {
                write!(
                    f,
                    "too many requests; retry in {}s",
                    ceil_secs(*retry_after)
                )
            }
            Self::Blocked => f.write_str("too many failed attempts; contact support"),
            Self::Unavailable => f.write_str("service unavailable; try again"),
        }
    }
}

impl std::error::Error for PublicError {}
