//! KGen (`kgen-otp-endpoints.md`): register, resend and verify under the
//! caller's `user-jwt-token`. `authCode` is an opaque handle bound to the
//! user, the number and the validation: verifying with another
//! validation's `authCode` fails. Errors are `{"message": …}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use otpflow::{Channel, PhoneNumber, PublicError, Sent, SubjectKey};
use serde_json::{Map, Value, json};

use crate::app::{self, Delivery, Outgoing, Shared, purpose};
use crate::body::{self, Field};
use crate::facts::Space;

fn message(status: StatusCode, text: &str) -> Response {
    app::json(status, &json!({ "message": text }))
}

/// The documented 401.
fn unauthorized() -> Response {
    message(StatusCode::UNAUTHORIZED, "UN_AUTHORIZED")
}

fn refused(e: &otpflow::Error, otherwise: &str) -> Response {
    app::log_refusal("kgen", e);
    match e.public() {
        p if p.http_status() == 429 => app::with_retry_after(
            message(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS"),
            e,
        ),
        PublicError::Unavailable => message(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        _ => message(StatusCode::BAD_REQUEST, otherwise),
    }
}

/// The user the `user-jwt-token` speaks for, then the body and its number.
fn common(
    state: &Shared,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> Result<(String, Map<String, Value>, SubjectKey), Response> {
    let user = headers
        .get("user-jwt-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| state.tokens.kgen_user(t, state.otp.now()).ok())
        .ok_or_else(unauthorized)?;
    let map = body::object(body::content_type(headers), bytes)
        .ok_or_else(|| message(StatusCode::BAD_REQUEST, "INVALID_REQUEST"))?;
    let (Field::Text(national), Field::Text(country)) = (
        body::field(&map, "phone_number"),
        body::field(&map, "countryCode"),
    ) else {
        return Err(message(StatusCode::BAD_REQUEST, "INVALID_REQUEST"));
    };
    let phone = PhoneNumber::from_parts(&country, &national, &app::international())
        .map_err(|_| message(StatusCode::BAD_REQUEST, "INVALID_PHONE_NUMBER"))?;
    Ok((user, map, app::subject(purpose::kgen(), phone)))
}

async fn answer(state: &Shared, user: &str, subject: &SubjectKey, sent: &Sent) -> Response {
    let auth_code = state
        .tokens
        .kgen_auth_code(user, &app::subject_id(subject), sent.generation);
    let is_new = match state
        .facts
        .get(Space::KgenLink, subject.phone().e164())
        .await
    {
        Ok(link) => link.is_none(),
        Err(_) => return message(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
    };
    app::json(
        StatusCode::OK,
        &json!({ "authCode": auth_code, "isNewUser": is_new }),
    )
}

/// `POST /fe/users/auth/otp/register` `{phone_number, countryCode}`.
#[utoipa::path(post, path = "/fe/users/auth/otp/register", tag = "kgen",
    params(("user-jwt-token" = String, Header, description = "The user's JWT (HS256 under `kgen_user_jwt_key`, with `exp` and `user_id` or `sub`)")),
    request_body(content = inline(serde_json::Value), description = "`{\"phone_number\":\"9876543219\",\"countryCode\":\"+91\"}`"),
    responses(
        (status = 200, description = "`{\"authCode\":\"<15 digits>\",\"isNewUser\":true}`"),
        (status = 400, description = "`{\"message\":\"INVALID_REQUEST\"}` / `{\"message\":\"INVALID_PHONE_NUMBER\"}`"),
        (status = 401, description = "`{\"message\":\"UN_AUTHORIZED\"}`"),
        (status = 429, description = "`{\"message\":\"TOO_MANY_REQUESTS\"}` with `Retry-After`")))]
pub async fn register(State(state): State<Shared>, headers: HeaderMap, bytes: Bytes) -> Response {
    let (user, _, subject) = match common(&state, &headers, &bytes) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match state
        .start_and_send(&subject, Channel::Sms, Outgoing { service: "KGen" })
        .await
    {
        Ok(sent) => answer(&state, &user, &subject, &sent).await,
        Err(Delivery::Failed) => message(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        Err(Delivery::Refused(e)) => refused(&e, "INVALID_REQUEST"),
    }
}

/// `POST /fe/users/auth/otp/resend` `{phone_number, countryCode}`.
#[utoipa::path(post, path = "/fe/users/auth/otp/resend", tag = "kgen",
    params(("user-jwt-token" = String, Header, description = "The user's JWT")),
    request_body(content = inline(serde_json::Value), description = "`{\"phone_number\":\"9876543219\",\"countryCode\":\"+91\"}`"),
    responses(
        (status = 200, description = "`{\"authCode\",\"isNewUser\"}` (the same `authCode`: a resend continues the validation)"),
        (status = 400, description = "`{\"message\":\"NO_ACTIVE_OTP\"}` when no code is live; `INVALID_REQUEST` / `INVALID_PHONE_NUMBER`"),
        (status = 401, description = "`{\"message\":\"UN_AUTHORIZED\"}`"),
        (status = 429, description = "`{\"message\":\"TOO_MANY_REQUESTS\"}` with `Retry-After`")))]
pub async fn resend(State(state): State<Shared>, headers: HeaderMap, bytes: Bytes) -> Response {
    let (user, _, subject) = match common(&state, &headers, &bytes) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match state
        .resend_and_send(&subject, Outgoing { service: "KGen" })
        .await
    {
        Ok(sent) => answer(&state, &user, &subject, &sent).await,
        Err(Delivery::Failed) => message(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        Err(Delivery::Refused(e)) => refused(&e, "NO_ACTIVE_OTP"),
    }
}

/// `POST /fe/users/auth/otp/verify` `{phone_number, countryCode, authCode, otp}`.
#[utoipa::path(post, path = "/fe/users/auth/otp/verify", tag = "kgen",
    params(("user-jwt-token" = String, Header, description = "The user's JWT")),
    request_body(content = inline(serde_json::Value), description = "`{\"phone_number\":\"9876543219\",\"countryCode\":\"+91\",\"authCode\":100000000000000,\"otp\":596097}`; `authCode` and `otp` JSON numbers or strings"),
    responses(
        (status = 200, description = "`{\"message\":\"Users linked successfully\"}`"),
        (status = 400, description = "`{\"message\":\"INVALID_OTP\"}` for a wrong, expired, used or unknown code or an `authCode` of another validation"),
        (status = 401, description = "`{\"message\":\"UN_AUTHORIZED\"}`"),
        (status = 429, description = "`{\"message\":\"TOO_MANY_REQUESTS\"}` with `Retry-After`")))]
pub async fn verify(State(state): State<Shared>, headers: HeaderMap, bytes: Bytes) -> Response {
    let (user, map, subject) = match common(&state, &headers, &bytes) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let length = state.otp.policy().code_length();
    let (Field::Text(auth_code), Field::Text(code)) = (
        body::field(&map, "authCode"),
        body::code(&map, "otp", length),
    ) else {
        return message(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    };
    let invalid = || message(StatusCode::BAD_REQUEST, "INVALID_OTP");
    // The authCode names the validation: check it against the current one
    // before spending an attempt on the code.
    let status = match state.otp.status(&subject).await {
        Ok(s) => s,
        Err(e) => return refused(&e, "INVALID_OTP"),
    };
    if !state.tokens.kgen_auth_code_matches(
        auth_code.trim(),
        &user,
        &app::subject_id(&subject),
        status.generation,
    ) {
        return invalid();
    }
    match state.otp.verify(&subject, &code).await {
        Ok(_) => match state
            .facts
            .put(Space::KgenLink, subject.phone().e164(), &user)
            .await
        {
            Ok(()) => message(StatusCode::OK, "Users linked successfully"),
            Err(_) => message(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        },
        Err(e) => refused(&e, "INVALID_OTP"),
    }
}
