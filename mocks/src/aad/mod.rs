//! Entra ID (AAD): v1/v2 client-credentials token endpoints, OIDC discovery, JWKS, instance discovery.

mod assertion;
mod discovery;
mod error;
pub mod form;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::context::ServerCtx;

/// Routes of the AAD mock.
pub(crate) fn router() -> Router<Arc<ServerCtx>> {
    Router::new()
        .route("/{tenant}/oauth2/token", post(token::token_v1))
        .route("/{tenant}/oauth2/v2.0/token", post(token::token_v2))
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(discovery::openid_v1),
        )
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_v2),
        )
        .route("/{tenant}/discovery/keys", get(discovery::jwks))
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::jwks))
        .route("/discovery/keys", get(discovery::jwks))
        .route("/{tenant}/discovery/instance", get(discovery::instance))
        .fallback(error::not_found)
}
