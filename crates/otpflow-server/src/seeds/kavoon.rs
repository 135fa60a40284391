//! Kavoon (`kavoon-phone-number-verification.md`): `POST /otp` sends a code
//! to a UK mobile; `POST /auth/token` (`grant_type=password`, the code as
//! `password`) answers with tokens. Errors are `{"errCode","errText"}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use otpflow::{Channel, Error, PhoneNumber, PhonePolicy, PublicError};
use serde_json::json;
use time::OffsetDateTime;

use crate::app::{self, Delivery, HotHeaders, Outgoing, Shared, purpose};
use crate::body::{self, Field};
use crate::facts::Space;
use crate::tokens::{KAVOON_ACCESS, KAVOON_REFRESH, Tokens};

/// Kavoon's phone policy (UK mobiles), made once: `PhonePolicy::uk_only`
/// builds and sorts its list of codes on each call.
static UK: std::sync::LazyLock<PhonePolicy> = std::sync::LazyLock::new(PhonePolicy::uk_only);

/// The longest `Device-Id` accepted.
pub const MAX_DEVICE_ID: usize = 128;

fn err(status: StatusCode, code: &str, text: &str) -> Response {
    app::json(status, &json!({ "errCode": code, "errText": text }))
}

/// The documented 400 of `POST /otp`.
fn general(text: &str) -> Response {
    err(StatusCode::BAD_REQUEST, "GENERAL_ERROR", text)
}

/// The documented 400 of `POST /auth/token`.
fn check_otp_exception() -> Response {
    err(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "Check OTP exception",
    )
}

fn unavailable() -> Response {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "GENERAL_ERROR",
        "service unavailable",
    )
}

fn too_many(error: &Error) -> Response {
    app::with_retry_after(
        err(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "too many requests",
        ),
        error,
    )
}

/// `Device-Id` is optional; when sent it must be 1–128 visible ASCII
/// characters (the document's one example error is "invalid Device-Id").
fn device_id_ok(device_id: Option<&HeaderValue>) -> bool {
    match device_id {
        None => true,
        Some(v) => v.to_str().is_ok_and(|s| {
            !s.is_empty() && s.len() <= MAX_DEVICE_ID && s.bytes().all(|b| b.is_ascii_graphic())
        }),
    }
}

fn channel_ok(map: &serde_json::Map<String, serde_json::Value>) -> bool {
    matches!(body::field(map, "channel"), Field::Text(c) if c == "sms")
}

fn uk_phone(map: &serde_json::Map<String, serde_json::Value>, name: &str) -> Option<PhoneNumber> {
    let text = body::field(map, name).text()?;
    PhoneNumber::parse(&text, &UK).ok()
}

/// `POST /otp` `{phone, channel: "sms"}` → `200 {}`.
#[utoipa::path(post, path = "/otp", tag = "kavoon",
    request_body(content = inline(serde_json::Value), description = "`{\"phone\": \"447401101801\", \"channel\": \"sms\"}`: any UK written form of a UK mobile"),
    responses(
        (status = 200, description = "`{}`: the code is on its way — or, inside the number's cooldown, with its sends spent or while it is locked, nothing was sent (the same answer, so it tells nothing about the number)"),
        (status = 400, description = "`{\"errCode\":\"GENERAL_ERROR\",\"errText\":\"invalid Device-Id\"}`, `…\"invalid request\"`, `…\"invalid phone\"`, `…\"invalid channel\"`"),
        (status = 429, description = "`{\"errCode\":\"TOO_MANY_REQUESTS\",\"errText\":\"too many requests\"}` with `Retry-After`: a budget of the caller's address or the number's range is spent (`--budget-*`)"),
        (status = 503, description = "`{\"errCode\":\"GENERAL_ERROR\",\"errText\":\"service unavailable\"}`")))]
pub async fn request_otp(
    State(state): State<Shared>,
    headers: HotHeaders,
    bytes: Bytes,
) -> Response {
    if !device_id_ok(headers.device_id.as_ref()) {
        return general("invalid Device-Id");
    }
    let Some(map) = body::object(headers.content_type(), &bytes) else {
        return general("invalid request");
    };
    let Some(phone) = uk_phone(&map, "phone") else {
        return general("invalid phone");
    };
    if !channel_ok(&map) {
        return general("invalid channel");
    }
    let subject = app::subject(purpose::kavoon(), phone);
    match state
        .start_and_send(&subject, Channel::Sms, Outgoing { service: "Kavoon" })
        .await
    {
        Ok(_) => app::json(StatusCode::OK, &json!({})),
        Err(Delivery::Failed) => unavailable(),
        Err(Delivery::Refused(e)) => {
            app::log_refusal("kavoon", &e);
            // `POST /otp` is open to anyone who knows a number: a refusal
            // that depends on the number's state (a send inside the
            // cooldown, sends spent, a lockout) answers exactly as a send
            // does, so the answer never tells an outsider that the number
            // is mid-verification or when its code went out (otpflow's
            // `public_send`). Nothing is sent; the log keeps the reason.
            match e.public_send() {
                Ok(()) => app::json(StatusCode::OK, &json!({})),
                Err(PublicError::Unavailable) => unavailable(),
                Err(p) if p.http_status() == 429 => too_many(&e),
                Err(_) => general("invalid request"),
            }
        }
    }
}

/// `POST /auth/token` `{grant_type: "password", username, password, channel}`
/// (JSON or form) → tokens.
#[utoipa::path(post, path = "/auth/token", tag = "kavoon",
    request_body(content = inline(serde_json::Value), description = "`{\"grant_type\":\"password\",\"username\":\"447401101801\",\"password\":\"<code>\",\"channel\":\"sms\"}`, as JSON or `application/x-www-form-urlencoded`"),
    responses(
        (status = 200, description = "`{\"access_token\",\"token_type\":\"Bearer\",\"expires_in\":300,\"refresh_token\",\"new_client\"}`"),
        (status = 400, description = "`{\"errCode\":\"BAD_REQUEST\",\"errText\":\"Check OTP exception\"}` for any wrong, expired, used or unknown code; `…\"invalid request\"` / `…\"unsupported grant_type\"` / `…\"invalid channel\"`"),
        (status = 429, description = "`{\"errCode\":\"TOO_MANY_REQUESTS\",\"errText\":\"too many requests\"}` with `Retry-After`"),
        (status = 503, description = "`{\"errCode\":\"GENERAL_ERROR\",\"errText\":\"service unavailable\"}`")))]
pub async fn token(State(state): State<Shared>, headers: HotHeaders, bytes: Bytes) -> Response {
    let bad = |text: &str| err(StatusCode::BAD_REQUEST, "BAD_REQUEST", text);
    if !device_id_ok(headers.device_id.as_ref()) {
        return general("invalid Device-Id");
    }
    // Read straight from the bytes: only these four fields, borrowed.
    const GRANT_TYPE: usize = 0;
    const CHANNEL: usize = 1;
    const USERNAME: usize = 2;
    const PASSWORD: usize = 3;
    let Some(fields) = body::Fields::read(
        headers.content_type(),
        &bytes,
        ["grant_type", "channel", "username", "password"],
    ) else {
        return bad("invalid request");
    };
    if !fields.is(GRANT_TYPE, "password") {
        return bad("unsupported grant_type");
    }
    if !fields.is(CHANNEL, "sms") {
        return bad("invalid channel");
    }
    let Some(phone) = fields
        .text(USERNAME)
        .ok()
        .flatten()
        .and_then(|t| PhoneNumber::parse(&t, &UK).ok())
    else {
        return check_otp_exception();
    };
    let length = state.otp.policy().code_length();
    let Field::Text(code) = fields.code(PASSWORD, length) else {
        return check_otp_exception();
    };
    let subject = app::subject(purpose::kavoon(), phone);
    if let Err(e) = state.otp.verify(&subject, &code).await {
        app::log_refusal("kavoon", &e);
        return match e.public() {
            p if p.http_status() == 429 => too_many(&e),
            PublicError::Unavailable => unavailable(),
            _ => check_otp_exception(),
        };
    }
    let e164 = phone.e164();
    // True only the first time the number validates, on any process.
    let new_client = match state.facts.claim(Space::KavoonClient, e164, "1").await {
        Ok(earlier) => earlier.is_none(),
        Err(_) => return unavailable(),
    };
    let now = state.otp.now();
    app::json_body(
        StatusCode::OK,
        token_answer(&state.tokens, e164, now, new_client),
    )
}

/// `POST /auth/token`'s answer, in the document's key order:
/// `{"access_token","token_type":"Bearer","expires_in":300,"refresh_token","new_client"}`,
/// the two tokens signed straight into one buffer (compact JWS, base64url
/// and dots: nothing to escape; serialized with `serde_json`, the escape
/// scan of their ~600 bytes was the answer's main cost, and each token
/// was a string of its own, copied in).
fn token_answer(tokens: &Tokens, e164: &str, now: OffsetDateTime, new_client: bool) -> Vec<u8> {
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(b"{\"access_token\":\"");
    tokens.issue_into(
        &mut body,
        "kavoon",
        "access",
        e164,
        e164,
        now,
        KAVOON_ACCESS,
    );
    body.extend_from_slice(b"\",\"token_type\":\"Bearer\",\"expires_in\":");
    app::push_json_int(&mut body, KAVOON_ACCESS.whole_seconds());
    body.extend_from_slice(b",\"refresh_token\":\"");
    tokens.issue_into(
        &mut body,
        "kavoon",
        "refresh",
        e164,
        e164,
        now,
        KAVOON_REFRESH,
    );
    body.extend_from_slice(if new_client {
        b"\",\"new_client\":true}"
    } else {
        b"\",\"new_client\":false}"
    });
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_answer_is_the_documented_object_in_its_order() {
        let tokens = Tokens::new(b"a token key of the tests", b"a kgen key");
        let now =
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or_else(|e| panic!("{e}"));
        for new_client in [true, false] {
            let body = token_answer(&tokens, "+447401101801", now, new_client);
            let value: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
            let token = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
            let (access, refresh) = (token("access_token"), token("refresh_token"));
            assert!(tokens.check(&access, "kavoon", "access", now).is_ok());
            assert!(tokens.check(&refresh, "kavoon", "refresh", now).is_ok());
            // Byte for byte what serde_json writes, keys in this order.
            let expected = serde_json::to_vec(&json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": refresh,
                "new_client": new_client,
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(body, expected);
        }
    }
}
