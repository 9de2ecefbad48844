//! Changes an operator makes to the cloud while it runs: enabling a machine's system-assigned
//! identity, deleting or recreating a user-assigned identity, and adding or removing role
//! assignments. ARM handlers and the harness make them through these same methods.

use crate::error::MockError;
use crate::resource_id::normalize;
use crate::spec::{RoleAssignment, SystemAssignedIdentity, UserAssignedIdentity};
use crate::state::CloudState;

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
    use crate::state::IdentitySelector;

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
