//! The declarative description of a mock cloud: what exists in the tenant and subscription.
//!
//! Used as the `mock-azure serve --config` file (YAML or JSON) and by the harness, which adds
//! each scenario's objects at run time with `MockCloud::apply`.

use serde::{Deserialize, Serialize};

use crate::resource_id;

/// Everything the mock cloud knows about: tenant, subscription and the objects inside them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSpec {
    /// Tenant GUID; may be empty in specs passed to `apply` (meaning "the cloud's tenant").
    #[serde(default)]
    pub tenant_id: String,
    /// Subscription GUID; may be empty in specs passed to `apply`.
    #[serde(default)]
    pub subscription_id: String,
    /// User-assigned managed identities.
    #[serde(default)]
    pub identities: Vec<UserAssignedIdentity>,
    /// App registrations that can authenticate at AAD with a secret or certificate.
    #[serde(default)]
    pub service_principals: Vec<ServicePrincipal>,
    /// RBAC role assignments (data-plane for Blob).
    #[serde(default)]
    pub role_assignments: Vec<RoleAssignment>,
    /// Storage accounts with their containers and blobs.
    #[serde(default)]
    pub storage_accounts: Vec<StorageAccount>,
    /// Virtual machines and scale sets (what IMDS and ARM answer for).
    #[serde(default)]
    pub machines: Vec<VirtualMachine>,
    /// Additional token audiences AAD/IMDS accept besides the well-known Azure ones
    /// (e.g. a custom-cloud `resourceManagerEndpoint`).
    #[serde(default)]
    pub extra_resources: Vec<String>,
}

/// A user-assigned managed identity (`Microsoft.ManagedIdentity/userAssignedIdentities`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAssignedIdentity {
    /// Resource name.
    pub name: String,
    /// Resource group holding it.
    pub resource_group: String,
    /// Application (client) id: `appid` in tokens, `client_id` at IMDS.
    pub client_id: String,
    /// Object (principal) id: `oid`/`sub` in tokens, the RBAC principal.
    pub principal_id: String,
}

impl UserAssignedIdentity {
    /// ARM resource id in the form Azure puts in tokens (`xms_mirid`, lower-case `resourcegroups`).
    pub fn resource_id(&self, subscription_id: &str) -> String {
        resource_id::user_assigned_identity(subscription_id, &self.resource_group, &self.name)
    }
}

/// An AAD application/service principal able to use the client-credentials grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePrincipal {
    /// Display name.
    pub name: String,
    /// Application (client) id.
    pub client_id: String,
    /// Object id of the service principal: `oid` in its tokens and its RBAC principal id.
    pub object_id: String,
    /// How it authenticates.
    pub credential: SpCredential,
}

/// The credential registered for a service principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SpCredential {
    /// A client secret (`client_secret` form field or HTTP Basic).
    Secret {
        /// The secret value.
        secret: String,
    },
    /// A certificate; the client signs a `client_assertion` JWT with its RSA private key.
    Certificate {
        /// PEM of the (public) certificate.
        cert_pem: String,
    },
}

/// A built-in Azure role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BuiltinRole {
    /// Storage Blob Data Reader: read and list blobs.
    #[serde(alias = "Storage Blob Data Reader")]
    StorageBlobDataReader,
    /// Storage Blob Data Contributor: read, write, delete blobs; manage containers.
    #[serde(alias = "Storage Blob Data Contributor")]
    StorageBlobDataContributor,
    /// Storage Blob Data Owner: everything on blobs.
    #[serde(alias = "Storage Blob Data Owner")]
    StorageBlobDataOwner,
    /// Control-plane Reader: reads every ARM resource; no blob data access (as in Azure).
    Reader,
    /// Control-plane Contributor: reads and writes every ARM resource and assigns identities; no
    /// blob data access (as in Azure).
    Contributor,
    /// Control-plane Owner: everything Contributor may; no blob data access (as in Azure).
    Owner,
    /// Virtual Machine Contributor: reads and writes VMs and scale sets (what MIC needs on the
    /// nodes), but may not assign user-assigned identities to them.
    #[serde(alias = "Virtual Machine Contributor")]
    VirtualMachineContributor,
    /// Managed Identity Operator: reads user-assigned identities and assigns them to resources
    /// (what MIC needs on the identities).
    #[serde(alias = "Managed Identity Operator")]
    ManagedIdentityOperator,
}

impl BuiltinRole {
    /// The role definition GUID Azure uses for this built-in role.
    pub fn definition_id(self) -> &'static str {
        match self {
            Self::StorageBlobDataReader => "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
            Self::StorageBlobDataContributor => "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
            Self::StorageBlobDataOwner => "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
            Self::Reader => "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            Self::Contributor => "b24988ac-6180-42a0-ab88-20f7382dd24c",
            Self::Owner => "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            Self::VirtualMachineContributor => "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
            Self::ManagedIdentityOperator => "f1a07417-d97a-45cb-824c-7a7467783830",
        }
    }
}

/// Grants `role` to the principal with object id `principal_id` at `scope` and below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignment {
    /// Object id (`oid`) of the identity or service principal.
    pub principal_id: String,
    /// The role granted.
    pub role: BuiltinRole,
    /// ARM scope: `/subscriptions/S`, `…/resourceGroups/RG`, a storage account id, or
    /// `…/blobServices/default/containers/NAME`.
    pub scope: String,
}

/// A storage account served by the Blob mock as `https://NAME.blob.core.windows.net` (see
/// [`crate::BLOB_HOST_SUFFIX`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageAccount {
    /// Account name (3–24 lower-case letters and digits).
    pub name: String,
    /// Resource group holding it.
    pub resource_group: String,
    /// Initial containers.
    #[serde(default)]
    pub containers: Vec<Container>,
}

impl StorageAccount {
    /// ARM resource id of the account (an RBAC scope).
    pub fn resource_id(&self, subscription_id: &str) -> String {
        resource_id::storage_account(subscription_id, &self.resource_group, &self.name)
    }

    /// Host name of the account's blob endpoint.
    pub fn blob_host(&self) -> String {
        crate::hosts::blob_host(&self.name)
    }
}

/// A blob container with initial contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Blobs present at start.
    #[serde(default)]
    pub blobs: Vec<BlobSpec>,
}

/// A block blob with text content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobSpec {
    /// Blob name (may contain `/`).
    pub name: String,
    /// Its content.
    pub content: String,
}

/// A VM or VM scale set: IMDS answers for it and ARM manages its identities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualMachine {
    /// Resource name (for a scale set, the scale set's name).
    pub name: String,
    /// Resource group holding it.
    pub resource_group: String,
    /// VM or scale set.
    #[serde(default)]
    pub kind: MachineKind,
    /// The system-assigned identity, if enabled.
    #[serde(default)]
    pub system_assigned: Option<SystemAssignedIdentity>,
    /// Resource ids of user-assigned identities assigned at start.
    #[serde(default)]
    pub user_assigned: Vec<String>,
    /// Azure region reported by ARM and IMDS.
    #[serde(default = "default_location")]
    pub location: String,
    /// `properties.provisioningState` ARM reports (e.g. `Deleting` to make MIC skip it).
    #[serde(default = "default_provisioning_state")]
    pub provisioning_state: String,
}

fn default_location() -> String {
    "eastus".to_string()
}

fn default_provisioning_state() -> String {
    "Succeeded".to_string()
}

impl VirtualMachine {
    /// ARM resource id of the VM or scale set.
    pub fn resource_id(&self, subscription_id: &str) -> String {
        resource_id::compute(
            subscription_id,
            &self.resource_group,
            self.kind.resource_type(),
            &self.name,
        )
    }
}

/// Whether a machine is a single VM or a scale set with some instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineKind {
    /// `Microsoft.Compute/virtualMachines`.
    #[default]
    Vm,
    /// `Microsoft.Compute/virtualMachineScaleSets` with `instances` instances (0-based ids).
    ScaleSet {
        /// Number of instances; IMDS can be served for each.
        instances: u32,
    },
}

impl MachineKind {
    /// The ARM resource type segment for this kind.
    pub fn resource_type(&self) -> &'static str {
        match self {
            Self::Vm => "virtualMachines",
            Self::ScaleSet { .. } => "virtualMachineScaleSets",
        }
    }
}

/// A machine's system-assigned identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemAssignedIdentity {
    /// Object (principal) id.
    pub principal_id: String,
    /// Application (client) id.
    pub client_id: String,
}

/// Names one machine IMDS speaks for: a VM, or one instance of a scale set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MachineRef {
    /// VM or scale-set name.
    pub name: String,
    /// Scale-set instance id; `None` for a VM.
    #[serde(default)]
    pub instance: Option<u32>,
}

impl MachineRef {
    /// A plain VM.
    pub fn vm(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            instance: None,
        }
    }

    /// Instance `instance` of scale set `name`.
    pub fn scale_set_instance(name: impl Into<String>, instance: u32) -> Self {
        Self {
            name: name.into(),
            instance: Some(instance),
        }
    }
}

impl std::fmt::Display for MachineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.instance {
            Some(i) => write!(f, "{}/{}", self.name, i),
            None => f.write_str(&self.name),
        }
    }
}

impl std::str::FromStr for MachineRef {
    type Err = String;

    /// Parses `vm-name` or `scale-set-name/INSTANCE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            None if !s.is_empty() => Ok(Self::vm(s)),
            Some((name, inst)) if !name.is_empty() => inst
                .parse()
                .map(|i| Self::scale_set_instance(name, i))
                .map_err(|_| format!("invalid scale-set instance number in '{s}'")),
            _ => Err(format!("invalid machine reference '{s}'")),
        }
    }
}
