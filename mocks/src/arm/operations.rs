//! Long-running VM/VMSS writes, as Azure Compute runs them: the PATCH or PUT answers `200 OK`
//! with the machine in `provisioningState: Updating` and an `Azure-AsyncOperation` URL; a GET of
//! that URL answers `{"status":"InProgress"}` a set number of times, then applies the write and
//! answers `Succeeded` (or `Failed` if it can no longer be applied). The machine changes only
//! then.
//!
//! Why 200 and not 202: the Compute REST specification lets Update answer only 200 (and
//! CreateOrUpdate 200 or 201); azure-mgmt-compute, generated from it, refuses a 202 ("Operation
//! returned an invalid status 'Accepted'"). go-autorest (MIC's `future.WaitForCompletionRef`,
//! `autorest/azure/async.go` v0.11.28) takes a 200 whose `provisioningState` is not terminal as
//! in progress and polls the `Azure-AsyncOperation` URL, as azure-core's ARM polling does. Both
//! wait between polls for the latest response's `Retry-After`, else for the client's polling
//! delay (5 s in MIC, 30 s in azure-core, which also treats `Retry-After: 0` as absent); so
//! every non-final answer carries `Retry-After: 1`, the shortest wait both honour.

use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;

use super::error::arm_error;
use super::machine_write::{self, MachineWrite};
use super::{ArmRequest, rbac, render};
use crate::resource_id;
use crate::state::CloudState;

/// Seconds a client is asked to wait before polling (again).
const RETRY_AFTER_SECS: &str = "1";

/// One long-running machine write.
#[derive(Debug, Clone)]
pub(crate) struct ArmOperation {
    /// Machine index in the state.
    pub machine: usize,
    /// Region of the machine (part of the operation's URL).
    pub location: String,
    /// The accepted write, applied on completion.
    pub change: MachineWrite,
    /// `InProgress` answers still to give before completing.
    pub polls_left: u32,
    pub started: SystemTime,
    /// `None` while in progress.
    pub outcome: Option<Outcome>,
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Succeeded {
        ended: SystemTime,
    },
    Failed {
        ended: SystemTime,
        code: &'static str,
        message: String,
    },
}

impl ArmOperation {
    /// Whether this operation is still changing machine `idx`.
    pub fn is_pending_on(&self, idx: usize) -> bool {
        self.machine == idx && self.outcome.is_none()
    }
}

/// Starts a long-running write of machine `idx`: records it and answers 200 with the machine
/// (still unchanged, `Updating`) and the operation's URL on the host the client addressed.
pub(crate) fn start(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    idx: usize,
    change: MachineWrite,
) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let location = state.machines[idx].location.clone();
    let url = format!(
        "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{}/operations/{id}?api-version={}",
        req.base_url,
        state.subscription_id,
        location,
        url::form_urlencoded::byte_serialize(req.api_version.as_bytes()).collect::<String>()
    );
    state.arm_operations.insert(
        id.clone(),
        ArmOperation {
            machine: idx,
            location,
            change,
            polls_left: req.behaviour.async_polls,
            started: SystemTime::now(),
            outcome: None,
        },
    );
    tracing::info!(operation = %id, machine = %state.machines[idx].name, "ARM long-running write accepted");
    let mut resp = render::ok(render::machine_json(state, idx));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&url) {
        h.insert("azure-asyncoperation", v);
    }
    h.insert("retry-after", HeaderValue::from_static(RETRY_AFTER_SECS));
    resp
}

/// `GET …/providers/Microsoft.Compute/locations/{location}/operations/{id}`: one poll.
pub(crate) fn poll(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    location: &str,
    id: &str,
) -> Response {
    let key = id.to_ascii_lowercase();
    let Some(op) = state
        .arm_operations
        .get(&key)
        .filter(|op| op.location.eq_ignore_ascii_case(location))
        .cloned()
    else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("The operation '{id}' was not found in location '{location}'."),
        );
    };
    if req.behaviour.authorization {
        // Tracking an operation needs access at the resource group level (Azure's
        // asynchronous-operations guide).
        let m = &state.machines[op.machine];
        let rg_scope = resource_id::resource_group(&state.subscription_id, &m.resource_group);
        if !rbac::allowed(
            &state.role_assignments,
            &req.caller.oid,
            rbac::READ_COMPUTE_OPERATION,
            &rg_scope,
        ) {
            return rbac::authorization_failed(req.caller, rbac::READ_COMPUTE_OPERATION, &rg_scope);
        }
    }
    let op = match op.outcome {
        Some(_) => op,
        None if op.polls_left > 0 => {
            let stored = state.arm_operations.get_mut(&key).expect("looked up above");
            stored.polls_left -= 1;
            return status_response(&key, stored);
        }
        None => {
            let ended = SystemTime::now();
            let outcome = match machine_write::apply(state, op.machine, &op.change) {
                Ok(()) => Outcome::Succeeded { ended },
                Err(e) => Outcome::Failed {
                    ended,
                    code: e.code,
                    message: e.message,
                },
            };
            let stored = state.arm_operations.get_mut(&key).expect("looked up above");
            stored.outcome = Some(outcome);
            stored.clone()
        }
    };
    status_response(&key, &op)
}

/// The operation-status body: `name`, `status`, `startTime`, and `endTime` (and `error`) once
/// finished; `Retry-After` while in progress.
fn status_response(id: &str, op: &ArmOperation) -> Response {
    let mut body = json!({"name": id, "startTime": timestamp(op.started)});
    match &op.outcome {
        None => body["status"] = json!("InProgress"),
        Some(Outcome::Succeeded { ended }) => {
            body["status"] = json!("Succeeded");
            body["endTime"] = json!(timestamp(*ended));
        }
        Some(Outcome::Failed {
            ended,
            code,
            message,
        }) => {
            body["status"] = json!("Failed");
            body["endTime"] = json!(timestamp(*ended));
            body["error"] = json!({"code": code, "message": message});
        }
    }
    let mut resp = render::ok(body);
    if op.outcome.is_none() {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    resp
}

/// `2024-05-01T12:00:00.1234567+00:00`, the way Compute writes operation times.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]+00:00"
    );
    OffsetDateTime::from(t).format(&fmt).unwrap_or_default()
}
