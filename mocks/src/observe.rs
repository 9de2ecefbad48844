//! Middleware around every service: applies fault rules and records each request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::attribution::{self, MAX_ARM_BODY};
use crate::context::ServerCtx;
use crate::core::CloudCore;
use crate::fault::FaultRule;
use crate::record::{RecordedRequest, Service, redact_header, redact_param};

/// What a handler learned about the caller, attached to its response for the log.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestNote {
    pub client_id: Option<String>,
    pub resource: Option<String>,
}

/// Attaches a note to a response.
pub(crate) fn with_note(mut resp: Response, note: RequestNote) -> Response {
    resp.extensions_mut().insert(note);
    resp
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Query string split into pairs, percent-decoded (lossy, never fails).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Applies the first matching fault rule, runs the handler, and records the exchange.
pub(crate) async fn observe(
    State(ctx): State<Arc<ServerCtx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let seq = ctx.core.claim_seq();
    let at = now_millis();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let raw_query = query_pairs(req.uri().query());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes());
            (k.as_str().to_string(), redact_header(k.as_str(), &v))
        })
        .collect();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let (mut resp, faulted, identity_ids) =
        match attribute(&ctx.core, ctx.service, &method, &path, &raw_query, req).await {
            Ok((req, ids)) => {
                let (resp, faulted) = serve(&ctx, &method, &path, req, next).await;
                (resp, faulted, ids)
            }
            Err(resp) => (*resp, false, Vec::new()),
        };
    let mut note = resp
        .extensions_mut()
        .remove::<RequestNote>()
        .unwrap_or_default();
    if ctx.service == Service::Imds && note.client_id.is_none() && note.resource.is_none() {
        let get = |k: &str| {
            raw_query
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        note.client_id = get("client_id");
        note.resource = get("resource");
    }
    let status = resp.status().as_u16();
    tracing::info!(
        service = %ctx.service, label = %ctx.label, %method, %path, status, faulted,
        "request served"
    );
    ctx.core.record(RecordedRequest {
        seq,
        at,
        service: ctx.service,
        label: ctx.label.clone(),
        method,
        path,
        query: raw_query
            .iter()
            .map(|(k, v)| (k.clone(), redact_param(k, v)))
            .collect(),
        headers,
        host,
        source: peer,
        status,
        client_id: note.client_id,
        resource: note.resource,
        identity_ids,
        faulted,
    });
    resp
}

/// Runs the handler, unless a fault rule answers instead (then `true`).
async fn serve(
    ctx: &ServerCtx,
    method: &str,
    path: &str,
    req: Request,
    next: Next,
) -> (Response, bool) {
    let Some(rule) = ctx.core.take_fault(ctx.service, &ctx.label, method, path) else {
        return (next.run(req).await, false);
    };
    if let Some(latency) = rule.latency {
        tokio::time::sleep(latency).await;
    }
    match rule.status {
        Some(status) => (fault_response(&rule, status), true),
        None => (next.run(req).await, false),
    }
}

/// The identity resource IDs the request names; reads (and puts back) the body of an ARM
/// machine write, so the handler sees the request unchanged.
async fn attribute(
    core: &CloudCore,
    service: Service,
    method: &str,
    path: &str,
    query: &[(String, String)],
    req: Request,
) -> Result<(Request, Vec<String>), Box<Response>> {
    if !attribution::needs_body(service, method, path) {
        let ids = attribution::identity_ids(service, method, path, query, None, Vec::new);
        return Ok((req, ids));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ARM_BODY).await.map_err(|e| {
        tracing::debug!(error = %e, "reading an ARM request body failed");
        let mut resp = Response::new(Body::from(
            r#"{"error":{"code":"InvalidRequestContent","message":"The request content could not be read."}}"#,
        ));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Box::new(resp)
    })?;
    let held = || {
        let Some((rg, resource_type, name)) = attribution::machine_address(path) else {
            return Vec::new();
        };
        core.with_state(|state| {
            state
                .machine_by_arm(rg, resource_type, name)
                .map(|idx| state.machines[idx].user_assigned.clone())
                .unwrap_or_default()
        })
    };
    let ids = attribution::identity_ids(service, method, path, query, Some(&bytes), held);
    Ok((Request::from_parts(parts, Body::from(bytes)), ids))
}

fn fault_response(rule: &FaultRule, status: u16) -> Response {
    let mut resp = Response::new(Body::from(rule.body.clone().unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ct = rule.content_type.as_deref().unwrap_or("application/json");
    if let Ok(v) = HeaderValue::from_str(ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(ra) = rule
        .retry_after
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, ra);
    }
    resp
}
