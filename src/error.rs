//! [`Error`]: one enum for every refusal, with stable machine codes, HTTP
//! status hints and `retry_after`, and [`PublicError`] for answers that must
//! not let a caller enumerate subjects.

use core::fmt;

use std::sync::Arc;

use time::Duration;

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
/// | [`ResendTooSoon`](Self::ResendTooSoon) | `resend_too_soon` | 429 |
/// | [`SendLimit`](Self::SendLimit) | `send_limit_reached` | 429 |
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
    /// The subject reached its failure cap and is locked until the lockout
    /// ends. Starting again or resending does not lift it.
    Locked {
        /// Time until the lockout ends.
        retry_after: Duration,
    },
    /// A resend came before the cooldown ended.
    ResendTooSoon {
        /// Time until a resend is allowed.
        retry_after: Duration,
    },
    /// The send budget (per validation, or per subject and window) is spent.
    SendLimit {
        /// Time until a send can succeed again.
        retry_after: Duration,
    },
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
            Self::ResendTooSoon { .. } => "resend_too_soon",
            Self::SendLimit { .. } => "send_limit_reached",
            Self::Store(_) => "store_unavailable",
            Self::Contention => "contention",
        }
    }

    /// The HTTP status a web service would answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidPhone(_) | Self::InvalidPurpose(_) | Self::MalformedCode => 400,
            Self::NotFound => 404,
            Self::CodeMismatch { .. } => 403,
            Self::Expired => 412,
            Self::Canceled => 410,
            Self::AlreadyValidated => 409,
            Self::AttemptsExhausted
            | Self::Locked { .. }
            | Self::ResendTooSoon { .. }
            | Self::SendLimit { .. } => 429,
            Self::Store(_) | Self::Contention => 503,
        }
    }

    /// When a retry of the same call can succeed, if time alone will do it.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Locked { retry_after }
            | Self::ResendTooSoon { retry_after }
            | Self::SendLimit { retry_after } => Some(*retry_after),
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
    /// [`PublicError::TooManyRequests`], and an unknown subject never does.
    /// Only someone who spent (or watched another spend) the subject's
    /// whole failure budget learns that it exists; rate-limit by client too.
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
            Self::Locked { retry_after }
            | Self::ResendTooSoon { retry_after }
            | Self::SendLimit { retry_after } => PublicError::TooManyRequests {
                retry_after: *retry_after,
            },
            Self::Store(_) | Self::Contention => PublicError::Unavailable,
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
                    "too many failed attempts; locked for {}s",
                    ceil_secs(*retry_after)
                )
            }
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
    /// Try again later.
    Unavailable,
}

impl PublicError {
    /// `invalid_phone`'s family (the [`PhoneError`]'s code), `invalid_request`,
    /// `malformed_code`, `invalid_code`, `too_many_requests` or `unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPhone(e) => e.code(),
            Self::InvalidRequest => "invalid_request",
            Self::MalformedCode => "malformed_code",
            Self::InvalidCode => "invalid_code",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unavailable => "unavailable",
        }
    }

    /// 400, 403, 429 or 503.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidPhone(_) | Self::InvalidRequest | Self::MalformedCode => 400,
            Self::InvalidCode => 403,
            Self::TooManyRequests { .. } => 429,
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
            Self::Unavailable => f.write_str("service unavailable; try again"),
        }
    }
}

impl std::error::Error for PublicError {}
