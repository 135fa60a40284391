//! Verifik: phone login (`verifik-phone-login.md`) and app-registration
//! phone validations (`verifik-phone-validations.md`). Errors are
//! `{"code","message"}`; the documented ones are served byte for byte.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use otpflow::{Channel, Error, PhoneError, PhoneNumber, Sent, SubjectKey};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::app::{self, Delivery, HotHeaders, Outgoing, Shared, purpose};
use crate::body::{self, Field};
use crate::tokens::{Tokens, VERIFIK_LOGIN, VERIFIK_REGISTRATION};

/// What the answer's `otp` field holds: Verifik puts a bcrypt hash of the
/// code there, which a 6-digit code space brute-forces in seconds. This
/// service says only that the code is not disclosed.
pub const OTP_PLACEHOLDER: &str = "not-disclosed";

fn err(status: StatusCode, code: &str, message: &str) -> Response {
    app::json(status, &json!({ "code": code, "message": message }))
}

/// `{"code": c, "message": "NNN:c"}`, the shape of the documented errors.
fn coded(status: StatusCode, code: &str) -> Response {
    err(status, code, &format!("{}:{code}", status.as_u16()))
}

fn not_found() -> Response {
    coded(StatusCode::NOT_FOUND, "phone_validation_not_found")
}

fn unavailable() -> Response {
    coded(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
}

fn invalid_country_code() -> Response {
    err(
        StatusCode::CONFLICT,
        "MissingParameter",
        "Invalid countryCode format. CountryCode should be in the format + followed by 1 to 3 digits.",
    )
}

/// `MissingParameter` naming every missing field, in the document's order
/// and wording (`missing phone\n. missing countryCode\n. missing otp`).
fn missing(fields: &[&str]) -> Response {
    let message = fields
        .iter()
        .map(|f| format!("missing {f}"))
        .collect::<Vec<_>>()
        .join("\n. ");
    err(StatusCode::CONFLICT, "MissingParameter", &message)
}

fn invalid_argument(what: &str) -> Response {
    err(
        StatusCode::CONFLICT,
        "InvalidArgument",
        &format!("Invalid {what}"),
    )
}

/// Maps a refusal of a start or resend.
fn refused_start(e: &Error) -> Response {
    app::log_refusal("verifik", e);
    match e {
        Error::InvalidPhone(_) => invalid_argument("phone"),
        Error::Store(_) | Error::Contention => unavailable(),
        // Lockouts, cooldowns and send budgets, whatever their variant.
        _ if e.http_status() == 429 => {
            app::with_retry_after(coded(StatusCode::TOO_MANY_REQUESTS, "too_many_requests"), e)
        }
        _ => coded(StatusCode::BAD_REQUEST, "invalid_request"),
    }
}

/// Maps a refusal of a check: the documented 403, 404 and 412, then 429
/// and 503.
fn refused_check(e: &Error) -> Response {
    app::log_refusal("verifik", e);
    match e {
        Error::CodeMismatch { .. } | Error::MalformedCode => {
            coded(StatusCode::FORBIDDEN, "otp_does_not_match")
        }
        Error::NotFound | Error::AlreadyValidated | Error::Canceled => not_found(),
        Error::Expired => coded(
            StatusCode::PRECONDITION_FAILED,
            "phoneValidation_has_expired",
        ),
        Error::Store(_) | Error::Contention => unavailable(),
        // Spent checks, lockouts and blocks, whatever their variant.
        _ if e.http_status() == 429 => {
            app::with_retry_after(coded(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"), e)
        }
        _ => not_found(),
    }
}

/// What is wrong with a body's number.
enum PhoneProblem {
    /// These fields are missing.
    Missing(Vec<&'static str>),
    /// `countryCode` is not `+` and 1–3 digits.
    CountryCode,
    /// The number is not a valid mobile.
    Phone,
}

impl PhoneProblem {
    /// The answer, with `invalid_phone` for a number that does not parse.
    fn answer(self, invalid_phone: fn() -> Response) -> Response {
        match self {
            Self::Missing(fields) => missing(&fields),
            Self::CountryCode => invalid_country_code(),
            Self::Phone => invalid_phone(),
        }
    }
}

fn invalid_phone() -> Response {
    invalid_argument("phone")
}

/// The phone and country code of a body, checked in the document's order:
/// every missing field first (with `extra` required fields), then the
/// country-code format, then the number itself.
fn phone_of(
    map: &Map<String, Value>,
    extra: &[(&'static str, bool)],
) -> Result<(PhoneNumber, String, String), PhoneProblem> {
    phone_from(
        body::field(map, "phone"),
        body::field(map, "countryCode"),
        extra,
    )
}

/// As [`phone_of`], from the two fields already read.
fn phone_from(
    phone: Field,
    country: Field,
    extra: &[(&'static str, bool)],
) -> Result<(PhoneNumber, String, String), PhoneProblem> {
    let mut absent = Vec::new();
    if phone.is_missing() {
        absent.push("phone");
    }
    if country.is_missing() {
        absent.push("countryCode");
    }
    absent.extend(
        extra
            .iter()
            .filter(|(_, present)| !present)
            .map(|(n, _)| *n),
    );
    if !absent.is_empty() {
        return Err(PhoneProblem::Missing(absent));
    }
    let Field::Text(country) = country else {
        return Err(PhoneProblem::CountryCode);
    };
    let country = country.trim().to_owned();
    let Field::Text(phone) = phone else {
        return Err(PhoneProblem::Phone);
    };
    // "Spaces will be automatically removed during processing."
    let phone: String = phone.chars().filter(|c| *c != ' ').collect();
    match PhoneNumber::from_parts(&country, &phone, &app::international()) {
        Ok(number) => Ok((number, country, phone)),
        Err(PhoneError::InvalidCountryCode) => Err(PhoneProblem::CountryCode),
        Err(_) => Err(PhoneProblem::Phone),
    }
}

fn gateway(map: &Map<String, Value>) -> Result<Channel, Response> {
    gateway_from(body::field(map, "phoneGateway"))
}

/// As [`gateway`], from the field already read.
fn gateway_from(field: Field) -> Result<Channel, Response> {
    match field {
        Field::Missing => Ok(Channel::Sms),
        Field::Text(g) => match g.as_str() {
            "sms" => Ok(Channel::Sms),
            "whatsapp" => Ok(Channel::Whatsapp),
            "none" => Ok(Channel::None),
            _ => Err(invalid_argument("phoneGateway")),
        },
        Field::Invalid => Err(invalid_argument("phoneGateway")),
    }
}

/// An instant as Verifik writes it: `2026-11-29T00:30:00.000Z`.
pub fn timestamp(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

fn signature(now: OffsetDateTime) -> Value {
    let fmt = format_description!(
        "[month repr:long] [day padding:none], [year] [hour repr:12 padding:none]:[minute] [period]"
    );
    json!({
        "dateTime": now.format(fmt).unwrap_or_default(),
        "message": "Certified by Verifik.co",
    })
}

/// The `data` object of a sent validation.
fn sent_data(
    tokens: &Tokens,
    subject: &SubjectKey,
    sent: &Sent,
    country: &str,
    phone: &str,
    kind: &str,
    now: OffsetDateTime,
) -> Value {
    json!({
        "status": "sent",
        "countryCode": country,
        "phone": phone,
        "phoneGateway": sent.channel.as_str(),
        "otp": OTP_PLACEHOLDER,
        "expiresAt": timestamp(sent.expires_at),
        "type": kind,
        "language": "en",
        "_id": tokens.validation_id(&app::subject_id(subject), sent.generation),
        "updatedAt": timestamp(now),
        "createdAt": timestamp(now),
        "new": !sent.resent,
        "providerConfirmation": {},
    })
}

async fn send(state: &Shared, subject: &SubjectKey, channel: Channel) -> Result<Sent, Response> {
    state
        .start_and_send(subject, channel, Outgoing { service: "Verifik" })
        .await
        .map_err(|d| match d {
            Delivery::Failed => unavailable(),
            Delivery::Refused(e) => refused_start(&e),
        })
}

fn object(headers: &HeaderMap, bytes: &Bytes) -> Result<Map<String, Value>, Response> {
    body::object(body::content_type(headers), bytes).ok_or_else(invalid_content)
}

/// A body that is not a JSON object (nor a form).
fn invalid_content() -> Response {
    err(
        StatusCode::BAD_REQUEST,
        "InvalidContent",
        "Invalid JSON body",
    )
}

/// `POST /v2/projects/phone-login` `{countryCode, phone, type: "login"}`.
#[utoipa::path(post, path = "/v2/projects/phone-login", tag = "verifik",
    request_body(content = inline(serde_json::Value), description = "`{\"countryCode\":\"+44\",\"phone\":7401101801,\"type\":\"login\",\"phoneGateway\"?:\"sms\"|\"whatsapp\"|\"none\"}`; `phone` a JSON number or string"),
    responses(
        (status = 200, description = "`{\"data\":{\"status\":\"sent\",\"countryCode\",\"phone\",\"phoneGateway\",\"otp\":\"not-disclosed\",\"expiresAt\",\"type\":\"login\",\"language\":\"en\",\"_id\",\"updatedAt\",\"createdAt\",\"new\",\"providerConfirmation\":{}},\"signature\":{\"dateTime\",\"message\"},\"id\"}`"),
        (status = 409, description = "`MissingParameter` (missing fields, country-code format) or `InvalidArgument`"),
        (status = 429, description = "`{\"code\":\"too_many_requests\",\"message\":\"429:too_many_requests\"}`"),
        (status = 503, description = "`{\"code\":\"service_unavailable\",\"message\":\"503:service_unavailable\"}`")))]
pub async fn login(State(state): State<Shared>, headers: HeaderMap, bytes: Bytes) -> Response {
    let map = match object(&headers, &bytes) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let kind = body::field(&map, "type");
    let (phone, country, national) = match phone_of(&map, &[("type", !kind.is_missing())]) {
        Ok(p) => p,
        Err(p) => return p.answer(invalid_phone),
    };
    if !matches!(&kind, Field::Text(k) if k == "login") {
        return invalid_argument("type");
    }
    let channel = match gateway(&map) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let subject = app::subject(purpose::verifik_login(), phone);
    let sent = match send(&state, &subject, channel).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = state.otp.now();
    app::json(
        StatusCode::OK,
        &json!({
            "data": sent_data(&state.tokens, &subject, &sent, &country, &national, "login", now),
            "signature": signature(now),
            "id": Tokens::request_id(),
        }),
    )
}

/// `POST /v2/projects/phone-login/confirm` `{countryCode, phone, otp}`.
#[utoipa::path(post, path = "/v2/projects/phone-login/confirm", tag = "verifik",
    request_body(content = inline(serde_json::Value), description = "`{\"countryCode\":\"+44\",\"phone\":7401101801,\"otp\":\"123456\"}`; `otp` a string or a JSON number"),
    responses(
        (status = 200, description = "`{\"data\":{\"accessToken\":\"<JWT, 30 days>\",\"tokenType\":\"bearer\"}}`"),
        (status = 403, description = "`{\"code\":\"otp_does_not_match\",\"message\":\"403:otp_does_not_match\"}`"),
        (status = 404, description = "`{\"code\":\"phone_validation_not_found\",\"message\":\"404:phone_validation_not_found\"}`"),
        (status = 409, description = "`MissingParameter` / `InvalidArgument`"),
        (status = 412, description = "`{\"code\":\"phoneValidation_has_expired\",\"message\":\"412:phoneValidation_has_expired\"}`"),
        (status = 429, description = "`{\"code\":\"too_many_attempts\",\"message\":\"429:too_many_attempts\"}`")))]
pub async fn login_confirm(
    State(state): State<Shared>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let map = match object(&headers, &bytes) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let length = state.otp.policy().code_length();
    let otp = body::code(&map, "otp", length);
    let (phone, _, _) = match phone_of(&map, &[("otp", !otp.is_missing())]) {
        Ok(p) => p,
        Err(p) => return p.answer(invalid_phone),
    };
    let Field::Text(code) = otp else {
        return coded(StatusCode::FORBIDDEN, "otp_does_not_match");
    };
    let subject = app::subject(purpose::verifik_login(), phone);
    if let Err(e) = state.otp.verify(&subject, &code).await {
        return refused_check(&e);
    }
    let now = state.otp.now();
    let e164 = phone.e164();
    match state
        .tokens
        .issue("verifik", "access", e164, e164, now, VERIFIK_LOGIN)
    {
        Ok(token) => app::json(
            StatusCode::OK,
            &json!({ "data": { "accessToken": token, "tokenType": "bearer" } }),
        ),
        Err(_) => unavailable(),
    }
}

/// `POST /v2/app-registrations` `{countryCode, phone, phoneGateway?}`:
/// creates an app registration, sends its phone validation's code, and
/// answers with the token `PUT /v2/phone-validations` needs.
#[utoipa::path(post, path = "/v2/app-registrations", tag = "verifik",
    request_body(content = inline(serde_json::Value), description = "`{\"countryCode\":\"+507\",\"phone\":\"6264 7737\",\"phoneGateway\"?:\"sms\"}`"),
    responses(
        (status = 200, description = "`{\"data\":{\"_id\",\"status\":\"pending\",\"countryCode\",\"phone\",\"phoneValidation\":{…as phone-login, type onboarding}},\"token\":\"<JWT, 1 hour>\"}`"),
        (status = 409, description = "`MissingParameter` / `InvalidArgument`"),
        (status = 429, description = "`{\"code\":\"too_many_requests\",\"message\":\"429:too_many_requests\"}`")))]
pub async fn app_registration(
    State(state): State<Shared>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let map = match object(&headers, &bytes) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (phone, country, national) = match phone_of(&map, &[]) {
        Ok(p) => p,
        Err(p) => return p.answer(invalid_phone),
    };
    let channel = match gateway(&map) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let subject = app::subject(purpose::verifik_onboarding(), phone);
    let sent = match send(&state, &subject, channel).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = state.otp.now();
    let validation = sent_data(
        &state.tokens,
        &subject,
        &sent,
        &country,
        &national,
        "onboarding",
        now,
    );
    let registration = state.tokens.validation_id(
        &format!("registration:{}", app::subject_id(&subject)),
        sent.generation,
    );
    let Ok(token) = state.tokens.issue(
        "verifik",
        "app_registration",
        &registration,
        phone.e164(),
        now,
        VERIFIK_REGISTRATION,
    ) else {
        return unavailable();
    };
    app::json(
        StatusCode::OK,
        &json!({
            "data": {
                "_id": registration,
                "status": "pending",
                "countryCode": country,
                "phone": national,
                "phoneValidation": validation,
            },
            "token": token,
        }),
    )
}

/// `PUT /v2/phone-validations` `{phone, countryCode, otp, phoneGateway?}`
/// with the app registration's `Authorization: Bearer` token.
#[utoipa::path(put, path = "/v2/phone-validations", tag = "verifik",
    request_body(content = inline(serde_json::Value), description = "`{\"phone\":\"62647737\",\"countryCode\":\"+507\",\"otp\":123456}`; `otp` a JSON number (leading zeros restored) or string"),
    responses(
        (status = 200, description = "`{\"data\":{\"_id\",\"status\":\"validated\",\"countryCode\",\"phone\",\"type\":\"onboarding\",\"showFaceLivenessRecommendation\":false}}`"),
        (status = 401, description = "`{\"code\":\"InvalidCredentials\",\"message\":\"401:invalid_token\"}`"),
        (status = 403, description = "`{\"code\":\"otp_does_not_match\",\"message\":\"403:otp_does_not_match\"}`"),
        (status = 404, description = "`{\"code\":\"phone_validation_not_found\",\"message\":\"404:phone_validation_not_found\"}`"),
        (status = 409, description = "`{\"code\":\"MissingParameter\",\"message\":\"missing phone\\n. missing countryCode\\n. missing otp\"}` (the missing ones), or the country-code format message"),
        (status = 412, description = "`{\"code\":\"phoneValidation_has_expired\",\"message\":\"412:phoneValidation_has_expired\"}`"),
        (status = 429, description = "`{\"code\":\"too_many_attempts\",\"message\":\"429:too_many_attempts\"}`")))]
pub async fn validate(State(state): State<Shared>, headers: HotHeaders, bytes: Bytes) -> Response {
    let token = headers
        .authorization
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let now = state.otp.now();
    let Some(claims) = token.and_then(|t| {
        state
            .tokens
            .check(t, "verifik", "app_registration", now)
            .ok()
    }) else {
        return err(
            StatusCode::UNAUTHORIZED,
            "InvalidCredentials",
            "401:invalid_token",
        );
    };
    // Read straight from the bytes: only these four fields.
    let Some(fields) = body::Fields::read(
        headers.content_type(),
        &bytes,
        ["phone", "countryCode", "otp", "phoneGateway"],
    ) else {
        return invalid_content();
    };
    let length = state.otp.policy().code_length();
    let otp = fields.code(2, length);
    let (phone, country, national) = match phone_from(
        fields.field(0),
        fields.field(1),
        &[("otp", !otp.is_missing())],
    ) {
        Ok(p) => p,
        // A number that cannot be valid has no validation.
        Err(p) => return p.answer(not_found),
    };
    if gateway_from(fields.field(3)).is_err() {
        return invalid_argument("phoneGateway");
    }
    // The token speaks for one number: another number's validation is not
    // found under this registration.
    if claims.phone != phone.e164() {
        return not_found();
    }
    let Field::Text(code) = otp else {
        return coded(StatusCode::FORBIDDEN, "otp_does_not_match");
    };
    let subject = app::subject(purpose::verifik_onboarding(), phone);
    match state.otp.verify(&subject, &code).await {
        Ok(done) => app::json_typed(
            StatusCode::OK,
            &Validated {
                data: ValidatedData {
                    id: &state
                        .tokens
                        .validation_id(&app::subject_id(&subject), done.generation),
                    status: "validated",
                    country_code: &country,
                    phone: &national,
                    kind: "onboarding",
                    show_face_liveness_recommendation: false,
                },
            },
        ),
        Err(e) => refused_check(&e),
    }
}

/// `PUT /v2/phone-validations`' answer, serialized straight from the struct.
#[derive(serde::Serialize)]
struct Validated<'a> {
    data: ValidatedData<'a>,
}

/// Its `data`, in the document's key order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidatedData<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    status: &'a str,
    country_code: &'a str,
    phone: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    show_face_liveness_recommendation: bool,
}
