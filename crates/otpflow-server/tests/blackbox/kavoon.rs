//! Kavoon: `POST /otp`, `POST /auth/token`.

use serde_json::json;

use crate::harness::{Server, json, text, wrong};

const BAD_OTP: &str = r#"{"errCode":"BAD_REQUEST","errText":"Check OTP exception"}"#;

fn request(s: &Server, phone: &str) -> (u16, String) {
    text(
        s.post("/otp")
            .json(&json!({ "phone": phone, "channel": "sms" }))
            .send()
            .expect("answer"),
    )
}

fn token(s: &Server, username: &str, password: &serde_json::Value) -> reqwest::blocking::Response {
    s.post("/auth/token")
        .json(&json!({
            "grant_type": "password",
            "username": username,
            "password": password,
            "channel": "sms",
        }))
        .send()
        .expect("answer")
}

#[test]
fn happy_path_issues_tokens_with_documented_lifetime_and_new_client() {
    let s = Server::start();
    assert_eq!(request(&s, "447401101801"), (200, "{}".into()));
    let code = s.code("+447401101801", "kavoon");
    let (status, body) = json(token(&s, "447401101801", &json!(code)));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["new_client"], true);
    let keys = [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "new_client",
    ];
    let got: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, keys);

    // The access token is a JWT signed with the service's key, 300 s long.
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["kavoon"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        body["access_token"].as_str().expect("a token"),
        &jsonwebtoken::DecodingKey::from_secret(b"token-key-of-the-tests-32-bytes!"),
        &v,
    )
    .expect("a valid token")
    .claims;
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        300
    );
    assert_eq!(claims["phone"], "+447401101801");
    assert_ne!(body["access_token"], body["refresh_token"]);

    // The same number again, written another way: no longer a new client.
    assert_eq!(request(&s, "+44 7401 101801").0, 200);
    let code = s.code("+447401101801", "kavoon");
    let (status, body) = json(token(&s, "07401 101801", &json!(code)));
    assert_eq!(status, 200);
    assert_eq!(body["new_client"], false);
}

#[test]
fn every_uk_written_form_reaches_the_same_canonical_number() {
    let s = Server::start();
    for (i, form) in [
        "447401101811",
        "+44 7401 101812",
        "07401 101813",
        "0044 7401 101814",
        "+44 (0)7401 101815",
        "+44-7401-101816",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(request(&s, form), (200, "{}".into()), "{form}");
        let to = format!("+4474011018{}", 11 + i);
        assert_eq!(s.outbox().last().expect("a message")["to"], to.as_str());
    }
}

#[test]
fn refusals_of_post_otp() {
    let s = Server::start();
    let general = |t: &str| format!(r#"{{"errCode":"GENERAL_ERROR","errText":"{t}"}}"#);
    // The document's own example error.
    let r = s
        .post("/otp")
        .header("Device-Id", "")
        .json(&json!({ "phone": "447401101801", "channel": "sms" }))
        .send()
        .expect("answer");
    assert_eq!(text(r), (400, general("invalid Device-Id")));
    // Not a UK number, a landline, letters, no number.
    for phone in ["+33 6 12 34 56 78", "02079460000", "07401 1O18O1", ""] {
        assert_eq!(
            request(&s, phone),
            (400, general("invalid phone")),
            "{phone}"
        );
    }
    let r = s
        .post("/otp")
        .json(&json!({ "phone": "447401101801", "channel": "whatsapp" }))
        .send()
        .expect("answer");
    assert_eq!(text(r), (400, general("invalid channel")));
    let r = s.post("/otp").body("not json").send().expect("answer");
    assert_eq!(text(r), (400, general("invalid request")));
    // A second request inside the resend cooldown: answered as a send
    // (an outsider cannot tell), and nothing goes out.
    assert_eq!(request(&s, "447401101801").0, 200);
    let sent = s.outbox().len();
    let r = s
        .post("/otp")
        .json(&json!({ "phone": "447401101801", "channel": "sms" }))
        .send()
        .expect("answer");
    assert!(r.headers().get("retry-after").is_none());
    assert_eq!(text(r), (200, "{}".into()));
    assert_eq!(s.outbox().len(), sent, "nothing sent inside the cooldown");
}

/// What an outsider gets back for a number: status, body and the names of
/// the headers (the date aside).
fn seen_by_outsider(s: &Server, phone: &str) -> (u16, Vec<String>, String) {
    let r = s
        .post("/otp")
        .json(&json!({ "phone": phone, "channel": "sms" }))
        .send()
        .expect("answer");
    let status = r.status().as_u16();
    let mut headers: Vec<String> = r
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k != "date")
        .collect();
    headers.sort();
    (status, headers, r.text().expect("body"))
}

#[test]
fn an_outsider_cannot_tell_a_number_mid_verification_or_locked_from_a_fresh_one() {
    let s = Server::start();
    let fresh = seen_by_outsider(&s, "447401101802");
    // The victim's number, seconds after its code went out.
    assert_eq!(request(&s, "447401101801").0, 200);
    assert_eq!(seen_by_outsider(&s, "447401101801"), fresh);
    // The victim's number locked by its failure cap (20 wrong codes).
    let mut locked = false;
    'rounds: for round in 0..5 {
        if round > 0 {
            request(&s, "447401101801");
        }
        let code = s.code("+447401101801", "kavoon");
        for _ in 0..5 {
            if token(&s, "447401101801", &json!(wrong(&code))).status() == 429 {
                locked = true;
                break 'rounds;
            }
        }
    }
    assert!(locked, "the number locks after its failure cap");
    let sent = s.outbox().len();
    assert_eq!(seen_by_outsider(&s, "447401101801"), fresh);
    assert_eq!(s.outbox().len(), sent, "nothing sent to a locked number");
    // Another fresh number answers alike too (the first one's answer was
    // not a fluke of an empty service).
    assert_eq!(seen_by_outsider(&s, "447401101803"), fresh);
}

#[test]
fn wrong_expired_reused_and_locked_codes_answer_the_documented_400() {
    let s = Server::start();
    // Wrong.
    request(&s, "447401101801");
    let code = s.code("+447401101801", "kavoon");
    assert_eq!(
        text(token(&s, "447401101801", &json!(wrong(&code)))),
        (400, BAD_OTP.into())
    );
    // Right, then reused.
    assert_eq!(token(&s, "447401101801", &json!(code)).status(), 200);
    assert_eq!(
        text(token(&s, "447401101801", &json!(code))),
        (400, BAD_OTP.into())
    );
    // Expired.
    request(&s, "447401101802");
    let code = s.code("+447401101802", "kavoon");
    s.advance(601);
    assert_eq!(
        text(token(&s, "447401101802", &json!(code))),
        (400, BAD_OTP.into())
    );
    // Five wrong codes spend the code's checks: the right one is refused.
    request(&s, "447401101803");
    let code = s.code("+447401101803", "kavoon");
    for _ in 0..5 {
        assert_eq!(
            text(token(&s, "447401101803", &json!(wrong(&code)))),
            (400, BAD_OTP.into())
        );
    }
    assert_eq!(
        text(token(&s, "447401101803", &json!(code))),
        (400, BAD_OTP.into())
    );
    // Unknown number, other grant type.
    assert_eq!(
        text(token(&s, "447401101899", &json!("123456"))),
        (400, BAD_OTP.into())
    );
    let r = s
        .post("/auth/token")
        .json(
            &json!({ "grant_type": "client_credentials", "username": "447401101801",
                       "password": "123456", "channel": "sms" }),
        )
        .send()
        .expect("answer");
    assert_eq!(
        text(r),
        (
            400,
            r#"{"errCode":"BAD_REQUEST","errText":"unsupported grant_type"}"#.into()
        )
    );
}

#[test]
fn the_failure_cap_locks_the_number_across_new_codes() {
    let s = Server::start();
    let mut locked = false;
    // 20 failures (the default cap) over four codes of five checks each.
    for round in 0..5 {
        let (status, _) = request(&s, "447401101801");
        if status == 429 {
            locked = true;
            break;
        }
        assert_eq!(status, 200, "round {round}");
        let code = s.code("+447401101801", "kavoon");
        for _ in 0..5 {
            let r = token(&s, "447401101801", &json!(wrong(&code)));
            if r.status() == 429 {
                locked = true;
                break;
            }
        }
        if locked {
            break;
        }
    }
    assert!(locked, "the subject locks after its failure cap");
}

#[test]
fn token_accepts_a_form_body_and_a_numeric_password() {
    let s = Server::start();
    request(&s, "447401101801");
    let code = s.code("+447401101801", "kavoon");
    let r = s
        .post("/auth/token")
        .form(&[
            ("grant_type", "password"),
            ("username", "447401101801"),
            ("password", code.as_str()),
            ("channel", "sms"),
        ])
        .send()
        .expect("answer");
    assert_eq!(r.status(), 200);
}

/// The OAuth2 password grant as a form body (`application/x-www-form-urlencoded`):
/// read as the JSON body is, a repeated field's last value wins, a wrong
/// grant or channel answers its documented error.
#[test]
fn token_form_errors_and_a_repeated_field() {
    let s = Server::start();
    assert_eq!(request(&s, "447401101802"), (200, "{}".into()));
    let code = s.code("+447401101802", "kavoon");
    let form = |body: String| {
        text(
            s.post("/auth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .expect("answer"),
        )
    };
    assert_eq!(
        form(format!(
            "grant_type=client_credentials&username=447401101802&password={code}&channel=sms"
        )),
        (
            400,
            r#"{"errCode":"BAD_REQUEST","errText":"unsupported grant_type"}"#.into()
        )
    );
    assert_eq!(
        form(format!(
            "grant_type=password&username=447401101802&password={code}&channel=voice"
        )),
        (
            400,
            r#"{"errCode":"BAD_REQUEST","errText":"invalid channel"}"#.into()
        )
    );
    let (status, body) = form(format!(
        "grant_type=password&username=%2B44+7401+101802&password={}&password={code}&channel=sms",
        wrong(&code)
    ));
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["new_client"], true);
    assert_eq!(body["expires_in"], 300);
}
