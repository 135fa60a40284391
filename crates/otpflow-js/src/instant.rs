//! Numbers, instants and strings crossing from JavaScript, checked: a
//! JavaScript number can be NaN, infinite, fractional or huge, and a string
//! any length.

use js_sys::{Date, JsString};
use time::{Duration, OffsetDateTime};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::Failure;

/// The longest duration a setting takes, in seconds: the policy's own
/// limits are lower (30 days), and this keeps the conversion exact.
const MAX_SECONDS: f64 = 1e9;

/// A non-negative whole number up to `u32::MAX`, or `None`.
pub(crate) fn whole_u32(n: f64) -> Option<u32> {
    if n.is_finite() && n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        // In range and whole: the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(n as u32)
    } else {
        None
    }
}

/// A duration from seconds (fractions allowed, to the millisecond), or
/// `None` for NaN, infinities and absurd magnitudes. Range checks against
/// the policy happen in the core.
pub(crate) fn duration_from_secs(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs.abs() > MAX_SECONDS {
        return None;
    }
    // |secs| ≤ 1e9, so the milliseconds fit an i64 exactly.
    #[allow(clippy::cast_possible_truncation)]
    let ms = (secs * 1000.0).round() as i64;
    Some(Duration::milliseconds(ms))
}

/// Seconds as a JavaScript number (fractions to the millisecond).
pub(crate) fn secs_f64(d: Duration) -> f64 {
    d.as_seconds_f64()
}

/// An instant from milliseconds since the Unix epoch (what `Date.now()`
/// gives), refusing NaN, infinities and instants outside years 1–9999.
pub(crate) fn instant_from_ms(ms: f64) -> Result<OffsetDateTime, Failure> {
    // ±1e15 ms is beyond years ±9999 on either side; the core's range check
    // below gives the exact bound.
    if !ms.is_finite() || ms.abs() > 1e15 {
        return Err(Failure::Clock);
    }
    // Whole milliseconds and the fraction apart: `ms * 1e6` alone would
    // lose the last digits (f64 holds 53 bits; 2026 in ns needs 61). In
    // i64 seconds and nanoseconds: 128-bit division would cost the module
    // its own routine.
    let whole = ms.trunc();
    // |ms| ≤ 1e15 < 2^53: both conversions are exact.
    #[allow(clippy::cast_possible_truncation)]
    let (whole_ms, fraction_ns) = (whole as i64, ((ms - whole) * 1e6).round() as i64);
    let nanos = whole_ms.rem_euclid(1000) * 1_000_000 + fraction_ns;
    OffsetDateTime::from_unix_timestamp(whole_ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.checked_add(Duration::nanoseconds(nanos)))
        .ok_or(Failure::Clock)
}

/// An instant as milliseconds since the Unix epoch.
pub(crate) fn ms_f64(t: OffsetDateTime) -> f64 {
    // Instants in years 1–9999 are within ±2.6e14 ms: exact in f64 to the
    // millisecond (sub-millisecond digits are rounded).
    // `unix_timestamp` counts whole seconds down (the time of day is never
    // negative), so this is the floor of the nanoseconds over 10^6.
    #[allow(clippy::cast_precision_loss)]
    let ms = (t.unix_timestamp() * 1000 + i64::from(t.millisecond())) as f64;
    ms
}

/// An instant as a JavaScript `Date`.
pub(crate) fn date(t: OffsetDateTime) -> JsValue {
    Date::new(&JsValue::from_f64(ms_f64(t))).into()
}

/// What a clock gave: a number of milliseconds or a `Date`.
pub(crate) fn instant_from_js(value: &JsValue) -> Result<OffsetDateTime, Failure> {
    if let Some(ms) = value.as_f64() {
        return instant_from_ms(ms);
    }
    match value.dyn_ref::<Date>() {
        Some(d) => instant_from_ms(d.get_time()),
        None => Err(Failure::Clock),
    }
}

/// A string argument no longer than `max_units` UTF-16 units, read without
/// copying a longer one into the module first. `None` when it is too long.
pub(crate) fn short_string(
    value: &JsValue,
    argument: &'static str,
    max_units: u32,
) -> Result<Option<String>, Failure> {
    let Some(s) = value.dyn_ref::<JsString>() else {
        return Err(Failure::argument(argument, "a string"));
    };
    if s.length() > max_units {
        return Ok(None);
    }
    // Lone surrogates become U+FFFD, which every guard refuses.
    Ok(Some(String::from(s)))
}
