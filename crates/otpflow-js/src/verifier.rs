//! [`Verifier`]: the core's pure [`Engine`] driven over a JavaScript store
//! object: read the clock once, load, transition, compare-and-swap, re-run
//! the transition on a conflict, and only then hand out events.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use otpflow::budget_key::{BudgetKey, BudgetLabel, SpendTag, allows_last};
use otpflow::code::MAX_CODE_INPUT_LEN;
use otpflow::rand_core::UnwrapErr;
use otpflow::{
    Budgets, Channel, Context, Engine, Error, Event, Purpose, Record, Sent, Status, Step,
    SubjectKey, Validated,
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

/**
 * The budgets a send spends from besides the subject's own, against SMS
 * pumping (see `Verifier.startWithin`). A kind the policy gives no rate
 * (`PolicyBuilder.budgetRate`) is not counted.
 */
export interface Budgets {
  /** The client's IP address (IPv4, or IPv6 counted by its /64). */
  address?: string;
  /** The number's range: its first `rangePrefix` E.164 digits. */
  range?: boolean;
  /** The number's country (calling code and region). */
  country?: boolean;
  /** The one global key (the service's ceiling). */
  global?: boolean;
  /** Labels of the caller's (a session, a device, an API client): 1-32 bytes of `a-z0-9-_.`. */
  labels?: string[];
}

/**
 * What a code approves (a payment's amount and payee, a session id), as
 * named string fields: a code sent under a context validates only when
 * `verify` names the same one; any other context, or none, is a wrong code
 * (`code_mismatch`). Fields are taken in the order of their names, so
 * `{ amount: "12.50 EUR", payee: "ACME Ltd" }` is otpflow's
 * `Context::transaction("12.50 EUR", "ACME Ltd")` and `{ session: id }` its
 * `Context::session(id)`. Pass the same context to every call of one
 * validation.
 */
export type Context = Record<string, string>;

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
  | { type: "budgetRefused"; budget: "address" | "range" | "country" | "global" | "label"; retryAfter: number }
);
"#;

#[wasm_bindgen]
extern "C" {
    /// A `Channel` argument (checked by `parse_channel`): an imported type
    /// so the declaration keeps the argument optional.
    #[wasm_bindgen(typescript_type = "Channel")]
    pub type ChannelArg;

    /// A `Context` argument (checked by `parse_context`).
    #[wasm_bindgen(typescript_type = "Context")]
    pub type ContextArg;
}

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
    /// With `context`, the code validates only when `verify` names the
    /// same context (see the `Context` type).
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
        channel: Option<ChannelArg>,
        context: Option<ContextArg>,
    ) -> Promise {
        self.start_within(&JsValue::UNDEFINED, purpose, phone, channel, context)
    }

    /// `start`, spending also from the budget keys `budgets` names (see the
    /// `Budgets` interface and `PolicyBuilder.budgetRate`): every key is
    /// checked before any is spent from, and what was spent is given back
    /// when the send does not happen after all.
    ///
    /// ```js
    /// await verifier.startWithin({ address: req.ip, range: true }, "login", phone);
    /// ```
    ///
    /// Rejects as `start`, and with `budget_exhausted` (`budget` names the
    /// kind that allows a send last, `retryAfter` when it does; a
    /// `budgetRefused` event too) and `destination_denied` (a number the
    /// policy's deny rules match).
    #[wasm_bindgen(js_name = startWithin, unchecked_return_type = "Promise<Sent>")]
    pub fn start_within(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Budgets")] budgets: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] purpose: &JsValue,
        phone: &PhoneNumber,
        channel: Option<ChannelArg>,
        context: Option<ContextArg>,
    ) -> Promise {
        self.send(budgets, purpose, phone, channel, context, false)
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
        channel: Option<ChannelArg>,
        context: Option<ContextArg>,
    ) -> Promise {
        self.resend_within(&JsValue::UNDEFINED, purpose, phone, channel, context)
    }

    /// `resend`, spending also from the budget keys `budgets` names, as
    /// `startWithin`.
    ///
    /// Rejects as `resend`, and with `budget_exhausted` and
    /// `destination_denied`.
    #[wasm_bindgen(js_name = resendWithin, unchecked_return_type = "Promise<Sent>")]
    pub fn resend_within(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Budgets")] budgets: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] purpose: &JsValue,
        phone: &PhoneNumber,
        channel: Option<ChannelArg>,
        context: Option<ContextArg>,
    ) -> Promise {
        self.send(budgets, purpose, phone, channel, context, true)
    }

    /// Checks the code the user typed (spaces and dashes ignored), under
    /// `context` when the code was sent under one.
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
        context: Option<ContextArg>,
    ) -> Promise {
        let max = u32::try_from(MAX_CODE_INPUT_LEN).unwrap_or(u32::MAX);
        self.call(
            purpose,
            phone,
            context.map(JsValue::from).as_ref(),
            None,
            &mut || {
                // A code longer than the core reads is malformed, whatever it holds.
                let code = short_string(code, "code", max)?.unwrap_or_else(|| "x".into());
                Ok(Op::Verify(code))
            },
        )
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
        self.call(purpose, phone, None, None, &mut || Ok(Op::Cancel))
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
        self.call(purpose, phone, None, None, &mut || Ok(Op::Status))
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
    /// `startWithin` (`resend` false) and `resendWithin`: one body, so the
    /// module holds one copy of it.
    fn send(
        &self,
        budgets: &JsValue,
        purpose: &JsValue,
        phone: &PhoneNumber,
        channel: Option<ChannelArg>,
        context: Option<ContextArg>,
        resend: bool,
    ) -> Promise {
        let context = context.map(JsValue::from);
        self.call(purpose, phone, context.as_ref(), Some(budgets), &mut || {
            let channel = parse_channel(channel.as_deref())?;
            check_randomness()?;
            Ok(if resend {
                Op::Resend(channel)
            } else {
                Op::Start(channel.unwrap_or(Channel::Sms))
            })
        })
    }

    /// Runs the call `op` builds as a Promise (one future type for every
    /// method: each would be its own state machine in the module), or
    /// rejects with what went wrong checking its arguments. `op` is a `dyn`
    /// closure so that the module holds one copy of this body, not one per
    /// method.
    #[inline(never)]
    fn call(
        &self,
        purpose: &JsValue,
        phone: &PhoneNumber,
        context: Option<&JsValue>,
        budgets: Option<&JsValue>,
        op: &mut dyn FnMut() -> Result<Op, Failure>,
    ) -> Promise {
        let checked = (|| {
            let mut subject = subject(purpose, phone)?;
            if let Some(context) = parse_context(context)? {
                subject = subject.bound_to(context);
            }
            let budgets = budgets.map(parse_budgets).transpose()?.unwrap_or_default();
            Ok((subject, budgets, op()?))
        })();
        match checked {
            Ok((subject, budgets, op)) => {
                future_to_promise(run(Rc::clone(&self.inner), subject, budgets, op))
            }
            Err(failure) => Promise::reject(&Failure::into_js(failure)),
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
/// after the write is stored. A send that names budget keys checks them
/// all, spends from each, then writes the subject's record; what was spent
/// is given back when the write does not happen (the core's
/// `AsyncVerifier::start_within`, over the JavaScript store).
async fn run(
    inner: Rc<Inner>,
    subject: SubjectKey,
    budgets: Budgets,
    op: Op,
) -> Result<JsValue, JsValue> {
    let now = inner.now()?;
    let engine = inner.engine();
    let keys = engine.budget_keys(&subject, &budgets);
    let key = subject.store_key();
    for _ in 0..=inner.max_retries {
        let loaded = inner.store.load(&key).await?;
        let step = op.step(
            &engine,
            loaded.as_ref().map(|(record, _)| record),
            &subject,
            now,
        );
        let expected = loaded.map_or(JsValue::NULL, |(_, version)| version);
        let Some(new) = &step.write else {
            inner.emit(&step.events)?;
            return step.outcome.map_err(|e| Failure::from(e).into_js());
        };
        // A send that went through spends from the budget keys first.
        let tag = match (&step.outcome, keys.is_empty()) {
            (Ok(_), false) => engine.spend_tag(new),
            _ => None,
        };
        let mut spent: Vec<&BudgetKey> = Vec::new();
        if let Some(tag) = tag {
            let refused = match check_all(&inner, &engine, &keys, now).await? {
                Some(e) => Some(e),
                None => spend_all(&inner, &engine, &keys, tag, now, &mut spent).await?,
            };
            if let Some(e) = refused {
                refund_all(&inner, &engine, &spent, tag, now).await;
                if let Error::BudgetSpent {
                    budget,
                    retry_after,
                } = &e
                {
                    inner.emit(&[Event::BudgetRefused {
                        subject: subject.clone(),
                        budget: *budget,
                        retry_after: *retry_after,
                    }])?;
                }
                return Err(Failure::from(e).into_js());
            }
        }
        let swapped = inner
            .store
            .compare_and_swap(
                &key,
                &expected,
                new,
                ms_f64(new.expires_at(engine.policy())),
            )
            .await;
        if let Some(tag) = tag.filter(|_| !matches!(swapped, Ok(true))) {
            refund_all(&inner, &engine, &spent, tag, now).await;
        }
        if !swapped? {
            continue;
        }
        inner.emit(&step.events)?;
        return step.outcome.map_err(|e| Failure::from(e).into_js());
    }
    Err(Failure::from(Error::Contention).into_js())
}

/// Reads every budget key (writes nothing): the refusal that allows a send
/// last (the core's [`allows_last`]: the later `retry_after`, the earlier
/// key on a tie), if any key has no room.
async fn check_all(
    inner: &Inner,
    engine: &Engine,
    keys: &[BudgetKey],
    now: OffsetDateTime,
) -> Result<Option<Error>, Failure> {
    let mut worst: Option<Error> = None;
    for budget in keys {
        let loaded = inner.store.load(&budget.store_key()).await?;
        if let Err(e) = engine.check_budget(loaded.as_ref().map(|(r, _)| r), budget, now) {
            worst = Some(allows_last(worst, e));
        }
    }
    Ok(worst)
}

/// Spends from each key in turn, noting each spend in `spent`; a key that
/// refuses (another call spent its last place in between) stops it.
async fn spend_all<'k>(
    inner: &Inner,
    engine: &Engine,
    keys: &'k [BudgetKey],
    tag: SpendTag,
    now: OffsetDateTime,
    spent: &mut Vec<&'k BudgetKey>,
) -> Result<Option<Error>, Failure> {
    for budget in keys {
        let outcome = update(inner, engine, budget, &|record| {
            let step = engine.spend_budget(record, budget, tag, now);
            (step.write, step.outcome.err())
        })
        .await?;
        if let Some(e) = outcome {
            return Ok(Some(e));
        }
        spent.push(budget);
    }
    Ok(None)
}

/// Gives back the spends of `tag` (exact or nothing: see the core's
/// `budget_key` module). A give-back that fails costs the key one place
/// for at most its fill time: it is not an error of the call.
async fn refund_all(
    inner: &Inner,
    engine: &Engine,
    spent: &[&BudgetKey],
    tag: SpendTag,
    now: OffsetDateTime,
) {
    for budget in spent {
        let _ = update(inner, engine, budget, &|record| {
            let step = engine.refund_budget(record, budget, tag, now);
            (step.write, step.outcome.err())
        })
        .await;
    }
}

/// A budget key's transition: the record to write, if any, and the
/// refusal, if any.
type BucketStep<'a> = dyn Fn(Option<&Record>) -> (Option<Record>, Option<Error>) + 'a;

/// The compare-and-swap loop over a budget key's record: `transition`
/// gives the record to write, if any, and the refusal, if any.
async fn update(
    inner: &Inner,
    engine: &Engine,
    budget: &BudgetKey,
    transition: &BucketStep<'_>,
) -> Result<Option<Error>, Failure> {
    let key = budget.store_key();
    for _ in 0..=inner.max_retries {
        let loaded = inner.store.load(&key).await?;
        let (write, refused) = transition(loaded.as_ref().map(|(r, _)| r));
        if let Some(new) = &write {
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
        return Ok(refused);
    }
    Err(Failure::from(Error::Contention))
}

/// The subject from a purpose label and a number.
fn subject(purpose: &JsValue, phone: &PhoneNumber) -> Result<SubjectKey, Failure> {
    let max = u32::try_from(otpflow::subject::MAX_LABEL_LEN).unwrap_or(u32::MAX);
    let label = short_string(purpose, "purpose", max)?;
    // A label longer than the core allows is refused like any bad label.
    let purpose = Purpose::custom(label.as_deref().unwrap_or("")).map_err(Error::from)?;
    Ok(SubjectKey::new(purpose, phone.inner()))
}

/// The most fields a context, or labels a budget list, may have.
const MAX_ITEMS: u32 = 32;
/// The longest context field name or value, in UTF-16 units.
const MAX_FIELD_LEN: u32 = 1024;

/// The context from an object of string fields, in the order of their
/// names; `null` or `undefined` for none.
fn parse_context(value: Option<&JsValue>) -> Result<Option<Context>, Failure> {
    let Some(value) = value.filter(|v| !v.is_undefined() && !v.is_null()) else {
        return Ok(None);
    };
    let bad = || Failure::argument("context", "an object of up to 32 string fields");
    if !value.is_object() || value.is_function() || js_sys::Array::is_array(value) {
        return Err(bad());
    }
    let object: &js_sys::Object = value.unchecked_ref();
    let entries = js_sys::Object::entries(object);
    if entries.length() > MAX_ITEMS {
        return Err(bad());
    }
    let mut fields = Vec::new();
    for entry in entries.iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let name = short_string(&entry.get(0), "context", MAX_FIELD_LEN)?.ok_or_else(bad)?;
        let value = short_string(&entry.get(1), "context", MAX_FIELD_LEN)?.ok_or_else(bad)?;
        fields.push((name, value));
    }
    // By name (an insertion sort: a few fields, and less code than `sort`).
    for i in 1..fields.len() {
        let mut j = i;
        while j > 0 && fields[j - 1].0 > fields[j].0 {
            fields.swap(j - 1, j);
            j -= 1;
        }
    }
    let builder = fields
        .iter()
        .fold(Context::builder(), |b, (name, value)| b.field(name, value));
    Ok(Some(builder.build()))
}

/// The budgets a send names (see the `Budgets` interface); `null` or
/// `undefined` for none.
fn parse_budgets(value: &JsValue) -> Result<Budgets, Failure> {
    let mut budgets = Budgets::new();
    if value.is_undefined() || value.is_null() {
        return Ok(budgets);
    }
    if !value.is_object() {
        return Err(Failure::argument("budgets", "an object"));
    }
    let field = |name: &str| {
        Reflect::get(value, &JsValue::from_str(name))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    };
    if let Some(address) = field("address") {
        let ip = address
            .as_string()
            .filter(|a| a.len() <= 64)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| Failure::argument("budgets.address", "an IPv4 or IPv6 address"))?;
        budgets = budgets.address(ip);
    }
    for (name, on) in [
        ("range", Budgets::range as fn(Budgets) -> Budgets),
        ("country", Budgets::country),
        ("global", Budgets::global),
    ] {
        match field(name).map(|v| v.as_bool()) {
            None | Some(Some(false)) => {}
            Some(Some(true)) => budgets = on(budgets),
            Some(None) => return Err(Failure::argument("budgets", "an object of booleans")),
        }
    }
    if let Some(labels) = field("labels") {
        let bad =
            || Failure::argument("budgets.labels", "an array of up to 32 labels of a-z0-9-_.");
        if !js_sys::Array::is_array(&labels) {
            return Err(bad());
        }
        let labels: js_sys::Array = labels.unchecked_into();
        if labels.length() > MAX_ITEMS {
            return Err(bad());
        }
        for label in labels.iter() {
            let label = label
                .as_string()
                .and_then(|l| BudgetLabel::new(&l).ok())
                .ok_or_else(bad)?;
            budgets = budgets.label(label);
        }
    }
    Ok(budgets)
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
        Event::BudgetRefused {
            subject,
            budget,
            retry_after,
        } => {
            set(&o, "type", "budgetRefused");
            subject_fields(subject, 0);
            set(&o, "budget", budget.as_str());
            set(&o, "retryAfter", crate::error::ceil_secs(*retry_after));
        }
        // An event a newer core adds: its kind is unknown here.
        _ => set(&o, "type", "other"),
    }
    o
}
