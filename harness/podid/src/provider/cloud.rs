//! The cloud side of a provider: where a scenario's identities, principals, storage and roles
//! live, how identities get onto node machines, the keys that verify tokens, and (where the cloud
//! can offer it) the log of requests it received. Plain data types first, then the traits.

use std::collections::HashMap;
use std::time::Duration;

use podid_scenario::{Cloud, Service};

use super::capability::Capabilities;
use super::cluster::Machine;
use super::error::ProviderError;

/// The names one scenario run gives its cloud declarations (unique per run, so trials can
/// share a cloud).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudNames {
    /// Appended to identity and principal names (`reader-<suffix>`).
    pub suffix: String,
    /// Declared storage account name → real account name.
    pub accounts: HashMap<String, String>,
}

/// Concrete values of a declared user-assigned identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityValues {
    pub name: String,
    pub client_id: String,
    pub principal_id: String,
    pub resource_id: String,
}

/// Concrete values of a declared service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipalValues {
    pub client_id: String,
    pub object_id: String,
    /// What a client signs in with: what the Secret NMI reads must hold.
    pub credential: ServicePrincipalCredential,
}

/// A service principal's client credential.
#[derive(Clone, PartialEq, Eq)]
pub enum ServicePrincipalCredential {
    /// A client secret (AzureIdentity type 1).
    Secret(String),
    /// A certificate (AzureIdentity type 2): a PKCS#12 bundle of the RSA key and its certificate.
    Certificate { pkcs12: Vec<u8>, password: String },
}

impl std::fmt::Debug for ServicePrincipalCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::Certificate { pkcs12, .. } => {
                write!(f, "Certificate(<{} bytes, redacted>)", pkcs12.len())
            }
        }
    }
}

/// What the cloud side made of a scenario's `cloud` section, by declared name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredCloud {
    pub identities: HashMap<String, IdentityValues>,
    pub service_principals: HashMap<String, ServicePrincipalValues>,
    /// Declared storage account → the real account, where the cloud names it otherwise than
    /// [`CloudNames::accounts`] (a mapping file's existing account).
    pub accounts: HashMap<String, String>,
}

/// One request the cloud received, as `requests` expectations see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudRequest {
    /// Order of arrival across all services.
    pub seq: u64,
    pub service: Service,
    /// The logical node whose metadata service answered (IMDS requests only).
    pub node: Option<String>,
    pub method: String,
    pub path: String,
    /// Client id asked for (IMDS, AAD) or authenticated as (ARM, Blob).
    pub client_id: Option<String>,
    /// Identity resource IDs the request names (`mi_res_id`/`msi_res_id`, an ARM body's
    /// `userAssignedIdentities`), lower-cased: what ties MIC's calls to a trial's identities.
    pub identity_ids: Vec<String>,
    /// The `Host` the request was sent to (a storage account's host for Blob).
    pub host: Option<String>,
    pub status: u16,
}

/// The lower-case name of a cloud service, as messages and request logs spell it.
pub fn service_name(service: Service) -> &'static str {
    match service {
        Service::Imds => "imds",
        Service::Aad => "aad",
        Service::Arm => "arm",
        Service::Blob => "blob",
    }
}

/// What a node's machine holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineIdentities {
    /// Resource IDs of the user-assigned identities.
    pub user_assigned: Vec<String>,
    /// Principal ID of the system-assigned identity, when enabled.
    pub system_assigned: Option<String>,
}

/// A role assignment in cloud terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    /// Principal (object) ID of the identity or service principal.
    pub principal_id: String,
    pub role: podid_scenario::Role,
    /// Real storage account name (data roles); `None` for control-plane roles, which apply to
    /// the whole subscription.
    pub account: Option<String>,
    pub container: Option<String>,
}

/// A fault to put in the cloud, in provider terms (a scenario's `faults` entry, rendered).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultSpec {
    pub service: Option<Service>,
    /// IMDS only: the logical node whose metadata service misbehaves (every node's if `None`).
    pub node: Option<String>,
    /// Path prefix, case-insensitive (`/` for every path).
    pub path_prefix: String,
    pub method: Option<String>,
    /// Only requests naming this client ID.
    pub client_id: Option<String>,
    pub status: Option<u16>,
    pub body: Option<String>,
    pub retry_after: Option<String>,
    pub latency: Option<Duration>,
    /// Close the connection without an answer.
    pub disconnect: bool,
    /// Only the next this many matching requests.
    pub count: Option<u32>,
    /// Only for this long from now.
    pub duration: Option<Duration>,
}

/// A fault the cloud holds, to take it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultHandle(pub u64);

/// Cloud-wide behaviour a scenario can set (`cloud.arm`, `cloud.imds`); the default is the
/// cloud's usual behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudBehaviour {
    /// ARM checks role assignments of the caller.
    pub arm_authorization: bool,
    /// VM/VMSS writes are long-running operations, `InProgress` this many polls.
    pub arm_async_polls: u32,
    /// A newly assigned identity is "not found" by IMDS for this long.
    pub imds_propagation_delay: Option<Duration>,
    /// Identity requests per second per machine above which IMDS throttles.
    pub imds_requests_per_second: Option<u32>,
}

impl CloudBehaviour {
    /// Whether this is the cloud's usual behaviour.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Requests the cloud received, read through a cursor so a trial sees only what came after it
/// began.
pub trait RequestLog: Send + Sync {
    /// The position the next request will get; what `since` takes.
    fn cursor(&self) -> u64;
    /// Every request at or after `cursor`, in arrival order.
    fn since(&self, cursor: u64) -> Vec<CloudRequest>;
    /// The same requests with every recorded detail (secrets already redacted), for diagnostics.
    fn details_since(&self, cursor: u64) -> serde_json::Value;
}

/// Where the identities live.
#[async_trait::async_trait]
pub trait CloudSide: Send + Sync {
    /// What this side can do (request log, faults, changes mid-scenario).
    fn capabilities(&self) -> Capabilities;
    fn tenant_id(&self) -> String;
    fn subscription_id(&self) -> String;
    /// The URL pods use for a storage account.
    fn account_url(&self, account: &str) -> String;
    /// Creates what a scenario's `cloud` section declares, under the run's names.
    async fn declare(
        &self,
        cloud: &Cloud,
        names: &CloudNames,
    ) -> Result<DeclaredCloud, ProviderError>;
    /// Puts a user-assigned identity on a node's machine (what an operator or MIC does).
    async fn assign_identity(
        &self,
        machine: &Machine,
        identity_resource_id: &str,
    ) -> Result<(), ProviderError>;
    /// Takes it off again; not assigned is not an error.
    async fn unassign_identity(
        &self,
        machine: &Machine,
        identity_resource_id: &str,
    ) -> Result<(), ProviderError>;
    /// Enables a machine's system-assigned identity and returns its principal ID.
    async fn enable_system_assigned(&self, machine: &Machine) -> Result<String, ProviderError> {
        let _ = machine;
        Err(ProviderError::plain(
            "this cloud cannot change machines mid-scenario",
        ))
    }
    /// Disables a machine's system-assigned identity (undoing `enable_system_assigned`).
    async fn disable_system_assigned(&self, machine: &Machine) -> Result<(), ProviderError> {
        let _ = machine;
        Err(ProviderError::plain(
            "this cloud cannot change machines mid-scenario",
        ))
    }
    /// What a machine holds now.
    async fn machine_identities(
        &self,
        machine: &Machine,
    ) -> Result<MachineIdentities, ProviderError> {
        let _ = machine;
        Err(ProviderError::plain(
            "this cloud cannot list a machine's identities",
        ))
    }
    /// Creates (`add`) or deletes a role assignment.
    async fn change_role(&self, change: &RoleChange, add: bool) -> Result<(), ProviderError> {
        let _ = (change, add);
        Err(ProviderError::plain(
            "this cloud cannot change roles mid-scenario",
        ))
    }
    /// Deletes a user-assigned identity (and takes it off every machine).
    async fn delete_identity(&self, identity: &IdentityValues) -> Result<(), ProviderError> {
        let _ = identity;
        Err(ProviderError::plain(
            "this cloud cannot delete identities mid-scenario",
        ))
    }
    /// Creates an identity of the same name and resource ID with new client and principal IDs.
    async fn recreate_identity(
        &self,
        identity: &IdentityValues,
    ) -> Result<IdentityValues, ProviderError> {
        let _ = identity;
        Err(ProviderError::plain(
            "this cloud cannot recreate identities mid-scenario",
        ))
    }
    /// Puts a fault in place until [`CloudSide::remove_fault`] (needs [`Capability::FaultRules`]).
    ///
    /// [`Capability::FaultRules`]: super::Capability::FaultRules
    async fn add_fault(&self, fault: &FaultSpec) -> Result<FaultHandle, ProviderError> {
        let _ = fault;
        Err(ProviderError::plain("this cloud cannot inject faults"))
    }
    /// Takes a fault out; one already used up is not an error.
    async fn remove_fault(&self, handle: FaultHandle) -> Result<(), ProviderError> {
        let _ = handle;
        Err(ProviderError::plain("this cloud cannot inject faults"))
    }
    /// Sets cloud-wide behaviour (needs [`Capability::CloudBehaviour`]).
    ///
    /// [`Capability::CloudBehaviour`]: super::Capability::CloudBehaviour
    async fn set_behaviour(&self, behaviour: &CloudBehaviour) -> Result<(), ProviderError> {
        let _ = behaviour;
        Err(ProviderError::plain(
            "this cloud cannot change how ARM and IMDS behave",
        ))
    }
    /// The principal (object) ID MIC authenticates to ARM as, for role assignments to `mic`.
    fn mic_principal_id(&self) -> Option<String> {
        None
    }
    /// The JWKS that verifies the tokens this cloud issues.
    async fn signing_keys(&self) -> Result<serde_json::Value, ProviderError>;
    /// The request log, where the cloud can offer one.
    fn request_log(&self) -> Option<&dyn RequestLog>;
    /// Removes what this side created for the run (resources, in-cluster servers); called
    /// once, after the cluster side's shutdown.
    async fn shutdown(&self) -> super::cluster::ShutdownReport {
        super::cluster::ShutdownReport::default()
    }
    /// What the run header and reports say about this cloud (`cloud` → `mock, in-process`).
    fn environment(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
