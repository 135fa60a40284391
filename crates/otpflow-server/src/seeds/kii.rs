//! Kii (`kii-verify-phone-number.md`): verify a user's phone number with
//! the code sent to it, and the resend route a Kii user calls to have the
//! code sent. Answers carry Kii's vendor content types.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpflow::{Channel, PublicError};
use serde_json::{Value, json};

use crate::app::{self, Delivery, Outgoing, Shared};
use crate::body::{self, Field};
use crate::facts::{Space, kii_key};
use crate::kii::{App, Caller, Lookup, User};

/// The request content type the document names (`application/json` is
/// accepted too).
pub const REQUEST_TYPE: &str = "application/vnd.kii.AddressVerificationRequest+json";

fn kii(status: StatusCode, content_type: &'static str, value: &Value) -> Response {
    app::json_as(status, content_type, value)
}

fn plain(status: StatusCode, code: &str, message: &str) -> Response {
    app::json(status, &json!({ "errorCode": code, "message": message }))
}

fn user_not_found(lookup: &Lookup, app_id: &str) -> Response {
    let (field, value) = lookup.field_value();
    kii(
        StatusCode::NOT_FOUND,
        "application/vnd.kii.UserNotFoundException+json",
        &json!({
            "errorCode": "USER_NOT_FOUND",
            "message": "User not found",
            "field": field,
            "value": value,
            "appID": app_id,
        }),
    )
}

fn already_verified(user: &User, app_id: &str, lookup: &Lookup) -> Response {
    kii(
        StatusCode::BAD_REQUEST,
        "application/vnd.kii.InvalidAccountStatusException+json",
        &json!({
            "errorCode": "INVALID_ACCOUNT_STATUS",
            "message": "The phone number is already verified",
            "userID": user.user_id,
            "appID": app_id,
            "accountType": lookup.account_type(),
        }),
    )
}

fn invalid_code(user: &User, app_id: &str, code: &str) -> Response {
    kii(
        StatusCode::FORBIDDEN,
        "application/vnd.kii.InvalidVerificationCodeException+json",
        &json!({
            "errorCode": "INVALID_VERIFICATION_CODE",
            "message": "The verification code is invalid",
            "userID": user.user_id,
            "appID": app_id,
            "verificationCode": code,
        }),
    )
}

fn in_use(user: &User) -> Response {
    kii(
        StatusCode::CONFLICT,
        "application/vnd.kii.AddressAlreadyInUseException+json",
        &json!({
            "errorCode": "USER_ALREADY_EXISTS",
            "message": "The phone number is verified by another user",
            "field": "phoneNumber",
            "value": user.phone.e164(),
        }),
    )
}

fn disabled(user: &User, app_id: &str) -> Response {
    kii(
        StatusCode::UNAUTHORIZED,
        "application/vnd.kii.UserDisabledException+json",
        &json!({
            "errorCode": "USER_DISABLED",
            "message": "The user is disabled",
            "UserID": user.user_id,
            "appID": app_id,
        }),
    )
}

fn refused(e: &otpflow::Error) -> Option<Response> {
    app::log_refusal("kii", e);
    match e.public() {
        p if p.http_status() == 429 => Some(app::with_retry_after(
            plain(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "Too many requests; retry later",
            ),
            e,
        )),
        PublicError::Unavailable => Some(unavailable()),
        _ => None,
    }
}

fn unavailable() -> Response {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        "The service is unavailable; retry later",
    )
}

/// The checks both routes share, in order: the app, the credentials, the
/// user, a Bearer token's owner, disabled, already verified, verified by
/// another user (the file's flags, then the shared facts).
async fn resolve<'a>(
    state: &'a Shared,
    app_id: &str,
    segment: &str,
    headers: &HeaderMap,
) -> Result<(&'a App, User, Lookup), Response> {
    let Some(app) = state.kii.app(app_id) else {
        return Err(app::json(
            StatusCode::NOT_FOUND,
            &json!({
                "errorCode": "APP_NOT_FOUND",
                "message": "The application was not found",
                "appID": app_id,
            }),
        ));
    };
    let caller = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| app.authenticate(app_id, v));
    let Some(caller) = caller else {
        return Err(plain(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "The Authorization header is missing or invalid",
        ));
    };
    let lookup = Lookup::parse(segment);
    let Some(user) = app.find(&lookup, &caller).cloned() else {
        return Err(user_not_found(&lookup, app_id));
    };
    if let Caller::User(id) = &caller
        && *id != user.user_id
    {
        return Err(plain(
            StatusCode::FORBIDDEN,
            "ACCESS_DENIED",
            "The token does not grant access to this user",
        ));
    }
    if user.disabled {
        return Err(disabled(&user, app_id));
    }
    let verifier = state
        .facts
        .get(Space::KiiVerified, &kii_key(app_id, user.phone.e164()))
        .await
        .map_err(|_| unavailable())?;
    if user.phone_verified || verifier.as_deref() == Some(user.user_id.as_str()) {
        return Err(already_verified(&user, app_id, &lookup));
    }
    if verifier.is_some() || app.verified_by_other_in_file(&user.user_id, &user.phone) {
        return Err(in_use(&user));
    }
    Ok((app, user, lookup))
}

/// `POST /api/apps/{appID}/users/{accountType}:{address}/phone-number/verify`
/// `{verificationCode}`.
#[utoipa::path(post, path = "/api/apps/{app_id}/users/{user}/phone-number/verify", tag = "kii",
    params(("app_id" = String, Path, description = "The app id"),
           ("user" = String, Path, description = "`{accountType}:{address}` (`PHONE:+447401101801`, `LOGIN_NAME:alice`, `EMAIL:a@b.c`), a user id, or `me`")),
    request_body(content = inline(serde_json::Value), content_type = "application/vnd.kii.AddressVerificationRequest+json", description = "`{\"verificationCode\":\"123456\"}`; `Authorization: Basic base64(appID:appKey)` or `Bearer <user token>`"),
    responses(
        (status = 200, description = "`application/vnd.kii.AddressVerificationResponse+json` `{\"verificationStatus\":\"VERIFIED\"}`"),
        (status = 400, description = "`INVALID_ACCOUNT_STATUS` {errorCode, message, userID, appID, accountType}; `INVALID_INPUT_DATA` for a body without a code"),
        (status = 401, description = "`USER_DISABLED` {errorCode, message, UserID, appID}; `UNAUTHORIZED` for missing or bad credentials"),
        (status = 403, description = "`INVALID_VERIFICATION_CODE` {errorCode, message, userID, appID, verificationCode}; `ACCESS_DENIED` for another user's token"),
        (status = 404, description = "`USER_NOT_FOUND` {errorCode, message, field, value, appID}; `APP_NOT_FOUND`"),
        (status = 409, description = "`USER_ALREADY_EXISTS` {errorCode, message, field: \"phoneNumber\", value}"),
        (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`"),
        (status = 429, description = "`TOO_MANY_REQUESTS` with `Retry-After`")))]
pub async fn verify(
    State(state): State<Shared>,
    Path((app_id, segment)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let (app, user, _) = match resolve(&state, &app_id, &segment, &headers).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let content_type = body::content_type(&headers)
        .and_then(|ct| ct.split(';').next())
        .map(str::trim);
    if !content_type.is_some_and(|ct| {
        ct.eq_ignore_ascii_case(REQUEST_TYPE) || ct.eq_ignore_ascii_case("application/json")
    }) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/vnd.kii.AddressVerificationRequest+json",
        );
    }
    let length = state.otp.policy().code_length();
    let code = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => body::code(&map, "verificationCode", length),
        _ => Field::Invalid,
    };
    let Field::Text(code) = code else {
        return plain(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT_DATA",
            "verificationCode is required",
        );
    };
    let subject = app::subject(app.purpose().clone(), user.phone);
    if let Err(e) = state.otp.verify(&subject, &code).await {
        return refused(&e).unwrap_or_else(|| invalid_code(&user, &app_id, &code));
    }
    // The number is this user's unless another user of the app claimed it
    // meanwhile (on any process).
    match state
        .facts
        .claim(
            Space::KiiVerified,
            &kii_key(&app_id, user.phone.e164()),
            &user.user_id,
        )
        .await
    {
        Ok(None) => {}
        Ok(Some(earlier)) if earlier == user.user_id => {}
        Ok(Some(_)) => return in_use(&user),
        Err(_) => return unavailable(),
    }
    kii(
        StatusCode::OK,
        "application/vnd.kii.AddressVerificationResponse+json",
        &json!({ "verificationStatus": "VERIFIED" }),
    )
}

/// `POST /api/apps/{appID}/users/{accountType}:{address}/phone-number/resend-verification-code`:
/// sends (or resends) the code to the user's number.
#[utoipa::path(post, path = "/api/apps/{app_id}/users/{user}/phone-number/resend-verification-code", tag = "kii",
    params(("app_id" = String, Path, description = "The app id"),
           ("user" = String, Path, description = "`{accountType}:{address}`, a user id, or `me`")),
    responses(
        (status = 204, description = "The code is on its way"),
        (status = 400, description = "`INVALID_ACCOUNT_STATUS`"),
        (status = 401, description = "`USER_DISABLED` / `UNAUTHORIZED`"),
        (status = 404, description = "`USER_NOT_FOUND` / `APP_NOT_FOUND`"),
        (status = 409, description = "`USER_ALREADY_EXISTS`"),
        (status = 429, description = "`TOO_MANY_REQUESTS` with `Retry-After`")))]
pub async fn resend(
    State(state): State<Shared>,
    Path((app_id, segment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (app, user, _) = match resolve(&state, &app_id, &segment, &headers).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let subject = app::subject(app.purpose().clone(), user.phone);
    match state
        .start_and_send(&subject, Channel::Sms, Outgoing { service: "Kii" })
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(Delivery::Failed) => unavailable(),
        Err(Delivery::Refused(e)) => refused(&e).unwrap_or_else(|| {
            plain(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT_DATA",
                "The code cannot be sent",
            )
        }),
    }
}
