//! The cloud side backed by podid's mock Azure cloud: every capability a cloud side can have,
//! since the mock holds all state and records every request.

use podid_mocks::{
    BlobSpec, BuiltinRole, CloudSpec, Container, MachineRef, MockCloud, RecordedRequest,
    RoleAssignment, ServicePrincipal, SpCredential, StorageAccount, UserAssignedIdentity,
    resource_id,
};
use podid_scenario::{Cloud, Role, Service};

use super::capability::{Capabilities, Capability};
use super::cloud::{
    CloudNames, CloudRequest, CloudSide, DeclaredCloud, IdentityValues, RequestLog,
    ServicePrincipalValues,
};
use super::cluster::Machine;
use super::error::ProviderError;

/// Resource group that holds the identities a scenario declares (unless it names another).
pub const IDENTITY_RESOURCE_GROUP: &str = "podid-identities";
/// Resource group of the storage accounts scenarios declare.
pub const STORAGE_RESOURCE_GROUP: &str = "podid-storage";

/// The mock cloud as a provider's cloud side.
#[derive(Clone)]
pub struct MockCloudSide {
    cloud: MockCloud,
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl MockCloudSide {
    pub fn new(cloud: MockCloud) -> Self {
        Self { cloud }
    }

    /// The mock itself, for the provider that serves it.
    pub fn mock(&self) -> &MockCloud {
        &self.cloud
    }
}

/// What the mock cloud side can do: everything a cloud side can.
pub fn capabilities() -> Capabilities {
    Capabilities::of([
        Capability::RequestLog,
        Capability::FaultRules,
        Capability::CloudChanges,
    ])
}

/// The mock's name for a node machine.
pub fn machine_ref(machine: &Machine) -> MachineRef {
    match machine {
        Machine::ScaleSetInstance {
            scale_set,
            instance,
        } => MachineRef::scale_set_instance(scale_set, *instance),
        Machine::VirtualMachine { name } => MachineRef::vm(name),
    }
}

fn builtin_role(role: Role) -> BuiltinRole {
    match role {
        Role::StorageBlobDataReader => BuiltinRole::StorageBlobDataReader,
        Role::StorageBlobDataContributor => BuiltinRole::StorageBlobDataContributor,
        Role::StorageBlobDataOwner => BuiltinRole::StorageBlobDataOwner,
        Role::Reader => BuiltinRole::Reader,
        Role::Contributor => BuiltinRole::Contributor,
        Role::Owner => BuiltinRole::Owner,
    }
}

/// What the mock must hold for a scenario's `cloud` section, and the values it was given.
fn cloud_spec(
    cloud: &Cloud,
    names: &CloudNames,
    tenant_id: &str,
    subscription_id: &str,
) -> Result<(CloudSpec, DeclaredCloud), ProviderError> {
    let mut spec = CloudSpec {
        tenant_id: tenant_id.to_string(),
        subscription_id: subscription_id.to_string(),
        ..CloudSpec::default()
    };
    let mut declared = DeclaredCloud::default();
    for (name, decl) in &cloud.identities {
        let real = format!("{}-{}", name.value, names.suffix);
        let resource_group = decl
            .resource_group
            .clone()
            .unwrap_or_else(|| IDENTITY_RESOURCE_GROUP.to_string());
        let pinned = |v: &Option<podid_scenario::Located<String>>| {
            v.as_ref().map(|v| v.value.to_ascii_lowercase())
        };
        let values = IdentityValues {
            resource_id: resource_id::user_assigned_identity(
                subscription_id,
                &resource_group,
                &real,
            ),
            name: real.clone(),
            client_id: pinned(&decl.client_id).unwrap_or_else(guid),
            principal_id: pinned(&decl.principal_id).unwrap_or_else(guid),
        };
        spec.identities.push(UserAssignedIdentity {
            name: real,
            resource_group,
            client_id: values.client_id.clone(),
            principal_id: values.principal_id.clone(),
        });
        declared.identities.insert(name.value.clone(), values);
    }
    for (name, decl) in &cloud.service_principals {
        let Some(secret) = &decl.secret else {
            return Err(ProviderError::plain(format!(
                "service principal `{}` uses a certificate, which podid does not generate yet; give it a `secret`",
                name.value
            )));
        };
        let values = ServicePrincipalValues {
            client_id: decl
                .client_id
                .as_ref()
                .map(|v| v.value.clone())
                .unwrap_or_else(guid),
            object_id: decl
                .object_id
                .as_ref()
                .map(|v| v.value.clone())
                .unwrap_or_else(guid),
        };
        spec.service_principals.push(ServicePrincipal {
            name: format!("{}-{}", name.value, names.suffix),
            client_id: values.client_id.clone(),
            object_id: values.object_id.clone(),
            credential: SpCredential::Secret {
                secret: secret.value.clone(),
            },
        });
        declared
            .service_principals
            .insert(name.value.clone(), values);
    }
    let account = |declared_name: &str| {
        names.accounts.get(declared_name).cloned().ok_or_else(|| {
            ProviderError::plain(format!("storage account `{declared_name}` has no run name"))
        })
    };
    for (name, decl) in &cloud.storage_accounts {
        spec.storage_accounts.push(StorageAccount {
            name: account(name.as_str())?,
            resource_group: STORAGE_RESOURCE_GROUP.to_string(),
            containers: decl
                .containers
                .iter()
                .map(|(c, blobs)| Container {
                    name: c.value.clone(),
                    blobs: blobs
                        .iter()
                        .map(|(b, content)| BlobSpec {
                            name: b.value.clone(),
                            content: content.clone(),
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    for ra in &cloud.role_assignments {
        let ra = &ra.value;
        let principal_id = declared
            .identities
            .get(ra.principal.as_str())
            .map(|i| i.principal_id.clone())
            .or_else(|| {
                declared
                    .service_principals
                    .get(ra.principal.as_str())
                    .map(|s| s.object_id.clone())
            })
            .ok_or_else(|| {
                ProviderError::plain(format!(
                    "role assignment for `{}`, which is not declared",
                    ra.principal.value
                ))
            })?;
        let account = account(ra.account.as_str())?;
        let scope = match &ra.container {
            Some(c) => {
                resource_id::container_scope(subscription_id, STORAGE_RESOURCE_GROUP, &account, c)
            }
            None => resource_id::storage_account(subscription_id, STORAGE_RESOURCE_GROUP, &account),
        };
        spec.role_assignments.push(RoleAssignment {
            principal_id,
            role: builtin_role(ra.role.value),
            scope,
        });
    }
    Ok((spec, declared))
}

fn service_of(service: podid_mocks::Service) -> Service {
    match service {
        podid_mocks::Service::Imds => Service::Imds,
        podid_mocks::Service::Aad => Service::Aad,
        podid_mocks::Service::Arm => Service::Arm,
        podid_mocks::Service::Blob => Service::Blob,
    }
}

fn cloud_request(r: &RecordedRequest) -> CloudRequest {
    let service = service_of(r.service);
    CloudRequest {
        seq: r.seq,
        service,
        node: (service == Service::Imds).then(|| r.label.clone()),
        method: r.method.clone(),
        path: r.path.clone(),
        client_id: r.client_id.clone(),
        identity_ids: Vec::new(),
        host: r.host.clone(),
        status: r.status,
    }
}

impl RequestLog for MockCloudSide {
    fn cursor(&self) -> u64 {
        self.cloud.next_seq()
    }

    fn since(&self, cursor: u64) -> Vec<CloudRequest> {
        self.cloud
            .requests()
            .iter()
            .filter(|r| r.seq >= cursor)
            .map(cloud_request)
            .collect()
    }

    fn details_since(&self, cursor: u64) -> serde_json::Value {
        let requests: Vec<RecordedRequest> = self
            .cloud
            .requests()
            .into_iter()
            .filter(|r| r.seq >= cursor)
            .collect();
        serde_json::to_value(requests).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl CloudSide for MockCloudSide {
    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    fn tenant_id(&self) -> String {
        self.cloud.tenant_id()
    }

    fn subscription_id(&self) -> String {
        self.cloud.subscription_id()
    }

    fn account_url(&self, account: &str) -> String {
        format!("https://{account}{}", podid_mocks::BLOB_HOST_SUFFIX)
    }

    async fn declare(
        &self,
        cloud: &Cloud,
        names: &CloudNames,
    ) -> Result<DeclaredCloud, ProviderError> {
        let (spec, declared) = cloud_spec(
            cloud,
            names,
            &self.cloud.tenant_id(),
            &self.cloud.subscription_id(),
        )?;
        self.cloud.apply(&spec).map_err(|e| {
            ProviderError::new("adding the scenario's objects to the mock cloud", e)
        })?;
        Ok(declared)
    }

    async fn assign_identity(
        &self,
        machine: &Machine,
        identity_resource_id: &str,
    ) -> Result<(), ProviderError> {
        self.cloud
            .assign_identity(&machine_ref(machine), identity_resource_id)
            .map_err(|e| {
                ProviderError::new(format!("assigning {identity_resource_id} to {machine}"), e)
            })
    }

    async fn unassign_identity(
        &self,
        machine: &Machine,
        identity_resource_id: &str,
    ) -> Result<(), ProviderError> {
        self.cloud
            .unassign_identity(&machine_ref(machine), identity_resource_id)
            .map(|_| ())
            .map_err(|e| {
                ProviderError::new(
                    format!("unassigning {identity_resource_id} from {machine}"),
                    e,
                )
            })
    }

    async fn signing_keys(&self) -> Result<serde_json::Value, ProviderError> {
        Ok(self.cloud.jwks())
    }

    fn request_log(&self) -> Option<&dyn RequestLog> {
        Some(self)
    }
}
