//! Azure Resource Manager: subscriptions, VM/VMSS identity GET/PATCH, user-assigned identities.

mod auth;
mod error;
pub mod identity_patch;
mod resources;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

use crate::context::ServerCtx;
use crate::observe::{RequestNote, query_pairs, with_note};
use error::arm_error;

/// Routes of the ARM mock (one dispatcher: ARM paths are case-insensitive).
pub(crate) fn router() -> Router<Arc<ServerCtx>> {
    Router::new().fallback(dispatch)
}

async fn dispatch(
    State(ctx): State<Arc<ServerCtx>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let claims = match auth::authenticate(&ctx, &headers, &uri) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let note = RequestNote {
        client_id: claims.client_id().map(str::to_string),
        resource: Some(claims.aud.clone()),
    };
    let query = query_pairs(uri.query());
    if !query
        .iter()
        .any(|(k, v)| k == "api-version" && !v.is_empty())
    {
        return with_note(
            arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ),
            note,
        );
    }
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let resp = ctx
        .core
        .with_state_mut(|state| resources::route(state, &method, &segments, &body));
    with_note(resp, note)
}
