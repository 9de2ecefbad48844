//! ARM routing: subscriptions, resource groups, user-assigned identities, role assignments at
//! any scope, storage accounts and containers, VMs/VMSSs, Compute operations and operation
//! results. With authorization on, the caller's permission for the action at the scope the path
//! names is checked first, before the resource is looked up, as ARM does.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::error::{arm_error, method_not_allowed, resource_group_not_found, resource_not_found};
use super::render::{machine_json, ok, subscription_json};
use super::{
    ArmRequest, identities, machine_write, operation_results, operations, rbac, resource_groups,
    role_assignments, storage,
};
use crate::resource_id;
use crate::state::CloudState;

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn not_served() -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The requested path is not served by this mock.",
    )
}

/// Where a path addresses role assignments: the number of leading segments that are the
/// scope, and the assignment's name (`None` for the list).
fn role_assignment_path<'a>(seg: &[&'a str]) -> Option<(usize, Option<&'a str>)> {
    let n = seg.len();
    let names_collection = |at: usize| {
        eq(seg[at], "providers")
            && eq(seg[at + 1], "Microsoft.Authorization")
            && eq(seg[at + 2], "roleAssignments")
    };
    if n >= 6 && names_collection(n - 4) {
        return Some((n - 4, Some(seg[n - 1])));
    }
    if n >= 5 && names_collection(n - 3) {
        return Some((n - 3, None));
    }
    None
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
    if let Some((scope_len, name)) = role_assignment_path(seg) {
        let scope = format!("/{}", seg[..scope_len].join("/"));
        return role_assignments::handle(state, req, &scope, name);
    }
    if seg.len() == 4 && eq(seg[2], "operationresults") {
        return match *method {
            Method::GET => operation_results::poll(state, seg[3]),
            _ => method_not_allowed(method),
        };
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
        return resource_groups::handle(state, req, rg);
    }
    if seg.len() < 8 || !eq(seg[4], "providers") {
        return not_served();
    }
    let (ns, rtype, name) = (seg[5], seg[6], seg[7]);
    let scope = format!("{rg_scope}/providers/{ns}/{rtype}/{name}");
    if eq(ns, "Microsoft.Storage") && eq(rtype, "storageAccounts") {
        return match &seg[8..] {
            [] => storage::handle(state, req, rg, name, None, &scope),
            [blob_services, default, containers, container]
                if eq(blob_services, "blobServices")
                    && eq(default, "default")
                    && eq(containers, "containers") =>
            {
                let scope = format!("{scope}/blobServices/default/containers/{container}");
                storage::handle(state, req, rg, name, Some(container), &scope)
            }
            _ => not_served(),
        };
    }
    if seg.len() != 8 {
        return not_served();
    }
    if eq(ns, "Microsoft.ManagedIdentity") && eq(rtype, "userAssignedIdentities") {
        return identities::handle(state, req, rg, name, &scope);
    }
    if !eq(ns, "Microsoft.Compute")
        || !(eq(rtype, "virtualMachines") || eq(rtype, "virtualMachineScaleSets"))
    {
        if !state.resource_group_exists(rg) {
            return resource_group_not_found(rg);
        }
        return resource_not_found(&format!("{ns}/{rtype}/{name}"), rg);
    }
    let verb = match *method {
        Method::GET => "read",
        Method::PATCH | Method::PUT => "write",
        _ => return method_not_allowed(method),
    };
    let action = rbac::compute_action(rtype, verb);
    if let Some(refusal) = rbac::refuse_unless_allowed(state, req, &action, &scope) {
        return refusal;
    }
    if !state.resource_group_exists(rg) {
        return resource_group_not_found(rg);
    }
    let Some(idx) = state.machine_by_arm(rg, rtype, name) else {
        return resource_not_found(&format!("{ns}/{rtype}/{name}"), rg);
    };
    match verb {
        "read" => ok(machine_json(state, idx)),
        _ => machine_write::write(state, req, idx, &scope, &action),
    }
}
