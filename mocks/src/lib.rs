//! Stateful mock Azure cloud: AAD, IMDS, ARM and Blob over real HTTP(S).
//!
//! One [`MockCloud`] holds the model (tenant, identities, service principals, role assignments,
//! storage accounts, machines) and serves it through four kinds of server, each on a listener the
//! caller has already bound (possibly inside another network namespace). Every request is
//! recorded for assertions, and fault rules can make chosen requests fail or stall. A cloud
//! running in another process (a pod) is driven through its [`control`] API.

#![warn(missing_docs)]

mod aad;
mod arm;
mod attribution;
pub mod audience;
mod behaviour;
mod blob;
mod cloud;
mod context;
pub mod control;
mod core;
mod error;
mod fault;
mod hosts;
mod imds;
mod millis;
mod observe;
mod record;
pub mod redirect;
mod request_parts;
pub mod resource_id;
mod routes;
mod server;
pub mod sp_certificate;
mod spec;
pub mod standalone;
mod state;
mod state_changes;
mod tls;
pub mod token;

pub use aad::form::{TokenForm, parse_basic, parse_form};
pub use arm::identity_patch;
pub use behaviour::{ArmBehaviour, ImdsBehaviour};
pub use blob::address::{BlobAddress, parse as parse_blob_address};
pub use cloud::{MockCloud, MockCloudBuilder};
pub use control::{ControlError, ControlServer, RemoteMockCloud};
pub use error::{MockError, error_chain};
pub use fault::{FaultId, FaultRule};
pub use hosts::{BLOB_HOST_SUFFIX, blob_host};
pub use imds::query::{ApiVersionCheck, ImdsQuery, Selector, check_api_version, selector};
pub use record::{REDACTED, RecordedRequest, RequestFilter, Service};
pub use server::{Endpoint, ServerHandle};
pub use spec::{
    BlobSpec, BuiltinRole, CloudSpec, Container, MachineKind, MachineRef, RoleAssignment,
    ServicePrincipal, SpCredential, StorageAccount, SystemAssignedIdentity, UserAssignedIdentity,
    VirtualMachine,
};
pub use tls::CloudTls;
pub use token::{AccessTokenClaims, IssuedToken, TokenRequest, TokenSubject, TokenVersion};
