//! Kii: verify a user's phone number, and the resend route.

use base64::Engine as _;
use serde_json::json;

use crate::harness::{Server, text, wrong};

const APP: &str = "s6BhdRkqt3";
const REQUEST: &str = "application/vnd.kii.AddressVerificationRequest+json";

fn basic(app: &str, key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{app}:{key}"))
    )
}

pub fn app_auth() -> String {
    basic(APP, "7Fjfp0ZBr1KtDRbnfVdmIw")
}

fn path(app: &str, user: &str, action: &str) -> String {
    format!("/api/apps/{app}/users/{user}/phone-number/{action}")
}

pub fn resend(s: &Server, app: &str, user: &str, auth: &str) -> reqwest::blocking::Response {
    s.post(&path(app, user, "resend-verification-code"))
        .header("Authorization", auth)
        .send()
        .expect("answer")
}

pub fn verify(s: &Server, user: &str, auth: &str, code: &str) -> reqwest::blocking::Response {
    s.post(&path(APP, user, "verify"))
        .header("Authorization", auth)
        .header("Content-Type", REQUEST)
        .body(json!({ "verificationCode": code }).to_string())
        .send()
        .expect("answer")
}

pub fn kii_code(s: &Server, to: &str) -> String {
    s.outbox()
        .iter()
        .rev()
        .find(|m| m["to"] == to && m["purpose"].as_str().is_some_and(|p| p.starts_with("kii-")))
        .and_then(|m| m["code"].as_str().map(str::to_owned))
        .expect("a Kii message")
}

fn content_type(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[test]
fn resend_then_verify_then_already_verified() {
    let s = Server::start();
    let user = "PHONE:+447401101801";
    assert_eq!(resend(&s, APP, user, &app_auth()).status(), 204);
    let code = kii_code(&s, "+447401101801");

    let r = verify(&s, user, &app_auth(), &wrong(&code));
    assert_eq!(
        content_type(&r),
        "application/vnd.kii.InvalidVerificationCodeException+json"
    );
    assert_eq!(
        text(r),
        (
            403,
            format!(
                r#"{{"errorCode":"INVALID_VERIFICATION_CODE","message":"The verification code is invalid","userID":"alice","appID":"{APP}","verificationCode":"{}"}}"#,
                wrong(&code)
            )
        )
    );

    let r = verify(&s, user, &app_auth(), &code);
    assert_eq!(
        content_type(&r),
        "application/vnd.kii.AddressVerificationResponse+json"
    );
    assert_eq!(
        text(r),
        (200, r#"{"verificationStatus":"VERIFIED"}"#.into())
    );

    let r = verify(&s, user, &app_auth(), &code);
    assert_eq!(
        content_type(&r),
        "application/vnd.kii.InvalidAccountStatusException+json"
    );
    assert_eq!(
        text(r),
        (
            400,
            format!(
                r#"{{"errorCode":"INVALID_ACCOUNT_STATUS","message":"The phone number is already verified","userID":"alice","appID":"{APP}","accountType":"PHONE"}}"#
            )
        )
    );
}

#[test]
fn documented_errors_byte_for_byte() {
    let s = Server::start();
    let r = verify(&s, "PHONE:+447401109999", &app_auth(), "123456");
    assert_eq!(
        content_type(&r),
        "application/vnd.kii.UserNotFoundException+json"
    );
    assert_eq!(
        text(r),
        (
            404,
            format!(
                r#"{{"errorCode":"USER_NOT_FOUND","message":"User not found","field":"phoneNumber","value":"+447401109999","appID":"{APP}"}}"#
            )
        )
    );
    let r = verify(&s, "nobody", &app_auth(), "123456");
    assert_eq!(
        text(r),
        (
            404,
            format!(
                r#"{{"errorCode":"USER_NOT_FOUND","message":"User not found","field":"userID","value":"nobody","appID":"{APP}"}}"#
            )
        )
    );
    // dave's number is verified by bob.
    let r = verify(&s, "dave", &app_auth(), "123456");
    assert_eq!(
        content_type(&r),
        "application/vnd.kii.AddressAlreadyInUseException+json"
    );
    assert_eq!(
        text(r),
        (
            409,
            r#"{"errorCode":"USER_ALREADY_EXISTS","message":"The phone number is verified by another user","field":"phoneNumber","value":"+447401101802"}"#.into()
        )
    );
    let r = verify(&s, "carol", &app_auth(), "123456");
    assert_eq!(
        content_type(&r),
        "application/vnd.kii.UserDisabledException+json"
    );
    assert_eq!(
        text(r),
        (
            401,
            format!(
                r#"{{"errorCode":"USER_DISABLED","message":"The user is disabled","UserID":"carol","appID":"{APP}"}}"#
            )
        )
    );
    let r = verify(&s, "bob", &app_auth(), "123456");
    assert_eq!(r.status(), 400);
    // Bad credentials, wrong content type.
    let r = verify(&s, "alice", &basic(APP, "wrong-key"), "123456");
    assert_eq!(r.status(), 401);
    let r = verify(&s, "alice", "Bearer nope", "123456");
    assert_eq!(r.status(), 401);
    let r = s
        .post(&path(APP, "alice", "verify"))
        .header("Authorization", app_auth())
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .expect("answer");
    assert_eq!(r.status(), 415);
    let r = verify(&s, "alice", &basic("unknownApp", "x"), "123456");
    assert_eq!(r.status(), 401);
}

#[test]
fn bearer_tokens_act_for_their_own_user_only() {
    let s = Server::start();
    assert_eq!(resend(&s, APP, "me", "Bearer erin-token").status(), 204);
    let code = kii_code(&s, "+447401101804");
    let r = verify(&s, "erin", "Bearer alice-token", &code);
    assert_eq!(r.status(), 403);
    let r = verify(&s, "me", "Bearer erin-token", &code);
    assert_eq!(
        text(r),
        (200, r#"{"verificationStatus":"VERIFIED"}"#.into())
    );
}

#[test]
fn expired_and_exhausted_codes_are_invalid() {
    let s = Server::start();
    assert_eq!(resend(&s, APP, "alice", &app_auth()).status(), 204);
    let code = kii_code(&s, "+447401101801");
    s.advance(601);
    assert_eq!(verify(&s, "alice", &app_auth(), &code).status(), 403);
    // A new code; five wrong checks spend it.
    assert_eq!(resend(&s, APP, "alice", &app_auth()).status(), 204);
    let code = kii_code(&s, "+447401101801");
    for _ in 0..5 {
        assert_eq!(
            verify(&s, "alice", &app_auth(), &wrong(&code)).status(),
            403
        );
    }
    assert_eq!(verify(&s, "alice", &app_auth(), &code).status(), 403);
}

#[test]
fn apps_do_not_share_codes() {
    let s = Server::start();
    // alice (this app) and alice2 (another app) have the same number.
    assert_eq!(resend(&s, APP, "alice", &app_auth()).status(), 204);
    let code = kii_code(&s, "+447401101801");
    let other = basic("otherApp01", "other-key");
    assert_eq!(resend(&s, "otherApp01", "alice2", &other).status(), 204);
    let purposes: Vec<String> = s
        .outbox()
        .iter()
        .map(|m| m["purpose"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(purposes.len(), 2);
    assert_ne!(purposes[0], purposes[1]);
    let other_code = kii_code(&s, "+447401101801");
    if other_code != code {
        let r = s
            .post(&path("otherApp01", "alice2", "verify"))
            .header("Authorization", &other)
            .header("Content-Type", "application/json")
            .body(json!({ "verificationCode": code }).to_string())
            .send()
            .expect("answer");
        assert_eq!(r.status(), 403);
    }
    assert_eq!(verify(&s, "alice", &app_auth(), &code).status(), 200);
}
