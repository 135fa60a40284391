//! The OpenAPI document of every route, served at `/openapi.json`.

use utoipa::OpenApi;

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "`{\"status\":\"ok\"}`")))]
#[allow(dead_code)]
fn healthz() {}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "This document")))]
#[allow(dead_code)]
fn openapi() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "otpflow-server",
        description = "The seed phone-verification APIs (Kavoon, Verifik, Kii, KGen) served on otpflow."
    ),
    paths(
        healthz,
        openapi,
        crate::seeds::kavoon::request_otp,
        crate::seeds::kavoon::token,
        crate::seeds::verifik::login,
        crate::seeds::verifik::login_confirm,
        crate::seeds::verifik::app_registration,
        crate::seeds::verifik::validate,
        crate::seeds::kii::verify,
        crate::seeds::kii::resend,
        crate::seeds::kgen::register,
        crate::seeds::kgen::resend,
        crate::seeds::kgen::verify,
    )
)]
struct Doc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}
