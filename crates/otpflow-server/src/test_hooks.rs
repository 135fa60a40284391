//! Test builds only (feature `test-hooks`): an admin route that moves the
//! service clock, a constant-200 route for load comparisons, and the time
//! spent inside otpflow (with a switch for its thread CPU timing). A production build has none of this.
//!
//! The admin routes need `X-Admin-Token` equal to `OTPFLOW_ADMIN_TOKEN`
//! (from the environment); without that variable they answer 404.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::app::{self, Shared};

fn admin(state: &Shared, headers: &HeaderMap) -> bool {
    let (Some(expected), Some(given)) = (
        state.admin_token.as_deref(),
        headers.get("x-admin-token").and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// `POST /_test/clock` `{"advance_secs": N}` → the new offset.
async fn clock(State(state): State<Shared>, headers: HeaderMap, bytes: Bytes) -> Response {
    if !admin(&state, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(secs) = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("advance_secs").and_then(serde_json::Value::as_i64))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    state.otp.clock().advance(secs);
    app::json(
        StatusCode::OK,
        &json!({ "offset_secs": state.otp.clock().offset() }),
    )
}

/// `GET /_test/stats` → time spent inside otpflow: wall time around every
/// call, and the calling thread's CPU time around the memory store's calls.
async fn stats(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !admin(&state, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (nanos, calls) = state.otp.stats().snapshot();
    let (sampled_nanos, sampled) = state.otp.stats().sampled_wall();
    app::json(
        StatusCode::OK,
        &json!({
            "otpflow_nanos": nanos,
            "otpflow_cpu_nanos": state.otp.stats().cpu_nanos(),
            "otpflow_calls": calls,
            "otpflow_sampled_nanos": sampled_nanos,
            "otpflow_sampled_calls": sampled,
        }),
    )
}

/// `POST /_test/cpu-timing` `{"on": bool}`: switches the thread CPU timing
/// of otpflow's calls (two system calls per call) on or off.
async fn cpu_timing(State(state): State<Shared>, headers: HeaderMap, bytes: Bytes) -> Response {
    if !admin(&state, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(on) = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("on").and_then(serde_json::Value::as_bool))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    state.otp.stats().set_cpu_timing(on);
    app::json(StatusCode::OK, &json!({ "cpu_timing": on }))
}

/// `POST /_test/constant`: reads the body and answers 200 `{}`, the floor
/// the load run compares verify with.
async fn constant(_bytes: Bytes) -> Response {
    app::json(StatusCode::OK, &json!({}))
}

/// Adds the test routes.
pub fn routes(router: Router<Shared>) -> Router<Shared> {
    router
        .route("/_test/clock", post(clock))
        .route("/_test/stats", get(stats))
        .route("/_test/constant", post(constant))
        .route("/_test/cpu-timing", post(cpu_timing))
}
