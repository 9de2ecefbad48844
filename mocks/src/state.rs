//! The mutable model behind all four services: identities, principals, roles, blobs, machines.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::MockError;
use crate::resource_id::{self, normalize};
use crate::spec::{
    BuiltinRole, CloudSpec, MachineKind, MachineRef, RoleAssignment, ServicePrincipal,
    SpCredential, SystemAssignedIdentity, UserAssignedIdentity, VirtualMachine,
};

/// A registered service principal plus its parsed certificate, if any.
#[derive(Debug, Clone)]
pub(crate) struct SpRecord {
    pub spec: ServicePrincipal,
    pub cert: Option<SpCertificate>,
}

/// Thumbprints and DER of a service principal's certificate, for client assertions.
#[derive(Debug, Clone)]
pub(crate) struct SpCertificate {
    pub pem: String,
    pub der: Vec<u8>,
    /// base64url SHA-1 of the DER (`x5t`).
    pub x5t: String,
    /// base64url SHA-256 of the DER (`x5t#S256`).
    pub x5t_s256: String,
}

/// One stored block blob.
#[derive(Debug, Clone)]
pub(crate) struct StoredBlob {
    pub content: Vec<u8>,
    pub content_type: String,
    pub etag: String,
    pub created: SystemTime,
    pub modified: SystemTime,
    /// The committed block list, in content order (empty for a blob written by Put Blob).
    pub blocks: Vec<CommittedBlock>,
}

/// A block of a blob's committed block list: its id and how many bytes of the content it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedBlock {
    /// Base64 block id, as the client sent it.
    pub id: String,
    pub size: usize,
}

/// A block staged with Put Block and not committed yet.
#[derive(Debug, Clone)]
pub(crate) struct UncommittedBlock {
    /// Base64 block id, as the client sent it.
    pub id: String,
    pub data: Vec<u8>,
}

/// One container and its blobs.
#[derive(Debug, Clone)]
pub(crate) struct ContainerState {
    pub etag: String,
    pub modified: SystemTime,
    pub blobs: BTreeMap<String, StoredBlob>,
    /// Uncommitted blocks per blob name (the blob itself may not exist yet), in upload order.
    pub uncommitted: BTreeMap<String, Vec<UncommittedBlock>>,
}

/// One storage account.
#[derive(Debug, Clone)]
pub(crate) struct AccountState {
    pub resource_group: String,
    pub containers: BTreeMap<String, ContainerState>,
    /// What ARM reports for it (region, tags, SKU, kind, properties it was created with).
    pub arm: ArmAttributes,
}

/// The ARM attributes of a resource created through ARM: its region and tags (and, for storage
/// accounts, what a PUT asked for). Objects of the spec get the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArmAttributes {
    pub location: String,
    pub tags: BTreeMap<String, String>,
    /// Storage accounts: `sku.name` (`Standard_LRS` by default).
    pub sku: String,
    /// Storage accounts: `kind` (`StorageV2` by default).
    pub kind: String,
    /// Storage accounts: `properties.allowSharedKeyAccess`, as given.
    pub allow_shared_key_access: Option<bool>,
    pub created: SystemTime,
}

impl Default for ArmAttributes {
    fn default() -> Self {
        Self {
            location: "eastus".into(),
            tags: BTreeMap::new(),
            sku: "Standard_LRS".into(),
            kind: "StorageV2".into(),
            allow_shared_key_access: None,
            created: SystemTime::now(),
        }
    }
}

/// A resource group created through ARM. Groups that only hold objects of the spec exist
/// implicitly, in `eastus` and without tags.
#[derive(Debug, Clone)]
pub(crate) struct ResourceGroupState {
    /// The name as it was created (ARM keeps the spelling; lookups ignore case).
    pub name: String,
    pub attributes: ArmAttributes,
}

/// A role assignment created through ARM, under the name (a GUID) its creator chose.
#[derive(Debug, Clone)]
pub(crate) struct NamedRoleAssignment {
    pub name: String,
    pub assignment: RoleAssignment,
    /// `properties.principalType` as given (`ServicePrincipal`, `User`, …).
    pub principal_type: Option<String>,
    pub created: SystemTime,
}

/// One VM or scale set with its current identity assignment.
#[derive(Debug, Clone)]
pub(crate) struct MachineState {
    pub name: String,
    pub resource_group: String,
    pub kind: MachineKind,
    pub location: String,
    pub provisioning_state: String,
    pub system: Option<SystemAssignedIdentity>,
    /// Normalized (lower-case) resource ids of assigned user identities, in assignment order.
    pub user_assigned: Vec<String>,
    /// Those of `user_assigned` whose identity was deleted and recreated under the same resource
    /// id after it was assigned: the machine still lists them, but they no longer resolve to a
    /// principal (IMDS answers `Identity not found`) until they are removed and assigned again.
    pub stale: Vec<String>,
    /// Stable `vmId` per instance (one entry for a VM).
    pub vm_ids: Vec<String>,
    /// When each identity was assigned while the cloud ran, by normalized `xms_mirid` (a user
    /// identity's resource id, or the machine's own for its system-assigned identity). Those
    /// present from the start have none. IMDS's propagation delay counts from here.
    pub assigned_at: BTreeMap<String, Instant>,
}

/// The whole cloud.
#[derive(Debug, Clone)]
pub(crate) struct CloudState {
    pub tenant_id: String,
    pub subscription_id: String,
    pub identities: Vec<UserAssignedIdentity>,
    pub service_principals: Vec<SpRecord>,
    pub role_assignments: Vec<RoleAssignment>,
    pub accounts: BTreeMap<String, AccountState>,
    pub machines: Vec<MachineState>,
    pub extra_resources: Vec<String>,
    /// Long-running ARM machine writes, by (lower-case) operation id.
    pub arm_operations: BTreeMap<String, crate::arm::operations::ArmOperation>,
    /// Resource groups created through ARM, by lower-case name.
    pub resource_groups: BTreeMap<String, ResourceGroupState>,
    /// Region and tags of user-assigned identities created through ARM, by normalized id.
    pub identity_attributes: BTreeMap<String, ArmAttributes>,
    /// Role assignments created through ARM, by lower-case name.
    pub named_role_assignments: BTreeMap<String, NamedRoleAssignment>,
    /// Results of ARM operations tracked by a `Location` URL (resource group deletion, storage
    /// account creation), by lower-case id: the body the final poll answers, if any.
    pub operation_results: BTreeMap<String, Option<serde_json::Value>>,
}

/// A managed identity resolved for a token: which principal and its `xms_mirid`.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedIdentity {
    pub client_id: String,
    pub principal_id: String,
    pub mirid: String,
}

/// How IMDS's caller selected an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentitySelector {
    None,
    ClientId(String),
    ObjectId(String),
    ResourceId(String),
}

/// Why IMDS could not pick an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SelectError {
    NotFound,
    Ambiguous,
}

fn invalid(what: String) -> MockError {
    MockError::InvalidSpec { what }
}

pub(crate) fn new_etag() -> String {
    let u = uuid::Uuid::new_v4();
    format!(
        "\"0x8D{}\"",
        &u.simple().to_string()[..13].to_ascii_uppercase()
    )
}

impl CloudState {
    /// Builds the initial state; tenant and subscription must be given.
    pub fn from_spec(spec: &CloudSpec) -> Result<Self, MockError> {
        if spec.tenant_id.trim().is_empty() || spec.subscription_id.trim().is_empty() {
            return Err(invalid(
                "tenant_id and subscription_id are required in the initial spec".into(),
            ));
        }
        let mut state = Self {
            tenant_id: spec.tenant_id.clone(),
            subscription_id: spec.subscription_id.clone(),
            identities: Vec::new(),
            service_principals: Vec::new(),
            role_assignments: Vec::new(),
            accounts: BTreeMap::new(),
            machines: Vec::new(),
            extra_resources: Vec::new(),
            arm_operations: BTreeMap::new(),
            resource_groups: BTreeMap::new(),
            identity_attributes: BTreeMap::new(),
            named_role_assignments: BTreeMap::new(),
            operation_results: BTreeMap::new(),
        };
        state.merge(spec)?;
        Ok(state)
    }

    /// Adds the objects of `spec`; on error `self` may be partly changed (callers merge a clone).
    pub fn merge(&mut self, spec: &CloudSpec) -> Result<(), MockError> {
        if !spec.tenant_id.is_empty() && !spec.tenant_id.eq_ignore_ascii_case(&self.tenant_id) {
            return Err(invalid(format!(
                "tenant '{}' differs from the cloud's tenant '{}'",
                spec.tenant_id, self.tenant_id
            )));
        }
        if !spec.subscription_id.is_empty()
            && !spec
                .subscription_id
                .eq_ignore_ascii_case(&self.subscription_id)
        {
            return Err(invalid(format!(
                "subscription '{}' differs from the cloud's subscription '{}'",
                spec.subscription_id, self.subscription_id
            )));
        }
        for id in &spec.identities {
            self.add_identity(id)?;
        }
        for sp in &spec.service_principals {
            self.add_service_principal(sp)?;
        }
        for ra in &spec.role_assignments {
            self.add_role_assignment(ra)?;
        }
        for acct in &spec.storage_accounts {
            self.add_account(acct)?;
        }
        for vm in &spec.machines {
            self.add_machine(vm)?;
        }
        for r in &spec.extra_resources {
            if !self.extra_resources.contains(r) {
                self.extra_resources.push(r.clone());
            }
        }
        Ok(())
    }

    fn add_identity(&mut self, id: &UserAssignedIdentity) -> Result<(), MockError> {
        let rid = normalize(&id.resource_id(&self.subscription_id));
        if self.identity_by_id(&rid).is_some() {
            return Err(MockError::Duplicate {
                kind: "user-assigned identity",
                id: id.resource_id(&self.subscription_id),
            });
        }
        if self.client_id_in_use(&id.client_id) {
            return Err(MockError::Duplicate {
                kind: "client id",
                id: id.client_id.clone(),
            });
        }
        self.identities.push(id.clone());
        Ok(())
    }

    pub fn client_id_in_use(&self, client_id: &str) -> bool {
        self.identities
            .iter()
            .any(|i| i.client_id.eq_ignore_ascii_case(client_id))
            || self
                .service_principals
                .iter()
                .any(|s| s.spec.client_id.eq_ignore_ascii_case(client_id))
            || self.machines.iter().any(|m| {
                m.system
                    .as_ref()
                    .is_some_and(|s| s.client_id.eq_ignore_ascii_case(client_id))
            })
    }

    fn add_service_principal(&mut self, sp: &ServicePrincipal) -> Result<(), MockError> {
        if self.client_id_in_use(&sp.client_id) {
            return Err(MockError::Duplicate {
                kind: "client id",
                id: sp.client_id.clone(),
            });
        }
        let cert = match &sp.credential {
            SpCredential::Secret { .. } => None,
            SpCredential::Certificate { cert_pem } => Some(parse_sp_certificate(sp, cert_pem)?),
        };
        self.service_principals.push(SpRecord {
            spec: sp.clone(),
            cert,
        });
        Ok(())
    }

    fn add_role_assignment(&mut self, ra: &RoleAssignment) -> Result<(), MockError> {
        let dup = self.role_assignments.iter().any(|r| {
            r.role == ra.role
                && r.principal_id.eq_ignore_ascii_case(&ra.principal_id)
                && normalize(&r.scope) == normalize(&ra.scope)
        });
        if dup {
            return Err(MockError::Duplicate {
                kind: "role assignment",
                id: format!("{:?} for {} at {}", ra.role, ra.principal_id, ra.scope),
            });
        }
        let sub_scope = format!("/subscriptions/{}", self.subscription_id);
        if !resource_id::scope_covers(&sub_scope, &ra.scope) {
            return Err(invalid(format!(
                "role assignment scope '{}' is not inside subscription '{}'",
                ra.scope, self.subscription_id
            )));
        }
        self.role_assignments.push(ra.clone());
        Ok(())
    }

    fn add_account(&mut self, acct: &crate::spec::StorageAccount) -> Result<(), MockError> {
        let name = acct.name.to_ascii_lowercase();
        let valid = (3..=24).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(invalid(format!(
                "storage account name '{}' must be 3-24 lower-case letters or digits",
                acct.name
            )));
        }
        if self.accounts.contains_key(&name) {
            return Err(MockError::Duplicate {
                kind: "storage account",
                id: name,
            });
        }
        let now = SystemTime::now();
        let mut containers = BTreeMap::new();
        for c in &acct.containers {
            let mut blobs = BTreeMap::new();
            for b in &c.blobs {
                blobs.insert(
                    b.name.clone(),
                    StoredBlob {
                        content: b.content.clone().into_bytes(),
                        content_type: "application/octet-stream".into(),
                        etag: new_etag(),
                        created: now,
                        modified: now,
                        blocks: Vec::new(),
                    },
                );
            }
            let state = ContainerState {
                etag: new_etag(),
                modified: now,
                blobs,
                uncommitted: BTreeMap::new(),
            };
            if containers.insert(c.name.clone(), state).is_some() {
                return Err(MockError::Duplicate {
                    kind: "container",
                    id: format!("{}/{}", acct.name, c.name),
                });
            }
        }
        self.accounts.insert(
            name,
            AccountState {
                resource_group: acct.resource_group.clone(),
                containers,
                arm: ArmAttributes::default(),
            },
        );
        Ok(())
    }

    fn add_machine(&mut self, vm: &VirtualMachine) -> Result<(), MockError> {
        let is_vmss = matches!(vm.kind, MachineKind::ScaleSet { .. });
        if self.machines.iter().any(|m| {
            m.name.eq_ignore_ascii_case(&vm.name)
                && matches!(m.kind, MachineKind::ScaleSet { .. }) == is_vmss
        }) {
            return Err(MockError::Duplicate {
                kind: vm.kind.resource_type(),
                id: vm.name.clone(),
            });
        }
        if let Some(sys) = &vm.system_assigned {
            if self.client_id_in_use(&sys.client_id) {
                return Err(MockError::Duplicate {
                    kind: "client id",
                    id: sys.client_id.clone(),
                });
            }
        }
        let mut user_assigned = Vec::new();
        for id in &vm.user_assigned {
            let n = normalize(id);
            if self.identity_by_id(&n).is_none() {
                return Err(MockError::NotFound {
                    kind: "user-assigned identity",
                    id: id.clone(),
                });
            }
            if !user_assigned.contains(&n) {
                user_assigned.push(n);
            }
        }
        let count = match vm.kind {
            MachineKind::Vm => 1,
            MachineKind::ScaleSet { instances } => instances.max(1),
        };
        self.machines.push(MachineState {
            name: vm.name.clone(),
            resource_group: vm.resource_group.clone(),
            kind: vm.kind.clone(),
            location: vm.location.clone(),
            provisioning_state: vm.provisioning_state.clone(),
            system: vm.system_assigned.clone(),
            user_assigned,
            stale: Vec::new(),
            assigned_at: BTreeMap::new(),
            vm_ids: (0..count)
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect(),
        });
        Ok(())
    }

    /// A user-assigned identity by (case-insensitive) resource id.
    pub fn identity_by_id(&self, rid: &str) -> Option<&UserAssignedIdentity> {
        let n = normalize(rid);
        self.identities
            .iter()
            .find(|i| normalize(&i.resource_id(&self.subscription_id)) == n)
    }

    /// A service principal by client id.
    pub fn service_principal(&self, client_id: &str) -> Option<&SpRecord> {
        self.service_principals
            .iter()
            .find(|s| s.spec.client_id.eq_ignore_ascii_case(client_id))
    }

    /// Index of the machine (VM or scale set) a reference names.
    pub fn machine_index(&self, m: &MachineRef) -> Option<usize> {
        self.machines.iter().position(|s| {
            s.name.eq_ignore_ascii_case(&m.name)
                && match (&s.kind, m.instance) {
                    (MachineKind::Vm, None) => true,
                    (MachineKind::ScaleSet { instances }, Some(i)) => i < (*instances).max(1),
                    _ => false,
                }
        })
    }

    /// Index of the machine with this ARM type/rg/name.
    pub fn machine_by_arm(&self, rg: &str, resource_type: &str, name: &str) -> Option<usize> {
        self.machines.iter().position(|s| {
            s.name.eq_ignore_ascii_case(name)
                && s.resource_group.eq_ignore_ascii_case(rg)
                && s.kind.resource_type().eq_ignore_ascii_case(resource_type)
        })
    }

    /// Whether resource group `rg` was created through ARM or any object lives in it.
    pub fn resource_group_exists(&self, rg: &str) -> bool {
        self.resource_groups.contains_key(&rg.to_ascii_lowercase())
            || self
                .identities
                .iter()
                .any(|i| i.resource_group.eq_ignore_ascii_case(rg))
            || self
                .machines
                .iter()
                .any(|m| m.resource_group.eq_ignore_ascii_case(rg))
            || self
                .accounts
                .values()
                .any(|a| a.resource_group.eq_ignore_ascii_case(rg))
    }

    /// Canonical resource id of an assigned identity (registered spelling).
    pub fn canonical_identity_id(&self, normalized: &str) -> String {
        self.identity_by_id(normalized)
            .map(|i| i.resource_id(&self.subscription_id))
            .unwrap_or_else(|| normalized.to_string())
    }

    /// Picks the identity IMDS should issue a token for on machine `idx`.
    pub fn select_identity(
        &self,
        idx: usize,
        selector: &IdentitySelector,
    ) -> Result<ResolvedIdentity, SelectError> {
        let m = &self.machines[idx];
        let machine_id = m.mirid(&self.subscription_id);
        let system = m.system.as_ref().map(|s| ResolvedIdentity {
            client_id: s.client_id.clone(),
            principal_id: s.principal_id.clone(),
            mirid: machine_id.clone(),
        });
        let users: Vec<ResolvedIdentity> = m
            .user_assigned
            .iter()
            .filter(|rid| !m.stale.contains(rid))
            .filter_map(|rid| self.identity_by_id(rid))
            .map(|i| ResolvedIdentity {
                client_id: i.client_id.clone(),
                principal_id: i.principal_id.clone(),
                mirid: i.resource_id(&self.subscription_id),
            })
            .collect();
        let all = || system.iter().chain(users.iter());
        let found = match selector {
            IdentitySelector::None => {
                return match (&system, users.len()) {
                    (Some(s), _) => Ok(s.clone()),
                    (None, 1) => Ok(users[0].clone()),
                    (None, 0) => Err(SelectError::NotFound),
                    (None, _) => Err(SelectError::Ambiguous),
                };
            }
            IdentitySelector::ClientId(c) => all().find(|i| i.client_id.eq_ignore_ascii_case(c)),
            IdentitySelector::ObjectId(o) => all().find(|i| i.principal_id.eq_ignore_ascii_case(o)),
            IdentitySelector::ResourceId(r) => {
                let r = normalize(r);
                all().find(|i| normalize(&i.mirid) == r)
            }
        };
        found.cloned().ok_or(SelectError::NotFound)
    }

    /// Roles `principal_id` holds at `target` (directly or inherited).
    pub fn roles_at(&self, principal_id: &str, target: &str) -> Vec<BuiltinRole> {
        self.role_assignments
            .iter()
            .filter(|r| {
                r.principal_id.eq_ignore_ascii_case(principal_id)
                    && resource_id::scope_covers(&r.scope, target)
            })
            .map(|r| r.role)
            .collect()
    }

    /// Names of all storage accounts.
    pub fn account_names(&self) -> Vec<String> {
        self.accounts.keys().cloned().collect()
    }

    /// Assigns user identity `rid` to a machine (scale-set assignments apply to all instances).
    pub fn assign(&mut self, idx: usize, rid: &str) -> Result<(), MockError> {
        let n = normalize(rid);
        if self.identity_by_id(&n).is_none() {
            return Err(MockError::NotFound {
                kind: "user-assigned identity",
                id: rid.to_string(),
            });
        }
        let m = &mut self.machines[idx];
        if !m.user_assigned.contains(&n) {
            m.mark_assigned(&n);
            m.user_assigned.push(n);
        }
        Ok(())
    }

    /// Removes user identity `rid` from a machine; returns whether it was assigned.
    pub fn unassign(&mut self, idx: usize, rid: &str) -> bool {
        let n = normalize(rid);
        let m = &mut self.machines[idx];
        let before = m.user_assigned.len();
        m.user_assigned.retain(|x| *x != n);
        m.stale.retain(|x| *x != n);
        m.assigned_at.remove(&n);
        before != m.user_assigned.len()
    }
}

impl MachineState {
    /// ARM resource id of the VM or scale set.
    pub fn kind_resource_id(&self, sub: &str) -> String {
        resource_id::compute(
            sub,
            &self.resource_group,
            self.kind.resource_type(),
            &self.name,
        )
    }

    /// The `xms_mirid` of the machine's system-assigned identity: its resource id spelled as
    /// Azure spells it in tokens.
    pub fn mirid(&self, sub: &str) -> String {
        resource_id::compute_mirid(
            sub,
            &self.resource_group,
            self.kind.resource_type(),
            &self.name,
        )
    }

    /// Notes that the identity with this `xms_mirid` was assigned just now.
    pub fn mark_assigned(&mut self, mirid: &str) {
        self.assigned_at.insert(normalize(mirid), Instant::now());
    }

    /// Whether the identity with this `xms_mirid` was assigned less than `delay` before `now`.
    pub fn still_propagating(&self, mirid: &str, delay: std::time::Duration, now: Instant) -> bool {
        self.assigned_at
            .get(&normalize(mirid))
            .is_some_and(|at| now < *at + delay)
    }
}

fn parse_sp_certificate(sp: &ServicePrincipal, pem: &str) -> Result<SpCertificate, MockError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha1::Digest;
    let bad = |reason: String| MockError::BadCertificate {
        client_id: sp.client_id.clone(),
        reason,
    };
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|e| bad(format!("no RSA public key: {e}")))?;
    Ok(SpCertificate {
        pem: pem.to_string(),
        x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der.as_ref())),
        x5t_s256: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der.as_ref())),
        der: der.as_ref().to_vec(),
    })
}
