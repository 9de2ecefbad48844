//! Middleware around every service: applies fault rules and records each request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::aad::form::{parse_basic, parse_form};
use crate::attribution::{self, MAX_ARM_BODY};
use crate::context::ServerCtx;
use crate::core::CloudCore;
use crate::fault::{FaultRule, FaultTarget};
use crate::record::{RecordedRequest, Service, redact_header, redact_param};

/// Largest AAD request body read to find the client id a fault rule may name; token requests
/// are a few kilobytes.
const MAX_AAD_BODY: usize = 1024 * 1024;

/// Marks a response that must not be sent: the server closes the connection instead (a
/// `disconnect` fault rule).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Disconnect;

/// Status recorded for a request that got no answer (its connection was closed).
pub(crate) const NO_ANSWER: u16 = 0;

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
    let (mut resp, faulted, identity_ids, asked_client) =
        match inspect(&ctx.core, ctx.service, &method, &path, &raw_query, req).await {
            Ok((req, inspected)) => {
                let target = FaultTarget {
                    service: ctx.service,
                    label: &ctx.label,
                    method: &method,
                    path: &path,
                    client_id: inspected.client_id.as_deref(),
                };
                let (resp, faulted) = serve(&ctx, &target, req, next).await;
                (resp, faulted, inspected.identity_ids, inspected.client_id)
            }
            Err(resp) => (*resp, false, Vec::new(), None),
        };
    let mut note = resp
        .extensions_mut()
        .remove::<RequestNote>()
        .unwrap_or_default();
    // A request a fault rule answered never reached its handler: record the client it named
    // (IMDS query, AAD form) all the same, so it is attributed like any other.
    if faulted && note.client_id.is_none() {
        note.client_id = asked_client.clone();
    }
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
    let status = if resp.extensions().get::<Disconnect>().is_some() {
        NO_ANSWER
    } else {
        resp.status().as_u16()
    };
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

/// Runs the handler, unless a fault rule answers or disconnects instead (then `true`).
async fn serve(
    ctx: &ServerCtx,
    target: &FaultTarget<'_>,
    req: Request,
    next: Next,
) -> (Response, bool) {
    let Some(rule) = ctx.core.take_fault(target) else {
        return (next.run(req).await, false);
    };
    if let Some(latency) = rule.latency {
        tokio::time::sleep(latency).await;
    }
    if rule.disconnect {
        let mut resp = Response::new(Body::empty());
        resp.extensions_mut().insert(Disconnect);
        return (resp, true);
    }
    match rule.status {
        Some(status) => (fault_response(&rule, status), true),
        None => (next.run(req).await, false),
    }
}

/// What the mock reads from a request before fault rules and handlers see it.
#[derive(Debug, Default)]
struct Inspected {
    /// Identity resource IDs the request names (see [`attribution`]).
    identity_ids: Vec<String>,
    /// The client id the request names, for fault rules that select by it.
    client_id: Option<String>,
}

/// Reads what fault rules and the log need from a request. The body is read (and put back, so
/// the handler sees the request unchanged) only for an ARM machine write (its identities) and
/// an AAD POST (its form's `client_id`).
async fn inspect(
    core: &CloudCore,
    service: Service,
    method: &str,
    path: &str,
    query: &[(String, String)],
    req: Request,
) -> Result<(Request, Inspected), Box<Response>> {
    let query_client_id = || {
        query
            .iter()
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.clone())
    };
    match service {
        Service::Aad if method.eq_ignore_ascii_case("POST") => {
            let basic_user = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(parse_basic)
                .map(|(id, _)| id);
            let (req, bytes) = buffer_body(req, MAX_AAD_BODY).await?;
            let client_id = parse_form(&bytes).client_id.or(basic_user);
            Ok((
                req,
                Inspected {
                    client_id,
                    ..Inspected::default()
                },
            ))
        }
        Service::Imds => Ok((
            req,
            Inspected {
                identity_ids: attribution::identity_ids(
                    service,
                    method,
                    path,
                    query,
                    None,
                    Vec::new,
                ),
                client_id: query_client_id().filter(|c| !c.is_empty()),
            },
        )),
        _ if attribution::needs_body(service, method, path) => {
            let (req, bytes) = buffer_body(req, MAX_ARM_BODY).await?;
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
            Ok((
                req,
                Inspected {
                    identity_ids: ids,
                    ..Inspected::default()
                },
            ))
        }
        _ => Ok((req, Inspected::default())),
    }
}

/// Reads the whole body (at most `limit` bytes) and rebuilds the request around it; a body that
/// cannot be read is answered 400.
async fn buffer_body(
    req: Request,
    limit: usize,
) -> Result<(Request, axum::body::Bytes), Box<Response>> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        tracing::debug!(error = %e, "reading a request body failed");
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
    Ok((Request::from_parts(parts, Body::from(bytes.clone())), bytes))
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
