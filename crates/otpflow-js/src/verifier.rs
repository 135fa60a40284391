//! [`Verifier`]: the core's pure [`Engine`] driven over a JavaScript store
//! object: read the clock once, load, transition, compare-and-swap, re-run
//! the transition on a conflict, and only then hand out events.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use otpflow::code::MAX_CODE_INPUT_LEN;
use otpflow::rand_core::UnwrapErr;
use otpflow::{
    Channel, Engine, Error, Event, Purpose, Record, Sent, Status, Step, SubjectKey, Validated,
};
use time::OffsetDateTime;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::future_to_promise;

use crate::error::{Failure, set};
use crate::instant::{date, instant_from_js, ms_f64, secs_f64, short_string, whole_u32};
use crate::keys::KeyRing;
use crate::phone::PhoneNumber;
use crate::policy::Policy;
use crate::store::JsStore;

/// Compare-and-swap retries after a conflict before `contention`, by default.
const DEFAULT_MAX_RETRIES: u32 = 8;
/// The most retries an option may ask for.
const MAX_RETRIES: u32 = 100;

#[wasm_bindgen(typescript_custom_section)]
const VERIFIER_TS: &'static str = r#"
/** How the code reaches the user; otpflow sends nothing itself. */
export type Channel = "sms" | "whatsapp" | "voice" | "none";

/** Options of a `Verifier`. */
export interface VerifierOptions {
  /** The time, as milliseconds since the epoch or a Date (default `Date.now`). */
  clock?: () => number | Date;
  /** Called with each event once the write that made it is stored. */
  onEvent?: (event: OtpEvent) => void;
  /** Compare-and-swap retries after a conflict before `contention` (default 8, at most 100). */
  maxRetries?: number;
}

/** A code went out: what `start` and `resend` resolve to. */
export interface Sent {
  /** The code to deliver. */
  code: string;
  channel: Channel;
  /** The validation's number for this subject. */
  generation: number;
  /** When the code stops working. */
  expiresAt: Date;
  /** True when this resent a live validation (also a `start` that found one). */
  resent: boolean;
  /** True when the code differs from the one sent before. */
  newCode: boolean;
  /** Sends left for this validation. */
  sendsLeft: number;
  /** The earliest a resend is accepted. */
  resendAt: Date;
}

/** The right code: what `verify` resolves to. */
export interface Validated {
  generation: number;
  channel: Channel;
  validatedAt: Date;
}

/** A validation as of now: what `status` resolves to. */
export interface Status {
  state: "sent" | "validated" | "expired" | "locked" | "canceled";
  generation: number;
  channel: Channel;
  expiresAt: Date;
  attemptsLeft: number;
  sendsLeft: number;
  /** Seconds until a resend is accepted, or null. */
  resendAfter: number | null;
  /** The end of the subject's lockout, or null. */
  lockedUntil: Date | null;
}

/** What happened, for message senders, webhooks and audit logs. */
export type OtpEvent = { purpose: string; phone: string; generation: number } & (
  | { type: "sent"; code: string; channel: Channel; expiresAt: Date }
  | { type: "resent"; code: string; channel: Channel; expiresAt: Date; newCode: boolean }
  | { type: "checkFailed"; attemptsLeft: number }
  | { type: "validated" }
  | { type: "expired" }
  | { type: "locked"; until: Date | null }
  | { type: "canceled" }
);
"#;

/// Runs validations over a store object. Each call reads the clock once,
/// loads the subject's record, runs the core's pure transition,
/// compare-and-swaps the result (re-running the transition when another
/// call wrote first) and only then calls `onEvent`. Every method returns a
/// Promise that rejects with an `OtpflowError` (see the `error` module).
///
/// ```js
/// const verifier = new Verifier(new MemoryStore(), KeyRing.generate(1), new Policy(), {
///   onEvent: (e) => { if (e.type === "sent") sms.send(e.phone, e.code); },
/// });
/// const phone = PhoneNumber.parse("07401 101801");
/// await verifier.start("login", phone);
/// await verifier.verify("login", phone, "123456"); // rejects: code_mismatch
/// ```
///
/// A subject is a purpose (`"login"`, `"onboarding"` or a label of
/// `a-z0-9-_.`, up to 32 bytes) and a phone number; each has its own record
/// and budgets, stored under the key `purpose:e164`.
#[wasm_bindgen]
pub struct Verifier {
    inner: Rc<Inner>,
}

struct Inner {
    /// Replaced whole by `setKeys`; a call in flight keeps the engine it
    /// started with.
    engine: RefCell<Rc<Engine>>,
    store: JsStore,
    clock: Option<Function>,
    on_event: Option<Function>,
    max_retries: u32,
}

#[wasm_bindgen]
impl Verifier {
    /// A verifier over `store` (see the `Store` interface), deriving codes
    /// with `keys` (copied: rotate with `setKeys`) under `policy`
    /// (`new Policy()` for the defaults).
    ///
    /// # Errors
    /// `invalid_argument` for a store without the two methods, or options
    /// of the wrong types.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "Store")] store: &JsValue,
        keys: &KeyRing,
        policy: &Policy,
        #[wasm_bindgen(unchecked_param_type = "VerifierOptions")] options: Option<JsValue>,
    ) -> Result<Verifier, JsValue> {
        let store = JsStore::new(store)?;
        let policy = policy.inner().clone();
        let engine = Engine::new(policy, keys.inner().clone());
        let options = options.filter(|o| !o.is_undefined() && !o.is_null());
        let option = |name: &str| {
            options
                .as_ref()
                .and_then(|o| Reflect::get(o, &JsValue::from_str(name)).ok())
                .filter(|v| !v.is_undefined())
        };
        if options.as_ref().is_some_and(|o| !o.is_object()) {
            return Err(Failure::argument("options", "an object").into());
        }
        let function = |name: &'static str| -> Result<Option<Function>, Failure> {
            option(name)
                .map(|f| {
                    f.dyn_into::<Function>()
                        .map_err(|_| Failure::argument(name, "a function"))
                })
                .transpose()
        };
        let max_retries = match option("maxRetries") {
            None => DEFAULT_MAX_RETRIES,
            Some(n) => n
                .as_f64()
                .and_then(whole_u32)
                .filter(|n| *n <= MAX_RETRIES)
                .ok_or_else(|| Failure::argument("maxRetries", "a whole number from 0 to 100"))?,
        };
        Ok(Self {
            inner: Rc::new(Inner {
                engine: RefCell::new(Rc::new(engine)),
                store,
                clock: function("clock")?,
                on_event: function("onEvent")?,
                max_retries,
            }),
        })
    }

    /// Replaces the key ring (after a rotation); calls in flight finish with
    /// the keys they started with.
    #[wasm_bindgen(js_name = setKeys)]
    pub fn set_keys(&self, keys: &KeyRing) {
        let mut engine = self.inner.engine.borrow_mut();
        let policy = engine.policy().clone();
        *engine = Rc::new(Engine::new(policy, keys.inner().clone()));
    }

    /// The policy.
    #[wasm_bindgen(getter)]
    pub fn policy(&self) -> Policy {
        Policy::from_inner(self.inner.engine.borrow().policy().clone())
    }

    /// Starts a validation and resolves to the code to deliver (also in
    /// the `sent` event); a live validation is resent instead, over
    /// `channel` (default `"sms"`).
    ///
    /// Rejects with `subject_locked`, `send_limit_reached`,
    /// `resend_too_soon` (acting as a resend), `invalid_purpose`,
    /// `invalid_argument`, `store_unavailable`, `contention`,
    /// `randomness_unavailable`, `invalid_clock`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sent>")]
    pub fn start(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] purpose: &JsValue,
        phone: &PhoneNumber,
        #[wasm_bindgen(unchecked_param_type = "Channel")] channel: Option<JsValue>,
    ) -> Promise {
        self.call(purpose, phone, || {
            let channel = parse_channel(channel.as_ref())?.unwrap_or(Channel::Sms);
            check_randomness()?;
            Ok(Op::Start(channel))
        })
    }

    /// Resends the live validation's code (a new one under the `new_code`
    /// resend mode), over `channel` if given, else the channel used before.
    ///
    /// Rejects with `validation_not_found`, `resend_too_soon`,
    /// `send_limit_reached`, `subject_locked`, the terminal states' codes
    /// (`validation_expired`, `already_validated`, `max_attempts_reached`,
    /// `validation_canceled`), and as `start`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Sent>")]
    pub fn resend(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] purpose: &JsValue,
        phone: &PhoneNumber,
        #[wasm_bindgen(unchecked_param_type = "Channel")] channel: Option<JsValue>,
    ) -> Promise {
        self.call(purpose, phone, || {
            let channel = parse_channel(channel.as_ref())?;
            check_randomness()?;
            Ok(Op::Resend(channel))
        })
    }

    /// Checks the code the user typed (spaces and dashes ignored).
    ///
    /// Rejects with `malformed_code` (no attempt spent), `code_mismatch`
    /// (with `attemptsLeft`), `max_attempts_reached`, `subject_locked`,
    /// `validation_not_found`, `validation_expired`, `already_validated`,
    /// `validation_canceled`, `store_unavailable`, `contention`. Answer
    /// outsiders with the error's `public` form: all of these but the
    /// lockout are `invalid_code` there.
    #[wasm_bindgen(unchecked_return_type = "Promise<Validated>")]
    pub fn verify(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] purpose: &JsValue,
        phone: &PhoneNumber,
        #[wasm_bindgen(unchecked_param_type = "string")] code: &JsValue,
    ) -> Promise {
        let max = u32::try_from(MAX_CODE_INPUT_LEN).unwrap_or(u32::MAX);
        self.call(purpose, phone, || {
            // A code longer than the core reads is malformed, whatever it holds.
            let code = short_string(code, "code", max)?.unwrap_or_else(|| "x".into());
            Ok(Op::Verify(code))
        })
    }

    /// Cancels the live validation; canceling a canceled one does nothing.
    /// Resolves to `undefined`.
    ///
    /// Rejects with `validation_not_found`, the terminal states' codes,
    /// `store_unavailable`, `contention`.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn cancel(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] purpose: &JsValue,
        phone: &PhoneNumber,
    ) -> Promise {
        self.call(purpose, phone, || Ok(Op::Cancel))
    }

    /// The validation's state, budgets and timers as of now. Writes nothing.
    ///
    /// Rejects with `validation_not_found`, `store_unavailable`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Status>")]
    pub fn status(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] purpose: &JsValue,
        phone: &PhoneNumber,
    ) -> Promise {
        self.call(purpose, phone, || Ok(Op::Status))
    }
}

/// One call, its arguments checked.
enum Op {
    Start(Channel),
    Resend(Option<Channel>),
    Verify(String),
    Cancel,
    /// Reads only: its step never writes.
    Status,
}

impl Op {
    /// The call's pure transition, its outcome as the JavaScript value the
    /// promise resolves to.
    fn step(
        &self,
        engine: &Engine,
        record: Option<&Record>,
        subject: &SubjectKey,
        now: OffsetDateTime,
    ) -> Step<JsValue> {
        let rng = &mut UnwrapErr(getrandom::SysRng);
        match self {
            Self::Start(channel) => {
                to_js(engine.start(record, subject, *channel, now, rng), sent_js)
            }
            Self::Resend(channel) => {
                to_js(engine.resend(record, subject, *channel, now, rng), sent_js)
            }
            Self::Verify(code) => to_js(engine.verify(record, subject, code, now), validated_js),
            Self::Cancel => to_js(engine.cancel(record, subject, now), |()| JsValue::UNDEFINED),
            Self::Status => Step {
                write: None,
                outcome: engine.status(record, now).map(|s| status_js(&s)),
                events: Vec::new(),
            },
        }
    }
}

/// A step with its outcome turned into JavaScript.
fn to_js<T>(step: Step<T>, js: impl FnOnce(&T) -> JsValue) -> Step<JsValue> {
    Step {
        write: step.write,
        outcome: step.outcome.map(|t| js(&t)),
        events: step.events,
    }
}

impl Verifier {
    /// Runs the call `op` builds as a Promise (one future type for every
    /// method: each would be its own state machine in the module), or
    /// rejects with what went wrong checking its arguments.
    fn call(
        &self,
        purpose: &JsValue,
        phone: &PhoneNumber,
        op: impl FnOnce() -> Result<Op, Failure>,
    ) -> Promise {
        match subject(purpose, phone).and_then(|s| Ok((s, op()?))) {
            Ok((subject, op)) => future_to_promise(run(Rc::clone(&self.inner), subject, op)),
            Err(failure) => Promise::reject(&failure.into_js()),
        }
    }
}

impl Inner {
    fn engine(&self) -> Rc<Engine> {
        Rc::clone(&self.engine.borrow())
    }

    /// The time, from the injected clock or `Date.now()`.
    fn now(&self) -> Result<OffsetDateTime, Failure> {
        let value = match &self.clock {
            None => JsValue::from_f64(js_sys::Date::now()),
            Some(clock) => clock
                .call0(&JsValue::UNDEFINED)
                .map_err(|_| Failure::Clock)?,
        };
        instant_from_js(&value)
    }

    /// Hands each event to `onEvent`, all of them even if one call throws;
    /// the first exception is then rethrown (the write stands).
    fn emit(&self, events: &[Event]) -> Result<(), JsValue> {
        let Some(listener) = &self.on_event else {
            return Ok(());
        };
        let mut first_error = None;
        for event in events {
            if let Err(e) = listener.call1(&JsValue::UNDEFINED, &event_js(event)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The compare-and-swap loop: the clock read once, then load → transition
/// → compare-and-swap, the transition re-run on a conflict; events only
/// after the write is stored.
async fn run(inner: Rc<Inner>, subject: SubjectKey, op: Op) -> Result<JsValue, JsValue> {
    let now = inner.now()?;
    let engine = inner.engine();
    let key = store_key(&subject);
    for _ in 0..=inner.max_retries {
        let loaded = inner.store.load(&key).await?;
        let step = op.step(
            &engine,
            loaded.as_ref().map(|(record, _)| record),
            &subject,
            now,
        );
        if let Some(new) = &step.write {
            let expected = loaded.map_or(JsValue::NULL, |(_, version)| version);
            let expires_at = ms_f64(new.expires_at(engine.policy()));
            if !inner
                .store
                .compare_and_swap(&key, &expected, new, expires_at)
                .await?
            {
                continue;
            }
        }
        inner.emit(&step.events)?;
        return step.outcome.map_err(|e| Failure::from(e).into_js());
    }
    Err(Failure::from(Error::Contention).into_js())
}

/// Where a subject's record lives in the store: `purpose:e164`. Purposes
/// never hold `:`, so keys never collide.
fn store_key(subject: &SubjectKey) -> String {
    subject.store_key()
}

/// The subject from a purpose label and a number.
fn subject(purpose: &JsValue, phone: &PhoneNumber) -> Result<SubjectKey, Failure> {
    let max = u32::try_from(otpflow::subject::MAX_LABEL_LEN).unwrap_or(u32::MAX);
    let label = short_string(purpose, "purpose", max)?;
    // A label longer than the core allows is refused like any bad label.
    let purpose = Purpose::custom(label.as_deref().unwrap_or("")).map_err(Error::from)?;
    Ok(SubjectKey::new(purpose, phone.inner()))
}

fn parse_channel(value: Option<&JsValue>) -> Result<Option<Channel>, Failure> {
    let Some(value) = value.filter(|v| !v.is_undefined() && !v.is_null()) else {
        return Ok(None);
    };
    let channel = match value.as_string().as_deref() {
        Some("sms") => Channel::Sms,
        Some("whatsapp") => Channel::Whatsapp,
        Some("voice") => Channel::Voice,
        Some("none") => Channel::None,
        _ => {
            return Err(Failure::argument(
                "channel",
                "\"sms\", \"whatsapp\", \"voice\" or \"none\"",
            ));
        }
    };
    Ok(Some(channel))
}

/// `crypto.getRandomValues` works: checked before a transition that draws
/// a nonce, so a missing source is a typed refusal, never a trap.
fn check_randomness() -> Result<(), Failure> {
    let mut probe = [0u8; 16];
    getrandom::fill(&mut probe).map_err(|_| Failure::Random)
}

fn object() -> JsValue {
    js_sys::Object::new().into()
}

fn sent_js(s: &Sent) -> JsValue {
    let o = object();
    set(&o, "code", s.code.as_str());
    set(&o, "channel", s.channel.as_str());
    set(&o, "generation", s.generation);
    set(&o, "expiresAt", date(s.expires_at));
    set(&o, "resent", s.resent);
    set(&o, "newCode", s.new_code);
    set(&o, "sendsLeft", s.sends_left);
    set(&o, "resendAt", date(s.resend_at));
    o
}

fn validated_js(v: &Validated) -> JsValue {
    let o = object();
    set(&o, "generation", v.generation);
    set(&o, "channel", v.channel.as_str());
    set(&o, "validatedAt", date(v.validated_at));
    o
}

fn status_js(s: &Status) -> JsValue {
    let o = object();
    set(&o, "state", s.state.as_str());
    set(&o, "generation", s.generation);
    set(&o, "channel", s.channel.as_str());
    set(&o, "expiresAt", date(s.expires_at));
    set(&o, "attemptsLeft", s.attempts_left);
    set(&o, "sendsLeft", s.sends_left);
    let resend_after = s
        .resend_after
        .map_or(JsValue::NULL, |d| JsValue::from_f64(secs_f64(d)));
    set(&o, "resendAfter", resend_after);
    set(
        &o,
        "lockedUntil",
        s.locked_until.map_or(JsValue::NULL, date),
    );
    o
}

fn event_js(event: &Event) -> JsValue {
    let o = object();
    let subject_fields = |subject: &SubjectKey, generation: u32| {
        set(&o, "purpose", subject.purpose().as_str());
        set(&o, "phone", subject.phone().e164());
        set(&o, "generation", generation);
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
        } => {
            set(&o, "type", "sent");
            subject_fields(subject, *generation);
            set(&o, "code", code.as_str());
            set(&o, "channel", channel.as_str());
            set(&o, "expiresAt", date(*expires_at));
            set(&o, "send", send.to_string().as_str());
            set(&o, "suppressed", *suppressed);
        }
        Event::Resent {
            subject,
            code,
            channel,
            generation,
            expires_at,
            new_code,
            send,
            suppressed,
        } => {
            set(&o, "type", "resent");
            subject_fields(subject, *generation);
            set(&o, "code", code.as_str());
            set(&o, "channel", channel.as_str());
            set(&o, "expiresAt", date(*expires_at));
            set(&o, "newCode", *new_code);
            set(&o, "send", send.to_string().as_str());
            set(&o, "suppressed", *suppressed);
        }
        Event::CheckFailed {
            subject,
            generation,
            attempts_left,
        } => {
            set(&o, "type", "checkFailed");
            subject_fields(subject, *generation);
            set(&o, "attemptsLeft", *attempts_left);
        }
        Event::Validated {
            subject,
            generation,
        } => {
            set(&o, "type", "validated");
            subject_fields(subject, *generation);
        }
        Event::Expired {
            subject,
            generation,
        } => {
            set(&o, "type", "expired");
            subject_fields(subject, *generation);
        }
        Event::Locked {
            subject,
            generation,
            until,
        } => {
            set(&o, "type", "locked");
            subject_fields(subject, *generation);
            set(&o, "until", until.map_or(JsValue::NULL, date));
        }
        Event::Canceled {
            subject,
            generation,
        } => {
            set(&o, "type", "canceled");
            subject_fields(subject, *generation);
        }
        // An event a newer core adds: its kind is unknown here.
        _ => set(&o, "type", "other"),
    }
    o
}
