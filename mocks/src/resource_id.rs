//! Building and comparing ARM resource ids and RBAC scopes.

/// `/subscriptions/S/resourcegroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/N`.
pub fn user_assigned_identity(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

/// `/subscriptions/S/resourceGroups/RG` (an RBAC scope).
pub fn resource_group(sub: &str, rg: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}")
}

/// `/subscriptions/S/resourceGroups/RG/providers/Microsoft.Storage/storageAccounts/N`.
pub fn storage_account(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}"
    )
}

/// RBAC scope of one blob container.
pub fn container_scope(sub: &str, rg: &str, account: &str, container: &str) -> String {
    format!(
        "{}/blobServices/default/containers/{container}",
        storage_account(sub, rg, account)
    )
}

/// `/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/TYPE/N`.
pub fn compute(sub: &str, rg: &str, resource_type: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{resource_type}/{name}"
    )
}

/// A VM's or scale set's ID as managed-identity tokens carry it in `xms_mirid`:
/// `/subscriptions/S/resourcegroups/RG/providers/Microsoft.Compute/TYPE/N` (lower-case
/// `resourcegroups`, as in the user-assigned form).
pub fn compute_mirid(sub: &str, rg: &str, resource_type: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Compute/{resource_type}/{name}"
    )
}

/// Canonical form for comparisons: ARM ids are case-insensitive; trailing `/` is ignored.
pub fn normalize(id: &str) -> String {
    id.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether an assignment at `scope` applies to `target` (same resource or an ancestor of it).
pub fn scope_covers(scope: &str, target: &str) -> bool {
    let scope = normalize(scope);
    let target = normalize(target);
    !scope.is_empty()
        && (target == scope
            || (target.starts_with(&scope) && target.as_bytes().get(scope.len()) == Some(&b'/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_inheritance_is_segment_aligned_and_case_insensitive() {
        let c = container_scope("s", "rg", "acct", "data");
        assert!(scope_covers("/subscriptions/s", &c));
        assert!(scope_covers("/SUBSCRIPTIONS/s/resourcegroups/RG/", &c));
        assert!(scope_covers(&storage_account("s", "rg", "acct"), &c));
        assert!(scope_covers(&c, &c));
        assert!(!scope_covers("/subscriptions/s/resourceGroups/r", &c));
        assert!(!scope_covers(&storage_account("s", "rg", "acc"), &c));
        assert!(!scope_covers(
            &container_scope("s", "rg", "acct", "other"),
            &c
        ));
        assert!(!scope_covers("", &c));
    }
}
