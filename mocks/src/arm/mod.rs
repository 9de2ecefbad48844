//! Azure Resource Manager: subscriptions, VM/VMSS identity GET/PATCH/PUT (optionally
//! long-running), Compute operation status, resource groups, user-assigned identities, role
//! assignments, storage accounts and containers; bearer authentication and, when switched on,
//! role-based authorization.

mod auth;
mod error;
mod identities;
pub mod identity_patch;
mod machine_write;
mod operation_results;
pub(crate) mod operations;
mod put_body;
mod rbac;
mod render;
mod resource_groups;
mod resources;
mod role_assignments;
mod storage;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

use crate::behaviour::ArmBehaviour;
use crate::context::ServerCtx;
use crate::observe::{RequestNote, query_pairs, with_note};
use crate::request_parts::https_base;
use crate::token::AccessTokenClaims;
use error::arm_error;

/// Routes of the ARM mock (one dispatcher: ARM paths are case-insensitive).
pub(crate) fn router() -> Router<Arc<ServerCtx>> {
    Router::new().fallback(dispatch)
}

/// An authenticated ARM request, as the handlers see it.
pub(crate) struct ArmRequest<'a> {
    pub method: &'a Method,
    pub body: &'a [u8],
    /// The verified token of the caller.
    pub caller: &'a AccessTokenClaims,
    /// The ARM behaviour in force when the request arrived.
    pub behaviour: ArmBehaviour,
    /// `https://HOST[:PORT]` as the client addressed ARM (links it is given point back there).
    pub base_url: String,
    /// The request's `api-version`.
    pub api_version: String,
    /// Every query parameter, decoded (`$filter` of list requests).
    pub query: Vec<(String, String)>,
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
    let Some(api_version) = query
        .iter()
        .find(|(k, v)| k == "api-version" && !v.is_empty())
        .map(|(_, v)| v.clone())
    else {
        return with_note(
            arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ),
            note,
        );
    };
    let req = ArmRequest {
        method: &method,
        body: &body,
        caller: &claims,
        behaviour: ctx.core.arm_behaviour(),
        base_url: https_base(&headers, &uri, ctx.local_addr),
        api_version,
        query,
    };
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let resp = ctx
        .core
        .with_state_mut(|state| resources::route(state, &req, &segments));
    with_note(resp, note)
}
