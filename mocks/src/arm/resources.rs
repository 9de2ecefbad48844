//! ARM resource handlers: subscriptions, resource groups, VMs/VMSSs, user-assigned identities.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::{arm_error, with_arm_headers};
use super::identity_patch::{self, IdentityType, PatchError};
use crate::spec::MachineKind;
use crate::state::{CloudState, MachineState};

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn ok(v: Value) -> Response {
    with_arm_headers((StatusCode::OK, Json(v)).into_response())
}

fn method_not_allowed(method: &Method) -> Response {
    arm_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!(
            "The requested method '{method}' is not supported by this mock for this resource."
        ),
    )
}

/// Dispatches an authenticated ARM request by its path segments (called with the state locked).
pub(crate) fn route(
    state: &mut CloudState,
    method: &Method,
    seg: &[&str],
    body: &[u8],
) -> Response {
    if seg.is_empty() || !eq(seg[0], "subscriptions") {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested path is not served by Azure Resource Manager.",
        );
    }
    if seg.len() == 1 {
        return match *method {
            Method::GET => ok(
                json!({"value": [subscription_json(state)], "count": {"type": "Total", "value": 1}}),
            ),
            _ => method_not_allowed(method),
        };
    }
    if !eq(seg[1], &state.subscription_id) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{}' could not be found.", seg[1]),
        );
    }
    if seg.len() == 2 {
        return match *method {
            Method::GET => ok(subscription_json(state)),
            _ => method_not_allowed(method),
        };
    }
    if !eq(seg[2], "resourceGroups") || seg.len() < 4 {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested path is not served by this mock.",
        );
    }
    let rg = seg[3];
    if !state.resource_group_exists(rg) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            &format!("Resource group '{rg}' could not be found."),
        );
    }
    if seg.len() == 4 {
        return match *method {
            Method::GET => ok(json!({
                "id": format!("/subscriptions/{}/resourceGroups/{rg}", state.subscription_id),
                "name": rg, "type": "Microsoft.Resources/resourceGroups", "location": "eastus",
                "properties": {"provisioningState": "Succeeded"}
            })),
            _ => method_not_allowed(method),
        };
    }
    if seg.len() != 8 || !eq(seg[4], "providers") {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested path is not served by this mock.",
        );
    }
    let (ns, rtype, name) = (seg[5], seg[6], seg[7]);
    let not_found = || {
        arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource '{ns}/{rtype}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    };
    if eq(ns, "Microsoft.ManagedIdentity") && eq(rtype, "userAssignedIdentities") {
        let sub = state.subscription_id.clone();
        let found = state
            .identities
            .iter()
            .find(|i| eq(&i.name, name) && eq(&i.resource_group, rg))
            .cloned();
        return match (method.clone(), found) {
            (Method::GET, Some(i)) => ok(json!({
                "id": i.resource_id(&sub), "name": i.name, "location": "eastus",
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities", "tags": {},
                "properties": {"tenantId": state.tenant_id, "principalId": i.principal_id, "clientId": i.client_id}
            })),
            (Method::GET, None) => not_found(),
            _ => method_not_allowed(method),
        };
    }
    if !eq(ns, "Microsoft.Compute")
        || !(eq(rtype, "virtualMachines") || eq(rtype, "virtualMachineScaleSets"))
    {
        return not_found();
    }
    let Some(idx) = state.machine_by_arm(rg, rtype, name) else {
        return not_found();
    };
    match *method {
        Method::GET => ok(machine_json(state, &state.machines[idx])),
        Method::PATCH => patch_machine(state, idx, body),
        _ => method_not_allowed(method),
    }
}

fn patch_machine(state: &mut CloudState, idx: usize, body: &[u8]) -> Response {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                &format!("The request content was invalid and could not be deserialized: '{e}'."),
            );
        }
    };
    let patch = match identity_patch::parse(&parsed) {
        Ok(Some(p)) => p,
        Ok(None) => return ok(machine_json(state, &state.machines[idx])),
        Err(PatchError::Invalid(msg)) => {
            return arm_error(StatusCode::BAD_REQUEST, "InvalidParameter", &msg);
        }
    };
    let unknown: Vec<&String> = patch
        .add
        .iter()
        .filter(|id| state.identity_by_id(id).is_none())
        .collect();
    if !unknown.is_empty() {
        let machine_id = state.machines[idx].kind_resource_id(&state.subscription_id);
        let ids: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        let msg = format!(
            "Resource '{machine_id}' identity operation failed: the user assigned identities '{}' were not found.",
            ids.join(",")
        );
        return arm_error(StatusCode::BAD_REQUEST, "FailedIdentityOperation", &msg);
    }
    let m = &state.machines[idx];
    let merged = identity_patch::merge(m.system.is_some(), &m.user_assigned, &patch);
    let m = &mut state.machines[idx];
    m.user_assigned = merged.user;
    let kept = m.user_assigned.clone();
    m.stale.retain(|rid| kept.contains(rid));
    if merged.system {
        state.enable_system_assigned(idx);
    } else {
        state.machines[idx].system = None;
    }
    let m = &state.machines[idx];
    tracing::info!(machine = %m.name, identities = m.user_assigned.len(), "ARM identity PATCH applied");
    ok(machine_json(state, &state.machines[idx]))
}

fn subscription_json(state: &CloudState) -> Value {
    json!({
        "id": format!("/subscriptions/{}", state.subscription_id),
        "subscriptionId": state.subscription_id,
        "tenantId": state.tenant_id,
        "displayName": "podid mock subscription",
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
        "authorizationSource": "RoleBased",
    })
}

fn identity_json(state: &CloudState, m: &MachineState) -> Option<Value> {
    let user = !m.user_assigned.is_empty();
    if m.system.is_none() && !user {
        return None;
    }
    let mut obj = Map::new();
    obj.insert(
        "type".into(),
        json!(IdentityType::render(m.system.is_some(), user)),
    );
    if let Some(s) = &m.system {
        obj.insert("principalId".into(), json!(s.principal_id));
        obj.insert("tenantId".into(), json!(state.tenant_id));
    }
    if user {
        let mut map = Map::new();
        for rid in &m.user_assigned {
            let found = state.identity_by_id(rid).filter(|_| !m.stale.contains(rid));
            let (id, value) = match found {
                Some(i) => (
                    i.resource_id(&state.subscription_id),
                    json!({"principalId": i.principal_id, "clientId": i.client_id}),
                ),
                // A stale reference: Azure lists it without a principal (aad-pod-identity
                // Known Issues, "Identity not found").
                None => (
                    state.canonical_identity_id(rid),
                    json!({"principalId": null, "clientId": null}),
                ),
            };
            map.insert(id, value);
        }
        obj.insert("userAssignedIdentities".into(), Value::Object(map));
    }
    Some(Value::Object(obj))
}

/// The VM or VMSS resource as ARM returns it.
fn machine_json(state: &CloudState, m: &MachineState) -> Value {
    let mut v = json!({
        "name": m.name,
        "id": m.kind_resource_id(&state.subscription_id),
        "type": format!("Microsoft.Compute/{}", m.kind.resource_type()),
        "location": m.location,
        "tags": {},
    });
    let props = match m.kind {
        MachineKind::Vm => json!({
            "vmId": m.vm_ids.first().cloned().unwrap_or_default(),
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "provisioningState": m.provisioning_state,
        }),
        MachineKind::ScaleSet { instances } => {
            v["sku"] =
                json!({"name": "Standard_D2s_v3", "tier": "Standard", "capacity": instances});
            json!({
                "uniqueId": m.vm_ids.first().cloned().unwrap_or_default(),
                "upgradePolicy": {"mode": "Manual"},
                "provisioningState": m.provisioning_state,
            })
        }
    };
    v["properties"] = props;
    if let Some(identity) = identity_json(state, m) {
        v["identity"] = identity;
    }
    v
}
