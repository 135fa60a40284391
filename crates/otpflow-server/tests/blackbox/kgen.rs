//! KGen: register, resend, verify under `user-jwt-token`.

use serde_json::{Value, json};

use crate::harness::{KGEN_KEY, Server, json, text, wrong};

const UNAUTHORIZED: &str = r#"{"message":"UN_AUTHORIZED"}"#;
const INVALID_OTP: &str = r#"{"message":"INVALID_OTP"}"#;
const PHONE: &str = "+919876543219";

pub fn user_token(user: &str, exp_in: i64, key: &[u8]) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": user, "user_id": user, "iat": now, "exp": now + exp_in }),
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .expect("a token")
}

fn call(s: &Server, route: &str, token: Option<&str>, body: &Value) -> reqwest::blocking::Response {
    let mut r = s.post(&format!("/fe/users/auth/otp/{route}")).json(body);
    if let Some(t) = token {
        r = r.header("user-jwt-token", t);
    }
    r.send().expect("answer")
}

fn number() -> Value {
    json!({ "phone_number": "9876543219", "countryCode": "+91" })
}

fn verify_body(auth_code: &Value, otp: &str) -> Value {
    let otp: u64 = otp.parse().expect("digits");
    json!({ "phone_number": "9876543219", "countryCode": "+91", "authCode": auth_code, "otp": otp })
}

#[test]
fn every_route_refuses_a_missing_bad_or_expired_token() {
    let s = Server::start();
    let forged = user_token("u1", 3600, b"not-the-kgen-key-not-the-kgen-k!");
    let expired = user_token("u1", -10, KGEN_KEY);
    for route in ["register", "resend", "verify"] {
        for token in [
            None,
            Some("garbage"),
            Some(forged.as_str()),
            Some(expired.as_str()),
        ] {
            assert_eq!(
                text(call(&s, route, token, &number())),
                (401, UNAUTHORIZED.into()),
                "{route} {token:?}"
            );
        }
    }
}

#[test]
fn register_verify_links_the_user_and_is_new_user_turns_false() {
    let s = Server::start();
    let token = user_token("u1", 3600, KGEN_KEY);
    let (status, body) = json(call(&s, "register", Some(&token), &number()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["isNewUser"], true);
    let auth_code = body["authCode"].as_str().expect("authCode").to_owned();
    assert!(auth_code.len() == 15 && !auth_code.starts_with('0'));
    let code = s.code(PHONE, "kgen");
    // authCode sent back as a JSON number, as in the document.
    let numeric: u64 = auth_code.parse().expect("digits");
    let r = call(
        &s,
        "verify",
        Some(&token),
        &verify_body(&json!(numeric), &wrong(&code)),
    );
    assert_eq!(text(r), (400, INVALID_OTP.into()));
    let r = call(
        &s,
        "verify",
        Some(&token),
        &verify_body(&json!(numeric), &code),
    );
    assert_eq!(
        text(r),
        (200, r#"{"message":"Users linked successfully"}"#.into())
    );
    // Reuse.
    let r = call(
        &s,
        "verify",
        Some(&token),
        &verify_body(&json!(numeric), &code),
    );
    assert_eq!(text(r), (400, INVALID_OTP.into()));
    let (_, body) = json(call(&s, "register", Some(&token), &number()));
    assert_eq!(body["isNewUser"], false);
}

#[test]
fn resend_keeps_the_auth_code_and_the_code() {
    let s = Server::start();
    let token = user_token("u1", 3600, KGEN_KEY);
    let (_, first) = json(call(&s, "register", Some(&token), &number()));
    let code = s.code(PHONE, "kgen");
    let r = call(&s, "resend", Some(&token), &number());
    assert_eq!(r.status(), 429, "inside the cooldown");
    // The 30 s cooldown's wait in whole minutes: the header does not tell
    // when the code went out.
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("60")
    );
    s.advance(31);
    let (status, second) = json(call(&s, "resend", Some(&token), &number()));
    assert_eq!(status, 200);
    assert_eq!(first["authCode"], second["authCode"]);
    assert_eq!(s.code(PHONE, "kgen"), code);
    assert_eq!(s.outbox().len(), 2);
    // Nothing to resend for a number with no live code.
    let other = json!({ "phone_number": "9876543210", "countryCode": "+91" });
    assert_eq!(
        text(call(&s, "resend", Some(&token), &other)),
        (400, r#"{"message":"NO_ACTIVE_OTP"}"#.into())
    );
}

#[test]
fn an_auth_code_of_another_validation_or_user_fails() {
    let s = Server::start();
    let token = user_token("u1", 3600, KGEN_KEY);
    let (_, first) = json(call(&s, "register", Some(&token), &number()));
    let code = s.code(PHONE, "kgen");
    // Another user's token with this validation's authCode.
    let other_user = user_token("u2", 3600, KGEN_KEY);
    let r = call(
        &s,
        "verify",
        Some(&other_user),
        &verify_body(&first["authCode"], &code),
    );
    assert_eq!(text(r), (400, INVALID_OTP.into()));
    // The first validation ends; a second one has another authCode.
    assert_eq!(
        call(
            &s,
            "verify",
            Some(&token),
            &verify_body(&first["authCode"], &code)
        )
        .status(),
        200
    );
    let (_, second) = json(call(&s, "register", Some(&token), &number()));
    assert_ne!(first["authCode"], second["authCode"]);
    let code = s.code(PHONE, "kgen");
    let r = call(
        &s,
        "verify",
        Some(&token),
        &verify_body(&first["authCode"], &code),
    );
    assert_eq!(text(r), (400, INVALID_OTP.into()));
    let r = call(
        &s,
        "verify",
        Some(&token),
        &verify_body(&second["authCode"], &code),
    );
    assert_eq!(r.status(), 200);
}

#[test]
fn expired_and_locked_codes() {
    let s = Server::start();
    let token = user_token("u1", 3600, KGEN_KEY);
    let (_, body) = json(call(&s, "register", Some(&token), &number()));
    let code = s.code(PHONE, "kgen");
    s.advance(601);
    let r = call(
        &s,
        "verify",
        Some(&token),
        &verify_body(&body["authCode"], &code),
    );
    assert_eq!(text(r), (400, INVALID_OTP.into()));
    let (_, body) = json(call(&s, "register", Some(&token), &number()));
    let code = s.code(PHONE, "kgen");
    for _ in 0..5 {
        let r = call(
            &s,
            "verify",
            Some(&token),
            &verify_body(&body["authCode"], &wrong(&code)),
        );
        assert_eq!(r.status(), 400);
    }
    let r = call(
        &s,
        "verify",
        Some(&token),
        &verify_body(&body["authCode"], &code),
    );
    assert_eq!(text(r), (400, INVALID_OTP.into()));
    // A bad number.
    let bad = json!({ "phone_number": "12", "countryCode": "+91" });
    assert_eq!(
        text(call(&s, "register", Some(&token), &bad)),
        (400, r#"{"message":"INVALID_PHONE_NUMBER"}"#.into())
    );
}
