//! Verifik: phone login and app-registration phone validations.

use serde_json::{Value, json};

use crate::harness::{Server, json, text, wrong};

const MISMATCH: &str = r#"{"code":"otp_does_not_match","message":"403:otp_does_not_match"}"#;
const NOT_FOUND: &str =
    r#"{"code":"phone_validation_not_found","message":"404:phone_validation_not_found"}"#;
const EXPIRED: &str =
    r#"{"code":"phoneValidation_has_expired","message":"412:phoneValidation_has_expired"}"#;
const MISSING_ALL: &str = r#"{"code":"MissingParameter","message":"missing phone\n. missing countryCode\n. missing otp"}"#;
const BAD_COUNTRY: &str = r#"{"code":"MissingParameter","message":"Invalid countryCode format. CountryCode should be in the format + followed by 1 to 3 digits."}"#;

fn register(s: &Server, country: &str, phone: &str) -> (String, Value) {
    let (status, body) = json(
        s.post("/v2/app-registrations")
            .json(&json!({ "countryCode": country, "phone": phone }))
            .send()
            .expect("answer"),
    );
    assert_eq!(status, 200, "{body}");
    (body["token"].as_str().expect("a token").to_owned(), body)
}

fn validate(s: &Server, token: &str, body: &Value) -> (u16, String) {
    text(
        s.put("/v2/phone-validations")
            .bearer_auth(token)
            .json(body)
            .send()
            .expect("answer"),
    )
}

#[test]
fn login_sends_a_code_the_answer_does_not_disclose_and_confirm_issues_a_token() {
    let s = Server::start();
    let (status, body) = json(
        s.post("/v2/projects/phone-login")
            .json(&json!({ "countryCode": "+44", "phone": 7_401_101_801_u64, "type": "login" }))
            .send()
            .expect("answer"),
    );
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["status"], "sent");
    assert_eq!(data["phoneGateway"], "sms");
    assert_eq!(data["type"], "login");
    assert_eq!(data["countryCode"], "+44");
    assert_eq!(data["phone"], "7401101801");
    assert_eq!(data["new"], true);
    let id = data["_id"].as_str().expect("an id");
    assert!(
        id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let expires = data["expiresAt"].as_str().expect("expiresAt");
    assert!(
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert!(
        expires.ends_with(".000Z") || expires.len() == 24,
        "{expires}"
    );
    assert_eq!(body["signature"]["message"], "Certified by Verifik.co");
    // The otp field holds no code and nothing derived from it.
    let code = s.code("+447401101801", "verifik-login");
    assert_eq!(data["otp"], "not-disclosed");
    assert!(!body.to_string().contains(&code));

    let (status, body) = json(
        s.post("/v2/projects/phone-login/confirm")
            .json(&json!({ "countryCode": "+44", "phone": "7401 101801", "otp": code }))
            .send()
            .expect("answer"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["tokenType"], "bearer");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["verifik"]);
    let claims = jsonwebtoken::decode::<Value>(
        body["data"]["accessToken"].as_str().expect("a token"),
        &jsonwebtoken::DecodingKey::from_secret(b"token-key-of-the-tests-32-bytes!"),
        &v,
    )
    .expect("valid")
    .claims;
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        30 * 24 * 3600
    );
    // Reuse.
    let r = s
        .post("/v2/projects/phone-login/confirm")
        .json(&json!({ "countryCode": "+44", "phone": "7401101801", "otp": code }))
        .send()
        .expect("answer");
    assert_eq!(text(r), (404, NOT_FOUND.into()));
}

#[test]
fn onboarding_validates_with_the_registration_token() {
    let s = Server::start();
    let (token, reg) = register(&s, "+507", "6264 7737");
    let validation_id = reg["data"]["phoneValidation"]["_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(reg["data"]["phoneValidation"]["type"], "onboarding");
    let code = s.code("+50762647737", "verifik-onboarding");
    let otp: u64 = code.parse().expect("digits");
    let (status, body) = validate(
        &s,
        &token,
        &json!({ "phone": "6264 7737", "countryCode": "+507", "otp": otp }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            r#"{{"data":{{"_id":"{validation_id}","status":"validated","countryCode":"+507","phone":"62647737","type":"onboarding","showFaceLivenessRecommendation":false}}}}"#
        )
    );
    // Reuse: the validation is no longer pending.
    let again = validate(
        &s,
        &token,
        &json!({ "phone": "62647737", "countryCode": "+507", "otp": otp }),
    );
    assert_eq!(again, (404, NOT_FOUND.into()));
}

#[test]
fn documented_errors_byte_for_byte() {
    let s = Server::start();
    let (token, _) = register(&s, "+507", "62647737");
    let code = s.code("+50762647737", "verifik-onboarding");
    let put = |b: Value| validate(&s, &token, &b);
    assert_eq!(put(json!({})), (409, MISSING_ALL.into()));
    assert_eq!(
        put(json!({ "phone": "62647737", "otp": 1 })),
        (
            409,
            r#"{"code":"MissingParameter","message":"missing countryCode"}"#.into()
        )
    );
    for bad in ["507", "+5071", "+5a7", "++507"] {
        assert_eq!(
            put(json!({ "phone": "62647737", "countryCode": bad, "otp": 1 })),
            (409, BAD_COUNTRY.into()),
            "{bad}"
        );
    }
    let wrong_otp: u64 = wrong(&code).parse().expect("digits");
    assert_eq!(
        put(json!({ "phone": "62647737", "countryCode": "+507", "otp": wrong_otp })),
        (403, MISMATCH.into())
    );
    // Another number than the registration's: not found under it.
    assert_eq!(
        put(json!({ "phone": "62647738", "countryCode": "+507", "otp": 123_456 })),
        (404, NOT_FOUND.into())
    );
    // Expired.
    s.advance(601);
    let otp: u64 = code.parse().expect("digits");
    assert_eq!(
        put(json!({ "phone": "62647737", "countryCode": "+507", "otp": otp })),
        (412, EXPIRED.into())
    );
    // No token, or a token of another kind.
    let r = s
        .put("/v2/phone-validations")
        .json(&json!({ "phone": "62647737", "countryCode": "+507", "otp": otp }))
        .send()
        .expect("answer");
    assert_eq!(
        text(r),
        (
            401,
            r#"{"code":"InvalidCredentials","message":"401:invalid_token"}"#.into()
        )
    );
}

#[test]
fn lockout_after_five_wrong_codes() {
    let s = Server::start();
    let (token, _) = register(&s, "+44", "7401101801");
    let code = s.code("+447401101801", "verifik-onboarding");
    let body = |otp: &str| json!({ "phone": "7401101801", "countryCode": "+44", "otp": otp });
    let exhausted = (
        429,
        r#"{"code":"too_many_attempts","message":"429:too_many_attempts"}"#.to_owned(),
    );
    for _ in 0..4 {
        assert_eq!(
            validate(&s, &token, &body(&wrong(&code))),
            (403, MISMATCH.into())
        );
    }
    // The fifth wrong check spends the code's last attempt and says so.
    assert_eq!(validate(&s, &token, &body(&wrong(&code))), exhausted);
    assert_eq!(validate(&s, &token, &body(&code)), exhausted);
}

#[test]
fn a_numeric_otp_that_lost_its_leading_zero_is_accepted() {
    let s = Server::start();
    // Codes are uniform: one in ten starts with 0. Try numbers until one does.
    for i in 0..200u32 {
        let national = format!("74011{:05}", 10_000 + i);
        let (token, _) = register(&s, "+44", &national);
        let code = s.code(&format!("+44{national}"), "verifik-onboarding");
        if !code.starts_with('0') {
            continue;
        }
        let otp: u64 = code.parse().expect("digits");
        assert!(otp.to_string().len() < code.len());
        let (status, body) = validate(
            &s,
            &token,
            &json!({ "phone": national, "countryCode": "+44", "otp": otp }),
        );
        assert_eq!(status, 200, "{body}");
        return;
    }
    panic!("no code with a leading zero in 200 draws");
}
