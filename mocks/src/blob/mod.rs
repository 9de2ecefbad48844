//! Blob storage: Get/Put/Delete Blob, Put Block, Put Block List, Get Block List, List Blobs,
//! container create/properties, with bearer auth and data-plane RBAC. Accounts are addressed
//! by host name or, for IP hosts, by path.

pub mod address;
mod auth;
mod blocks;
mod ops;
mod rbac;
mod response;
pub mod xml;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

use crate::context::ServerCtx;
use crate::hosts::BLOB_HOST_SUFFIX;
use crate::observe::{RequestNote, query_pairs, with_note};
use crate::request_parts::{authority, header_str, host_name};
use crate::resource_id;
use crate::state::CloudState;
use address::BlobAddress;
use ops::Operation;
pub(crate) use ops::valid_container_name;
use response::{DEFAULT_VERSION, ResponseContext};

/// Routes of the Blob mock (one dispatcher: the account comes from the host or path).
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
    let rc = ResponseContext {
        request_id: uuid::Uuid::new_v4().to_string(),
        version: header_str(&headers, "x-ms-version")
            .unwrap_or(DEFAULT_VERSION)
            .to_string(),
        client_request_id: header_str(&headers, "x-ms-client-request-id").map(str::to_string),
    };
    let host = host_name(&headers, &uri);
    let Some(addr) = address::parse(host.as_deref(), uri.path()) else {
        return rc.error(
            StatusCode::BAD_REQUEST,
            "InvalidUri",
            "The requested URI does not represent any resource on the server.",
            None,
        );
    };
    let query = query_pairs(uri.query());
    let op = match Operation::classify(&method, &addr, &query) {
        Ok(op) => op,
        Err(resp) => return resp(&rc),
    };
    let (tenant, sub) = ctx
        .core
        .with_state(|s| (s.tenant_id.clone(), s.subscription_id.clone()));
    let claims = match auth::authenticate(&rc, &headers, ctx.core.signer(), &tenant, &addr.account)
    {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let note = RequestNote {
        client_id: claims.client_id().map(str::to_string),
        resource: Some(claims.aud.clone()),
    };
    let endpoint = match host.as_deref() {
        Some(h) if h.ends_with(BLOB_HOST_SUFFIX) => format!("https://{h}/"),
        _ => format!(
            "https://{}/{}/",
            authority(&headers, &uri).unwrap_or_default(),
            addr.account
        ),
    };
    let resp = ctx.core.with_state_mut(|state| {
        if let Err(refusal) = authorize(state, &rc, &claims.oid, &sub, &addr, &op) {
            return *refusal;
        }
        ops::execute(state, &rc, &op, &addr, &query, &headers, body, &endpoint)
    });
    with_note(resp, note)
}

/// Under the state lock: 404 if the account does not exist, 403 unless a role of `oid` at the
/// addressed scope (or above) allows the operation.
fn authorize(
    state: &CloudState,
    rc: &ResponseContext,
    oid: &str,
    sub: &str,
    addr: &BlobAddress,
    op: &Operation,
) -> Result<(), Box<Response>> {
    let Some(rg) = state
        .accounts
        .get(&addr.account)
        .map(|a| a.resource_group.clone())
    else {
        return Err(Box::new(rc.error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The specified resource does not exist.",
            None,
        )));
    };
    let scope = match &addr.container {
        Some(c) => resource_id::container_scope(sub, &rg, &addr.account, c),
        None => resource_id::storage_account(sub, &rg, &addr.account),
    };
    let roles = state.roles_at(oid, &scope);
    if !roles.iter().any(|r| rbac::allows(*r, op.action())) {
        tracing::info!(%oid, %scope, ?roles, "blob request denied by RBAC");
        return Err(Box::new(rc.error(
            StatusCode::FORBIDDEN,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
            None,
        )));
    }
    Ok(())
}
