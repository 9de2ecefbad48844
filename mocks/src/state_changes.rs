//! Changes an operator makes to the cloud while it runs: enabling a machine's system-assigned
//! identity, creating, deleting or recreating a user-assigned identity, adding or removing role
//! assignments, and creating or deleting resource groups, storage accounts and containers. ARM
//! handlers and the harness make them through these same methods.

use std::collections::BTreeMap;
use std::time::SystemTime;

use sha1::Digest;

use crate::error::MockError;
use crate::resource_id::{self, normalize};
use crate::spec::{RoleAssignment, SystemAssignedIdentity, UserAssignedIdentity};
use crate::state::{
    AccountState, ArmAttributes, CloudState, ContainerState, NamedRoleAssignment,
    ResourceGroupState, new_etag,
};

/// What a PUT of a named role assignment did, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoleAssignmentPut {
    Created,
    /// The same assignment already has this name; nothing changed.
    Unchanged,
    /// The same principal, role and scope are assigned already, under the name given.
    Exists {
        name: String,
    },
    /// The name is taken by an assignment of another principal, role or scope.
    NameTaken,
}

/// Why a storage account could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AccountPut {
    Created,
    /// It exists in this resource group; its tags were replaced.
    Updated,
    /// The name is taken by an account of another resource group.
    Taken,
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl CloudState {
    /// A client id no identity, principal or machine of this cloud uses yet.
    fn fresh_client_id(&self) -> String {
        loop {
            let id = guid();
            if !self.client_id_in_use(&id) {
                return id;
            }
        }
    }

    /// Enables machine `idx`'s system-assigned identity and returns it. One that is already
    /// enabled is kept as it is: Azure keeps a machine's system-assigned principal for as long as
    /// the identity stays enabled, however often the machine is updated.
    pub fn enable_system_assigned(&mut self, idx: usize) -> SystemAssignedIdentity {
        if let Some(existing) = &self.machines[idx].system {
            return existing.clone();
        }
        let created = SystemAssignedIdentity {
            principal_id: guid(),
            client_id: self.fresh_client_id(),
        };
        let sub = self.subscription_id.clone();
        let m = &mut self.machines[idx];
        m.system = Some(created.clone());
        let mirid = m.mirid(&sub);
        m.mark_assigned(&mirid);
        created
    }

    /// Disables machine `idx`'s system-assigned identity; its principal is gone for good.
    pub fn disable_system_assigned(&mut self, idx: usize) {
        let sub = self.subscription_id.clone();
        let m = &mut self.machines[idx];
        m.system = None;
        let mirid = normalize(&m.mirid(&sub));
        m.assigned_at.remove(&mirid);
    }

    /// Deletes user-assigned identity `rid` and takes it off every machine.
    pub fn delete_identity(&mut self, rid: &str) -> Result<UserAssignedIdentity, MockError> {
        let n = normalize(rid);
        let sub = self.subscription_id.clone();
        let pos = self
            .identities
            .iter()
            .position(|i| normalize(&i.resource_id(&sub)) == n)
            .ok_or_else(|| MockError::NotFound {
                kind: "user-assigned identity",
                id: rid.to_string(),
            })?;
        let removed = self.identities.remove(pos);
        for idx in 0..self.machines.len() {
            self.unassign(idx, &n);
        }
        Ok(removed)
    }

    /// Deletes identity `rid` and creates one of the same name and resource group with new client
    /// and principal ids (`None`: generated). Machines that held the old one keep a stale
    /// reference to the resource id, as in Azure, until it is removed and assigned again.
    pub fn recreate_identity(
        &mut self,
        rid: &str,
        client_id: Option<String>,
        principal_id: Option<String>,
    ) -> Result<UserAssignedIdentity, MockError> {
        let n = normalize(rid);
        let old = self
            .identity_by_id(&n)
            .cloned()
            .ok_or_else(|| MockError::NotFound {
                kind: "user-assigned identity",
                id: rid.to_string(),
            })?;
        let client_id = match client_id {
            Some(c) if self.client_id_in_use(&c) => {
                return Err(MockError::Duplicate {
                    kind: "client id",
                    id: c,
                });
            }
            Some(c) => c,
            None => self.fresh_client_id(),
        };
        let created = UserAssignedIdentity {
            client_id,
            principal_id: principal_id.unwrap_or_else(guid),
            ..old
        };
        let sub = self.subscription_id.clone();
        for i in self.identities.iter_mut() {
            if normalize(&i.resource_id(&sub)) == n {
                *i = created.clone();
            }
        }
        for m in self.machines.iter_mut() {
            if m.user_assigned.contains(&n) && !m.stale.contains(&n) {
                m.stale.push(n.clone());
            }
        }
        Ok(created)
    }

    /// Creates resource group `name` (or replaces the tags of an existing one); returns whether
    /// it is new. A group that held objects of the spec already counts as existing.
    pub fn put_resource_group(&mut self, name: &str, attributes: ArmAttributes) -> bool {
        let existed = self.resource_group_exists(name);
        let key = name.to_ascii_lowercase();
        match self.resource_groups.get_mut(&key) {
            Some(rg) => {
                rg.attributes.tags = attributes.tags;
            }
            None => {
                self.resource_groups.insert(
                    key,
                    ResourceGroupState {
                        name: name.to_string(),
                        attributes,
                    },
                );
            }
        }
        !existed
    }

    /// Deletes resource group `name` and what it holds: its user-assigned identities (taken off
    /// every machine), storage accounts and every role assignment at or below it. Machines stay:
    /// they stand for the cluster's nodes.
    pub fn delete_resource_group(&mut self, name: &str) -> Result<(), MockError> {
        if !self.resource_group_exists(name) {
            return Err(MockError::NotFound {
                kind: "resource group",
                id: name.to_string(),
            });
        }
        let sub = self.subscription_id.clone();
        let doomed: Vec<String> = self
            .identities
            .iter()
            .filter(|i| i.resource_group.eq_ignore_ascii_case(name))
            .map(|i| i.resource_id(&sub))
            .collect();
        for rid in doomed {
            self.delete_identity_resource(&rid);
        }
        self.accounts
            .retain(|_, a| !a.resource_group.eq_ignore_ascii_case(name));
        let scope = resource_id::resource_group(&sub, name);
        self.role_assignments
            .retain(|r| !resource_id::scope_covers(&scope, &r.scope));
        self.named_role_assignments
            .retain(|_, n| !resource_id::scope_covers(&scope, &n.assignment.scope));
        self.resource_groups.remove(&name.to_ascii_lowercase());
        Ok(())
    }

    /// Region and tags of resource group `name`: those it was created with, or the defaults
    /// for a group that only holds objects of the spec.
    pub fn resource_group_attributes(&self, name: &str) -> Option<(String, ArmAttributes)> {
        if let Some(rg) = self.resource_groups.get(&name.to_ascii_lowercase()) {
            return Some((rg.name.clone(), rg.attributes.clone()));
        }
        self.resource_group_exists(name)
            .then(|| (name.to_string(), ArmAttributes::default()))
    }

    /// Creates user-assigned identity `name` in resource group `rg` with new client and
    /// principal ids, or replaces the tags of the existing one; returns it and whether it is
    /// new.
    pub fn put_identity(
        &mut self,
        rg: &str,
        name: &str,
        attributes: ArmAttributes,
    ) -> (UserAssignedIdentity, bool) {
        let rid = normalize(&resource_id::user_assigned_identity(
            &self.subscription_id,
            rg,
            name,
        ));
        if let Some(existing) = self.identity_by_id(&rid).cloned() {
            self.identity_attributes
                .entry(rid)
                .and_modify(|a| a.tags = attributes.tags.clone())
                .or_insert(attributes);
            return (existing, false);
        }
        let created = UserAssignedIdentity {
            name: name.to_string(),
            resource_group: rg.to_string(),
            client_id: self.fresh_client_id(),
            principal_id: guid(),
        };
        self.identities.push(created.clone());
        self.identity_attributes.insert(rid, attributes);
        (created, true)
    }

    /// Deletes user-assigned identity `rid` as ARM does: gone from every machine; its role
    /// assignments stay, as in Azure, pointing at a principal that no longer exists. Returns
    /// whether it existed.
    pub fn delete_identity_resource(&mut self, rid: &str) -> bool {
        self.identity_attributes.remove(&normalize(rid));
        self.delete_identity(rid).is_ok()
    }

    /// Whether `object_id` is a principal of the tenant: a user-assigned identity, a service
    /// principal or a machine's system-assigned identity.
    pub fn principal_exists(&self, object_id: &str) -> bool {
        self.identities
            .iter()
            .any(|i| i.principal_id.eq_ignore_ascii_case(object_id))
            || self
                .service_principals
                .iter()
                .any(|s| s.spec.object_id.eq_ignore_ascii_case(object_id))
            || self.machines.iter().any(|m| {
                m.system
                    .as_ref()
                    .is_some_and(|s| s.principal_id.eq_ignore_ascii_case(object_id))
            })
    }

    /// Creates role assignment `ra` under `name`, unless the same one exists under any name
    /// or the name is taken by another.
    pub fn put_named_role_assignment(
        &mut self,
        name: &str,
        ra: RoleAssignment,
        principal_type: Option<String>,
    ) -> RoleAssignmentPut {
        let key = name.to_ascii_lowercase();
        if let Some(existing) = self.named_role_assignment(&key) {
            return if same_assignment(&existing.assignment, &ra) {
                RoleAssignmentPut::Unchanged
            } else {
                RoleAssignmentPut::NameTaken
            };
        }
        if let Some(other) = self
            .role_assignments
            .iter()
            .find(|r| same_assignment(r, &ra))
        {
            return RoleAssignmentPut::Exists {
                name: self.role_assignment_name(other),
            };
        }
        self.role_assignments.push(ra.clone());
        self.named_role_assignments.insert(
            key,
            NamedRoleAssignment {
                name: name.to_string(),
                assignment: ra,
                principal_type,
                created: SystemTime::now(),
            },
        );
        RoleAssignmentPut::Created
    }

    /// The role assignment called `name` (case-insensitive): one created through ARM under that
    /// name, or one of the spec whose derived name it is.
    pub fn named_role_assignment(&self, name: &str) -> Option<NamedRoleAssignment> {
        if let Some(n) = self.named_role_assignments.get(&name.to_ascii_lowercase()) {
            return self.has_role_assignment(&n.assignment).then(|| n.clone());
        }
        self.role_assignments
            .iter()
            .find(|r| derived_name(r).eq_ignore_ascii_case(name))
            .map(|r| NamedRoleAssignment {
                name: derived_name(r),
                assignment: r.clone(),
                principal_type: None,
                created: SystemTime::UNIX_EPOCH,
            })
    }

    /// Deletes the role assignment called `name`; returns it if there was one.
    pub fn delete_named_role_assignment(&mut self, name: &str) -> Option<NamedRoleAssignment> {
        let found = self.named_role_assignment(name)?;
        self.named_role_assignments
            .remove(&found.name.to_ascii_lowercase());
        self.remove_role_assignment(&found.assignment);
        Some(found)
    }

    /// The name ARM knows an assignment by: the one it was created with, else one derived from
    /// its principal, role and scope (stable for the cloud's lifetime).
    pub fn role_assignment_name(&self, ra: &RoleAssignment) -> String {
        self.named_role_assignments
            .values()
            .find(|n| same_assignment(&n.assignment, ra))
            .map(|n| n.name.clone())
            .unwrap_or_else(|| derived_name(ra))
    }

    /// Creates storage account `name` in resource group `rg`, or replaces the tags of the one
    /// already there. Account names are global: one in another group is `Taken`.
    pub fn put_storage_account(
        &mut self,
        name: &str,
        rg: &str,
        attributes: ArmAttributes,
    ) -> AccountPut {
        let key = name.to_ascii_lowercase();
        match self.accounts.get_mut(&key) {
            Some(a) if a.resource_group.eq_ignore_ascii_case(rg) => {
                a.arm.tags = attributes.tags;
                AccountPut::Updated
            }
            Some(_) => AccountPut::Taken,
            None => {
                self.accounts.insert(
                    key,
                    AccountState {
                        resource_group: rg.to_string(),
                        containers: BTreeMap::new(),
                        arm: attributes,
                    },
                );
                AccountPut::Created
            }
        }
    }

    /// Deletes storage account `name` with its containers and blobs; returns whether it
    /// existed. Role assignments on it stay, as in Azure.
    pub fn delete_storage_account(&mut self, name: &str) -> bool {
        self.accounts.remove(&name.to_ascii_lowercase()).is_some()
    }

    /// Creates an empty container in an existing account; returns whether it is new (`None`:
    /// no such account).
    pub fn put_container(&mut self, account: &str, name: &str) -> Option<bool> {
        let account = self.accounts.get_mut(&account.to_ascii_lowercase())?;
        if account.containers.contains_key(name) {
            return Some(false);
        }
        account.containers.insert(
            name.to_string(),
            ContainerState {
                etag: new_etag(),
                modified: SystemTime::now(),
                blobs: BTreeMap::new(),
                uncommitted: BTreeMap::new(),
            },
        );
        Some(true)
    }

    /// Deletes a container with its blobs; returns whether it existed.
    pub fn delete_container(&mut self, account: &str, name: &str) -> bool {
        self.accounts
            .get_mut(&account.to_ascii_lowercase())
            .is_some_and(|a| a.containers.remove(name).is_some())
    }

    /// Whether an assignment of the same role to the same principal at the same scope exists.
    pub fn has_role_assignment(&self, ra: &RoleAssignment) -> bool {
        self.role_assignments.iter().any(|r| same_assignment(r, ra))
    }

    /// Removes the role assignment; returns whether there was one.
    pub fn remove_role_assignment(&mut self, ra: &RoleAssignment) -> bool {
        let before = self.role_assignments.len();
        self.role_assignments.retain(|r| !same_assignment(r, ra));
        before != self.role_assignments.len()
    }
}

/// A GUID-shaped name derived from an assignment's principal, role and scope, for assignments
/// of the spec (which have none of their own).
fn derived_name(ra: &RoleAssignment) -> String {
    let key = format!(
        "{}|{}|{}",
        ra.principal_id.to_ascii_lowercase(),
        ra.role.definition_id(),
        normalize(&ra.scope)
    );
    let digest = sha1::Sha1::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// Role, principal and scope equal (ids and scopes compared as Azure does, case-insensitively).
fn same_assignment(a: &RoleAssignment, b: &RoleAssignment) -> bool {
    a.role == b.role
        && a.principal_id.eq_ignore_ascii_case(&b.principal_id)
        && normalize(&a.scope) == normalize(&b.scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{BuiltinRole, CloudSpec, MachineKind, VirtualMachine};
    use crate::state::{ArmAttributes, IdentitySelector};

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    fn state() -> CloudState {
        let identity = UserAssignedIdentity {
            name: "reader".into(),
            resource_group: "rg".into(),
            client_id: "c-old".into(),
            principal_id: "p-old".into(),
        };
        let rid = identity.resource_id(SUB);
        CloudState::from_spec(&CloudSpec {
            tenant_id: "t".into(),
            subscription_id: SUB.into(),
            identities: vec![identity],
            machines: vec![VirtualMachine {
                name: "pool".into(),
                resource_group: "nodes".into(),
                kind: MachineKind::ScaleSet { instances: 1 },
                system_assigned: None,
                user_assigned: vec![rid],
                location: "eastus".into(),
                provisioning_state: "Succeeded".into(),
            }],
            ..CloudSpec::default()
        })
        .unwrap()
    }

    fn rid() -> String {
        crate::resource_id::user_assigned_identity(SUB, "rg", "reader")
    }

    #[test]
    fn system_assigned_principal_survives_a_second_enable() {
        let mut s = state();
        let first = s.enable_system_assigned(0);
        assert_eq!(s.enable_system_assigned(0), first);
        assert_eq!(s.machines[0].system.as_ref(), Some(&first));
    }

    #[test]
    fn deleted_identity_leaves_every_machine() {
        let mut s = state();
        s.delete_identity(&rid().to_uppercase()).unwrap();
        assert!(s.machines[0].user_assigned.is_empty());
        assert!(s.identity_by_id(&rid()).is_none());
        assert!(matches!(
            s.delete_identity(&rid()),
            Err(MockError::NotFound { .. })
        ));
    }

    #[test]
    fn recreated_identity_is_a_stale_reference_until_reassigned() {
        let mut s = state();
        let new = s.recreate_identity(&rid(), None, None).unwrap();
        assert_ne!(new.client_id, "c-old");
        assert_eq!(new.resource_id(SUB), rid());
        let by_new = IdentitySelector::ClientId(new.client_id.clone());
        let by_old = IdentitySelector::ClientId("c-old".into());
        assert!(s.select_identity(0, &by_new).is_err());
        assert!(s.select_identity(0, &by_old).is_err());
        assert!(
            s.select_identity(0, &IdentitySelector::ResourceId(rid()))
                .is_err()
        );
        assert_eq!(s.machines[0].user_assigned, vec![normalize(&rid())]);
        assert!(s.unassign(0, &rid()));
        s.assign(0, &rid()).unwrap();
        assert_eq!(
            s.select_identity(0, &by_new).unwrap().principal_id,
            new.principal_id
        );
    }

    #[test]
    fn deleting_a_group_takes_its_identities_accounts_and_roles_but_not_machines() {
        let mut s = state();
        assert!(s.put_resource_group("Run", ArmAttributes::default()));
        assert!(
            !s.put_resource_group("rg", ArmAttributes::default()),
            "exists implicitly"
        );
        let (made, created) = s.put_identity("run", "made", ArmAttributes::default());
        assert!(created && s.principal_exists(&made.principal_id));
        assert_eq!(
            s.put_storage_account("runacct", "RUN", ArmAttributes::default()),
            AccountPut::Created
        );
        assert_eq!(
            s.put_storage_account("runacct", "rg", ArmAttributes::default()),
            AccountPut::Taken
        );
        assert_eq!(s.put_container("runacct", "data"), Some(true));
        let made_rid = made.resource_id(SUB);
        let pool = crate::spec::MachineRef::scale_set_instance("pool", 0);
        let idx = s.machine_index(&pool).unwrap();
        s.assign(idx, &made_rid).unwrap();
        let inside = RoleAssignment {
            principal_id: made.principal_id.clone(),
            role: BuiltinRole::StorageBlobDataReader,
            scope: resource_id::storage_account(SUB, "run", "runacct"),
        };
        let name = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            s.put_named_role_assignment(&name, inside.clone(), None),
            RoleAssignmentPut::Created
        );
        assert_eq!(
            s.put_named_role_assignment(&name.to_uppercase(), inside.clone(), None),
            RoleAssignmentPut::Unchanged
        );
        assert!(matches!(
            s.put_named_role_assignment(&uuid::Uuid::new_v4().to_string(), inside.clone(), None),
            RoleAssignmentPut::Exists { name: n } if n == name
        ));
        s.delete_resource_group("run").unwrap();
        assert!(!s.resource_group_exists("run"));
        assert!(s.identity_by_id(&made_rid).is_none());
        assert!(
            !s.machines[idx]
                .user_assigned
                .contains(&normalize(&made_rid))
        );
        assert!(!s.accounts.contains_key("runacct"));
        assert!(!s.has_role_assignment(&inside) && s.named_role_assignment(&name).is_none());
        assert!(s.resource_group_exists("nodes"), "machines stay");
        assert!(s.delete_resource_group("run").is_err());
    }

    #[test]
    fn spec_assignments_have_a_stable_name() {
        let mut s = state();
        let ra = RoleAssignment {
            principal_id: "p-old".into(),
            role: BuiltinRole::Reader,
            scope: format!("/subscriptions/{SUB}"),
        };
        s.role_assignments.push(ra.clone());
        let name = s.role_assignment_name(&ra);
        assert_eq!(name, s.role_assignment_name(&ra));
        assert!(uuid::Uuid::parse_str(&name).is_ok());
        assert_eq!(s.named_role_assignment(&name).unwrap().assignment, ra);
        assert!(s.delete_named_role_assignment(&name).is_some());
        assert!(!s.has_role_assignment(&ra));
    }

    #[test]
    fn role_assignments_are_removed_by_value() {
        let mut s = state();
        let ra = RoleAssignment {
            principal_id: "P-OLD".into(),
            role: BuiltinRole::StorageBlobDataReader,
            scope: format!("/subscriptions/{SUB}"),
        };
        s.role_assignments.push(RoleAssignment {
            principal_id: "p-old".into(),
            ..ra.clone()
        });
        assert!(s.has_role_assignment(&ra));
        assert!(s.remove_role_assignment(&ra));
        assert!(!s.remove_role_assignment(&ra));
    }
}
