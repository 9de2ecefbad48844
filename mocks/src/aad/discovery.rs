//! OIDC discovery documents, the JWKS and MSAL's instance discovery.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::AadError;
use crate::context::ServerCtx;
use crate::request_parts::https_base;
use crate::token::mint::{v1_issuer, v2_issuer};

/// Resolves the tenant path segment; discovery also answers for `common`/`organizations`.
fn tenant_for_discovery(ctx: &ServerCtx, tenant: &str) -> Result<(String, String), AadError> {
    let tid = ctx.core.tenant_id();
    if tenant.eq_ignore_ascii_case(&tid) {
        Ok((tid.clone(), tid))
    } else if matches!(
        tenant.to_ascii_lowercase().as_str(),
        "common" | "organizations"
    ) {
        Ok((tenant.to_string(), "{tenantid}".to_string()))
    } else {
        Err(AadError::unknown_tenant(tenant))
    }
}

fn claims_supported() -> Value {
    json!([
        "sub",
        "iss",
        "cloud_instance_name",
        "cloud_instance_host_name",
        "cloud_graph_host_name",
        "msgraph_host",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "acr",
        "nonce",
        "preferred_username",
        "name",
        "tid",
        "ver",
        "at_hash",
        "c_hash",
        "email"
    ])
}

/// `GET /{tenant}/.well-known/openid-configuration` (v1 document).
pub(crate) async fn openid_v1(
    State(ctx): State<Arc<ServerCtx>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (seg, issuer_tid) = match tenant_for_discovery(&ctx, &tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let base = format!("{}/{}", https_base(&headers, &uri, ctx.local_addr), seg);
    Json(json!({
        "token_endpoint": format!("{base}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": v1_issuer(&issuer_tid),
        "microsoft_multi_refresh_token": true,
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/logout"),
        "claims_supported": claims_supported(),
        "check_session_iframe": format!("{base}/oauth2/checksession"),
        "userinfo_endpoint": format!("{base}/openid/userinfo"),
        "kerberos_endpoint": format!("{base}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (v2 document, what MSAL reads).
pub(crate) async fn openid_v2(
    State(ctx): State<Arc<ServerCtx>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (seg, issuer_tid) = match tenant_for_discovery(&ctx, &tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let base = format!("{}/{}", https_base(&headers, &uri, ctx.local_addr), seg);
    Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": v2_issuer(&issuer_tid),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "claims_supported": claims_supported(),
        "kerberos_endpoint": format!("{base}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

/// `GET …/discovery/keys` and `…/discovery/v2.0/keys`.
pub(crate) async fn jwks(State(ctx): State<Arc<ServerCtx>>) -> Response {
    Json(ctx.core.jwks()).into_response()
}

/// `GET /{tenant}/discovery/instance?authorization_endpoint=…` (MSAL instance discovery).
pub(crate) async fn instance(
    Path(_tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(auth) = q.get("authorization_endpoint") else {
        return AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50049,
            "Unknown or invalid instance.",
        )
        .into_response();
    };
    let Some((host, tenant)) = url::Url::parse(auth).ok().and_then(|u| {
        let host = u.host_str()?.to_string();
        let host = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let tenant = u.path_segments()?.next()?.to_string();
        Some((host, tenant))
    }) else {
        return Json(json!({
            "error": "invalid_instance",
            "error_description": "AADSTS50049: Unknown or invalid instance.",
        }))
        .into_response();
    };
    let mut metadata = vec![json!({
        "preferred_network": "login.microsoftonline.com",
        "preferred_cache": "login.windows.net",
        "aliases": ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
    })];
    let known = [
        "login.microsoftonline.com",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    ];
    if !known.contains(&host.as_str()) {
        metadata
            .push(json!({"preferred_network": host, "preferred_cache": host, "aliases": [host]}));
    }
    Json(json!({
        "tenant_discovery_endpoint": format!("https://{host}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": metadata,
    }))
    .into_response()
}
