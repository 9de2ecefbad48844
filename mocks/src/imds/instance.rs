//! Instance metadata (`/metadata/instance`), identity info, versions, and 404 for the rest.

use std::sync::Arc;

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{bad_api_version, imds_error, metadata_required, with_server};
use super::query::{ApiVersionCheck, ImdsQuery, SUPPORTED_VERSIONS, check_api_version};
use super::token::has_metadata_header;
use crate::context::ServerCtx;
use crate::spec::{MachineKind, MachineRef};
use crate::state::CloudState;

/// Common checks of metadata calls: header and api-version.
fn precheck(headers: &HeaderMap, q: &ImdsQuery) -> Option<Response> {
    if !has_metadata_header(headers) {
        return Some(metadata_required());
    }
    match check_api_version(q, false) {
        ApiVersionCheck::Ok => None,
        ApiVersionCheck::Missing => Some(bad_api_version(true)),
        ApiVersionCheck::Unsupported => Some(bad_api_version(false)),
    }
}

/// The instance document for this server's machine.
fn instance_document(ctx: &ServerCtx) -> Option<Value> {
    let machine = ctx.machine.as_ref()?;
    let ip = ctx.local_addr.ip().to_string();
    ctx.core.with_state(|state| document(state, machine, ip))
}

/// The instance document of `machine` (all primitives are strings, as in IMDS); `ip` is the
/// address the IMDS listens on, reported as the private IP.
fn document(state: &CloudState, machine: &MachineRef, ip: String) -> Option<Value> {
    let m = &state.machines[state.machine_index(machine)?];
    let instance = machine.instance.unwrap_or(0) as usize;
    let (name, vmss) = match m.kind {
        MachineKind::Vm => (m.name.clone(), String::new()),
        MachineKind::ScaleSet { .. } => (format!("{}_{}", m.name, instance), m.name.clone()),
    };
    let resource_id = match m.kind {
        MachineKind::Vm => m.kind_resource_id(&state.subscription_id),
        MachineKind::ScaleSet { .. } => format!(
            "{}/virtualMachines/{}",
            m.kind_resource_id(&state.subscription_id),
            instance
        ),
    };
    Some(json!({
        "compute": {
            "azEnvironment": "AzurePublicCloud",
            "location": m.location,
            "name": name,
            "osType": "Linux",
            "provider": "Microsoft.Compute",
            "resourceGroupName": m.resource_group,
            "resourceId": resource_id,
            "subscriptionId": state.subscription_id,
            "tags": "",
            "tagsList": [],
            "vmId": m.vm_ids.get(instance).cloned().unwrap_or_default(),
            "vmScaleSetName": vmss,
            "vmSize": "Standard_D2s_v3",
            "zone": "",
        },
        "network": {
            "interface": [{
                "ipv4": {
                    "ipAddress": [{"privateIpAddress": ip, "publicIpAddress": ""}],
                    "subnet": [{"address": "", "prefix": ""}],
                },
                "ipv6": {"ipAddress": []},
                "macAddress": "",
            }]
        }
    }))
}

/// `/metadata/instance[/path…]` with `format=json|text`.
pub(crate) async fn instance(
    State(ctx): State<Arc<ServerCtx>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let q = ImdsQuery::parse(uri.query());
    if let Some(resp) = precheck(&headers, &q) {
        return resp;
    }
    let Some(doc) = instance_document(&ctx) else {
        return not_found().await;
    };
    let sub_path = uri.path().trim_start_matches("/metadata/instance");
    let mut node = &doc;
    for seg in sub_path.split('/').filter(|s| !s.is_empty()) {
        let next = match node {
            Value::Object(map) => map.get(seg),
            Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return not_found().await,
        }
    }
    let text = q.get("format") == Some("text");
    match node {
        Value::String(s) if text => with_server(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                s.clone(),
            )
                .into_response(),
        ),
        Value::String(_) => imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Bad request. Leaf nodes must be requested with format=text. For more information refer to aka.ms/azureimds",
        ),
        other => with_server(Json(other.clone()).into_response()),
    }
}

/// `/metadata/identity/info`: the tenant of the machine's identities.
pub(crate) async fn identity_info(
    State(ctx): State<Arc<ServerCtx>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let q = ImdsQuery::parse(uri.query());
    if let Some(resp) = precheck(&headers, &q) {
        return resp;
    }
    with_server(Json(json!({"tenantId": ctx.core.tenant_id()})).into_response())
}

/// `/metadata/versions`: supported api-versions (no api-version needed).
pub(crate) async fn versions(headers: HeaderMap) -> Response {
    if !has_metadata_header(&headers) {
        return metadata_required();
    }
    with_server(Json(json!({"apiVersions": SUPPORTED_VERSIONS})).into_response())
}

/// 404 for every other path (IMDS answers unknown paths with Not Found).
pub(crate) async fn not_found() -> Response {
    imds_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "The requested path was not found",
    )
}
