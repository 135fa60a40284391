//! The package's API in a real browser (headless Chromium through
//! `wasm-bindgen-test-runner`): `crypto.getRandomValues`, `Date.now()`,
//! promises on the browser's event loop, errors as browser `Error`s.
//! `scripts/test.sh` runs it; on the host this file compiles to nothing.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Promise, Reflect};
use otpflow_js::verifier::ContextArg;
use otpflow_js::{KeyRing, MemoryStore, PhoneNumber, PhonePolicy, Policy, Verifier};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).expect("an object")
}

fn text(object: &JsValue, key: &str) -> String {
    get(object, key)
        .as_string()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

fn phone(input: &str) -> PhoneNumber {
    PhoneNumber::parse(&JsValue::from_str(input)).expect("a valid number")
}

fn verifier() -> Verifier {
    let keys = KeyRing::generate(1.0).expect("crypto.getRandomValues works");
    let store = JsValue::from(MemoryStore::new());
    Verifier::new(&store, &keys, &Policy::new(), None).expect("a store object")
}

/// A plain object of string fields.
fn object(fields: &[(&str, &str)]) -> JsValue {
    let o: JsValue = js_sys::Object::new().into();
    for (name, value) in fields {
        Reflect::set(&o, &JsValue::from_str(name), &JsValue::from_str(value)).expect("an object");
    }
    o
}

fn context(fields: &[(&str, &str)]) -> Option<ContextArg> {
    Some(object(fields).unchecked_into())
}

async fn settle(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

#[wasm_bindgen_test]
fn runs_in_a_browser() {
    let window = get(&js_sys::global(), "window");
    assert!(window.is_object(), "these tests run in a browser window");
    let crypto = get(&js_sys::global(), "crypto");
    assert!(crypto.is_object());
}

#[wasm_bindgen_test]
async fn the_life_cycle() {
    let verifier = verifier();
    let phone = phone("07401 101801");
    let login = JsValue::from_str("login");
    let sent = settle(verifier.start(&login, &phone, None, None))
        .await
        .expect("a code is sent");
    let code = text(&sent, "code");
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    // Date.now() is the default clock: the code expires ten minutes from now
    // (records keep whole seconds, and an expiry is rounded up: up to 1 s more).
    let expires = get(&sent, "expiresAt");
    let expires_ms = js_sys::Date::from(expires).get_time();
    let from_now = expires_ms - js_sys::Date::now();
    assert!((590_000.0..=601_000.0).contains(&from_now), "{from_now}");

    let wrong = if code.starts_with('0') {
        "111111"
    } else {
        "000000"
    };
    let miss = settle(verifier.verify(&login, &phone, &JsValue::from_str(wrong), None))
        .await
        .expect_err("a wrong code is refused");
    assert!(miss.is_instance_of::<js_sys::Error>());
    assert_eq!(text(&miss, "code"), "code_mismatch");
    assert_eq!(get(&miss, "httpStatus").as_f64(), Some(403.0));
    assert_eq!(get(&miss, "attemptsLeft").as_f64(), Some(4.0));
    assert_eq!(text(&get(&miss, "public"), "code"), "invalid_code");

    let done = settle(verifier.verify(&login, &phone, &JsValue::from_str(&code), None))
        .await
        .expect("the right code validates");
    assert_eq!(get(&done, "generation").as_f64(), Some(1.0));
    let again = settle(verifier.verify(&login, &phone, &JsValue::from_str(&code), None))
        .await
        .expect_err("a code validates once");
    assert_eq!(text(&again, "code"), "already_validated");
    let status = settle(verifier.status(&login, &phone))
        .await
        .expect("a status");
    assert_eq!(text(&status, "state"), "validated");
}

#[wasm_bindgen_test]
async fn two_concurrent_verifies_one_succeeds() {
    let verifier = verifier();
    let phone = phone("+44 7401 101801");
    let login = JsValue::from_str("login");
    let sent = settle(verifier.start(&login, &phone, None, None))
        .await
        .expect("a code is sent");
    let code = JsValue::from_str(&text(&sent, "code"));
    let both = Array::of2(
        &verifier.verify(&login, &phone, &code, None),
        &verifier.verify(&login, &phone, &code, None),
    );
    let results = settle(Promise::all_settled(&both))
        .await
        .expect("allSettled resolves");
    let results: Vec<JsValue> = Array::from(&results).iter().collect();
    let fulfilled = results
        .iter()
        .filter(|r| text(r, "status") == "fulfilled")
        .count();
    assert_eq!(fulfilled, 1, "exactly one verify succeeds");
    let refused = results
        .iter()
        .find(|r| text(r, "status") == "rejected")
        .expect("one is refused");
    assert_eq!(text(&get(refused, "reason"), "code"), "already_validated");
}

#[wasm_bindgen_test]
async fn codes_come_from_crypto_get_random_values() {
    let verifier = verifier();
    let login = JsValue::from_str("login");
    let mut codes = Vec::new();
    for i in 0..20 {
        let phone = phone(&format!("+44 7401 1019{i:02}"));
        let sent = settle(verifier.start(&login, &phone, None, None))
            .await
            .expect("a code is sent");
        codes.push(text(&sent, "code"));
    }
    codes.sort();
    codes.dedup();
    // Twenty draws of six random digits all equal: probability 10^-114.
    assert!(codes.len() > 1, "{codes:?}");
}

#[wasm_bindgen_test]
fn phone_errors_are_errors_with_fields() {
    let error =
        PhoneNumber::parse(&JsValue::from_str("07401 1O18O1")).expect_err("a letter is refused");
    assert!(error.is_instance_of::<js_sys::Error>());
    assert_eq!(text(&error, "code"), "phone_invalid_character");
    assert_eq!(text(&error, "character"), "O");
    assert_eq!(get(&error, "position").as_f64(), Some(7.0));
    let uk = PhonePolicy::uk_only();
    let us = uk
        .parse(&JsValue::from_str("+1 202 555 0123"))
        .expect_err("not UK");
    assert_eq!(text(&us, "code"), "phone_country_not_allowed");
    assert_eq!(get(&us, "countryCode").as_f64(), Some(1.0));
    let split =
        PhoneNumber::from_parts(&"+44".into(), &"07401 101801".into()).expect("the split form");
    assert!(split.equals(&phone("07401101801")));
}

#[wasm_bindgen_test]
async fn budgets_refuse_the_send_past_an_address_rate() {
    let policy = Policy::builder()
        .budget_rate(&"address".into(), Some(2.0), Some(600.0))
        .build()
        .expect("a valid policy");
    let rate = policy.budget_rate(&"address".into()).expect("a kind");
    assert_eq!(get(&rate, "burst").as_f64(), Some(2.0));
    assert_eq!(get(&rate, "interval").as_f64(), Some(600.0));
    // Records keep whole seconds, so within the second of a burst's first
    // send the burst's last place is not open yet (it opens at the next
    // whole second: see the core's `budget` module). A clock that reads
    // whole seconds makes the burst exact.
    let keys = KeyRing::generate(1.0).expect("crypto.getRandomValues works");
    let store = JsValue::from(MemoryStore::new());
    let options: JsValue = js_sys::Object::new().into();
    let clock = js_sys::Function::new_no_args("return Math.floor(Date.now() / 1000) * 1000;");
    Reflect::set(&options, &"clock".into(), &clock).expect("an object");
    let verifier = Verifier::new(&store, &keys, &policy, Some(options)).expect("valid options");
    let login = JsValue::from_str("login");
    let from = object(&[("address", "203.0.113.7")]);
    for i in 1..=2 {
        let phone = phone(&format!("07401 1018{i:02}"));
        settle(verifier.start_within(&from, &login, &phone, None, None))
            .await
            .expect("within the address's burst");
    }
    let third = phone("07401 101803");
    let refused = settle(verifier.start_within(&from, &login, &third, None, None))
        .await
        .expect_err("the address's burst is spent");
    assert!(refused.is_instance_of::<js_sys::Error>());
    assert_eq!(text(&refused, "code"), "budget_exhausted");
    assert_eq!(text(&refused, "budget"), "address");
    assert_eq!(get(&refused, "httpStatus").as_f64(), Some(429.0));
    let retry = get(&refused, "retryAfter").as_f64().expect("a retry hint");
    assert!(retry > 0.0 && retry <= 600.0, "{retry}");
    let public = get(&refused, "public");
    assert_eq!(text(&public, "code"), "too_many_requests");
    assert!(
        get(&public, "budget").is_undefined(),
        "the public form names no budget"
    );
    // The refused send wrote nothing; another address is another key.
    let none = settle(verifier.status(&login, &third))
        .await
        .expect_err("no validation");
    assert_eq!(text(&none, "code"), "validation_not_found");
    let elsewhere = object(&[("address", "2001:db8::1")]);
    settle(verifier.start_within(&elsewhere, &login, &third, None, None))
        .await
        .expect("another address has its own budget");
    // A malformed budget is an argument error, before anything is spent.
    let bad = object(&[("address", "not an address")]);
    let e = settle(verifier.start_within(&bad, &login, &third, None, None))
        .await
        .expect_err("not an address");
    assert_eq!(text(&e, "code"), "invalid_argument");
}

#[wasm_bindgen_test]
async fn a_code_bound_to_a_context_validates_only_under_it() {
    let verifier = verifier();
    let phone = phone("07401 101801");
    let payment = JsValue::from_str("payment");
    let approved = [("amount", "12.50 EUR"), ("payee", "ACME Ltd")];
    let sent = settle(verifier.start(&payment, &phone, None, context(&approved)))
        .await
        .expect("a code is sent");
    let code = JsValue::from_str(&text(&sent, "code"));
    let relayed = [("amount", "12.50 EUR"), ("payee", "Mallory")];
    let miss = settle(verifier.verify(&payment, &phone, &code, context(&relayed)))
        .await
        .expect_err("another payee is a wrong code");
    assert_eq!(text(&miss, "code"), "code_mismatch");
    assert_eq!(get(&miss, "attemptsLeft").as_f64(), Some(4.0));
    assert_eq!(text(&get(&miss, "public"), "code"), "invalid_code");
    let unbound = settle(verifier.verify(&payment, &phone, &code, None))
        .await
        .expect_err("no context is a wrong code");
    assert_eq!(text(&unbound, "code"), "code_mismatch");
    // The same fields, in another order, are the same context.
    let reordered = [("payee", "ACME Ltd"), ("amount", "12.50 EUR")];
    let done = settle(verifier.verify(&payment, &phone, &code, context(&reordered)))
        .await
        .expect("the same context validates");
    assert_eq!(get(&done, "generation").as_f64(), Some(1.0));
    // A context that is not an object of strings is refused as an argument.
    let bad: ContextArg = JsValue::from_f64(7.0).unchecked_into();
    let e = settle(verifier.verify(&payment, &phone, &code, Some(bad)))
        .await
        .expect_err("not a context");
    assert_eq!(text(&e, "code"), "invalid_argument");
}
