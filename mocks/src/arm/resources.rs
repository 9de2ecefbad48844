//! ARM routing: subscriptions, resource groups, user-assigned identities, VMs/VMSSs and Compute
//! operations. With authorization on, the caller's permission for the action at the scope the
//! path names is checked first, before the resource is looked up, as ARM does.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::error::arm_error;
use super::render::{machine_json, ok, subscription_json};
use super::{ArmRequest, machine_write, operations, rbac};
use crate::resource_id;
use crate::state::CloudState;

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
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

fn not_served() -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The requested path is not served by this mock.",
    )
}

/// `Some(403)` when authorization is on and the caller may not perform `action` at `scope`.
fn refuse_unless_allowed(
    state: &CloudState,
    req: &ArmRequest<'_>,
    action: &str,
    scope: &str,
) -> Option<Response> {
    if !req.behaviour.authorization
        || rbac::allowed(&state.role_assignments, &req.caller.oid, action, scope)
    {
        return None;
    }
    tracing::info!(oid = %req.caller.oid, %action, %scope, "ARM: authorization failed");
    Some(rbac::authorization_failed(req.caller, action, scope))
}

/// Dispatches an authenticated ARM request by its path segments (called with the state locked).
pub(crate) fn route(state: &mut CloudState, req: &ArmRequest<'_>, seg: &[&str]) -> Response {
    let method = req.method;
    if seg.is_empty() || !eq(seg[0], "subscriptions") {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested path is not served by Azure Resource Manager.",
        );
    }
    if seg.len() == 1 {
        if *method != Method::GET {
            return method_not_allowed(method);
        }
        // ARM lists the subscriptions in which the caller has some access.
        let visible = !req.behaviour.authorization
            || rbac::has_any_assignment(&state.role_assignments, &req.caller.oid);
        let value: Vec<_> = visible
            .then(|| subscription_json(state))
            .into_iter()
            .collect();
        let count = value.len();
        return ok(json!({"value": value, "count": {"type": "Total", "value": count}}));
    }
    if !eq(seg[1], &state.subscription_id) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{}' could not be found.", seg[1]),
        );
    }
    if seg.len() == 2 {
        if *method != Method::GET {
            return method_not_allowed(method);
        }
        if req.behaviour.authorization
            && !rbac::has_any_assignment(&state.role_assignments, &req.caller.oid)
        {
            let scope = format!("/subscriptions/{}", seg[1]);
            return rbac::authorization_failed(
                req.caller,
                "Microsoft.Resources/subscriptions/read",
                &scope,
            );
        }
        return ok(subscription_json(state));
    }
    if eq(seg[2], "providers") {
        return match seg {
            [_, _, _, ns, locations, location, operations, id]
                if eq(ns, "Microsoft.Compute")
                    && eq(locations, "locations")
                    && eq(operations, "operations") =>
            {
                match *method {
                    Method::GET => operations::poll(state, req, location, id),
                    _ => method_not_allowed(method),
                }
            }
            _ => not_served(),
        };
    }
    if !eq(seg[2], "resourceGroups") || seg.len() < 4 {
        return not_served();
    }
    let rg = seg[3];
    let rg_scope = resource_id::resource_group(seg[1], rg);
    if seg.len() == 4 {
        if *method != Method::GET {
            return method_not_allowed(method);
        }
        if let Some(refusal) =
            refuse_unless_allowed(state, req, rbac::READ_RESOURCE_GROUP, &rg_scope)
        {
            return refusal;
        }
        if !state.resource_group_exists(rg) {
            return resource_group_not_found(rg);
        }
        return ok(json!({
            "id": rg_scope,
            "name": rg, "type": "Microsoft.Resources/resourceGroups", "location": "eastus",
            "properties": {"provisioningState": "Succeeded"}
        }));
    }
    if seg.len() != 8 || !eq(seg[4], "providers") {
        return not_served();
    }
    let (ns, rtype, name) = (seg[5], seg[6], seg[7]);
    let scope = format!("{rg_scope}/providers/{ns}/{rtype}/{name}");
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
        if *method != Method::GET {
            return method_not_allowed(method);
        }
        if let Some(refusal) = refuse_unless_allowed(state, req, rbac::READ_IDENTITY, &scope) {
            return refusal;
        }
        if !state.resource_group_exists(rg) {
            return resource_group_not_found(rg);
        }
        let sub = state.subscription_id.clone();
        return match state
            .identities
            .iter()
            .find(|i| eq(&i.name, name) && eq(&i.resource_group, rg))
        {
            Some(i) => ok(json!({
                "id": i.resource_id(&sub), "name": i.name, "location": "eastus",
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities", "tags": {},
                "properties": {"tenantId": state.tenant_id, "principalId": i.principal_id, "clientId": i.client_id}
            })),
            None => not_found(),
        };
    }
    if !eq(ns, "Microsoft.Compute")
        || !(eq(rtype, "virtualMachines") || eq(rtype, "virtualMachineScaleSets"))
    {
        if !state.resource_group_exists(rg) {
            return resource_group_not_found(rg);
        }
        return not_found();
    }
    let verb = match *method {
        Method::GET => "read",
        Method::PATCH | Method::PUT => "write",
        _ => return method_not_allowed(method),
    };
    let action = rbac::compute_action(rtype, verb);
    if let Some(refusal) = refuse_unless_allowed(state, req, &action, &scope) {
        return refusal;
    }
    if !state.resource_group_exists(rg) {
        return resource_group_not_found(rg);
    }
    let Some(idx) = state.machine_by_arm(rg, rtype, name) else {
        return not_found();
    };
    match verb {
        "read" => ok(machine_json(state, idx)),
        _ => machine_write::write(state, req, idx, &scope, &action),
    }
}

fn resource_group_not_found(rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        &format!("Resource group '{rg}' could not be found."),
    )
}
