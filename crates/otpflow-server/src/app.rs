//! The shared state, the router and the small answers every seed uses.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use otpflow::{Channel, Error, PhonePolicy, Purpose, Sent, SubjectKey};
use serde_json::Value;

use crate::backend::Otp;
use crate::facts::Facts;
use crate::kii::KiiDirectory;
use crate::sender::{Message, Sender};
use crate::tokens::Tokens;

/// Everything a request handler needs.
pub struct AppState {
    /// otpflow over the configured store.
    pub otp: Otp,
    /// Where codes go.
    pub sender: Box<dyn Sender>,
    /// Tokens and ids.
    pub tokens: Arc<Tokens>,
    /// Kii apps and users.
    pub kii: KiiDirectory,
    /// Kavoon's clients, KGen's links and Kii's verified numbers, in the
    /// configured store (shared by every process on it).
    pub facts: Box<dyn Facts>,
    /// Admin token for the test hooks (test builds only).
    #[cfg(feature = "test-hooks")]
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The shared state as handlers receive it.
pub type Shared = Arc<AppState>;

/// Locks a mutex, recovering from poisoning (what it guards stays
/// consistent: each change is one write).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The purposes of the seed APIs: one per seed (per app for Kii), so no two
/// share codes, failure budgets or send budgets.
pub mod purpose {
    use otpflow::Purpose;

    /// Kavoon's.
    pub fn kavoon() -> Purpose {
        Purpose::custom("kavoon").unwrap_or(Purpose::Login)
    }
    /// Verifik's login.
    pub fn verifik_login() -> Purpose {
        Purpose::custom("verifik-login").unwrap_or(Purpose::Login)
    }
    /// Verifik's onboarding (app registration).
    pub fn verifik_onboarding() -> Purpose {
        Purpose::custom("verifik-onboarding").unwrap_or(Purpose::Onboarding)
    }
    /// KGen's.
    pub fn kgen() -> Purpose {
        Purpose::custom("kgen").unwrap_or(Purpose::Login)
    }
}

/// The phone policy of the international seeds (Verifik, KGen, Kii): any
/// country, mobiles only.
pub fn international() -> PhonePolicy {
    PhonePolicy::default()
}

/// What a start or resend needs from the seed to word its message.
pub struct Outgoing<'a> {
    /// The service name shown in the text.
    pub service: &'a str,
}

impl AppState {
    /// Starts a validation (or resends a live one) and delivers its code.
    ///
    /// # Errors
    /// otpflow's refusal, or [`Error::Contention`]-like
    /// [`Delivery::Failed`] when the sender fails.
    pub async fn start_and_send(
        &self,
        subject: &SubjectKey,
        channel: Channel,
        out: Outgoing<'_>,
    ) -> Result<Sent, Delivery> {
        let sent = self
            .otp
            .start(subject, channel)
            .await
            .map_err(Delivery::Refused)?;
        self.deliver(subject, &sent, out).await?;
        Ok(sent)
    }

    /// Resends the live validation's code and delivers it.
    ///
    /// # Errors
    /// As [`AppState::start_and_send`].
    pub async fn resend_and_send(
        &self,
        subject: &SubjectKey,
        out: Outgoing<'_>,
    ) -> Result<Sent, Delivery> {
        let sent = self
            .otp
            .resend(subject, None)
            .await
            .map_err(Delivery::Refused)?;
        self.deliver(subject, &sent, out).await?;
        Ok(sent)
    }

    async fn deliver(
        &self,
        subject: &SubjectKey,
        sent: &Sent,
        out: Outgoing<'_>,
    ) -> Result<(), Delivery> {
        let message = Message {
            to: subject.phone().e164().to_owned(),
            channel: sent.channel.as_str(),
            purpose: subject.purpose().as_str().to_owned(),
            code: sent.code.as_str().to_owned(),
            text: format!(
                "Your {} verification code is {}. It expires in {} minutes.",
                out.service,
                sent.code.as_str(),
                self.otp.policy().code_lifetime().whole_minutes()
            ),
        };
        if let Err(e) = self.sender.send(&message) {
            tracing::error!(error = %e, purpose = %subject.purpose(), "delivery failed");
            // The message never left: give its budgets back (the subject's
            // and every budget key it spent), so an outage costs users
            // nothing.
            let refunded = self.otp.report_failed(subject, sent.send).await;
            if let Err(e) = refunded {
                tracing::error!(error = %e, "delivery report failed");
            }
            return Err(Delivery::Failed);
        }
        Ok(())
    }
}

/// The request headers the hot routes read (`Content-Type`, `Device-Id`,
/// `Authorization`; the first of each), taken out of the request without
/// copying its header map (axum's `HeaderMap` extractor clones the whole
/// map: two allocations and a copy of every header per request).
#[derive(Debug, Default)]
pub struct HotHeaders {
    /// `Content-Type`.
    pub content_type: Option<HeaderValue>,
    /// `Device-Id` (Kavoon).
    pub device_id: Option<HeaderValue>,
    /// `Authorization`.
    pub authorization: Option<HeaderValue>,
}

impl HotHeaders {
    /// `Content-Type`, if it is text.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_ref().and_then(|v| v.to_str().ok())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for HotHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        Ok(Self {
            content_type: headers.get(header::CONTENT_TYPE).cloned(),
            device_id: headers.get("device-id").cloned(),
            authorization: headers.get(header::AUTHORIZATION).cloned(),
        })
    }
}

/// Why a start or resend gave no delivered code.
#[derive(Debug)]
pub enum Delivery {
    /// otpflow refused.
    Refused(Error),
    /// The sender failed (the validation exists; the code did not go out).
    Failed,
}

/// A JSON answer whose bytes are `value` serialized compactly, fields in
/// the order written.
pub fn json(status: StatusCode, value: &Value) -> Response {
    json_as(status, "application/json", value)
}

/// A JSON answer serialized straight from a typed value (no `Value` map
/// built first; the hot routes' answers), into a buffer of 1 KiB made once
/// (the hot answers fit: no regrowth while writing).
pub fn json_typed<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let mut body = Vec::with_capacity(1024);
    if serde_json::to_writer(&mut body, value).is_err() {
        body.clear();
        body.extend_from_slice(b"{}");
    }
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A JSON answer whose body is already written (`application/json`).
pub fn json_body(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Appends `text` to `out` as a JSON string, byte for byte as
/// `serde_json` writes it: copied as it is when nothing in it needs an
/// escape (control characters, `"` and `\`; the hot answers' tokens,
/// numbers, hex ids and fixed names never do), else escaped by
/// `serde_json`. (`serde_json` looks every byte up in its escape table
/// and branches on it; the tokens of a Kavoon answer made that ~7 000
/// instructions a request.)
///
/// ```
/// let mut out = Vec::new();
/// otpflow_server::app::push_json_str(&mut out, "+447401101801");
/// otpflow_server::app::push_json_str(&mut out, "a\"b\n");
/// assert_eq!(out, br#""+447401101801""a\"b\n""#);
/// ```
pub fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // A fold without early exit, so the compiler checks 16 bytes a step
    // (`all` stops at the first hit and is checked a byte at a time).
    let needs_escape = text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        match serde_json::to_vec(text) {
            Ok(escaped) => out.extend_from_slice(&escaped),
            // A `str` always serializes; were it not to, an empty string
            // stands in (never a half-written one).
            Err(_) => out.extend_from_slice(b"\"\""),
        }
    }
}

/// Appends the decimal digits of `n` (as `serde_json` writes an integer).
pub fn push_json_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A JSON answer with its own content type (Kii's vendor types).
pub fn json_as(status: StatusCode, content_type: &'static str, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Adds `Retry-After` (whole seconds, rounded up) when the refusal has one.
pub fn with_retry_after(mut response: Response, error: &Error) -> Response {
    // The public form's wait: a cooldown's or a send budget's is rounded up
    // to whole minutes, so the header never carries the instant a code went
    // out (the exact wait stays in the error, for the service's own use).
    if let Some(after) = error.public().retry_after() {
        let secs = after.whole_seconds() + i64::from(after.subsec_nanoseconds() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(0).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

/// Logs a refusal the service did not expect (store failures) at `warn`.
pub fn log_refusal(seed: &str, error: &Error) {
    match error.http_status() {
        500.. => tracing::warn!(seed, code = error.code(), error = %error, "refused"),
        _ => tracing::debug!(seed, code = error.code(), "refused"),
    }
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

async fn openapi() -> Response {
    let doc = crate::openapi::document();
    match serde_json::to_value(&doc) {
        Ok(v) => json(StatusCode::OK, &v),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Every route of the service.
pub fn router(state: Shared) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/otp", post(crate::seeds::kavoon::request_otp))
        .route("/auth/token", post(crate::seeds::kavoon::token))
        .route(
            "/v2/projects/phone-login",
            post(crate::seeds::verifik::login),
        )
        .route(
            "/v2/projects/phone-login/confirm",
            post(crate::seeds::verifik::login_confirm),
        )
        .route(
            "/v2/app-registrations",
            post(crate::seeds::verifik::app_registration),
        )
        .route(
            "/v2/phone-validations",
            put(crate::seeds::verifik::validate),
        )
        .route(
            "/api/apps/{app_id}/users/{user}/phone-number/verify",
            post(crate::seeds::kii::verify),
        )
        .route(
            "/api/apps/{app_id}/users/{user}/phone-number/resend-verification-code",
            post(crate::seeds::kii::resend),
        )
        .route(
            "/fe/users/auth/otp/register",
            post(crate::seeds::kgen::register),
        )
        .route(
            "/fe/users/auth/otp/resend",
            post(crate::seeds::kgen::resend),
        )
        .route(
            "/fe/users/auth/otp/verify",
            post(crate::seeds::kgen::verify),
        );
    #[cfg(feature = "test-hooks")]
    let router = crate::test_hooks::routes(router);
    router.with_state(state)
}

tokio::task_local! {
    /// The address of the client whose request is being served (see
    /// [`client_address`]).
    static CLIENT: Option<std::net::IpAddr>;
}

/// The service of one connection: `router`, with each request run with the
/// connection's peer address in `CLIENT`, so the sends it makes spend
/// from that address's budget without every handler passing it. The
/// address is known once per connection (no extension per request, no
/// middleware).
#[derive(Clone, Debug)]
pub struct PeerService {
    router: Router,
    peer: std::net::IpAddr,
}

impl PeerService {
    /// `router` serving a connection from `peer`.
    pub fn new(router: Router, peer: std::net::IpAddr) -> Self {
        Self { router, peer }
    }
}

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for PeerService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = tokio::task::futures::TaskLocalFuture<
        Option<std::net::IpAddr>,
        tower::util::Oneshot<Router, axum::extract::Request>,
    >;

    fn call(&self, request: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        use tower::ServiceExt as _;
        let request = request.map(axum::body::Body::new);
        CLIENT.scope(Some(self.peer), self.router.clone().oneshot(request))
    }
}

/// The address of the client being served, if known.
pub fn client_address() -> Option<std::net::IpAddr> {
    CLIENT.try_with(|ip| *ip).ok().flatten()
}

/// The subject's stable name for derived ids: purpose and full E.164
/// number (never `Display`, which may mask the number).
pub fn subject_id(subject: &SubjectKey) -> String {
    format!("{}:{}", subject.purpose().as_str(), subject.phone().e164())
}

/// A subject of `purpose` for `phone`, as a helper for the seeds.
pub fn subject(purpose: Purpose, phone: otpflow::PhoneNumber) -> SubjectKey {
    SubjectKey::new(purpose, phone)
}
