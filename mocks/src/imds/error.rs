//! IMDS error bodies (`{"error","error_description"}` and the api-version form).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::query::NEWEST_VERSIONS;

/// `400 {"error":"invalid_request","error_description":DESC}` and friends.
pub(crate) fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    with_server(
        (
            status,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response(),
    )
}

/// The 400 sent when `Metadata: true` is missing or wrong.
pub(crate) fn metadata_required() -> Response {
    imds_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Required metadata header not specified",
    )
}

/// The 400 sent when the machine has no such identity (or not yet: it is still propagating).
pub(crate) fn identity_not_found() -> Response {
    imds_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Identity not found",
    )
}

/// The 429 sent when a machine's identity requests exceed the rate limit.
pub(crate) fn too_many_requests() -> Response {
    imds_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "Too many requests to the managed identity endpoint of this machine; retry later",
    )
}

/// The 400 sent for a missing or unsupported `api-version`.
pub(crate) fn bad_api_version(missing: bool) -> Response {
    let error = if missing {
        "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds"
    } else {
        "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds"
    };
    with_server(
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error, "newest-versions": NEWEST_VERSIONS})),
        )
            .into_response(),
    )
}

/// Adds the `Server: IMDS/…` header real IMDS sends.
pub(crate) fn with_server(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "server",
        "IMDS/150.870.65.1854".parse().expect("static header value"),
    );
    resp
}
