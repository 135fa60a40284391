//! [`Policy`] and [`PolicyBuilder`]: code length, lifetimes, budgets,
//! cooldowns and lockouts, checked once when built. Durations are seconds.

use otpflow::budget::Rate;
use otpflow::budget_key::BudgetKind;
use otpflow::{PolicyError, ResendMode};
use wasm_bindgen::prelude::*;

use crate::error::Failure;
use crate::instant::{duration_from_secs, secs_f64, whole_u32};

/// The rules a [`Verifier`](crate::Verifier) enforces. `new Policy()` gives
/// the safe defaults (6 digits, 10 minutes, 5 checks, 5 sends, 30 s between
/// sends, lockout after 20 failures); `Policy.builder()` changes them.
///
/// ```js
/// const policy = Policy.builder().codeLength(8).codeLifetime(300).resendMode("new_code").build();
/// policy.codeLength; // 8
/// ```
#[wasm_bindgen]
#[derive(Clone, Debug, Default)]
pub struct Policy {
    inner: otpflow::Policy,
}

#[wasm_bindgen]
impl Policy {
    /// The defaults.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Policy {
        Self::default()
    }

    /// A builder starting from the defaults.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            inner: otpflow::Policy::builder(),
            invalid: None,
        }
    }

    /// Digits per code.
    #[wasm_bindgen(getter, js_name = codeLength)]
    pub fn code_length(&self) -> u8 {
        self.inner.code_length()
    }

    /// Seconds a code lives.
    #[wasm_bindgen(getter, js_name = codeLifetime)]
    pub fn code_lifetime(&self) -> f64 {
        secs_f64(self.inner.code_lifetime())
    }

    /// Checks per code.
    #[wasm_bindgen(getter, js_name = maxChecks)]
    pub fn max_checks(&self) -> u32 {
        self.inner.max_checks()
    }

    /// Sends per validation.
    #[wasm_bindgen(getter, js_name = maxSends)]
    pub fn max_sends(&self) -> u32 {
        self.inner.max_sends()
    }

    /// Seconds between sends.
    #[wasm_bindgen(getter, js_name = resendCooldown)]
    pub fn resend_cooldown(&self) -> f64 {
        secs_f64(self.inner.resend_cooldown())
    }

    /// Failed checks per subject before a lockout.
    #[wasm_bindgen(getter, js_name = failureCap)]
    pub fn failure_cap(&self) -> u32 {
        self.inner.failure_cap()
    }

    /// Seconds of the window failures are counted in.
    #[wasm_bindgen(getter, js_name = failureWindow)]
    pub fn failure_window(&self) -> f64 {
        secs_f64(self.inner.failure_window())
    }

    /// Seconds of a lockout.
    #[wasm_bindgen(getter)]
    pub fn lockout(&self) -> f64 {
        secs_f64(self.inner.lockout())
    }

    /// Sends per subject per window.
    #[wasm_bindgen(getter, js_name = subjectSendCap)]
    pub fn subject_send_cap(&self) -> u32 {
        self.inner.subject_send_cap()
    }

    /// Seconds of the window sends per subject are counted in.
    #[wasm_bindgen(getter, js_name = subjectSendWindow)]
    pub fn subject_send_window(&self) -> f64 {
        secs_f64(self.inner.subject_send_window())
    }

    /// `"same_code"` or `"new_code"`.
    #[wasm_bindgen(getter, js_name = resendMode)]
    pub fn resend_mode(&self) -> String {
        match self.inner.resend_mode() {
            ResendMode::SameCode => "same_code".into(),
            ResendMode::NewCode => "new_code".into(),
        }
    }
}

#[wasm_bindgen(typescript_custom_section)]
const POLICY_TS: &'static str = r#"
/** A kind of budget key (see `Budgets`). */
export type BudgetKind = "address" | "range" | "country" | "global" | "label";

/** A budget key's rate: `burst` sends at once, then one per `interval` seconds. */
export interface BudgetRate {
  burst: number;
  interval: number;
}
"#;

#[wasm_bindgen]
impl Policy {
    /// The rate of budget keys of `kind`, or `null` when they are not
    /// counted (by default: `address` 10 then 1 per 360 s, `range` 20 then
    /// 1 per 180 s, the others not counted).
    ///
    /// # Errors
    /// `invalid_argument` for an unknown kind.
    #[wasm_bindgen(js_name = budgetRate, unchecked_return_type = "BudgetRate | null")]
    pub fn budget_rate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "BudgetKind")] kind: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let kind = budget_kind(kind).ok_or_else(|| Failure::argument("kind", "a budget kind"))?;
        Ok(self.inner.budget_rate(kind).map_or(JsValue::NULL, |rate| {
            let o: JsValue = js_sys::Object::new().into();
            crate::error::set(&o, "burst", rate.burst());
            crate::error::set(&o, "interval", secs_f64(rate.interval()));
            o
        }))
    }

    /// Leading E.164 digits that make a number's range budget key.
    #[wasm_bindgen(getter, js_name = rangePrefix)]
    pub fn range_prefix(&self) -> u8 {
        self.inner.range_prefix()
    }

    /// The E.164 digit prefixes no code is ever sent to.
    #[wasm_bindgen(getter, js_name = deniedPrefixes, unchecked_return_type = "string[]")]
    pub fn denied_prefixes(&self) -> js_sys::Array {
        self.inner
            .denied_prefixes()
            .iter()
            .map(|p| JsValue::from_str(p))
            .collect()
    }
}

/// A budget kind by its name.
fn budget_kind(value: &JsValue) -> Option<BudgetKind> {
    let name = value.as_string()?;
    BudgetKind::ALL.into_iter().find(|k| k.as_str() == name)
}

impl Policy {
    /// The core's policy.
    pub(crate) fn inner(&self) -> &otpflow::Policy {
        &self.inner
    }

    /// Wraps the core's policy.
    pub(crate) fn from_inner(inner: otpflow::Policy) -> Self {
        Self { inner }
    }
}

/// Builds a [`Policy`]. Each setter returns a new builder (the one it is
/// called on is unchanged); `build()` checks every setting and throws
/// `invalid_policy`, naming the first `setting` out of range, for nonsense:
/// it never clamps.
#[wasm_bindgen]
#[derive(Clone, Debug)]
pub struct PolicyBuilder {
    inner: otpflow::PolicyBuilder,
    /// The first setting given something that is not a number of its kind
    /// (NaN, a fraction of a count), by its core name.
    invalid: Option<&'static str>,
}

macro_rules! count_setters {
    ($($(#[$doc:meta])* $name:ident, $js:literal;)*) => {
        #[wasm_bindgen]
        impl PolicyBuilder {
        $(
            $(#[$doc])*
            #[wasm_bindgen(js_name = $js)]
            pub fn $name(&self, value: f64) -> PolicyBuilder {
                match whole_u32(value) {
                    Some(n) => self.with(|b| b.$name(n)),
                    None => self.refuse(stringify!($name)),
                }
            }
        )*
        }
    };
}

macro_rules! duration_setters {
    ($($(#[$doc:meta])* $name:ident, $js:literal;)*) => {
        #[wasm_bindgen]
        impl PolicyBuilder {
        $(
            $(#[$doc])*
            #[wasm_bindgen(js_name = $js)]
            pub fn $name(&self, seconds: f64) -> PolicyBuilder {
                match duration_from_secs(seconds) {
                    Some(d) => self.with(|b| b.$name(d)),
                    None => self.refuse(stringify!($name)),
                }
            }
        )*
        }
    };
}

#[wasm_bindgen]
impl PolicyBuilder {
    /// Digits per code, 4–10.
    #[wasm_bindgen(js_name = codeLength)]
    pub fn code_length(&self, digits: f64) -> PolicyBuilder {
        match whole_u32(digits).and_then(|n| u8::try_from(n).ok()) {
            Some(n) => self.with(|b| b.code_length(n)),
            None => self.refuse("code_length"),
        }
    }

    /// `"same_code"` (the default: a resend sends the same code) or
    /// `"new_code"` (earlier codes stop working).
    #[wasm_bindgen(js_name = resendMode)]
    pub fn resend_mode(
        &self,
        #[wasm_bindgen(unchecked_param_type = "\"same_code\" | \"new_code\"")] mode: &JsValue,
    ) -> PolicyBuilder {
        match mode.as_string().as_deref() {
            Some("same_code") => self.with(|b| b.resend_mode(ResendMode::SameCode)),
            Some("new_code") => self.with(|b| b.resend_mode(ResendMode::NewCode)),
            _ => self.refuse("resend_mode"),
        }
    }

    /// Sets the rate of budget keys of `kind` (see `Budgets`): `burst`
    /// sends at once, then one per `intervalSeconds`; `null` stops counting
    /// keys of that kind.
    ///
    /// ```js
    /// Policy.builder().budgetRate("address", 3, 600).budgetRate("global", 1000, 4).build();
    /// ```
    #[wasm_bindgen(js_name = budgetRate)]
    pub fn budget_rate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "BudgetKind")] kind: &JsValue,
        burst: Option<f64>,
        #[wasm_bindgen(js_name = intervalSeconds)] interval_seconds: Option<f64>,
    ) -> PolicyBuilder {
        let Some(kind) = budget_kind(kind) else {
            return self.refuse("budget_rate");
        };
        let Some(burst) = burst else {
            return self.with(|b| b.budget_rate(kind, None));
        };
        let rate = whole_u32(burst)
            .zip(interval_seconds.and_then(duration_from_secs))
            .and_then(|(burst, interval)| Rate::new(burst, interval).ok());
        match rate {
            Some(rate) => self.with(|b| b.budget_rate(kind, Some(rate))),
            None => self.refuse("budget_rate"),
        }
    }

    /// Leading E.164 digits (the country code included) that make a
    /// number's range budget key, 2–15 (default 8).
    #[wasm_bindgen(js_name = rangePrefix)]
    pub fn range_prefix(&self, digits: f64) -> PolicyBuilder {
        match whole_u32(digits).and_then(|n| u8::try_from(n).ok()) {
            Some(n) => self.with(|b| b.range_prefix(n)),
            None => self.refuse("range_prefix"),
        }
    }

    /// Refuses every send to numbers whose E.164 digits (no `+`) start
    /// with `prefix`, 1–15 digits (`"44870"`, `"1876"`): such sends reject
    /// with `destination_denied`, whatever the budgets.
    #[wasm_bindgen(js_name = denyPrefix)]
    pub fn deny_prefix(&self, prefix: &JsValue) -> PolicyBuilder {
        match prefix.as_string().filter(|p| p.len() <= 15) {
            Some(p) => self.with(|b| b.deny_prefix(&p)),
            None => self.refuse("deny_prefix"),
        }
    }

    /// Checks every setting and returns the policy.
    ///
    /// # Errors
    /// `invalid_policy` with `setting` (e.g. `"codeLifetime"`) for the first
    /// setting out of range.
    pub fn build(&self) -> Result<Policy, JsValue> {
        if let Some(name) = self.invalid {
            return Err(Failure::Policy(PolicyError::OutOfRange(name)).into());
        }
        let inner = self.inner.clone().build().map_err(Failure::from)?;
        Ok(Policy { inner })
    }
}

count_setters! {
    /// Checks per code, 1–100.
    max_checks, "maxChecks";
    /// Sends per validation, 1–100.
    max_sends, "maxSends";
    /// Failed checks per subject before a lockout, 1–10 000.
    failure_cap, "failureCap";
    /// Sends per subject per window, from `maxSends` to 10 000.
    subject_send_cap, "subjectSendCap";
}

duration_setters! {
    /// Seconds a code lives, 1 s – 24 h.
    code_lifetime, "codeLifetime";
    /// Seconds between sends, from 0 up to the code lifetime.
    resend_cooldown, "resendCooldown";
    /// Seconds of the window failures are counted in, 1 s – 30 days.
    failure_window, "failureWindow";
    /// Seconds of a lockout, 1 s – 30 days.
    lockout, "lockout";
    /// Seconds of the window sends per subject are counted in, 1 s – 30 days.
    subject_send_window, "subjectSendWindow";
}

impl PolicyBuilder {
    fn with(&self, f: impl FnOnce(otpflow::PolicyBuilder) -> otpflow::PolicyBuilder) -> Self {
        Self {
            inner: f(self.inner.clone()),
            invalid: self.invalid,
        }
    }

    fn refuse(&self, name: &'static str) -> Self {
        Self {
            inner: self.inner.clone(),
            invalid: self.invalid.or(Some(name)),
        }
    }
}
