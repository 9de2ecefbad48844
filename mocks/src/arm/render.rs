//! ARM response bodies: the subscription, and VMs/VMSSs with their identity object.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::with_arm_headers;
use super::identity_patch::IdentityType;
use crate::spec::MachineKind;
use crate::state::{CloudState, MachineState};

/// 200 with a JSON body and ARM's headers.
pub(crate) fn ok(v: Value) -> Response {
    with_arm_headers((StatusCode::OK, Json(v)).into_response())
}

/// A subscription as `GET /subscriptions[/{id}]` lists it.
pub(crate) fn subscription_json(state: &CloudState) -> Value {
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

/// The VM or VMSS resource (machine `idx`) as ARM returns it; `provisioningState` is
/// `Updating` while a long-running write of it is in progress.
pub(crate) fn machine_json(state: &CloudState, idx: usize) -> Value {
    let m = &state.machines[idx];
    let provisioning_state = if state
        .arm_operations
        .values()
        .any(|op| op.is_pending_on(idx))
    {
        "Updating"
    } else {
        m.provisioning_state.as_str()
    };
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
            "provisioningState": provisioning_state,
        }),
        MachineKind::ScaleSet { instances } => {
            v["sku"] =
                json!({"name": "Standard_D2s_v3", "tier": "Standard", "capacity": instances});
            json!({
                "uniqueId": m.vm_ids.first().cloned().unwrap_or_default(),
                "upgradePolicy": {"mode": "Manual"},
                "provisioningState": provisioning_state,
            })
        }
    };
    v["properties"] = props;
    if let Some(identity) = identity_json(state, m) {
        v["identity"] = identity;
    }
    v
}
