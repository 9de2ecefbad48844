//! The client-credentials token endpoints (v1 `oauth2/token`, v2 `oauth2/v2.0/token`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::assertion::{self, JWT_BEARER};
use super::error::AadError;
use super::form::{TokenForm, parse_basic, parse_form};
use crate::audience::{is_first_party_resource, is_known_resource};
use crate::context::ServerCtx;
use crate::observe::{RequestNote, with_note};
use crate::request_parts::header_str;
use crate::spec::SpCredential;
use crate::state::CloudState;
use crate::token::TokenVersion;
use crate::token::mint::{self, Principal};

/// `POST /{tenant}/oauth2/token`.
pub(crate) async fn token_v1(
    State(ctx): State<Arc<ServerCtx>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&ctx, &tenant, &headers, &body, TokenVersion::V1)
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token_v2(
    State(ctx): State<Arc<ServerCtx>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&ctx, &tenant, &headers, &body, TokenVersion::V2)
}

fn handle(
    ctx: &ServerCtx,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
    version: TokenVersion,
) -> Response {
    let mut form = parse_form(body);
    if let Some((id, secret)) = header_str(headers, "authorization").and_then(parse_basic) {
        form.client_id.get_or_insert(id);
        form.client_secret.get_or_insert(secret);
    }
    let resource = match version {
        TokenVersion::V1 => form.resource.clone(),
        TokenVersion::V2 => form.scope.clone(),
    };
    let note = RequestNote {
        client_id: form.client_id.clone(),
        resource,
    };
    let resp = match issue(ctx, tenant, headers, &form, version) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(code = e.code, status = %e.status, "AAD token request refused");
            e.into_response()
        }
    };
    with_note(resp, note)
}

/// Issues the token for a valid grant, in the response shape of `version`.
fn issue(
    ctx: &ServerCtx,
    tenant: &str,
    headers: &HeaderMap,
    form: &TokenForm,
    version: TokenVersion,
) -> Result<Response, AadError> {
    let (principal, resource, tenant_id, first_party) = ctx.core.with_state(|state| {
        check_grant(state, tenant, headers, form, version).map(|(p, r, t)| {
            let first_party = is_first_party_resource(&r, &state.account_names());
            (p, r, t, first_party)
        })
    })?;
    let token = ctx
        .core
        .mint(
            &tenant_id,
            &principal,
            &resource,
            token_version(version, first_party),
            mint::now_secs(),
            mint::SP_LIFETIME_SECS,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "minting a token failed");
            AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                90033,
                "A transient error has occurred.",
            )
        })?;
    let body = match version {
        TokenVersion::V1 => serde_json::json!({
            "token_type": "Bearer",
            "expires_in": token.expires_in.to_string(),
            "ext_expires_in": token.expires_in.to_string(),
            "expires_on": token.expires_on.to_string(),
            "not_before": token.not_before.to_string(),
            "resource": resource,
            "access_token": token.access_token,
        }),
        TokenVersion::V2 => serde_json::json!({
            "token_type": "Bearer",
            "expires_in": token.expires_in,
            "ext_expires_in": token.expires_in,
            "access_token": token.access_token,
        }),
    };
    Ok((
        StatusCode::OK,
        [
            ("cache-control", "no-store, no-cache"),
            ("pragma", "no-cache"),
        ],
        Json(body),
    )
        .into_response())
}

/// The version of the token AAD issues: first-party resources (ARM, Storage, Key Vault, Graph,
/// …) accept v1 tokens, so they get v1 tokens from the v2 endpoint too; other resources get the
/// endpoint's version (as an app registered with `accessTokenAcceptedVersion: 2` does from the
/// v2 endpoint). The response body keeps the endpoint's shape either way.
fn token_version(endpoint: TokenVersion, first_party_resource: bool) -> TokenVersion {
    if first_party_resource {
        TokenVersion::V1
    } else {
        endpoint
    }
}

/// Under the state lock: validates the grant the way AAD does and resolves who the token is
/// for; returns the principal, the resource and the tenant.
fn check_grant(
    state: &CloudState,
    tenant: &str,
    headers: &HeaderMap,
    form: &TokenForm,
    version: TokenVersion,
) -> Result<(Principal, String, String), AadError> {
    if !tenant.eq_ignore_ascii_case(&state.tenant_id) {
        return Err(AadError::unknown_tenant(tenant));
    }
    let is_form = header_str(headers, "content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !is_form {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ));
    }
    let grant = form
        .grant_type
        .as_deref()
        .ok_or_else(|| AadError::missing("grant_type"))?;
    if grant != "client_credentials" {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant}'."),
        ));
    }
    let client_id = form
        .client_id
        .as_deref()
        .ok_or_else(|| AadError::missing("client_id"))?;
    let resource = match version {
        TokenVersion::V1 => form
            .resource
            .clone()
            .ok_or_else(|| AadError::missing("resource"))?,
        TokenVersion::V2 => scope_resource(
            form.scope
                .as_deref()
                .ok_or_else(|| AadError::missing("scope"))?,
        )?,
    };
    let sp = state
        .service_principal(client_id)
        .ok_or_else(|| AadError::unknown_client(client_id, &state.tenant_id))?;
    let acr = match (&form.client_secret, &form.client_assertion) {
        (Some(secret), _) => match &sp.spec.credential {
            SpCredential::Secret { secret: registered } if registered == secret => "1",
            _ => return Err(AadError::bad_secret(&sp.spec.client_id)),
        },
        (None, Some(jwt)) => {
            if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
                return Err(AadError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    50027,
                    "Invalid client_assertion_type; expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                ));
            }
            let cert = sp.cert.as_ref().ok_or_else(|| {
                AadError::bad_assertion(
                    700027,
                    "The certificate with identifier used to sign the client assertion is not registered on application.",
                )
            })?;
            assertion::verify(jwt, cert, &sp.spec.client_id, &state.tenant_id)?;
            "2"
        }
        (None, None) => {
            return Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
    };
    if !is_known_resource(&resource, &state.account_names(), &state.extra_resources) {
        return Err(AadError::unknown_resource(&resource, &state.tenant_id));
    }
    let principal = Principal {
        client_id: sp.spec.client_id.clone(),
        object_id: sp.spec.object_id.clone(),
        mirid: None,
        acr,
    };
    Ok((principal, resource, state.tenant_id.clone()))
}

/// The resource of a client-credentials `scope` (`RESOURCE/.default`, exactly one value).
fn scope_resource(scope: &str) -> Result<String, AadError> {
    let scopes: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| !matches!(*s, "offline_access" | "openid" | "profile"))
        .collect();
    match scopes.as_slice() {
        [one] if one.ends_with("/.default") && one.len() > "/.default".len() => {
            Ok(one.trim_end_matches("/.default").to_string())
        }
        _ => Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_must_be_single_dot_default() {
        assert_eq!(
            scope_resource("https://storage.azure.com/.default").unwrap(),
            "https://storage.azure.com"
        );
        assert_eq!(
            scope_resource("https://management.azure.com//.default offline_access").unwrap(),
            "https://management.azure.com/"
        );
        assert_eq!(
            scope_resource("https://storage.azure.com/user_impersonation")
                .unwrap_err()
                .code,
            1002012
        );
        assert_eq!(
            scope_resource("a/.default b/.default").unwrap_err().code,
            1002012
        );
        assert_eq!(scope_resource("/.default").unwrap_err().code, 1002012);
    }
}
