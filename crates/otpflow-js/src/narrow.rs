//! The narrow module: byte-level exports under the
//! package's plain-JavaScript layer (`package/api.js`).
//!
//! Nothing JavaScript crosses into the module but numbers, strings and
//! byte arrays: no promises, objects or closures. Each export is one pure
//! step of the core (record bytes and inputs in; record bytes, outcome and
//! events out, in the little byte format `Out` writes and the JavaScript
//! layer reads); the JavaScript layer runs the load → step →
//! compare-and-swap → retry loop over the caller's store, and turns error
//! codes into `Error` objects. No `format!`, `Display` or `Debug` is reached
//! from an export: messages are written in JavaScript from the codes.
//!
//! Output format (all little-endian): `u8`; `u16`; `u32`; `f64` (NaN for
//! none); a short string is a `u8` length and UTF-8 bytes (`s`); bytes are
//! a `u32` length and the bytes (`b`). Inputs the JavaScript layer encodes
//! (policies, phone policies, contexts, budgets) spell strings with a `u16`
//! length.
//!
//! The exports are plain Rust functions too, pure on any target:
//!
//! ```
//! use otpflow_js::narrow::{Core, Keys, phone, policy_info};
//! // A phone policy: default region "GB", every country, mobiles only.
//! let uk = [2, 0, b'G', b'B', 0, 1];
//! let parsed = phone("07401 101801", false, "", &uk);
//! assert_eq!(&parsed[..2], &[0, 13]); // [0, e164: s, …]
//! assert_eq!(&parsed[2..15], b"+447401101801");
//! assert_eq!(policy_info(&[])[0], 0); // the default policy is valid
//! assert_eq!(policy_info(&[0, 0, 0, 0, 0, 0, 0, 8, 64]), [2, 11, b'c', b'o', b'd', b'e', b'_', b'l', b'e', b'n', b'g', b't', b'h']);
//!
//! let keys = Keys::create(1, vec![42; 32]).expect("a 32-byte key");
//! let core = Core::create(&[], &keys).expect("the default policy");
//! let (now, e164) = (1.79e12, "+447401101801");
//! // Start: [0, has write 1, record: b, expires: f64, spends: u8, ok 0, code: s, …]
//! let sent = core.step(0, "login", e164, &[], &[], 0, "", now, &[7; 32]);
//! assert_eq!(&sent[..2], &[0, 1]);
//! let len = u32::from_le_bytes(sent[2..6].try_into()?) as usize;
//! let record = &sent[6..6 + len];
//! let at = 6 + len + 8 + 1;
//! assert_eq!(&sent[at..at + 2], &[0, 6]); // ok, a six-digit code
//! let code = std::str::from_utf8(&sent[at + 2..at + 8])?;
//! // Verify the code against the record the start wrote: written and ok.
//! let done = core.step(2, "login", e164, &[], record, 255, code, now + 5e3, &[]);
//! assert_eq!(&done[..2], &[0, 1]);
//! let len = u32::from_le_bytes(done[2..6].try_into()?) as usize;
//! assert_eq!(done[6 + len + 8 + 1], 0);
//! // A record the codec refuses is the store's fault.
//! let broken = core.step(2, "login", e164, &[], &[1, 2, 3], 255, code, now, &[]);
//! assert_eq!(broken[..2], [2, 17]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use otpflow::budget::Rate;
use otpflow::budget_key::{BudgetKey, BudgetKind, BudgetLabel, allows_last};
use otpflow::rand_core::{TryCryptoRng, TryRng};
use otpflow::{
    Budgets, Channel, Context, Engine, Error, Event, KeyError, KeyId, PhoneError, PhonePolicy,
    Policy, PolicyError, Purpose, Record, ResendMode, SecretKey, Sent, Status, SubjectKey,
    Validated,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

/// The answer bytes an export returns.
struct Out(Vec<u8>);

impl Out {
    fn new() -> Self {
        Self(Vec::with_capacity(256))
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn s(&mut self, v: &str) {
        let bytes = v.as_bytes();
        let bytes = bytes.get(..255).unwrap_or(bytes);
        self.u8(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
        self.0.extend_from_slice(bytes);
    }
    fn b(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }
    fn time(&mut self, t: OffsetDateTime) {
        self.f64(ms(t));
    }
    fn opt_time(&mut self, t: Option<OffsetDateTime>) {
        self.f64(t.map_or(f64::NAN, ms));
    }
    fn secs(&mut self, d: Option<Duration>) {
        self.f64(d.map_or(f64::NAN, ceil_secs));
    }
}

/// A reader over the bytes the JavaScript layer encodes (policies,
/// contexts, budgets): every read is checked; a short input reads as
/// absent and the caller refuses it.
struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn s(&mut self) -> Option<&'a str> {
        let n = usize::from(self.u16()?);
        core::str::from_utf8(self.take(n)?).ok()
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whole seconds, rounded up, as HTTP's `Retry-After` wants them.
fn ceil_secs(d: Duration) -> f64 {
    let whole = d.whole_seconds() + i64::from(d.subsec_nanoseconds() > 0);
    // Retry hints are bounded by the policy (30 days at most): exact.
    #[allow(clippy::cast_precision_loss)]
    let secs = whole as f64;
    secs
}

/// An instant as milliseconds since the Unix epoch.
fn ms(t: OffsetDateTime) -> f64 {
    // Years 1–9999 are within ±2.6e14 ms: exact in f64.
    #[allow(clippy::cast_precision_loss)]
    let ms = (t.unix_timestamp() * 1000 + i64::from(t.millisecond())) as f64;
    ms
}

/// An instant from milliseconds since the epoch; `None` for NaN,
/// infinities and instants outside years 1–9999.
fn instant(ms: f64) -> Option<OffsetDateTime> {
    if !ms.is_finite() || ms.abs() > 1e15 {
        return None;
    }
    let whole = ms.trunc();
    // |ms| ≤ 1e15 < 2^53: both conversions are exact.
    #[allow(clippy::cast_possible_truncation)]
    let (whole_ms, fraction_ns) = (whole as i64, ((ms - whole) * 1e6).round() as i64);
    let nanos = whole_ms.rem_euclid(1000) * 1_000_000 + fraction_ns;
    OffsetDateTime::from_unix_timestamp(whole_ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.checked_add(Duration::nanoseconds(nanos)))
}

/// A whole number 0 to `u32::MAX`.
fn whole(n: f64) -> Option<u32> {
    if n.is_finite() && n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(n as u32)
    } else {
        None
    }
}

/// Seconds (to the millisecond) as a duration, up to 1e9 s.
fn seconds(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs.abs() > 1e9 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    let ms = (secs * 1000.0).round() as i64;
    Some(Duration::milliseconds(ms))
}

/// Writes an error: its code, status and retry hint, the public answer's,
/// then the fields that say more (see the JavaScript layer's `readError`).
fn error(out: &mut Out, e: &Error) {
    out.s(e.code());
    out.u16(e.http_status());
    out.secs(e.retry_after());
    let public = e.public();
    out.s(public.code());
    out.u16(public.http_status());
    out.secs(public.retry_after());
    match e {
        Error::CodeMismatch { attempts_left } => {
            out.u8(1);
            out.u32(*attempts_left);
        }
        Error::BudgetSpent { budget, .. } => {
            out.u8(2);
            out.s(budget.as_str());
        }
        Error::InvalidPhone(p) => {
            out.u8(3);
            phone_fields(out, p);
        }
        _ => out.u8(0),
    }
}

/// What is wrong with the caller's own phone input.
fn phone_fields(out: &mut Out, e: &PhoneError) {
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match e {
        PhoneError::TooLong { max } => {
            out.u8(1);
            out.u32(small(*max));
        }
        PhoneError::InvalidCharacter { ch, at } => {
            out.u8(2);
            out.u32(u32::from(*ch));
            out.u32(small(*at));
        }
        PhoneError::MisplacedPlus { at } => {
            out.u8(3);
            out.u32(small(*at));
        }
        PhoneError::Missing {
            country_code,
            national,
        } => {
            out.u8(4);
            out.u8(u8::from(*country_code) | u8::from(*national) << 1);
        }
        PhoneError::CountryNotAllowed { country_code } => {
            out.u8(5);
            out.u16(*country_code);
        }
        // For the message only (the error names no field for it).
        PhoneError::NonGeographic { country_code } => {
            out.u8(6);
            out.u16(*country_code);
        }
        _ => out.u8(0),
    }
}

/// A phone error as a whole answer: `[1, error…]`.
fn phone_refusal(e: PhoneError) -> Vec<u8> {
    let mut out = Out::new();
    out.u8(1);
    error(&mut out, &Error::InvalidPhone(e));
    out.0
}

/// A refusal of this module's own (`[2, code]`): an argument the
/// JavaScript layer should have refused, a policy or key out of range.
fn own(code: &str) -> Vec<u8> {
    let mut out = Out::new();
    out.u8(2);
    out.s(code);
    out.0
}

/// The phone policy the JavaScript `PhonePolicy` describes:
/// `[region: s (empty: none)] [allowed: u8 (0: all, 1: a list)] [count: u16,
/// codes: u16…] [mobile: u8]`.
fn phone_policy(bytes: &[u8]) -> Result<PhonePolicy, PhoneError> {
    let mut r = In(bytes);
    let bad = PhoneError::Invalid;
    let region = r.s().ok_or(bad.clone())?;
    let mut policy = if region.is_empty() {
        PhonePolicy::default().without_default_region()
    } else {
        PhonePolicy::default().with_default_region(region)?
    };
    if r.u8().ok_or(bad.clone())? == 1 {
        let n = r.u16().ok_or(bad.clone())?;
        let mut codes = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            codes.push(r.u16().ok_or(bad.clone())?);
        }
        policy = policy.allow_only(&codes);
    } else {
        policy = policy.allow_all();
    }
    let mobile = r.u8().ok_or(bad.clone())? == 1;
    if !r.done() {
        return Err(bad);
    }
    Ok(policy.require_mobile(mobile))
}

/// Parses a phone number under a policy (`phone_policy`'s bytes); with a
/// non-empty `country_code`, from its parts (`"+44"`, `"07401 101801"`).
/// `[0, e164: s, countryCode: u16, national: s, region: s]` or
/// `[1, error…]`; `[2, "invalid_region"]` for a policy naming no known
/// region.
#[wasm_bindgen]
pub fn phone(input: &str, parts: bool, country_code: &str, policy: &[u8]) -> Vec<u8> {
    let policy = match phone_policy(policy) {
        Ok(p) => p,
        Err(e) => return phone_refusal(e),
    };
    let parsed = if parts {
        otpflow::PhoneNumber::from_parts(country_code, input, &policy)
    } else {
        otpflow::PhoneNumber::parse(input, &policy)
    };
    match parsed {
        Ok(p) => {
            let mut out = Out::new();
            out.u8(0);
            out.s(p.e164());
            out.u16(p.country_code());
            out.s(p.national());
            out.s(p.region().unwrap_or(""));
            out.0
        }
        Err(e) => phone_refusal(e),
    }
}

/// Whether the module knows this region (`"GB"`, `"IE"`) as a default
/// region for national input.
#[wasm_bindgen]
pub fn region_known(region: &str) -> bool {
    PhonePolicy::default().with_default_region(region).is_ok()
}

/// A number this module parsed before, from its E.164 form: every number
/// the JavaScript layer holds went through [`phone`] first.
fn number(e164: &str) -> Result<otpflow::PhoneNumber, Error> {
    let policy = PhonePolicy::default()
        .without_default_region()
        .allow_all()
        .require_mobile(false);
    match otpflow::PhoneNumber::parse(e164, &policy) {
        // A non-geographic number (+800…) was admitted by a policy naming
        // its calling code: name it again.
        Err(PhoneError::NonGeographic { country_code }) => {
            otpflow::PhoneNumber::parse(e164, &policy.allow_only(&[country_code]))
        }
        parsed => parsed,
    }
    .map_err(Error::InvalidPhone)
}

/// The policy a JavaScript builder names: settings as `[tag: u8, value…]`,
/// numbers as f64 (the JavaScript layer refuses what is not a number of
/// the setting's kind). `Err` names the setting out of range, in the
/// core's spelling.
fn policy(bytes: &[u8]) -> Result<Policy, &'static str> {
    let mut r = In(bytes);
    let mut b = Policy::builder();
    while !r.done() {
        let tag = r.u8().ok_or("policy")?;
        if tag == 13 {
            b = b.deny_prefix(r.s().ok_or("deny_prefix")?);
            continue;
        }
        if tag == 11 {
            let kind = budget_kind(r.u8().ok_or("budget_rate")?).ok_or("budget_rate")?;
            let (burst, interval) = (r.f64().ok_or("budget_rate")?, r.f64().ok_or("budget_rate")?);
            let rate = if burst.is_nan() {
                None
            } else {
                let burst = whole(burst).ok_or("budget_rate")?;
                let interval = seconds(interval).ok_or("budget_rate")?;
                Some(Rate::new(burst, interval).map_err(|_| "budget_rate")?)
            };
            b = b.budget_rate(kind, rate);
            continue;
        }
        let v = r.f64().ok_or("policy")?;
        let count = |name| whole(v).ok_or(name);
        let small = |name| whole(v).and_then(|n| u8::try_from(n).ok()).ok_or(name);
        let time = |name| seconds(v).ok_or(name);
        b = match tag {
            0 => b.code_length(small("code_length")?),
            1 => b.code_lifetime(time("code_lifetime")?),
            2 => b.max_checks(count("max_checks")?),
            3 => b.max_sends(count("max_sends")?),
            4 => b.resend_cooldown(time("resend_cooldown")?),
            5 => b.failure_cap(count("failure_cap")?),
            6 => b.failure_window(time("failure_window")?),
            7 => b.lockout(time("lockout")?),
            8 => b.subject_send_cap(count("subject_send_cap")?),
            9 => b.subject_send_window(time("subject_send_window")?),
            10 => b.resend_mode(if v == 1.0 {
                ResendMode::NewCode
            } else {
                ResendMode::SameCode
            }),
            12 => b.range_prefix(small("range_prefix")?),
            _ => return Err("policy"),
        };
    }
    b.build().map_err(|e| match e {
        PolicyError::CodeLength(_) => "code_length",
        PolicyError::OutOfRange(name) => name,
        _ => "policy",
    })
}

/// The kinds of budget keys by the byte the JavaScript layer writes.
const KINDS: [BudgetKind; 5] = [
    BudgetKind::Address,
    BudgetKind::Range,
    BudgetKind::Country,
    BudgetKind::Global,
    BudgetKind::Label,
];

fn budget_kind(byte: u8) -> Option<BudgetKind> {
    KINDS.get(usize::from(byte)).copied()
}

/// Checks a policy: `[0, settings…]` (the getters' values: see the
/// JavaScript `Policy`) or `[2, setting]` for the first setting out of
/// range.
#[wasm_bindgen]
pub fn policy_info(bytes: &[u8]) -> Vec<u8> {
    let p = match policy(bytes) {
        Ok(p) => p,
        Err(setting) => return own(setting),
    };
    let mut out = Out::new();
    out.u8(0);
    out.u8(p.code_length());
    out.f64(p.code_lifetime().as_seconds_f64());
    out.u32(p.max_checks());
    out.u32(p.max_sends());
    out.f64(p.resend_cooldown().as_seconds_f64());
    out.u32(p.failure_cap());
    out.f64(p.failure_window().as_seconds_f64());
    out.f64(p.lockout().as_seconds_f64());
    out.u32(p.subject_send_cap());
    out.f64(p.subject_send_window().as_seconds_f64());
    out.u8(u8::from(p.resend_mode() == ResendMode::NewCode));
    for kind in KINDS {
        match p.budget_rate(kind) {
            Some(rate) => {
                out.f64(f64::from(rate.burst()));
                out.f64(rate.interval().as_seconds_f64());
            }
            None => {
                out.f64(f64::NAN);
                out.f64(f64::NAN);
            }
        }
    }
    out.u8(p.range_prefix());
    out.u16(u16::try_from(p.denied_prefixes().len()).unwrap_or(u16::MAX));
    for prefix in p.denied_prefixes() {
        out.s(prefix);
    }
    out.0
}

/// The secret keys codes are derived with (the JavaScript `KeyRing` holds
/// one): the bytes stay in the module; the copies a call receives are
/// zeroized when dropped (the core zeroizes its own).
#[wasm_bindgen]
pub struct Keys {
    ring: otpflow::KeyRing,
}

fn key(id: u32, secret: &[u8]) -> Result<SecretKey, KeyError> {
    SecretKey::new(KeyId(id), secret)
}

/// A key error's code: this module's `invalid_key` refusals, by kind.
fn key_refusal(e: &KeyError) -> u8 {
    match e {
        KeyError::Length(_) => 1,
        KeyError::DuplicateId(_) => 2,
        KeyError::RemovingCurrent(_) => 3,
        _ => 4,
    }
}

#[wasm_bindgen]
impl Keys {
    /// A ring whose current key has this id and these 32–64 bytes;
    /// `undefined` for a wrong length (the JavaScript layer checks it
    /// first).
    pub fn create(id: u32, secret: Vec<u8>) -> Option<Keys> {
        let secret = Zeroizing::new(secret);
        Some(Self {
            ring: otpflow::KeyRing::new(key(id, &secret).ok()?),
        })
    }

    /// Makes a new key current: 0, or the refusal's kind (1 length, 2 an
    /// id in the ring).
    pub fn rotate(&mut self, id: u32, secret: Vec<u8>) -> u8 {
        let secret = Zeroizing::new(secret);
        match key(id, &secret).and_then(|k| self.ring.rotate(k)) {
            Ok(()) => 0,
            Err(e) => key_refusal(&e),
        }
    }

    /// Drops a retired key: 0, or the refusal's kind (3 the current key,
    /// 4 an id not in the ring).
    pub fn remove(&mut self, id: u32) -> u8 {
        match self.ring.remove(KeyId(id)) {
            Ok(()) => 0,
            Err(e) => key_refusal(&e),
        }
    }

    /// The id of the key that derives new codes.
    pub fn current(&self) -> u32 {
        self.ring.current().id().0
    }

    /// Whether a key with this id is in the ring.
    pub fn has(&self, id: u32) -> bool {
        self.ring.get(KeyId(id)).is_some()
    }
}

/// The engine of one JavaScript `Verifier`: a policy and a key ring (a
/// new `Core` when the verifier's keys change: calls in flight keep the
/// one they started with).
#[wasm_bindgen]
pub struct Core {
    engine: Engine,
}

/// Randomness the JavaScript layer drew with `crypto.getRandomValues`
/// (32 bytes a call), stretched by SHA-256 in counter mode: the engine
/// draws a 16-byte nonce a send.
struct Drawn {
    seed: [u8; 32],
    counter: u32,
}

impl TryRng for Drawn {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(self.seed)
                .chain_update(self.counter.to_le_bytes())
                .finalize();
            self.counter = self.counter.wrapping_add(1);
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
        Ok(())
    }
}

impl TryCryptoRng for Drawn {}

/// The operations of [`Core::step`], by the byte the JavaScript layer
/// passes.
const START: u8 = 0;
const RESEND: u8 = 1;
const VERIFY: u8 = 2;
const CANCEL: u8 = 3;
const STATUS: u8 = 4;

const CHANNELS: [Channel; 4] = [
    Channel::Sms,
    Channel::Whatsapp,
    Channel::Voice,
    Channel::None,
];

/// The context a code is bound to: `[count: u8, (name: s16, value: s16)…]`
/// in the order of the names (the JavaScript layer sorts them).
fn context(bytes: &[u8]) -> Option<Option<Context>> {
    if bytes.is_empty() {
        return Some(None);
    }
    let mut r = In(bytes);
    let n = r.u8()?;
    let mut b = Context::builder();
    for _ in 0..n {
        let (name, value) = (r.s()?, r.s()?);
        b = b.field(name, value);
    }
    r.done().then(|| Some(b.build()))
}

/// The budgets a send names: `[flags: u8 (1 range, 2 country, 4 global),
/// address: u8 length (0, 4 or 16) and bytes, count: u8, labels: s16…]`.
fn budgets(bytes: &[u8]) -> Option<Budgets> {
    let mut r = In(bytes);
    let mut b = Budgets::new();
    if bytes.is_empty() {
        return Some(b);
    }
    let flags = r.u8()?;
    match r.u8()? {
        0 => {}
        4 => {
            let a: [u8; 4] = r.take(4)?.try_into().ok()?;
            b = b.address(IpAddr::V4(Ipv4Addr::from(a)));
        }
        16 => {
            let a: [u8; 16] = r.take(16)?.try_into().ok()?;
            b = b.address(IpAddr::V6(Ipv6Addr::from(a)));
        }
        _ => return None,
    }
    if flags & 1 != 0 {
        b = b.range();
    }
    if flags & 2 != 0 {
        b = b.country();
    }
    if flags & 4 != 0 {
        b = b.global();
    }
    for _ in 0..r.u8()? {
        b = b.label(BudgetLabel::new(r.s()?).ok()?);
    }
    r.done().then_some(b)
}

/// A stored record; `None` for none (empty bytes) or for bytes the codec
/// refuses (`Err`).
fn record(bytes: &[u8]) -> Result<Option<Record>, ()> {
    if bytes.is_empty() {
        return Ok(None);
    }
    Record::from_bytes(bytes).map(Some).map_err(|_| ())
}

/// Concatenated records: each a `u32` length and bytes (length 0: none).
fn records(bytes: &[u8]) -> Option<Vec<Option<Record>>> {
    let mut r = In(bytes);
    let mut all = Vec::new();
    while !r.done() {
        let n = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
        all.push(record(r.take(usize::try_from(n).ok()?)?).ok()?);
    }
    Some(all)
}

impl Core {
    fn subject(&self, purpose: &str, e164: &str, context: &[u8]) -> Result<SubjectKey, Error> {
        let purpose = Purpose::custom(purpose)?;
        let subject = SubjectKey::new(purpose, number(e164)?);
        Ok(match self::context(context) {
            Some(Some(c)) => subject.bound_to(c),
            _ => subject,
        })
    }

    fn budget_keys(
        &self,
        purpose: &str,
        e164: &str,
        budgets: &[u8],
    ) -> Result<Vec<BudgetKey>, Vec<u8>> {
        let subject = self
            .subject(purpose, e164, &[])
            .map_err(|_| own("invalid_argument"))?;
        let budgets = self::budgets(budgets).ok_or_else(|| own("invalid_argument"))?;
        Ok(self.engine.budget_keys(&subject, &budgets))
    }

    /// A budget key's write: `[0, has write: u8, (record: b, expires: f64)?,
    /// refused: u8, error…?]`.
    fn bucket(&self, write: Option<Record>, refused: Option<Error>) -> Vec<u8> {
        let mut out = Out::new();
        out.u8(0);
        self.write(&mut out, write.as_ref());
        match refused {
            Some(e) => {
                out.u8(1);
                error(&mut out, &e);
            }
            None => out.u8(0),
        }
        out.0
    }

    fn write(&self, out: &mut Out, write: Option<&Record>) {
        match write {
            Some(r) => {
                out.u8(1);
                out.b(&r.to_bytes());
                out.time(r.expires_at(self.engine.policy()));
            }
            None => out.u8(0),
        }
    }
}

#[wasm_bindgen]
impl Core {
    /// An engine for this policy (`policy_info`'s input, checked there
    /// first) and a copy of these keys; `undefined` for a policy out of
    /// range.
    pub fn create(policy: &[u8], keys: &Keys) -> Option<Core> {
        Some(Self {
            engine: Engine::new(self::policy(policy).ok()?, keys.ring.clone()),
        })
    }

    /// One transition of a subject's record (`op`: 0 start, 1 resend,
    /// 2 verify, 3 cancel, 4 status) at `now` (ms since the epoch).
    /// `channel` indexes sms, whatsapp, voice, none (others: none given);
    /// `input` is the typed code for a verify; `random` 32 bytes from
    /// `crypto.getRandomValues` for a send.
    ///
    /// `[0, has write: u8, (record: b, expires: f64)?, spend tag: u8,
    /// outcome: u8 (0 ok, 1 refused), (value | error), events: u8, event…]`,
    /// or `[2, code]` for an argument the JavaScript layer should have
    /// refused (`invalid_clock`, `invalid_argument`, `store_unavailable`
    /// for record bytes the codec refuses).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        op: u8,
        purpose: &str,
        e164: &str,
        context: &[u8],
        record: &[u8],
        channel: u8,
        input: &str,
        now: f64,
        random: &[u8],
    ) -> Vec<u8> {
        let Some(now) = instant(now) else {
            return own("invalid_clock");
        };
        let Ok(stored) = self::record(record) else {
            return own("store_unavailable");
        };
        let stored = stored.as_ref();
        let subject = match self.subject(purpose, e164, context) {
            Ok(s) => s,
            Err(e) => {
                let mut out = Out::new();
                out.u8(0);
                out.u8(0);
                out.u8(0);
                out.u8(1);
                error(&mut out, &e);
                out.u8(0);
                return out.0;
            }
        };
        let channel = CHANNELS.get(usize::from(channel)).copied();
        let seed: [u8; 32] = random
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 32]);
        let mut rng = Drawn { seed, counter: 0 };
        let e = &self.engine;
        let mut out = Out::new();
        out.u8(0);
        let (write, outcome, events) = match op {
            START | RESEND => {
                if random.len() < 32 {
                    return own("randomness_unavailable");
                }
                let step = if op == START {
                    e.start(
                        stored,
                        &subject,
                        channel.unwrap_or(Channel::Sms),
                        now,
                        &mut rng,
                    )
                } else {
                    e.resend(stored, &subject, channel, now, &mut rng)
                };
                (step.write, step.outcome.map(Value::Sent), step.events)
            }
            VERIFY => {
                let step = e.verify(stored, &subject, input, now);
                (step.write, step.outcome.map(Value::Validated), step.events)
            }
            CANCEL => {
                let step = e.cancel(stored, &subject, now);
                (
                    step.write,
                    step.outcome.map(|()| Value::Nothing),
                    step.events,
                )
            }
            STATUS => (
                None,
                e.status(stored, now).map(Value::Status),
                otpflow::Events::new(),
            ),
            _ => return own("invalid_argument"),
        };
        self.write(&mut out, write.as_ref());
        let tag = match (&outcome, &write) {
            (Ok(Value::Sent(_)), Some(r)) => e.spend_tag(r).is_some(),
            _ => false,
        };
        out.u8(u8::from(tag));
        match &outcome {
            Ok(value) => {
                out.u8(0);
                value.write(&mut out);
            }
            Err(err) => {
                out.u8(1);
                error(&mut out, err);
            }
        }
        out.u8(u8::try_from(events.len()).unwrap_or(u8::MAX));
        for event in events.iter().take(255) {
            write_event(&mut out, event);
        }
        out.0
    }

    /// The subject's store key (`purpose:e164`), then those of the budget
    /// keys a send spends from, in spending order: `[0, subject key: s,
    /// count: u8, (key: s, kind: s)…]`, `[1, error…]` for a purpose the
    /// core refuses, or `[2, code]` for budgets it refuses.
    pub fn keys(&self, purpose: &str, e164: &str, budgets: &[u8]) -> Vec<u8> {
        let subject = match self.subject(purpose, e164, &[]) {
            Ok(s) => s,
            Err(e) => {
                let mut out = Out::new();
                out.u8(1);
                error(&mut out, &e);
                return out.0;
            }
        };
        let Some(budgets) = self::budgets(budgets) else {
            return own("invalid_argument");
        };
        let keys = self.engine.budget_keys(&subject, &budgets);
        let mut out = Out::new();
        out.u8(0);
        out.s(&subject.store_key());
        out.u8(u8::try_from(keys.len()).unwrap_or(u8::MAX));
        for key in keys.iter().take(255) {
            out.s(&key.store_key());
            out.s(key.kind().as_str());
        }
        out.0
    }

    /// Checks every budget key's record (`records`, in the order of
    /// `budget_store_keys`): `[0, refused: u8, error…?]`, the refusal that
    /// allows a send last (the core's `allows_last`), or `[2, code]`.
    pub fn check_budgets(
        &self,
        purpose: &str,
        e164: &str,
        budgets: &[u8],
        records: &[u8],
        now: f64,
    ) -> Vec<u8> {
        let keys = match self.budget_keys(purpose, e164, budgets) {
            Ok(k) => k,
            Err(refusal) => return refusal,
        };
        let (Some(now), Some(records)) = (instant(now), self::records(records)) else {
            return own("store_unavailable");
        };
        let mut worst = None;
        for (key, record) in keys.iter().zip(records.iter()) {
            if let Err(e) = self.engine.check_budget(record.as_ref(), key, now) {
                worst = Some(allows_last(worst, e));
            }
        }
        let mut out = Out::new();
        out.u8(0);
        match worst {
            Some(e) => {
                out.u8(1);
                error(&mut out, &e);
            }
            None => out.u8(0),
        }
        out.0
    }

    /// Spends (`refund` false) or gives back (`refund` true) key `index`'s
    /// share of the send the subject's record `sent` made: the bucket's
    /// write (see `bucket`), or `[2, code]`.
    #[allow(clippy::too_many_arguments)]
    pub fn budget_step(
        &self,
        purpose: &str,
        e164: &str,
        budgets: &[u8],
        index: u8,
        refund: bool,
        record: &[u8],
        sent: &[u8],
        now: f64,
    ) -> Vec<u8> {
        let keys = match self.budget_keys(purpose, e164, budgets) {
            Ok(k) => k,
            Err(refusal) => return refusal,
        };
        let Some(key) = keys.get(usize::from(index)) else {
            return own("invalid_argument");
        };
        let (Some(now), Ok(record), Ok(Some(sent))) =
            (instant(now), self::record(record), self::record(sent))
        else {
            return own("store_unavailable");
        };
        let Some(tag) = self.engine.spend_tag(&sent) else {
            return own("invalid_argument");
        };
        if refund {
            let step = self.engine.refund_budget(record.as_ref(), key, tag, now);
            self.bucket(step.write, step.outcome.err())
        } else {
            let step = self.engine.spend_budget(record.as_ref(), key, tag, now);
            self.bucket(step.write, step.outcome.err())
        }
    }
}

/// What a step answers.
enum Value {
    Sent(Sent),
    Validated(Validated),
    Status(Status),
    Nothing,
}

impl Value {
    fn write(&self, out: &mut Out) {
        match self {
            Self::Sent(s) => {
                out.s(s.code.as_str());
                out.s(s.channel.as_str());
                out.u32(s.generation);
                out.time(s.expires_at);
                out.u8(u8::from(s.resent) | u8::from(s.new_code) << 1);
                out.u32(s.sends_left);
                out.time(s.resend_at);
            }
            Self::Validated(v) => {
                out.u32(v.generation);
                out.s(v.channel.as_str());
                out.time(v.validated_at);
            }
            Self::Status(s) => {
                out.s(s.state.as_str());
                out.u32(s.generation);
                out.s(s.channel.as_str());
                out.time(s.expires_at);
                out.u32(s.attempts_left);
                out.u32(s.sends_left);
                out.f64(s.resend_after.map_or(f64::NAN, |d| d.as_seconds_f64()));
                out.opt_time(s.locked_until);
            }
            Self::Nothing => {}
        }
    }
}

/// An event: `[type: u8, purpose: s, phone: s, generation: u32, fields…]`.
fn write_event(out: &mut Out, event: &Event) {
    let head = |out: &mut Out, kind: u8, subject: &SubjectKey, generation: u32| {
        out.u8(kind);
        out.s(subject.purpose().as_str());
        out.s(subject.phone().e164());
        out.u32(generation);
    };
    match event {
        Event::Sent {
            subject,
            code,
            channel,
            generation,
            expires_at,
            send,
            suppressed,
        }
        | Event::Resent {
            subject,
            code,
            channel,
            generation,
            expires_at,
            send,
            suppressed,
            ..
        } => {
            let new_code = match event {
                Event::Resent { new_code, .. } => Some(*new_code),
                _ => None,
            };
            head(
                out,
                if new_code.is_some() { 1 } else { 0 },
                subject,
                *generation,
            );
            out.s(code.as_str());
            out.s(channel.as_str());
            out.time(*expires_at);
            out.u32(send.generation());
            out.u32(send.send());
            out.u8(u8::from(*suppressed) | u8::from(new_code.unwrap_or(false)) << 1);
        }
        Event::CheckFailed {
            subject,
            generation,
            attempts_left,
        } => {
            head(out, 2, subject, *generation);
            out.u32(*attempts_left);
        }
        Event::Validated {
            subject,
            generation,
        } => head(out, 3, subject, *generation),
        Event::Expired {
            subject,
            generation,
        } => head(out, 4, subject, *generation),
        Event::Locked {
            subject,
            generation,
            until,
        } => {
            head(out, 5, subject, *generation);
            out.opt_time(*until);
        }
        Event::Canceled {
            subject,
            generation,
        } => head(out, 6, subject, *generation),
        Event::BudgetRefused {
            subject,
            budget,
            retry_after,
        } => {
            head(out, 7, subject, 0);
            out.s(budget.as_str());
            out.f64(ceil_secs(*retry_after));
        }
        // An event this layer does not name (a newer core's): its kind
        // only, so the JavaScript layer reads on.
        _ => {
            out.u8(255);
            out.s("");
            out.s("");
            out.u32(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key ring and an engine under the default policy.
    fn core() -> Core {
        let keys = Keys::create(1, vec![42; 32]).expect("a 32-byte key");
        Core::create(&[], &keys).expect("the default policy")
    }

    /// Budgets naming an address (`ip`), the range, and one label.
    fn budget_bytes(ip: &[u8]) -> Vec<u8> {
        let mut b = vec![1, u8::try_from(ip.len()).expect("4 or 16")];
        b.extend_from_slice(ip);
        b.extend_from_slice(&[1, 3, 0, b'a', b'p', b'i']);
        b
    }

    #[test]
    fn hostile_bytes_are_refused_never_a_panic() {
        let core = core();
        let valid_policy = [0u8, 0, 0, 0, 0, 0, 0, 24, 64, 13, 2, 0, b'4', b'4'];
        let valid_budgets = budget_bytes(&[203, 0, 113, 7]);
        let valid_context = [1u8, 1, 0, b'a', 1, 0, b'b'];
        // Every truncation of valid inputs, and bytes of every value.
        for input in [&valid_policy[..], &valid_budgets, &valid_context] {
            for n in 0..=input.len() {
                let cut = &input[..n];
                let _ = policy_info(cut);
                let _ = phone("07401 101801", false, "", cut);
                let _ = core.keys("login", "+447401101801", cut);
                let _ = core.step(4, "login", "+447401101801", cut, cut, 0, "", 1.79e12, cut);
            }
        }
        for byte in 0..=255u8 {
            let noise = [byte; 40];
            assert_eq!(policy_info(&noise[..1])[0], 2, "a lone tag is refused");
            let _ = phone("07401 101801", true, "+44", &noise);
            let _ = core.keys("login", "+447401101801", &noise);
            let _ = core.check_budgets("login", "+447401101801", &noise, &noise, 1.79e12);
            let _ = core.budget_step(
                "login",
                "+447401101801",
                &noise,
                byte,
                true,
                &noise,
                &noise,
                0.0,
            );
            for op in [0, 1, 2, 3, 4, byte] {
                let _ = core.step(
                    op,
                    "login",
                    "+447401101801",
                    &noise,
                    &noise,
                    byte,
                    "1",
                    1.79e12,
                    &noise,
                );
            }
        }
        // Clocks outside years 1–9999, NaN and infinities.
        for now in [f64::NAN, f64::INFINITY, -f64::INFINITY, 1e16, -1e16] {
            assert_eq!(
                core.step(4, "login", "+447401101801", &[], &[], 0, "", now, &[])[..2],
                [2, 13]
            );
        }
    }

    #[test]
    fn budgets_decode_both_address_families_and_labels() {
        let core = core();
        for ip in [
            &[203u8, 0, 113, 7][..],
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            let answer = core.keys("login", "+447401101801", &budget_bytes(ip));
            assert_eq!(answer[0], 0, "{ip:?}");
            // The subject's key, then the address and range keys (the
            // default policy counts those two kinds; labels it does not).
            let mut r = In(&answer[1..]);
            let _ = r.take(1 + "login:+447401101801".len());
            assert_eq!(r.u8(), Some(2));
        }
        // A label the core refuses is refused as the budgets argument.
        let mut bad = vec![0, 0, 1, 9, 0];
        bad.extend_from_slice(b"Session 7");
        assert_eq!(core.keys("login", "+447401101801", &bad)[0], 2);
        // An address of another length is refused.
        assert_eq!(
            core.keys("login", "+447401101801", &[0, 5, 1, 2, 3, 4, 5, 0])[0],
            2
        );
    }

    #[test]
    fn a_subject_number_is_read_again_whatever_its_kind() {
        // A landline and a non-geographic number, admitted by a policy
        // that asks for them, are subjects like any mobile.
        for e164 in ["+442079460000", "+80012345678", "+447401101801"] {
            assert!(number(e164).is_ok(), "{e164}");
        }
        assert!(
            number("07401 101801").is_err(),
            "a subject's number is E.164"
        );
    }
}
