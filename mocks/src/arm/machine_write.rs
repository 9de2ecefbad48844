//! VM/VMSS writes (PATCH merges identities, PUT replaces them): parsing, the checks ARM makes
//! before accepting one, and applying it to the machine.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::error::arm_error;
use super::identity_patch::{self, IdentityPatch, IdentityType, PatchError};
use super::rbac::{self, ASSIGN_IDENTITY};
use super::{ArmRequest, operations, render};
use crate::resource_id::normalize;
use crate::state::CloudState;

/// An accepted identity change of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MachineWrite {
    /// The identity change the body asks for.
    pub patch: IdentityPatch,
    /// A PUT: the listed user-assigned identities replace the machine's (a PATCH merges).
    pub replace: bool,
}

/// Why a write could not be applied: ARM's error code and message (status 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteError {
    pub code: &'static str,
    pub message: String,
}

impl WriteError {
    fn response(&self) -> Response {
        arm_error(StatusCode::BAD_REQUEST, self.code, &self.message)
    }
}

impl MachineWrite {
    /// Reads a PATCH or PUT body. A PUT without `identity` leaves the machine without
    /// identities, and one without `identity.type` has the kinds it lists.
    fn parse(body: &Value, put: bool) -> Result<Self, PatchError> {
        let patch = identity_patch::parse(body)?;
        let patch = match (put, patch) {
            (false, p) => p.unwrap_or_default(),
            (true, None) => IdentityPatch {
                kind: IdentityType::parse("None"),
                ..IdentityPatch::default()
            },
            (true, Some(mut p)) => {
                p.kind.get_or_insert(IdentityType {
                    system: false,
                    user: !p.add.is_empty(),
                });
                p.remove.clear();
                p
            }
        };
        Ok(Self {
            patch,
            replace: put,
        })
    }

    /// User-assigned identities the write adds to machine `idx` (it does not hold them yet).
    fn added(&self, state: &CloudState, idx: usize) -> Vec<String> {
        let held = &state.machines[idx].user_assigned;
        self.patch
            .add
            .iter()
            .filter(|id| !held.contains(id))
            .cloned()
            .collect()
    }
}

/// Handles an authenticated PATCH or PUT of machine `idx` (write permission on it, if checked,
/// was granted already). `scope` is the machine as the path names it and `write_action` the
/// permission the caller used.
pub(crate) fn write(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    idx: usize,
    scope: &str,
    write_action: &str,
) -> Response {
    let parsed: Value = match serde_json::from_slice(req.body) {
        Ok(v) => v,
        Err(e) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                &format!("The request content was invalid and could not be deserialized: '{e}'."),
            );
        }
    };
    let change = match MachineWrite::parse(&parsed, req.method == Method::PUT) {
        Ok(c) => c,
        Err(PatchError::Invalid(msg)) => {
            return arm_error(StatusCode::BAD_REQUEST, "InvalidParameter", &msg);
        }
    };
    if req.behaviour.authorization {
        let denied: Vec<String> = change
            .added(state, idx)
            .into_iter()
            .filter(|id| {
                !rbac::allowed(
                    &state.role_assignments,
                    &req.caller.oid,
                    ASSIGN_IDENTITY,
                    id,
                )
            })
            .collect();
        if !denied.is_empty() {
            tracing::info!(oid = %req.caller.oid, ?denied, "ARM: linked authorization failed");
            return rbac::linked_authorization_failed(req.caller, write_action, scope, &denied);
        }
    }
    if let Err(e) = check_identities_exist(state, idx, &change) {
        return e.response();
    }
    if req.behaviour.async_polls > 0 {
        return operations::start(state, req, idx, change);
    }
    match apply(state, idx, &change) {
        Ok(()) => render::ok(render::machine_json(state, idx)),
        Err(e) => e.response(),
    }
}

/// Refuses a write adding identities the cloud does not have, as a whole (400
/// `FailedIdentityOperation` naming each, single-quoted and comma-separated).
fn check_identities_exist(
    state: &CloudState,
    idx: usize,
    change: &MachineWrite,
) -> Result<(), WriteError> {
    let unknown: Vec<&str> = change
        .patch
        .add
        .iter()
        .filter(|id| state.identity_by_id(id).is_none())
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let machine_id = state.machines[idx].kind_resource_id(&state.subscription_id);
    Err(WriteError {
        code: "FailedIdentityOperation",
        message: format!(
            "Resource '{machine_id}' identity operation failed: the user assigned identities '{}' were not found.",
            unknown.join(",")
        ),
    })
}

/// Applies an accepted write to machine `idx`, checking again that the identities it adds
/// exist (a long-running write is applied when it completes). Identities it adds count as
/// assigned now (IMDS propagation).
pub(crate) fn apply(
    state: &mut CloudState,
    idx: usize,
    change: &MachineWrite,
) -> Result<(), WriteError> {
    check_identities_exist(state, idx, change)?;
    let m = &state.machines[idx];
    let current: &[String] = if change.replace {
        &[]
    } else {
        &m.user_assigned
    };
    let merged = identity_patch::merge(m.system.is_some(), current, &change.patch);
    let sub = state.subscription_id.clone();
    let m = &mut state.machines[idx];
    for id in &merged.user {
        if !m.user_assigned.contains(id) {
            m.mark_assigned(id);
        }
    }
    let system_mirid = normalize(&m.mirid(&sub));
    m.assigned_at
        .retain(|id, _| *id == system_mirid || merged.user.contains(id));
    m.user_assigned = merged.user;
    let kept = m.user_assigned.clone();
    m.stale.retain(|rid| kept.contains(rid));
    if merged.system {
        state.enable_system_assigned(idx);
    } else {
        state.disable_system_assigned(idx);
    }
    let m = &state.machines[idx];
    tracing::info!(machine = %m.name, identities = m.user_assigned.len(), "ARM identity write applied");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn put_replaces_and_defaults_to_the_listed_kinds() {
        let w = MachineWrite::parse(&json!({"location": "eastus"}), true).unwrap();
        assert!(w.replace);
        assert_eq!(
            w.patch.kind,
            Some(IdentityType {
                system: false,
                user: false
            })
        );
        let w = MachineWrite::parse(
            &json!({"identity": {"userAssignedIdentities": {"A": {}, "B": null}}}),
            true,
        )
        .unwrap();
        assert_eq!(w.patch.add, vec!["a".to_string()]);
        assert!(w.patch.remove.is_empty());
        assert_eq!(
            w.patch.kind,
            Some(IdentityType {
                system: false,
                user: true
            })
        );
        let w = MachineWrite::parse(&json!({"tags": {}}), false).unwrap();
        assert_eq!(w.patch, IdentityPatch::default());
        assert!(!w.replace);
    }
}
