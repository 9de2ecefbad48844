//! The ARM resources a run creates and deletes: resource groups, user-assigned identities,
//! role assignments, machine identity assignments, storage accounts and blob containers. Each
//! call names what it does, so a failure reads "creating user-assigned identity x in resource
//! group y: 403 AuthorizationFailed: …".

use podid_scenario::Role;
use podid_wait::{Check, Poll};
use serde_json::{Map, Value, json};

use super::arm::{ArmClient, ArmError, Deleted, Wait};
use crate::provider::cloud::IdentityValues;

/// The api-version used for each resource type.
pub mod api_version {
    pub const SUBSCRIPTIONS: &str = "2022-12-01";
    pub const RESOURCE_GROUPS: &str = "2021-04-01";
    pub const IDENTITIES: &str = "2023-01-31";
    pub const ROLE_ASSIGNMENTS: &str = "2022-04-01";
    pub const STORAGE: &str = "2023-05-01";
    pub const COMPUTE: &str = "2024-07-01";
}

/// The tags on everything a run creates: which run, when, and that podid made it (so a
/// leftover can be found and removed by tag).
pub fn run_tags(run_id: &str, created: chrono::DateTime<chrono::Utc>) -> Map<String, Value> {
    let mut tags = Map::new();
    tags.insert("podid".into(), json!("run"));
    tags.insert("podid-run".into(), json!(run_id));
    tags.insert(
        "podid-created".into(),
        json!(created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    tags
}

pub fn subscription_path(sub: &str) -> String {
    format!("/subscriptions/{sub}")
}

pub fn resource_group_path(sub: &str, rg: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}")
}

pub fn identity_path(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        resource_group_path(sub, rg)
    )
}

pub fn storage_account_path(sub: &str, rg: &str, account: &str) -> String {
    format!(
        "{}/providers/Microsoft.Storage/storageAccounts/{account}",
        resource_group_path(sub, rg)
    )
}

pub fn container_path(sub: &str, rg: &str, account: &str, container: &str) -> String {
    format!(
        "{}/blobServices/default/containers/{container}",
        storage_account_path(sub, rg, account)
    )
}

/// The GUID of a built-in role's definition, the same in every Azure cloud
/// ([Azure built-in roles](https://learn.microsoft.com/azure/role-based-access-control/built-in-roles)).
pub fn role_definition_guid(role: Role) -> &'static str {
    match role {
        Role::StorageBlobDataReader => "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        Role::StorageBlobDataContributor => "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        Role::StorageBlobDataOwner => "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        Role::Reader => "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        Role::Contributor => "b24988ac-6180-42a0-ab88-20f7382dd24c",
        Role::Owner => "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        Role::VirtualMachineContributor => "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
        Role::ManagedIdentityOperator => "f1a07417-d97a-45cb-824c-7a7467783830",
    }
}

/// The full id of a built-in role's definition in subscription `sub`.
pub fn role_definition_id(sub: &str, role: Role) -> String {
    format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{}",
        role_definition_guid(role)
    )
}

/// The last segment of an ARM id (a resource's name).
pub fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// Whether subscription `sub` is visible to the credential (`None`: it is not).
pub async fn subscription(arm: &ArmClient, sub: &str) -> Result<Option<Value>, ArmError> {
    arm.get(
        &subscription_path(sub),
        api_version::SUBSCRIPTIONS,
        &format!("reading subscription {sub}"),
    )
    .await
}

pub async fn create_resource_group(
    arm: &ArmClient,
    sub: &str,
    rg: &str,
    location: &str,
    tags: &Map<String, Value>,
) -> Result<(), ArmError> {
    arm.put(
        &resource_group_path(sub, rg),
        api_version::RESOURCE_GROUPS,
        &json!({"location": location, "tags": tags}),
        &format!("creating resource group {rg} in {location}"),
    )
    .await
    .map(|_| ())
}

pub async fn resource_group(
    arm: &ArmClient,
    sub: &str,
    rg: &str,
) -> Result<Option<Value>, ArmError> {
    arm.get(
        &resource_group_path(sub, rg),
        api_version::RESOURCE_GROUPS,
        &format!("reading resource group {rg}"),
    )
    .await
}

pub async fn delete_resource_group(
    arm: &ArmClient,
    sub: &str,
    rg: &str,
    wait: Wait,
) -> Result<Deleted, ArmError> {
    arm.delete(
        &resource_group_path(sub, rg),
        api_version::RESOURCE_GROUPS,
        &format!("deleting resource group {rg}"),
        wait,
    )
    .await
}

/// Creates user-assigned identity `name` in `rg`; Azure gives it new client and principal IDs.
pub async fn create_identity(
    arm: &ArmClient,
    sub: &str,
    rg: &str,
    name: &str,
    location: &str,
    tags: &Map<String, Value>,
) -> Result<IdentityValues, ArmError> {
    let operation = format!("creating user-assigned identity {name} in resource group {rg}");
    let created = arm
        .put(
            &identity_path(sub, rg, name),
            api_version::IDENTITIES,
            &json!({"location": location, "tags": tags}),
            &operation,
        )
        .await?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let values = IdentityValues {
        name: name.to_string(),
        client_id: text(&created["properties"]["clientId"]),
        principal_id: text(&created["properties"]["principalId"]),
        resource_id: created["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| identity_path(sub, rg, name)),
    };
    if values.client_id.is_empty() || values.principal_id.is_empty() {
        return Err(ArmError {
            operation,
            failure: super::arm::ArmFailure::Malformed(
                "the identity has no clientId or principalId".into(),
            ),
        });
    }
    Ok(values)
}

pub async fn delete_identity(arm: &ArmClient, resource_id: &str) -> Result<Deleted, ArmError> {
    arm.delete(
        resource_id,
        api_version::IDENTITIES,
        &format!(
            "deleting user-assigned identity {}",
            last_segment(resource_id)
        ),
        Wait::ForCompletion,
    )
    .await
}

/// What granting a role did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Granted {
    /// A new assignment, with its ARM id (what deletes it).
    Created { id: String },
    /// The principal already held the role at that scope.
    AlreadyThere,
}

/// Grants `role` to `principal_id` at `scope` under a new GUID name. `principal_type`
/// (`ServicePrincipal` for a managed identity) lets ARM skip the directory lookup that fails
/// for a principal created moments ago; `PrincipalNotFound` is retried while it propagates.
pub async fn create_role_assignment(
    arm: &ArmClient,
    sub: &str,
    scope: &str,
    role: Role,
    principal_id: &str,
    principal_type: Option<&str>,
) -> Result<Granted, ArmError> {
    let mut properties = json!({
        "roleDefinitionId": role_definition_id(sub, role),
        "principalId": principal_id,
    });
    if let Some(t) = principal_type {
        properties["principalType"] = json!(t);
    }
    let body = json!({"properties": properties});
    let operation = format!(
        "assigning role {} to principal {principal_id} at {scope}",
        role.as_str()
    );
    let policy = arm.policy();
    // A principal made a moment ago may not have reached Azure AD's replicas yet.
    let propagating = Poll::every(policy.propagation_poll, policy.propagation_timeout);
    podid_wait::until(propagating, || async {
        let name = uuid::Uuid::new_v4().to_string();
        let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
        match arm
            .put(&path, api_version::ROLE_ASSIGNMENTS, &body, &operation)
            .await
        {
            Ok(created) => {
                let id = created["id"].as_str().map(str::to_string).unwrap_or(path);
                Check::Done(Granted::Created { id })
            }
            Err(e) if e.code() == Some("RoleAssignmentExists") => Check::Done(Granted::AlreadyThere),
            Err(e) if e.code() == Some("PrincipalNotFound") => {
                tracing::debug!(%principal_id, "principal not found yet; retrying the role assignment");
                Check::Pending(e)
            }
            Err(e) => Check::Failed(e),
        }
    })
    .await
    .map_err(podid_wait::WaitError::into_state)
}

pub async fn delete_role_assignment(arm: &ArmClient, id: &str) -> Result<Deleted, ArmError> {
    arm.delete(
        id,
        api_version::ROLE_ASSIGNMENTS,
        &format!("deleting role assignment {id}"),
        Wait::ForCompletion,
    )
    .await
}

/// The identities a VM or scale set holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineIdentityState {
    /// Principal of the system-assigned identity, when enabled.
    pub system_principal: Option<String>,
    /// Resource ids of the user-assigned identities, as ARM spells them.
    pub user_assigned: Vec<String>,
}

impl MachineIdentityState {
    /// The state a VM or scale set body describes.
    pub fn of(machine: &Value) -> Self {
        let identity = &machine["identity"];
        let kind = identity["type"]
            .as_str()
            .unwrap_or("None")
            .to_ascii_lowercase();
        Self {
            system_principal: kind
                .contains("systemassigned")
                .then(|| identity["principalId"].as_str().map(str::to_string))
                .flatten(),
            user_assigned: identity["userAssignedIdentities"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }

    pub fn holds(&self, identity_id: &str) -> bool {
        self.user_assigned
            .iter()
            .any(|held| same_id(held, identity_id))
    }
}

/// ARM ids compare case-insensitively, without a trailing `/`.
pub fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// A change to a machine's identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityChange<'a> {
    Add(&'a str),
    Remove(&'a str),
    EnableSystemAssigned,
    DisableSystemAssigned,
}

/// The PATCH body that makes `change` and keeps everything else: `{}` adds a user-assigned
/// identity and `null` removes one; `type` always lists the kinds that remain, because a
/// `type` without `SystemAssigned` disables the system-assigned identity, and the last
/// user-assigned identity can only go with a `type` that no longer names `UserAssigned`.
pub fn identity_patch(current: &MachineIdentityState, change: IdentityChange<'_>) -> Value {
    let system = match change {
        IdentityChange::EnableSystemAssigned => true,
        IdentityChange::DisableSystemAssigned => false,
        _ => current.system_principal.is_some(),
    };
    let users_after = match change {
        IdentityChange::Add(_) => true,
        IdentityChange::Remove(id) => current.user_assigned.iter().any(|u| !same_id(u, id)),
        _ => !current.user_assigned.is_empty(),
    };
    let kind = match (system, users_after) {
        (true, true) => "SystemAssigned, UserAssigned",
        (true, false) => "SystemAssigned",
        (false, true) => "UserAssigned",
        (false, false) => "None",
    };
    let mut identity = json!({"type": kind});
    match change {
        IdentityChange::Add(id) => identity["userAssignedIdentities"] = json!({id: {}}),
        IdentityChange::Remove(id) if users_after => {
            identity["userAssignedIdentities"] = json!({id: null});
        }
        _ => {}
    }
    json!({"identity": identity})
}

/// The resource kind and name of a machine id, for messages (`scale set pool0`).
pub fn describe_machine(machine_id: &str) -> String {
    let kind = if machine_id
        .to_ascii_lowercase()
        .contains("/virtualmachinescalesets/")
    {
        "scale set"
    } else {
        "virtual machine"
    };
    format!("{kind} {}", last_segment(machine_id))
}

pub async fn machine_identities(
    arm: &ArmClient,
    machine_id: &str,
) -> Result<MachineIdentityState, ArmError> {
    let operation = format!("reading the identities of {}", describe_machine(machine_id));
    match arm
        .get(machine_id, api_version::COMPUTE, &operation)
        .await?
    {
        Some(machine) => Ok(MachineIdentityState::of(&machine)),
        None => Err(ArmError {
            operation,
            failure: super::arm::ArmFailure::Refused {
                status: 404,
                code: "ResourceNotFound".into(),
                message: "ARM does not know this machine".into(),
            },
        }),
    }
}

/// Applies `change` to a machine (waiting for a long-running update) and returns what it holds
/// afterwards.
pub async fn change_machine_identity(
    arm: &ArmClient,
    machine_id: &str,
    current: &MachineIdentityState,
    change: IdentityChange<'_>,
) -> Result<MachineIdentityState, ArmError> {
    let machine = describe_machine(machine_id);
    let operation = match change {
        IdentityChange::Add(id) => format!("assigning identity {} to {machine}", last_segment(id)),
        IdentityChange::Remove(id) => {
            format!("removing identity {} from {machine}", last_segment(id))
        }
        IdentityChange::EnableSystemAssigned => {
            format!("enabling the system-assigned identity of {machine}")
        }
        IdentityChange::DisableSystemAssigned => {
            format!("disabling the system-assigned identity of {machine}")
        }
    };
    let body = identity_patch(current, change);
    let updated = arm
        .patch(machine_id, api_version::COMPUTE, &body, &operation)
        .await?;
    Ok(MachineIdentityState::of(&updated))
}

/// Creates a general-purpose v2 storage account with locally redundant storage and Entra ID
/// (no shared key) access.
pub async fn create_storage_account(
    arm: &ArmClient,
    sub: &str,
    rg: &str,
    account: &str,
    location: &str,
    tags: &Map<String, Value>,
) -> Result<(), ArmError> {
    let body = json!({
        "location": location,
        "kind": "StorageV2",
        "sku": {"name": "Standard_LRS"},
        "tags": tags,
        "properties": {
            "allowSharedKeyAccess": false,
            "allowBlobPublicAccess": false,
            "minimumTlsVersion": "TLS1_2",
        },
    });
    arm.put(
        &storage_account_path(sub, rg, account),
        api_version::STORAGE,
        &body,
        &format!("creating storage account {account} in resource group {rg}"),
    )
    .await
    .map(|_| ())
}

pub async fn delete_storage_account(
    arm: &ArmClient,
    sub: &str,
    rg: &str,
    account: &str,
) -> Result<Deleted, ArmError> {
    arm.delete(
        &storage_account_path(sub, rg, account),
        api_version::STORAGE,
        &format!("deleting storage account {account}"),
        Wait::ForCompletion,
    )
    .await
}

pub async fn create_container(
    arm: &ArmClient,
    sub: &str,
    rg: &str,
    account: &str,
    container: &str,
) -> Result<(), ArmError> {
    arm.put(
        &container_path(sub, rg, account, container),
        api_version::STORAGE,
        &json!({"properties": {"publicAccess": "None"}}),
        &format!("creating container {container} in storage account {account}"),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_ROLES: [Role; 8] = [
        Role::StorageBlobDataReader,
        Role::StorageBlobDataContributor,
        Role::StorageBlobDataOwner,
        Role::Reader,
        Role::Contributor,
        Role::Owner,
        Role::VirtualMachineContributor,
        Role::ManagedIdentityOperator,
    ];

    #[test]
    fn role_definitions_are_azures_built_in_ones() {
        for role in ALL_ROLES {
            let mock: podid_mocks::BuiltinRole = serde_json::from_value(json!(role.as_str()))
                .unwrap_or_else(|_| serde_json::from_value(json!(format!("{role:?}"))).unwrap());
            assert_eq!(role_definition_guid(role), mock.definition_id(), "{role:?}");
        }
        assert_eq!(
            role_definition_id("s", Role::Reader),
            "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
        );
    }

    #[test]
    fn run_tags_say_which_run_and_when() {
        let at = chrono::DateTime::parse_from_rfc3339("2025-03-04T05:06:07.891Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let tags = run_tags("r1", at);
        assert_eq!(
            Value::Object(tags),
            json!({"podid": "run", "podid-run": "r1", "podid-created": "2025-03-04T05:06:07Z"})
        );
    }

    fn state(system: bool, users: &[&str]) -> MachineIdentityState {
        MachineIdentityState {
            system_principal: system.then(|| "p".to_string()),
            user_assigned: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn identity_patches_keep_what_they_do_not_change() {
        let id = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a";
        let other = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b";
        assert_eq!(
            identity_patch(&state(false, &[]), IdentityChange::Add(id)),
            json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {id: {}}}})
        );
        assert_eq!(
            identity_patch(&state(true, &[other]), IdentityChange::Add(id)),
            json!({"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {id: {}}}})
        );
        assert_eq!(
            identity_patch(&state(false, &[id, other]), IdentityChange::Remove(id)),
            json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {id: null}}})
        );
        assert_eq!(
            identity_patch(
                &state(false, &[&id.to_uppercase()]),
                IdentityChange::Remove(id)
            ),
            json!({"identity": {"type": "None"}}),
            "the last one goes with the type"
        );
        assert_eq!(
            identity_patch(&state(true, &[id]), IdentityChange::Remove(id)),
            json!({"identity": {"type": "SystemAssigned"}})
        );
        assert_eq!(
            identity_patch(&state(false, &[id]), IdentityChange::EnableSystemAssigned),
            json!({"identity": {"type": "SystemAssigned, UserAssigned"}})
        );
        assert_eq!(
            identity_patch(&state(true, &[]), IdentityChange::DisableSystemAssigned),
            json!({"identity": {"type": "None"}})
        );
    }

    #[test]
    fn machine_state_is_read_from_arm_bodies() {
        let vmss = json!({"identity": {
            "type": "SystemAssigned, UserAssigned", "principalId": "sys",
            "userAssignedIdentities": {"/x/a": {"principalId": "p", "clientId": "c"}}
        }});
        let s = MachineIdentityState::of(&vmss);
        assert_eq!(s.system_principal.as_deref(), Some("sys"));
        assert!(s.holds("/X/A/"));
        assert_eq!(
            MachineIdentityState::of(&json!({})),
            MachineIdentityState::default()
        );
        assert_eq!(
            describe_machine(
                "/subscriptions/s/resourceGroups/n/providers/Microsoft.Compute/virtualMachineScaleSets/pool0"
            ),
            "scale set pool0"
        );
    }
}
