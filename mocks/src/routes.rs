//! Which routes a server serves: its service's handlers wrapped in fault injection and recording.

use std::sync::Arc;

use axum::Router;

use crate::context::ServerCtx;
use crate::record::Service;
use crate::{aad, arm, blob, imds, observe};

/// Builds the router for one server.
pub(crate) fn router_for(ctx: Arc<ServerCtx>) -> Router {
    let routes = match ctx.service {
        Service::Aad => aad::router(),
        Service::Imds => imds::router(),
        Service::Arm => arm::router(),
        Service::Blob => blob::router(),
    };
    routes
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            observe::observe,
        ))
        .with_state(ctx)
}
