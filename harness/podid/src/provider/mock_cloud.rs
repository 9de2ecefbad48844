//! The cloud side backed by podid's mock Azure cloud: every capability a cloud side can have,
//! since the mock holds all state and records every request.

use podid_mocks::{
    BlobSpec, BuiltinRole, CloudSpec, Container, MachineRef, MockCloud, RecordedRequest,
    RoleAssignment, ServicePrincipal, SpCredential, StorageAccount, UserAssignedIdentity,
    resource_id, sp_certificate,
};
use podid_scenario::{Cloud, MIC_PRINCIPAL, Role, Service};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::capability::{Capabilities, Capability};
use super::cloud::{
    CloudBehaviour, CloudNames, CloudRequest, CloudSide, DeclaredCloud, FaultHandle, FaultSpec,
    IdentityValues, MachineIdentities, RequestLog, RoleChange, ServicePrincipalCredential,
    ServicePrincipalValues,
};
use super::cluster::Machine;
use super::error::ProviderError;
use super::mock_backend::MockBackend;

/// Resource group that holds the identities a scenario declares (unless it names another).
pub const IDENTITY_RESOURCE_GROUP: &str = "podid-identities";
/// Resource group of the storage accounts scenarios declare.
pub const STORAGE_RESOURCE_GROUP: &str = "podid-storage";

/// The mock cloud as a provider's cloud side.
#[derive(Clone)]
pub struct MockCloudSide {
    cloud: MockBackend,
    /// Where it runs, for the report (`in-process`, `in the cluster`).
    location: &'static str,
    mic_principal: Option<String>,
    /// Faults in place, by the handle given out for them.
    faults: Arc<Mutex<HashMap<u64, podid_mocks::FaultId>>>,
    next_fault: Arc<AtomicU64>,
    /// What must live as long as this side (the port-forward to an in-cluster mock).
    kept: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl MockCloudSide {
    pub fn new(cloud: MockCloud) -> Self {
        Self::over(MockBackend::InProcess(cloud), "in-process")
    }

    /// The cloud side of a mock running elsewhere (`location` says where, for reports).
    pub fn over(cloud: MockBackend, location: &'static str) -> Self {
        Self {
            cloud,
            location,
            mic_principal: None,
            faults: Arc::default(),
            next_fault: Arc::default(),
            kept: None,
        }
    }

    /// Keeps `value` alive as long as this side (what its connection to the mock needs).
    pub fn keeping(mut self, value: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self.kept = Some(value);
        self
    }

    /// The cloud side of a cloud whose MIC signs in as principal `object_id`.
    pub fn with_mic_principal(mut self, object_id: String) -> Self {
        self.mic_principal = Some(object_id);
        self
    }
}

/// What the mock cloud side can do: everything a cloud side can.
pub fn capabilities() -> Capabilities {
    Capabilities::of([
        Capability::RequestLog,
        Capability::FaultRules,
        Capability::CloudChanges,
        Capability::ServicePrincipalIdentities,
        Capability::CloudBehaviour,
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
        Role::VirtualMachineContributor => BuiltinRole::VirtualMachineContributor,
        Role::ManagedIdentityOperator => BuiltinRole::ManagedIdentityOperator,
    }
}

/// The scope of a role assignment: a storage account or container for data roles, the
/// subscription for control-plane roles (given without an account).
fn role_scope(subscription_id: &str, account: Option<&str>, container: Option<&str>) -> String {
    match account {
        Some(account) => storage_scope(subscription_id, account, container),
        None => format!("/subscriptions/{subscription_id}"),
    }
}

/// The mock's fault rule for a provider fault.
fn fault_rule(fault: &FaultSpec) -> podid_mocks::FaultRule {
    let service = match fault.service.unwrap_or(Service::Imds) {
        Service::Imds => podid_mocks::Service::Imds,
        Service::Aad => podid_mocks::Service::Aad,
        Service::Arm => podid_mocks::Service::Arm,
        Service::Blob => podid_mocks::Service::Blob,
    };
    let mut rule = podid_mocks::FaultRule::status(service, fault.path_prefix.clone(), 0);
    rule.status = fault.status;
    rule.label = fault.node.clone();
    rule.method = fault.method.clone();
    rule.client_id = fault.client_id.clone();
    rule.body = fault.body.clone();
    rule.retry_after = fault.retry_after.clone();
    rule.latency = fault.latency;
    rule.disconnect = fault.disconnect;
    rule.count = fault.count;
    rule.duration = fault.duration;
    rule
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
        let real = format!("{}-{}", name.value, names.suffix);
        let (credential, registered) = sp_credential(&name.value, &real, decl)?;
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
            credential,
        };
        spec.service_principals.push(ServicePrincipal {
            name: real,
            client_id: values.client_id.clone(),
            object_id: values.object_id.clone(),
            credential: registered,
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
        // MIC's principal is the run's, not the scenario's: its roles are granted when the
        // trial's turn begins (see `runner::scenario_run`), never while another trial runs.
        if ra.principal.as_str() == MIC_PRINCIPAL {
            continue;
        }
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
        let account = match &ra.account {
            Some(a) => Some(account(a.as_str())?),
            None => None,
        };
        let scope = role_scope(
            subscription_id,
            account.as_deref(),
            ra.container.as_ref().map(|c| c.as_str()),
        );
        spec.role_assignments.push(RoleAssignment {
            principal_id,
            role: builtin_role(ra.role.value),
            scope,
        });
    }
    Ok((spec, declared))
}

/// A declared principal's credential: what its client holds, and what AAD registers (the secret,
/// or a generated certificate's public PEM).
fn sp_credential(
    declared: &str,
    real: &str,
    decl: &podid_scenario::ServicePrincipalDecl,
) -> Result<(ServicePrincipalCredential, SpCredential), ProviderError> {
    match (&decl.secret, decl.certificate) {
        (Some(secret), false) => Ok((
            ServicePrincipalCredential::Secret(secret.value.clone()),
            SpCredential::Secret {
                secret: secret.value.clone(),
            },
        )),
        (None, true) => {
            let generated = sp_certificate::generate(real).map_err(|e| {
                ProviderError::new(
                    format!("generating the certificate of service principal `{declared}`"),
                    e,
                )
            })?;
            Ok((
                ServicePrincipalCredential::Certificate {
                    pkcs12: generated.pkcs12,
                    password: generated.password,
                },
                SpCredential::Certificate {
                    cert_pem: generated.cert_pem,
                },
            ))
        }
        _ => Err(ProviderError::plain(format!(
            "service principal `{declared}` needs exactly one of `secret` and `certificate: true`"
        ))),
    }
}

/// The RBAC scope of a storage account, or of one of its containers.
fn storage_scope(subscription_id: &str, account: &str, container: Option<&str>) -> String {
    match container {
        Some(c) => {
            resource_id::container_scope(subscription_id, STORAGE_RESOURCE_GROUP, account, c)
        }
        None => resource_id::storage_account(subscription_id, STORAGE_RESOURCE_GROUP, account),
    }
}

fn service_of(service: podid_mocks::Service) -> Service {
    match service {
        podid_mocks::Service::Imds => Service::Imds,
        podid_mocks::Service::Aad => Service::Aad,
        podid_mocks::Service::Arm => Service::Arm,
        podid_mocks::Service::Blob => Service::Blob,
    }
}

/// The host name of a `Host` value, without port, lower-cased (host names are
/// case-insensitive; a storage account's blob host is what attributes Blob requests).
fn host_name(authority: &str) -> String {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host),
    };
    host.to_ascii_lowercase()
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
        identity_ids: r.identity_ids.clone(),
        host: r.host.as_deref().map(host_name),
        status: r.status,
    }
}

impl RequestLog for MockCloudSide {
    fn cursor(&self) -> u64 {
        self.cloud.next_seq()
    }

    fn since(&self, cursor: u64) -> Vec<CloudRequest> {
        self.cloud
            .requests_since(cursor)
            .iter()
            .map(cloud_request)
            .collect()
    }

    fn details_since(&self, cursor: u64) -> serde_json::Value {
        serde_json::to_value(self.cloud.requests_since(cursor)).unwrap_or_default()
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

    fn environment(&self) -> Vec<(String, String)> {
        vec![(
            "cloud".into(),
            format!("podid mock cloud, {}", self.location),
        )]
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
        self.cloud.apply(&spec).await.map_err(|e| {
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
            .await
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
            .await
            .map_err(|e| {
                ProviderError::new(
                    format!("unassigning {identity_resource_id} from {machine}"),
                    e,
                )
            })
    }

    async fn disable_system_assigned(&self, machine: &Machine) -> Result<(), ProviderError> {
        self.cloud
            .disable_system_assigned(&machine_ref(machine))
            .await
            .map_err(|e| {
                ProviderError::new(
                    format!("disabling the system-assigned identity of {machine}"),
                    e,
                )
            })
    }

    async fn enable_system_assigned(&self, machine: &Machine) -> Result<String, ProviderError> {
        self.cloud
            .enable_system_assigned(&machine_ref(machine))
            .await
            .map(|s| s.principal_id)
            .map_err(|e| {
                ProviderError::new(
                    format!("enabling the system-assigned identity of {machine}"),
                    e,
                )
            })
    }

    async fn machine_identities(
        &self,
        machine: &Machine,
    ) -> Result<MachineIdentities, ProviderError> {
        let what = || format!("reading the identities of {machine}");
        let m = machine_ref(machine);
        let user_assigned = self
            .cloud
            .assigned_identities(&m)
            .await
            .map_err(|e| ProviderError::new(what(), e))?;
        let system_assigned = self
            .cloud
            .system_assigned(&m)
            .await
            .map_err(|e| ProviderError::new(what(), e))?
            .map(|s| s.principal_id);
        Ok(MachineIdentities {
            user_assigned,
            system_assigned,
        })
    }

    async fn change_role(&self, change: &RoleChange, add: bool) -> Result<(), ProviderError> {
        let assignment = RoleAssignment {
            principal_id: change.principal_id.clone(),
            role: builtin_role(change.role),
            scope: role_scope(
                &self.cloud.subscription_id(),
                change.account.as_deref(),
                change.container.as_deref(),
            ),
        };
        let what = || {
            format!(
                "{} {:?} {} {} at {}",
                if add { "assigning" } else { "removing" },
                change.role,
                if add { "to" } else { "from" },
                change.principal_id,
                assignment.scope
            )
        };
        if add {
            self.cloud.add_role_assignment(&assignment).await
        } else {
            self.cloud.remove_role_assignment(&assignment).await
        }
        .map(|_| ())
        .map_err(|e| ProviderError::new(what(), e))
    }

    async fn delete_identity(&self, identity: &IdentityValues) -> Result<(), ProviderError> {
        self.cloud
            .delete_identity(&identity.resource_id)
            .await
            .map_err(|e| ProviderError::new(format!("deleting identity {}", identity.name), e))
    }

    async fn recreate_identity(
        &self,
        identity: &IdentityValues,
    ) -> Result<IdentityValues, ProviderError> {
        let created = self
            .cloud
            .recreate_identity(&identity.resource_id)
            .await
            .map_err(|e| ProviderError::new(format!("recreating identity {}", identity.name), e))?;
        Ok(IdentityValues {
            name: identity.name.clone(),
            client_id: created.client_id,
            principal_id: created.principal_id,
            resource_id: identity.resource_id.clone(),
        })
    }

    async fn add_fault(&self, fault: &FaultSpec) -> Result<FaultHandle, ProviderError> {
        let id = self
            .cloud
            .add_fault(fault_rule(fault))
            .await
            .map_err(|e| ProviderError::new("adding a fault to the mock cloud", e))?;
        let handle = self.next_fault.fetch_add(1, Ordering::Relaxed);
        self.faults
            .lock()
            .expect("fault map lock")
            .insert(handle, id);
        Ok(FaultHandle(handle))
    }

    async fn remove_fault(&self, handle: FaultHandle) -> Result<(), ProviderError> {
        let id = self
            .faults
            .lock()
            .expect("fault map lock")
            .remove(&handle.0);
        if let Some(id) = id {
            self.cloud
                .remove_fault(id)
                .await
                .map_err(|e| ProviderError::new("removing a fault from the mock cloud", e))?;
        }
        Ok(())
    }

    async fn set_behaviour(&self, behaviour: &CloudBehaviour) -> Result<(), ProviderError> {
        self.cloud
            .set_behaviour(
                podid_mocks::ArmBehaviour {
                    authorization: behaviour.arm_authorization,
                    async_polls: behaviour.arm_async_polls,
                },
                podid_mocks::ImdsBehaviour {
                    propagation_delay: behaviour.imds_propagation_delay,
                    requests_per_second: behaviour.imds_requests_per_second,
                },
            )
            .await
            .map_err(|e| ProviderError::new("setting how the mock's ARM and IMDS behave", e))
    }

    fn mic_principal_id(&self) -> Option<String> {
        self.mic_principal.clone()
    }

    async fn signing_keys(&self) -> Result<serde_json::Value, ProviderError> {
        self.cloud
            .jwks()
            .await
            .map_err(|e| ProviderError::new("reading the mock cloud's signing keys", e))
    }

    fn request_log(&self) -> Option<&dyn RequestLog> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podid_mocks::{MachineKind, SystemAssignedIdentity, VirtualMachine};

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const SUB: &str = "00000000-1111-2222-3333-444444444444";

    fn names() -> CloudNames {
        CloudNames {
            suffix: "run1".into(),
            accounts: [("data".to_string(), "datarun1".to_string())].into(),
        }
    }

    fn cloud(value: serde_json::Value) -> Cloud {
        serde_json::from_value(value).unwrap()
    }

    fn side() -> MockCloudSide {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        MockCloudSide::new(
            MockCloud::new(CloudSpec {
                tenant_id: TENANT.into(),
                subscription_id: SUB.into(),
                machines: vec![VirtualMachine {
                    name: "pool0".into(),
                    resource_group: "nodes".into(),
                    kind: MachineKind::ScaleSet { instances: 1 },
                    system_assigned: None::<SystemAssignedIdentity>,
                    user_assigned: Vec::new(),
                    location: "eastus".into(),
                    provisioning_state: "Succeeded".into(),
                }],
                ..CloudSpec::default()
            })
            .unwrap(),
        )
    }

    fn machine() -> Machine {
        Machine::ScaleSetInstance {
            scale_set: "pool0".into(),
            instance: 0,
        }
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        assert_eq!(
            host_name("DataRun1.blob.core.windows.net:443"),
            "datarun1.blob.core.windows.net"
        );
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8443"), "::1");
    }

    #[test]
    fn service_principals_get_the_credential_their_declaration_asks_for() {
        let declared = cloud(serde_json::json!({"servicePrincipals": {
            "with-secret": {"secret": "s3cr3t-value"},
            "with-cert": {"certificate": true},
        }}));
        let (spec, values) = cloud_spec(&declared, &names(), TENANT, SUB).unwrap();
        let secret = &values.service_principals["with-secret"];
        assert_eq!(
            secret.credential,
            ServicePrincipalCredential::Secret("s3cr3t-value".into())
        );
        let cert = &values.service_principals["with-cert"];
        let ServicePrincipalCredential::Certificate { pkcs12, password } = &cert.credential else {
            panic!("a certificate principal holds a PKCS#12 bundle");
        };
        assert!(!pkcs12.is_empty() && !password.is_empty());
        let registered = spec
            .service_principals
            .iter()
            .find(|s| s.client_id == cert.client_id)
            .unwrap();
        assert_eq!(registered.name, "with-cert-run1");
        assert!(matches!(
            &registered.credential,
            SpCredential::Certificate { cert_pem } if cert_pem.contains("BEGIN CERTIFICATE")
        ));
        assert!(!format!("{values:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn a_principal_needs_exactly_one_credential() {
        for decl in [
            serde_json::json!({}),
            serde_json::json!({"secret": "x", "certificate": true}),
        ] {
            let declared = cloud(serde_json::json!({"servicePrincipals": {"sp": decl}}));
            assert!(cloud_spec(&declared, &names(), TENANT, SUB).is_err());
        }
    }

    #[tokio::test]
    async fn cloud_changes_go_through_the_mock() {
        let side = side();
        let declared = side
            .declare(
                &cloud(serde_json::json!({
                    "identities": {"reader": {}},
                    "storageAccounts": {"data": {"containers": {"c": {"b.txt": "hi"}}}},
                })),
                &names(),
            )
            .await
            .unwrap();
        let reader = declared.identities["reader"].clone();
        side.assign_identity(&machine(), &reader.resource_id)
            .await
            .unwrap();
        let principal = side.enable_system_assigned(&machine()).await.unwrap();
        assert_eq!(
            side.enable_system_assigned(&machine()).await.unwrap(),
            principal
        );
        let held = side.machine_identities(&machine()).await.unwrap();
        assert_eq!(held.user_assigned, vec![reader.resource_id.clone()]);
        assert_eq!(held.system_assigned, Some(principal));

        let recreated = side.recreate_identity(&reader).await.unwrap();
        assert_eq!(recreated.resource_id, reader.resource_id);
        assert_ne!(recreated.client_id, reader.client_id);
        assert_ne!(recreated.principal_id, reader.principal_id);
        let held = side.machine_identities(&machine()).await.unwrap();
        assert_eq!(
            held.user_assigned,
            vec![reader.resource_id.clone()],
            "stale reference kept"
        );

        let change = RoleChange {
            principal_id: recreated.principal_id.clone(),
            role: Role::StorageBlobDataReader,
            account: Some("datarun1".into()),
            container: Some("c".into()),
        };
        side.change_role(&change, true).await.unwrap();
        side.change_role(&change, true).await.unwrap();
        side.change_role(&change, false).await.unwrap();
        side.change_role(&change, false).await.unwrap();

        side.delete_identity(&recreated).await.unwrap();
        let held = side.machine_identities(&machine()).await.unwrap();
        assert!(held.user_assigned.is_empty());
        assert!(side.delete_identity(&recreated).await.is_err());
    }
}
