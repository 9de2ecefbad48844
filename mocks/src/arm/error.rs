//! ARM error bodies: `{"error":{"code","message"}}` with ARM's correlation headers.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An ARM error response.
pub(crate) fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    with_arm_headers(
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response(),
    )
}

/// Adds `x-ms-request-id` / `x-ms-correlation-request-id` / rate-limit headers.
pub(crate) fn with_arm_headers(mut resp: Response) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let h = resp.headers_mut();
    for name in ["x-ms-request-id", "x-ms-correlation-request-id"] {
        h.insert(name, id.parse().expect("uuid is a header value"));
    }
    h.insert(
        "x-ms-ratelimit-remaining-subscription-reads",
        "11999".parse().expect("static"),
    );
    h.insert(
        "x-ms-ratelimit-remaining-subscription-writes",
        "1199".parse().expect("static"),
    );
    resp
}

/// 401 with ARM's bearer challenge.
pub(crate) fn unauthorized(code: &str, message: &str, description: &str) -> Response {
    let mut resp = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let challenge = format!(
        "Bearer authorization_uri=\"https://login.windows.net/\", error=\"invalid_token\", error_description=\"{description}\""
    );
    if let Ok(v) = challenge.parse() {
        resp.headers_mut().insert("www-authenticate", v);
    }
    resp
}

/// 404 `ResourceGroupNotFound`.
pub(crate) fn resource_group_not_found(rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        &format!("Resource group '{rg}' could not be found."),
    )
}

/// 404 `ResourceNotFound` for resource `{namespace}/{type}/{name}` of group `rg`.
pub(crate) fn resource_not_found(resource: &str, rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!(
            "The Resource '{resource}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

/// 405 for a method the mock does not serve on a path it knows.
pub(crate) fn method_not_allowed(method: &axum::http::Method) -> Response {
    arm_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!(
            "The requested method '{method}' is not supported by this mock for this resource."
        ),
    )
}
