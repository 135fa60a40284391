//! Refusals as JavaScript `Error`s.
//!
//! Every promise of the package rejects, and every function throws, with an
//! `Error` named `OtpflowError` carrying:
//!
//! | property | what |
//! |---|---|
//! | `code` | the stable machine code: otpflow's (`code_mismatch`, `phone_not_mobile`, …) or one of this package's below |
//! | `httpStatus` | the status a web service would answer with |
//! | `retryAfter` | seconds (rounded up) until a retry can succeed, or `null` |
//! | `public` | `{ code, httpStatus, retryAfter, message }`: the enumeration-safe answer for someone who may not hold the number (every "no such validation", "wrong code", "expired", "already validated" is `invalid_code`, 403) |
//! | `attemptsLeft` | for `code_mismatch` |
//! | `budget` | for `budget_exhausted`: the kind of budget key that allows a send last (`address`, `range`, `country`, `global`, `label`) |
//! | `position`, `character`, `max`, `missing`, `countryCode` | for phone errors, naming what is wrong with the caller's own input (also in `public`) |
//! | `setting` | for `invalid_policy`: the setting out of range |
//! | `cause` | for `store_unavailable`: what the store threw, if anything |
//!
//! The message never holds a code, a key, a stored record or a phone number.
//! This package's own codes:
//!
//! | code | HTTP | public | when |
//! |---|---|---|---|
//! | `invalid_argument` | 400 | `invalid_request` | an argument of the wrong type or out of range (`argument` names it) |
//! | `invalid_policy` | 500 | `unavailable` | a policy setting out of range |
//! | `invalid_key` | 500 | `unavailable` | a secret key of the wrong length, a duplicate or unknown key id |
//! | `invalid_clock` | 500 | `unavailable` | the injected clock gave something that is not an instant |
//! | `randomness_unavailable` | 503 | `unavailable` | `crypto.getRandomValues` failed |
//! | `store_unavailable` | 503 | `unavailable` | the store threw, rejected, or answered outside its contract |

use otpflow::{Error, KeyError, PhoneError, PolicyError, PublicError};
use time::Duration;
use wasm_bindgen::JsValue;

/// Everything that can go wrong in a call, turned into a JavaScript `Error`
/// at the boundary.
#[derive(Debug)]
pub(crate) enum Failure {
    /// otpflow's own refusal.
    Core(Error),
    /// An argument of the wrong type or out of range.
    Argument {
        /// The argument's name, as the JavaScript signature spells it.
        argument: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A policy setting out of range.
    Policy(PolicyError),
    /// A key or key ring change refused.
    Key(KeyError),
    /// The injected clock gave something that is not an instant.
    Clock,
    /// `crypto.getRandomValues` failed.
    Random,
    /// The store threw, rejected, or broke its contract.
    Store {
        /// What went wrong, without any stored content.
        message: &'static str,
        /// What the store threw, if it threw.
        cause: Option<JsValue>,
    },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Core(e)
    }
}

impl From<PhoneError> for Failure {
    fn from(e: PhoneError) -> Self {
        Self::Core(Error::InvalidPhone(e))
    }
}

impl From<PolicyError> for Failure {
    fn from(e: PolicyError) -> Self {
        Self::Policy(e)
    }
}

impl From<KeyError> for Failure {
    fn from(e: KeyError) -> Self {
        Self::Key(e)
    }
}

impl From<Failure> for JsValue {
    fn from(f: Failure) -> Self {
        f.into_js()
    }
}

/// The parts of an answer: code, status, retry hint and message.
struct Answer {
    code: &'static str,
    http_status: u16,
    retry_after: Option<Duration>,
    message: String,
}

impl Answer {
    fn public(p: &PublicError) -> Self {
        Self {
            code: p.code(),
            http_status: p.http_status(),
            retry_after: p.retry_after(),
            message: p.to_string(),
        }
    }

    fn unavailable() -> Self {
        Self::public(&PublicError::Unavailable)
    }

    fn write(&self, target: &JsValue) {
        set(target, "code", self.code);
        set(target, "httpStatus", self.http_status);
        let retry = self
            .retry_after
            .map_or(JsValue::NULL, |d| JsValue::from_f64(ceil_secs(d)));
        set(target, "retryAfter", retry);
    }
}

impl Failure {
    /// A wrong argument.
    pub(crate) fn argument(argument: &'static str, expected: &'static str) -> Self {
        Self::Argument { argument, expected }
    }

    /// A store that threw or rejected with `cause`.
    pub(crate) fn store(message: &'static str, cause: JsValue) -> Self {
        Self::Store {
            message,
            cause: Some(cause),
        }
    }

    /// A store that answered outside its contract.
    pub(crate) fn store_contract(message: &'static str) -> Self {
        Self::Store {
            message,
            cause: None,
        }
    }

    /// The JavaScript `Error`.
    pub(crate) fn into_js(self) -> JsValue {
        let (own, public) = match &self {
            Self::Core(e) => {
                let public = e.public();
                let own = Answer {
                    code: e.code(),
                    http_status: e.http_status(),
                    retry_after: e.retry_after(),
                    message: e.to_string(),
                };
                (own, Answer::public(&public))
            }
            Self::Argument { argument, expected } => (
                Answer {
                    code: "invalid_argument",
                    http_status: 400,
                    retry_after: None,
                    message: format!("`{argument}` must be {expected}"),
                },
                Answer::public(&PublicError::InvalidRequest),
            ),
            Self::Policy(e) => (
                Answer {
                    code: "invalid_policy",
                    http_status: 500,
                    retry_after: None,
                    message: e.to_string(),
                },
                Answer::unavailable(),
            ),
            Self::Key(e) => (
                Answer {
                    code: "invalid_key",
                    http_status: 500,
                    retry_after: None,
                    message: e.to_string(),
                },
                Answer::unavailable(),
            ),
            Self::Clock => (
                Answer {
                    code: "invalid_clock",
                    http_status: 500,
                    retry_after: None,
                    message: "the clock must give milliseconds since the Unix epoch \
                              (a finite number or a valid Date, years 1 to 9999)"
                        .into(),
                },
                Answer::unavailable(),
            ),
            Self::Random => (
                Answer {
                    code: "randomness_unavailable",
                    http_status: 503,
                    retry_after: None,
                    message: "crypto.getRandomValues is not available or failed".into(),
                },
                Answer::unavailable(),
            ),
            Self::Store { message, .. } => (
                Answer {
                    code: "store_unavailable",
                    http_status: 503,
                    retry_after: None,
                    message: format!("the store failed: {message}"),
                },
                Answer::unavailable(),
            ),
        };
        let error: JsValue = js_sys::Error::new(&own.message).into();
        set(&error, "name", "OtpflowError");
        own.write(&error);
        let public_obj: JsValue = js_sys::Object::new().into();
        public.write(&public_obj);
        set(&public_obj, "message", public.message.as_str());
        match self {
            Self::Core(Error::InvalidPhone(e)) => {
                phone_fields(&e, &error);
                phone_fields(&e, &public_obj);
            }
            Self::Core(Error::CodeMismatch { attempts_left }) => {
                set(&error, "attemptsLeft", attempts_left);
            }
            Self::Core(Error::BudgetSpent { budget, .. }) => {
                set(&error, "budget", budget.as_str());
            }
            Self::Argument { argument, .. } => set(&error, "argument", argument),
            Self::Policy(PolicyError::OutOfRange(setting)) => {
                set(&error, "setting", camel_case(setting));
            }
            Self::Policy(PolicyError::CodeLength(_)) => set(&error, "setting", "codeLength"),
            Self::Store {
                cause: Some(cause), ..
            } => set(&error, "cause", cause),
            _ => {}
        }
        set(&error, "public", public_obj);
        error
    }
}

/// The fields that say what is wrong with a phone number: all about the
/// caller's own input, so safe to show them.
fn phone_fields(e: &PhoneError, target: &JsValue) {
    match e {
        PhoneError::TooLong { max } => set(target, "max", JsValue::from_f64(len_f64(*max))),
        PhoneError::InvalidCharacter { ch, at } => {
            set(target, "character", String::from(*ch));
            set(target, "position", JsValue::from_f64(len_f64(*at)));
        }
        PhoneError::MisplacedPlus { at } => {
            set(target, "position", JsValue::from_f64(len_f64(*at)))
        }
        PhoneError::Missing {
            country_code,
            national,
        } => {
            let missing = js_sys::Array::new();
            if *country_code {
                missing.push(&"countryCode".into());
            }
            if *national {
                missing.push(&"national".into());
            }
            set(target, "missing", missing);
        }
        PhoneError::CountryNotAllowed { country_code } => {
            set(target, "countryCode", *country_code);
        }
        _ => {}
    }
}

/// A core setting name as the JavaScript builder spells it:
/// `code_lifetime` → `codeLifetime`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for ch in name.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.push(ch.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

/// Sets `target[key] = value`. The targets are objects this module just
/// made, where setting a property cannot fail.
pub(crate) fn set(target: &JsValue, key: &str, value: impl Into<JsValue>) {
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), &value.into());
}

/// Whole seconds, rounded up (a 0.2 s wait says 1 s), as HTTP's
/// `Retry-After` wants them.
pub(crate) fn ceil_secs(d: Duration) -> f64 {
    let whole = d.whole_seconds() + i64::from(d.subsec_nanoseconds() > 0);
    // Retry hints are bounded by the policy (30 days at most): exact in f64.
    #[allow(clippy::cast_precision_loss)]
    let secs = whole as f64;
    secs
}

/// A small count (a position in a 64-byte input, a cap) as a JavaScript number.
fn len_f64(n: usize) -> f64 {
    u32::try_from(n).map_or(f64::from(u32::MAX), f64::from)
}
