//! Role assignments at any scope:
//! `PUT`/`GET`/`DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{name}` and
//! `GET {scope}/providers/Microsoft.Authorization/roleAssignments` (list, optionally
//! `$filter=principalId eq '{id}'`)
//! ([Role Assignments REST API](https://learn.microsoft.com/rest/api/authorization/role-assignments),
//! [assign roles with REST](https://learn.microsoft.com/azure/role-based-access-control/role-assignments-rest)).
//! The role definition's GUID names one of the mock's built-in roles; the assignment is the
//! same the spec's `role_assignments` hold, so Blob and ARM authorization see it at once.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{
    arm_error, method_not_allowed, resource_group_not_found, resource_not_found, with_arm_headers,
};
use super::operations::timestamp;
use super::render::ok;
use super::{ArmRequest, put_body, rbac};
use crate::resource_id::{self, normalize, scope_covers};
use crate::spec::{BuiltinRole, RoleAssignment};
use crate::state::{CloudState, NamedRoleAssignment};
use crate::state_changes::RoleAssignmentPut;

const RESOURCE_TYPE: &str = "Microsoft.Authorization/roleAssignments";

/// Every built-in role the mock models, for looking roles up by definition GUID.
const ROLES: [BuiltinRole; 8] = [
    BuiltinRole::StorageBlobDataReader,
    BuiltinRole::StorageBlobDataContributor,
    BuiltinRole::StorageBlobDataOwner,
    BuiltinRole::Reader,
    BuiltinRole::Contributor,
    BuiltinRole::Owner,
    BuiltinRole::VirtualMachineContributor,
    BuiltinRole::ManagedIdentityOperator,
];

/// The built-in role whose definition GUID ends `role_definition_id` (a full
/// `…/roleDefinitions/{guid}` id or the bare GUID).
pub(crate) fn role_by_definition(role_definition_id: &str) -> Option<BuiltinRole> {
    let guid = role_definition_id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    ROLES
        .into_iter()
        .find(|r| r.definition_id().eq_ignore_ascii_case(guid))
}

/// Handles `{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]`.
pub(crate) fn handle(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    scope: &str,
    name: Option<&str>,
) -> Response {
    let allowed = match name {
        Some(_) => [Method::GET, Method::PUT, Method::DELETE].contains(req.method),
        None => *req.method == Method::GET,
    };
    if !allowed {
        return method_not_allowed(req.method);
    }
    let action = rbac::action_for(RESOURCE_TYPE, req.method);
    if let Some(refusal) = rbac::refuse_unless_allowed(state, req, &action, scope) {
        return refusal;
    }
    if let Err(resp) = check_scope(state, scope) {
        return *resp;
    }
    let Some(name) = name else {
        return list(state, req, scope);
    };
    let found = state
        .named_role_assignment(name)
        .filter(|n| normalize(&n.assignment.scope) == normalize(scope));
    match (req.method.clone(), found) {
        (Method::PUT, _) => put(state, req, scope, name),
        (Method::GET, Some(n)) => ok(assignment_json(state, &n)),
        (Method::GET, None) => arm_error(
            StatusCode::NOT_FOUND,
            "RoleAssignmentNotFound",
            &format!("The role assignment '{name}' is not found."),
        ),
        (_, Some(n)) => {
            state.delete_named_role_assignment(&n.name);
            tracing::info!(name = %n.name, principal = %n.assignment.principal_id, "ARM: role assignment deleted");
            ok(assignment_json(state, &n))
        }
        (_, None) => with_arm_headers(StatusCode::NO_CONTENT.into_response()),
    }
}

fn put(state: &mut CloudState, req: &ArmRequest<'_>, scope: &str, name: &str) -> Response {
    if uuid::Uuid::parse_str(name).is_err() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRoleAssignmentId",
            &format!(
                "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            ),
        );
    }
    let body = match put_body::object(req.body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let props = body.get("properties").cloned().unwrap_or(Value::Null);
    let text = |key: &str| props.get(key).and_then(Value::as_str).map(str::to_string);
    let (Some(definition), Some(principal_id)) = (text("roleDefinitionId"), text("principalId"))
    else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content must give 'properties.roleDefinitionId' and 'properties.principalId'.",
        );
    };
    let principal_type = text("principalType");
    let Some(role) = role_by_definition(&definition) else {
        let guid = definition.rsplit('/').next().unwrap_or_default();
        return arm_error(
            StatusCode::BAD_REQUEST,
            "RoleDefinitionDoesNotExist",
            &format!("The specified role definition with ID '{guid}' does not exist."),
        );
    };
    // With a principal type ARM skips the directory lookup (the way to assign a role to a
    // principal created moments ago); without one it checks the principal exists.
    if principal_type.is_none() && !state.principal_exists(&principal_id) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "PrincipalNotFound",
            &format!(
                "Principal {} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
                principal_id.replace('-', ""),
                state.tenant_id
            ),
        );
    }
    let assignment = RoleAssignment {
        principal_id,
        role,
        scope: scope.to_string(),
    };
    let status = match state.put_named_role_assignment(name, assignment, principal_type) {
        RoleAssignmentPut::Created => StatusCode::CREATED,
        RoleAssignmentPut::Unchanged => StatusCode::OK,
        RoleAssignmentPut::Exists { name: other } => {
            return arm_error(
                StatusCode::CONFLICT,
                "RoleAssignmentExists",
                &format!(
                    "The role assignment already exists. The ID of the existing role assignment is {}.",
                    other.replace('-', "")
                ),
            );
        }
        RoleAssignmentPut::NameTaken => {
            return arm_error(
                StatusCode::CONFLICT,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            );
        }
    };
    let n = state
        .named_role_assignment(name)
        .expect("the assignment was just written");
    tracing::info!(%name, principal = %n.assignment.principal_id, role = ?n.assignment.role, %scope, "ARM: role assignment written");
    with_arm_headers((status, Json(assignment_json(state, &n))).into_response())
}

/// Assignments that apply at `scope` (at it or above) or lie below it, as ARM lists them,
/// optionally only those of one principal.
fn list(state: &CloudState, req: &ArmRequest<'_>, scope: &str) -> Response {
    let principal = req
        .query
        .iter()
        .find(|(k, _)| k == "$filter")
        .and_then(|(_, f)| principal_filter(f));
    let value: Vec<Value> = state
        .role_assignments
        .iter()
        .filter(|r| scope_covers(&r.scope, scope) || scope_covers(scope, &r.scope))
        .filter(|r| {
            principal
                .as_deref()
                .is_none_or(|p| r.principal_id.eq_ignore_ascii_case(p))
        })
        .filter_map(|r| state.named_role_assignment(&state.role_assignment_name(r)))
        .map(|n| assignment_json(state, &n))
        .collect();
    ok(json!({"value": value}))
}

/// The principal id of a `principalId eq '{id}'` filter.
fn principal_filter(filter: &str) -> Option<String> {
    let rest = filter.trim().strip_prefix("principalId")?.trim_start();
    let rest = rest.strip_prefix("eq")?.trim();
    Some(rest.trim_matches('\'').to_string())
}

/// Refuses a scope whose resource group or resource the mock does not hold (404), as ARM
/// does for an extension resource of a missing parent.
fn check_scope(state: &CloudState, scope: &str) -> Result<(), Box<Response>> {
    let seg: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if seg.len() == 2 {
        return Ok(());
    }
    if seg.len() < 4 || !eq(seg[2], "resourceGroups") {
        return Err(Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRoleAssignmentScope",
            &format!("The scope '{scope}' is not a subscription, resource group or resource."),
        )));
    }
    let rg = seg[3];
    if !state.resource_group_exists(rg) {
        return Err(Box::new(resource_group_not_found(rg)));
    }
    let rest = &seg[4..];
    let provider = |ns: &str, rtype: &str| {
        rest.len() >= 4 && eq(rest[0], "providers") && eq(rest[1], ns) && eq(rest[2], rtype)
    };
    let exists = if rest.is_empty() {
        true
    } else if provider("Microsoft.Storage", "storageAccounts") {
        let account = state
            .accounts
            .get(&rest[3].to_ascii_lowercase())
            .filter(|a| eq(&a.resource_group, rg));
        match (account, &rest[4..]) {
            (Some(_), []) => true,
            (Some(a), [blob_services, default, containers, container])
                if eq(blob_services, "blobServices")
                    && eq(default, "default")
                    && eq(containers, "containers") =>
            {
                a.containers.contains_key(*container)
            }
            _ => false,
        }
    } else if provider("Microsoft.ManagedIdentity", "userAssignedIdentities") && rest.len() == 4 {
        let id = resource_id::user_assigned_identity(&state.subscription_id, rg, rest[3]);
        state.identity_by_id(&id).is_some()
    } else if rest.len() == 4 && eq(rest[0], "providers") && eq(rest[1], "Microsoft.Compute") {
        state.machine_by_arm(rg, rest[2], rest[3]).is_some()
    } else {
        false
    };
    if exists {
        Ok(())
    } else {
        let resource = seg[5..].join("/");
        Err(Box::new(resource_not_found(&resource, rg)))
    }
}

/// An assignment as ARM returns it.
fn assignment_json(state: &CloudState, n: &NamedRoleAssignment) -> Value {
    let a = &n.assignment;
    let principal_type = n.principal_type.clone().unwrap_or_else(|| {
        if state.principal_exists(&a.principal_id) {
            "ServicePrincipal".into()
        } else {
            "Unknown".into()
        }
    });
    let created = timestamp(n.created);
    json!({
        "id": format!("{}/providers/{RESOURCE_TYPE}/{}", a.scope, n.name),
        "name": n.name,
        "type": RESOURCE_TYPE,
        "properties": {
            "roleDefinitionId": format!(
                "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{}",
                state.subscription_id,
                a.role.definition_id()
            ),
            "principalId": a.principal_id,
            "principalType": principal_type,
            "scope": a.scope,
            "createdOn": created,
            "updatedOn": created,
        }
    })
}
