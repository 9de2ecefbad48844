//! What travels over the control API: paths, request bodies, answers and the error shape. Server
//! and client both use these types, so the two sides agree by construction.

use serde::{Deserialize, Serialize};

use crate::error::MockError;
use crate::fault::FaultId;
use crate::spec::MachineRef;

/// The control API's routes (all under `/v1`, JSON in and out unless noted).
pub mod path {
    /// `GET`: `ok` once the server answers.
    pub const HEALTHZ: &str = "/v1/healthz";
    /// `GET`: [`super::CloudInfo`].
    pub const INFO: &str = "/v1/info";
    /// `POST` a `CloudSpec`: adds its objects (`MockCloud::apply`).
    pub const APPLY: &str = "/v1/apply";
    /// `GET ?since_seq=N&service=…` (a `RequestFilter` as query): recorded requests.
    pub const REQUESTS: &str = "/v1/requests";
    /// `GET`: [`super::NextSeq`].
    pub const NEXT_SEQ: &str = "/v1/next-seq";
    /// `POST` a `FaultRule`: [`super::FaultAdded`].
    pub const FAULTS_ADD: &str = "/v1/faults/add";
    /// `POST` [`super::FaultBody`]: [`super::Changed`] (whether it was still installed).
    pub const FAULTS_REMOVE: &str = "/v1/faults/remove";
    /// `POST`: removes every fault rule.
    pub const FAULTS_CLEAR: &str = "/v1/faults/clear";
    /// `GET`/`PUT` an `ImdsBehaviour`.
    pub const IMDS_BEHAVIOUR: &str = "/v1/behaviour/imds";
    /// `GET`/`PUT` an `ArmBehaviour`.
    pub const ARM_BEHAVIOUR: &str = "/v1/behaviour/arm";
    /// `GET ?machine=M`: resource ids of the machine's user-assigned identities.
    pub const USER_ASSIGNED: &str = "/v1/machine/user-assigned";
    /// `POST` [`super::IdentityOnMachine`]: assigns the identity.
    pub const ASSIGN: &str = "/v1/machine/user-assigned/assign";
    /// `POST` [`super::IdentityOnMachine`]: [`super::Changed`] (whether it was assigned).
    pub const UNASSIGN: &str = "/v1/machine/user-assigned/unassign";
    /// `GET ?machine=M`: the system-assigned identity or `null`.
    pub const SYSTEM_ASSIGNED: &str = "/v1/machine/system-assigned";
    /// `POST` [`super::MachineBody`]: the enabled `SystemAssignedIdentity`.
    pub const SYSTEM_ASSIGNED_ENABLE: &str = "/v1/machine/system-assigned/enable";
    /// `POST` [`super::MachineBody`]: disables it.
    pub const SYSTEM_ASSIGNED_DISABLE: &str = "/v1/machine/system-assigned/disable";
    /// `POST` [`super::IdentityBody`]: deletes a user-assigned identity.
    pub const IDENTITY_DELETE: &str = "/v1/identity/delete";
    /// `POST` [`super::Recreate`]: the new `UserAssignedIdentity`.
    pub const IDENTITY_RECREATE: &str = "/v1/identity/recreate";
    /// `POST` a `RoleAssignment`: [`super::Changed`] (`false` when it already existed).
    pub const ROLE_ADD: &str = "/v1/role-assignments/add";
    /// `POST` a `RoleAssignment`: [`super::Changed`] (whether it existed).
    pub const ROLE_REMOVE: &str = "/v1/role-assignments/remove";
    /// `GET`: the JWKS AAD publishes.
    pub const JWKS: &str = "/v1/jwks";
    /// `GET` [`super::BlobQuery`] as query: [`super::BlobAnswer`].
    pub const BLOB: &str = "/v1/blob";
}

/// What a controller needs to know about the cloud before driving it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudInfo {
    /// Tenant GUID.
    pub tenant_id: String,
    /// Subscription GUID.
    pub subscription_id: String,
    /// PEM of the run's CA, which the AAD, ARM and Blob server certificates chain to.
    pub ca_pem: String,
    /// The JWKS AAD publishes (verifies every token the cloud issues).
    pub jwks: serde_json::Value,
    /// Sequence number the next recorded request will get.
    pub next_seq: u64,
}

/// Answer of [`path::NEXT_SEQ`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextSeq {
    /// Sequence number the next recorded request will get.
    pub next_seq: u64,
}

/// Answer of the calls whose in-process twin returns a `bool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// What `MockCloud` returned.
    pub changed: bool,
}

/// Answer of [`path::FAULTS_ADD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultAdded {
    /// The installed rule.
    pub id: FaultId,
}

/// Body of [`path::FAULTS_REMOVE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultBody {
    /// The rule to remove.
    pub id: FaultId,
}

/// Query of the per-machine reads: the machine as `vm-name` or `scale-set/INSTANCE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineQuery {
    /// `MachineRef` in its text form.
    pub machine: String,
}

/// Body of the per-machine changes without further arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineBody {
    /// The VM or scale-set instance.
    pub machine: MachineRef,
}

/// Body of assign and unassign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityOnMachine {
    /// The VM or scale-set instance.
    pub machine: MachineRef,
    /// Resource id of the user-assigned identity.
    pub identity_resource_id: String,
}

/// Body of [`path::IDENTITY_DELETE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityBody {
    /// Resource id of the user-assigned identity.
    pub identity_resource_id: String,
}

/// Body of [`path::IDENTITY_RECREATE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recreate {
    /// Resource id of the user-assigned identity.
    pub identity_resource_id: String,
    /// New client id; generated when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    /// New principal id; generated when absent.
    #[serde(default)]
    pub principal_id: Option<String>,
}

/// Query of [`path::BLOB`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobQuery {
    /// Storage account name.
    pub account: String,
    /// Container name.
    pub container: String,
    /// Blob name.
    pub blob: String,
}

/// Answer of [`path::BLOB`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobAnswer {
    /// Standard Base64 of the blob's content; `None` when there is no such blob.
    pub content_base64: Option<String>,
}

/// What kind of refusal an error answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The spec or certificate given is unusable (`MockError::InvalidSpec`, `BadCertificate`).
    InvalidSpec,
    /// The object already exists (`MockError::Duplicate`).
    Duplicate,
    /// A machine, identity or other object does not exist (`MockError::NotFound`).
    NotFound,
    /// The request itself is malformed (body, query, machine reference).
    BadRequest,
    /// The mock failed for another reason (keys, signing, I/O).
    Internal,
}

impl FailureKind {
    /// The HTTP status an answer of this kind carries.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidSpec | Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::Duplicate => 409,
            Self::Internal => 500,
        }
    }
}

/// The body of every error answer: the kind and the mock's own message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of refusal.
    pub kind: FailureKind,
    /// The message, as `MockError`'s `Display` words it in-process.
    pub message: String,
}

impl Failure {
    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::BadRequest,
            message: message.into(),
        }
    }
}

impl From<&MockError> for Failure {
    fn from(e: &MockError) -> Self {
        let kind = match e {
            MockError::InvalidSpec { .. } | MockError::BadCertificate { .. } => {
                FailureKind::InvalidSpec
            }
            MockError::Duplicate { .. } => FailureKind::Duplicate,
            MockError::NotFound { .. } => FailureKind::NotFound,
            _ => FailureKind::Internal,
        };
        Self {
            kind,
            message: e.to_string(),
        }
    }
}
