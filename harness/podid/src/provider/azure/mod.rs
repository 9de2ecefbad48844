//! The Azure cloud side: a scenario's identities, storage and roles in a real Azure
//! subscription, created per run through Azure Resource Manager (or taken from a mapping file)
//! and deleted at the end. Pieces, each with one job: [`credential`] signs in the way the Azure
//! SDKs do, [`arm`] talks to ARM (retries, long-running operations, typed errors),
//! [`resources`] knows the resources a run needs, [`blob_upload`] writes a scenario's blobs,
//! [`mapping`] reads the mapping file, and [`side`] puts them together as a [`CloudSide`].
//!
//! [`CloudSide`]: super::cloud::CloudSide

pub mod arm;
pub mod blob_upload;
pub mod credential;
pub mod http;
pub mod mapping;
pub mod resources;
pub mod side;

#[cfg(test)]
mod tests;

pub use arm::RetryPolicy;
pub use credential::{CredentialSource, Secret};
pub use mapping::{MappedAccount, MappedIdentity, Mapping, MappingError, RolePolicy};
pub use side::{AzureCloudConfig, AzureCloudSide, AzureEndpoints, capabilities};
