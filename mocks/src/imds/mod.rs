//! Instance Metadata Service for one machine: managed-identity tokens and instance metadata.

mod error;
mod instance;
pub mod query;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::routing::any;

use crate::context::ServerCtx;

/// Routes of one IMDS server.
pub(crate) fn router() -> Router<Arc<ServerCtx>> {
    Router::new()
        .route("/metadata/identity/oauth2/token", any(token::token))
        .route("/metadata/identity/info", any(instance::identity_info))
        .route("/metadata/versions", any(instance::versions))
        .route("/metadata/instance", any(instance::instance))
        .route("/metadata/instance/{*rest}", any(instance::instance))
        .fallback(instance::not_found)
}
