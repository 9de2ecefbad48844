//! `GET /metadata/identity/oauth2/token`: managed-identity tokens for this machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::error::{
    bad_api_version, identity_not_found, imds_error, metadata_required, too_many_requests,
    with_server,
};
use super::query::{ApiVersionCheck, ImdsQuery, Selector, check_api_version, selector};
use crate::audience::is_known_resource;
use crate::context::ServerCtx;
use crate::observe::{RequestNote, with_note};
use crate::spec::MachineRef;
use crate::state::{CloudState, IdentitySelector, ResolvedIdentity, SelectError};
use crate::token::TokenVersion;
use crate::token::mint::{self, Principal};

/// Whether the `Metadata` header is exactly `true`.
pub(crate) fn has_metadata_header(headers: &HeaderMap) -> bool {
    headers.get("metadata").and_then(|v| v.to_str().ok()) == Some("true")
}

/// `GET /metadata/identity/oauth2/token`.
pub(crate) async fn token(
    State(ctx): State<Arc<ServerCtx>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let q = ImdsQuery::parse(uri.query());
    let note = RequestNote {
        client_id: q.get("client_id").map(str::to_string),
        resource: q.get("resource").map(str::to_string),
    };
    with_note(respond(&ctx, &method, &headers, &q), note)
}

/// Validates the request the way IMDS does and issues the token.
fn respond(ctx: &ServerCtx, method: &Method, headers: &HeaderMap, q: &ImdsQuery) -> Response {
    if let Some(machine) = &ctx.machine {
        if !ctx.core.admit_imds_request(machine, Instant::now()) {
            return too_many_requests();
        }
    }
    if method != Method::GET {
        return imds_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "The HTTP method is not allowed for this endpoint",
        );
    }
    if !has_metadata_header(headers) {
        return metadata_required();
    }
    if headers.contains_key("x-forwarded-for") {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Requests with an X-Forwarded-For header are not allowed",
        );
    }
    if q.has_duplicates {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Requests with duplicate query parameter names are not allowed",
        );
    }
    match check_api_version(q, true) {
        ApiVersionCheck::Ok => {}
        ApiVersionCheck::Missing => return bad_api_version(true),
        ApiVersionCheck::Unsupported => return bad_api_version(false),
    }
    let Some(resource) = q.get("resource").filter(|r| !r.is_empty()) else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let sel = match selector(q) {
        Ok(s) => s,
        Err(msg) => return imds_error(StatusCode::BAD_REQUEST, "invalid_request", msg),
    };
    let propagation_delay = ctx.core.imds_behaviour().propagation_delay;
    let found = ctx.core.with_state(|state| {
        resolve(
            state,
            ctx.machine.as_ref(),
            &sel,
            resource,
            propagation_delay,
        )
    });
    let (identity, tenant_id) = match found {
        Ok(found) => found,
        Err(resp) => return *resp,
    };
    let principal = Principal {
        client_id: identity.client_id.clone(),
        object_id: identity.principal_id.clone(),
        mirid: Some(identity.mirid.clone()),
        acr: "2",
    };
    let token = match ctx.core.mint(
        &tenant_id,
        &principal,
        resource,
        TokenVersion::V1,
        mint::now_secs(),
        mint::MI_LIFETIME_SECS,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "minting a managed-identity token failed");
            return imds_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unknown",
                "Failed to retrieve token from the Active directory",
            );
        }
    };
    let mut body = Map::new();
    let mut put = |k: &str, v: String| {
        body.insert(k.to_string(), Value::String(v));
    };
    put("access_token", token.access_token);
    put("client_id", identity.client_id);
    put("expires_in", token.expires_in.to_string());
    put("expires_on", token.expires_on.to_string());
    put("ext_expires_in", token.expires_in.to_string());
    put("not_before", token.not_before.to_string());
    put("resource", resource.to_string());
    put("token_type", "Bearer".to_string());
    if let Selector::ObjectId(o) = &sel {
        put("object_id", o.clone());
    }
    if let Selector::ResourceId(r) = &sel {
        put("msi_res_id", r.clone());
    }
    with_server((StatusCode::OK, Json(Value::Object(body))).into_response())
}

/// Under the state lock: the identity `sel` picks on `machine` and the tenant, or IMDS's 400.
/// An identity assigned less than `propagation_delay` ago is not found yet.
fn resolve(
    state: &CloudState,
    machine: Option<&MachineRef>,
    sel: &Selector,
    resource: &str,
    propagation_delay: Option<Duration>,
) -> Result<(ResolvedIdentity, String), Box<Response>> {
    let Some(idx) = machine.and_then(|m| state.machine_index(m)) else {
        return Err(Box::new(identity_not_found()));
    };
    let state_sel = match sel {
        Selector::Default => IdentitySelector::None,
        Selector::ClientId(c) => IdentitySelector::ClientId(c.clone()),
        Selector::ObjectId(o) => IdentitySelector::ObjectId(o.clone()),
        Selector::ResourceId(r) => IdentitySelector::ResourceId(r.clone()),
    };
    let identity = match state.select_identity(idx, &state_sel) {
        Ok(i) => i,
        Err(SelectError::NotFound) => return Err(Box::new(identity_not_found())),
        Err(SelectError::Ambiguous) => {
            return Err(Box::new(imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
            )));
        }
    };
    if propagation_delay
        .is_some_and(|d| state.machines[idx].still_propagating(&identity.mirid, d, Instant::now()))
    {
        tracing::info!(mirid = %identity.mirid, "IMDS: identity still propagating");
        return Err(Box::new(identity_not_found()));
    }
    if !is_known_resource(resource, &state.account_names(), &state.extra_resources) {
        let msg = format!(
            "AADSTS500011: The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
            state.tenant_id
        );
        return Err(Box::new(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            &msg,
        )));
    }
    Ok((identity, state.tenant_id.clone()))
}
