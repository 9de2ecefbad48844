//! Operations ARM tracks with a `Location` URL (resource group deletion, storage account
//! creation): the request answers **202 Accepted** with `Location:
//! …/subscriptions/{sub}/operationresults/{id}` and `Retry-After`; a GET of that URL answers 202
//! while the operation runs and, once it is done, 200 with the final body (or none). The mock
//! finishes such operations before it answers, so the first poll already reports the result;
//! clients still exercise the polling they need against Azure
//! ([asynchronous operations](https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations)).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ArmRequest;
use super::error::{arm_error, with_arm_headers};
use super::render::ok;
use crate::state::CloudState;

/// Seconds a client is asked to wait before polling (the shortest wait azure-core and
/// go-autorest both honour; see `operations`).
const RETRY_AFTER_SECS: &str = "1";

/// Records a finished operation whose final poll answers `result`, and answers 202 with its
/// `Location` on the host the client addressed.
pub(crate) fn accepted(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    result: Option<Value>,
) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let url = format!(
        "{}/subscriptions/{}/operationresults/{id}?api-version={}",
        req.base_url,
        state.subscription_id,
        url::form_urlencoded::byte_serialize(req.api_version.as_bytes()).collect::<String>()
    );
    state.operation_results.insert(id, result);
    let mut resp = with_arm_headers((StatusCode::ACCEPTED, Body::empty()).into_response());
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&url) {
        h.insert("location", v);
    }
    h.insert("retry-after", HeaderValue::from_static(RETRY_AFTER_SECS));
    resp
}

/// `GET /subscriptions/{sub}/operationresults/{id}`: 200 with the operation's result (an empty
/// body when it has none); 404 for an id the mock never gave out.
pub(crate) fn poll(state: &CloudState, id: &str) -> Response {
    match state.operation_results.get(&id.to_ascii_lowercase()) {
        Some(Some(body)) => ok(body.clone()),
        Some(None) => with_arm_headers(StatusCode::OK.into_response()),
        None => arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("The operation result '{id}' was not found."),
        ),
    }
}
