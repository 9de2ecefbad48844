//! ARM (control-plane) authorization: which actions the built-in roles grant, and the 403s ARM
//! answers when a caller lacks one.
//!
//! Each role lists the action patterns of its Azure definition that matter to the resources
//! this mock serves (Azure built-in roles reference). A pattern's `*` matches any text; a
//! `/*/` also matches a single `/`, as Managed Identity Operator's
//! `userAssignedIdentities/*/assign/action` grants `userAssignedIdentities/assign/action`.

use axum::http::StatusCode;
use axum::response::Response;

use super::ArmRequest;
use super::error::arm_error;
use crate::resource_id::scope_covers;
use crate::spec::{BuiltinRole, RoleAssignment};
use crate::state::CloudState;
use crate::token::AccessTokenClaims;

/// Reading a resource group (what `action_for` gives for a GET of one).
#[cfg(test)]
pub(crate) const READ_RESOURCE_GROUP: &str =
    "Microsoft.Resources/subscriptions/resourceGroups/read";
/// Reading a user-assigned identity (what `action_for` gives for a GET of one).
#[cfg(test)]
pub(crate) const READ_IDENTITY: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/read";
/// Assigning a user-assigned identity to a resource (checked on the identity: a linked scope).
pub(crate) const ASSIGN_IDENTITY: &str =
    "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";
/// Reading the status of a Compute long-running operation.
pub(crate) const READ_COMPUTE_OPERATION: &str = "Microsoft.Compute/locations/operations/read";

/// The action an ARM request on `resource_type` (`Microsoft.Storage/storageAccounts`, …)
/// needs: `read` for GET, `write` for PUT and PATCH, `delete` for DELETE.
pub(crate) fn action_for(resource_type: &str, method: &axum::http::Method) -> String {
    let verb = match *method {
        axum::http::Method::GET => "read",
        axum::http::Method::DELETE => "delete",
        _ => "write",
    };
    format!("{resource_type}/{verb}")
}

/// `Some(403)` when authorization is on and the caller may not perform `action` at `scope`.
pub(crate) fn refuse_unless_allowed(
    state: &CloudState,
    req: &ArmRequest<'_>,
    action: &str,
    scope: &str,
) -> Option<Response> {
    if !req.behaviour.authorization
        || allowed(&state.role_assignments, &req.caller.oid, action, scope)
    {
        return None;
    }
    tracing::info!(oid = %req.caller.oid, %action, %scope, "ARM: authorization failed");
    Some(authorization_failed(req.caller, action, scope))
}

/// The control-plane action patterns `role` grants.
fn actions(role: BuiltinRole) -> &'static [&'static str] {
    match role {
        BuiltinRole::Owner | BuiltinRole::Contributor => &["*"],
        BuiltinRole::Reader => &["*/read"],
        BuiltinRole::VirtualMachineContributor => &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Compute/virtualMachines/*",
            "Microsoft.Compute/virtualMachineScaleSets/*",
            "Microsoft.Compute/locations/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        BuiltinRole::ManagedIdentityOperator => &[
            "Microsoft.Authorization/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        BuiltinRole::StorageBlobDataReader => {
            &["Microsoft.Storage/storageAccounts/blobServices/containers/read"]
        }
        BuiltinRole::StorageBlobDataContributor => &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
        ],
        BuiltinRole::StorageBlobDataOwner => {
            &["Microsoft.Storage/storageAccounts/blobServices/containers/*"]
        }
    }
}

/// `Microsoft.Compute/{virtualMachines|virtualMachineScaleSets}/{read|write}` for a machine
/// type as the path spells it.
pub(crate) fn compute_action(resource_type: &str, verb: &str) -> String {
    let rtype = if resource_type.eq_ignore_ascii_case("virtualMachineScaleSets") {
        "virtualMachineScaleSets"
    } else {
        "virtualMachines"
    };
    format!("Microsoft.Compute/{rtype}/{verb}")
}

/// The action patterns `role` excludes from what it grants (`NotActions`): Contributor may
/// manage everything but access, so it can neither create nor delete role assignments.
fn not_actions(role: BuiltinRole) -> &'static [&'static str] {
    match role {
        BuiltinRole::Contributor => &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
        _ => &[],
    }
}

/// Whether `role` grants `action`.
pub(crate) fn role_allows(role: BuiltinRole, action: &str) -> bool {
    actions(role).iter().any(|p| pattern_matches(p, action))
        && !not_actions(role).iter().any(|p| pattern_matches(p, action))
}

/// Whether the principal `oid` may perform `action` at `scope` (by an assignment at the scope
/// or above it).
pub(crate) fn allowed(
    assignments: &[RoleAssignment],
    oid: &str,
    action: &str,
    scope: &str,
) -> bool {
    assignments.iter().any(|a| {
        a.principal_id.eq_ignore_ascii_case(oid)
            && scope_covers(&a.scope, scope)
            && role_allows(a.role, action)
    })
}

/// Whether the principal holds any role assignment at all (ARM lists a subscription to callers
/// with access to something in it).
pub(crate) fn has_any_assignment(assignments: &[RoleAssignment], oid: &str) -> bool {
    assignments
        .iter()
        .any(|a| a.principal_id.eq_ignore_ascii_case(oid))
}

/// Azure-style action wildcard match, case-insensitive.
fn pattern_matches(pattern: &str, action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    glob(pattern.as_bytes(), action.as_bytes())
        || (pattern.contains("/*/")
            && glob(pattern.replace("/*/", "/").as_bytes(), action.as_bytes()))
}

/// `*` matches any (possibly empty) run of bytes; everything else matches itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The caller as ARM names it in authorization errors: its client (application) id and object id.
fn caller(claims: &AccessTokenClaims) -> (&str, &str) {
    (claims.client_id().unwrap_or(&claims.oid), &claims.oid)
}

/// 403 `AuthorizationFailed`: the caller may not perform `action` at `scope`.
pub(crate) fn authorization_failed(
    claims: &AccessTokenClaims,
    action: &str,
    scope: &str,
) -> Response {
    let (appid, oid) = caller(claims);
    arm_error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        &format!(
            "The client '{appid}' with object id '{oid}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    )
}

/// 403 `LinkedAuthorizationFailed`: the caller may perform `action` at `scope` but may not
/// assign the identities `linked` (listed single-quoted and comma-separated, the shape
/// aad-pod-identity's `extractIdentitiesFromError` pattern reads).
pub(crate) fn linked_authorization_failed(
    claims: &AccessTokenClaims,
    action: &str,
    scope: &str,
    linked: &[String],
) -> Response {
    let (appid, oid) = caller(claims);
    arm_error(
        StatusCode::FORBIDDEN,
        "LinkedAuthorizationFailed",
        &format!(
            "The client '{appid}' with object id '{oid}' has permission to perform action '{action}' on scope '{scope}'; however, it does not have permission to perform action '{ASSIGN_IDENTITY}' on the linked scope(s) '{}' or the linked scope(s) are invalid.",
            linked.join(",")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ra(role: BuiltinRole, scope: &str) -> RoleAssignment {
        RoleAssignment {
            principal_id: "p".into(),
            role,
            scope: scope.into(),
        }
    }

    #[test]
    fn roles_grant_what_their_definitions_list() {
        use BuiltinRole::*;
        let vmss_write = compute_action("VIRTUALMACHINESCALESETS", "write");
        assert_eq!(
            vmss_write,
            "Microsoft.Compute/virtualMachineScaleSets/write"
        );
        for role in [VirtualMachineContributor, Contributor, Owner] {
            assert!(role_allows(role, &vmss_write), "{role:?}");
            assert!(role_allows(
                role,
                &compute_action("virtualMachines", "read")
            ));
        }
        for role in [Reader, ManagedIdentityOperator, StorageBlobDataOwner] {
            assert!(!role_allows(role, &vmss_write), "{role:?}");
        }
        assert!(role_allows(
            Reader,
            &compute_action("virtualMachines", "read")
        ));
        for role in [ManagedIdentityOperator, Contributor, Owner] {
            assert!(role_allows(role, ASSIGN_IDENTITY), "{role:?}");
        }
        for role in [
            VirtualMachineContributor,
            Reader,
            StorageBlobDataContributor,
        ] {
            assert!(!role_allows(role, ASSIGN_IDENTITY), "{role:?}");
        }
        assert!(role_allows(ManagedIdentityOperator, READ_IDENTITY));
        assert!(!role_allows(VirtualMachineContributor, READ_IDENTITY));
        assert!(role_allows(
            VirtualMachineContributor,
            READ_COMPUTE_OPERATION
        ));
        assert!(role_allows(VirtualMachineContributor, READ_RESOURCE_GROUP));
    }

    #[test]
    fn contributor_manages_resources_but_not_access() {
        use BuiltinRole::*;
        use axum::http::Method;
        let grant = action_for("Microsoft.Authorization/roleAssignments", &Method::PUT);
        assert_eq!(grant, "Microsoft.Authorization/roleAssignments/write");
        let revoke = action_for("Microsoft.Authorization/roleAssignments", &Method::DELETE);
        assert!(!role_allows(Contributor, &grant) && !role_allows(Contributor, &revoke));
        assert!(role_allows(Owner, &grant) && role_allows(Owner, &revoke));
        let list = action_for("Microsoft.Authorization/roleAssignments", &Method::GET);
        for role in [
            Contributor,
            Reader,
            VirtualMachineContributor,
            ManagedIdentityOperator,
        ] {
            assert!(role_allows(role, &list), "{role:?}");
        }
        for resource in [
            "Microsoft.Resources/subscriptions/resourceGroups",
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            "Microsoft.Storage/storageAccounts",
        ] {
            let write = action_for(resource, &Method::PUT);
            assert!(role_allows(Contributor, &write), "{write}");
            assert!(!role_allows(ManagedIdentityOperator, &write), "{write}");
            assert!(!role_allows(Reader, &write), "{write}");
        }
        assert_eq!(
            action_for(
                "Microsoft.Resources/subscriptions/resourceGroups",
                &Method::GET
            ),
            READ_RESOURCE_GROUP
        );
    }

    #[test]
    fn assignments_inherit_down_the_scope_tree() {
        let rg = "/subscriptions/s/resourceGroups/nodes";
        let vm = format!("{rg}/providers/Microsoft.Compute/virtualMachines/n1");
        let write = compute_action("virtualMachines", "write");
        let at_rg = [ra(BuiltinRole::VirtualMachineContributor, rg)];
        assert!(allowed(&at_rg, "P", &write, &vm));
        assert!(!allowed(&at_rg, "other", &write, &vm));
        let other_rg =
            "/subscriptions/s/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/n1";
        assert!(!allowed(&at_rg, "p", &write, other_rg));
        let at_sub = [ra(BuiltinRole::Owner, "/subscriptions/s")];
        assert!(allowed(&at_sub, "p", &write, other_rg));
        assert!(has_any_assignment(&at_sub, "P") && !has_any_assignment(&at_sub, "q"));
    }
}
