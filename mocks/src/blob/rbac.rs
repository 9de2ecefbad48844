//! Blob data-plane RBAC: which built-in roles allow which operations.

use crate::spec::BuiltinRole;

/// The data action an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataAction {
    /// `blobs/read` (Get Blob, Get Properties, List Blobs) and `containers/read`.
    Read,
    /// `blobs/write` (Put Blob).
    Write,
    /// `blobs/delete`.
    Delete,
    /// `containers/write`/`containers/delete` (create/delete container).
    ManageContainers,
}

/// Whether `role` grants `action`. Control-plane roles (Reader, Contributor, Owner, Virtual
/// Machine Contributor, Managed Identity Operator) grant no blob data access, as in Azure.
pub fn allows(role: BuiltinRole, action: DataAction) -> bool {
    match role {
        BuiltinRole::StorageBlobDataReader => action == DataAction::Read,
        BuiltinRole::StorageBlobDataContributor | BuiltinRole::StorageBlobDataOwner => true,
        BuiltinRole::Reader
        | BuiltinRole::Contributor
        | BuiltinRole::Owner
        | BuiltinRole::VirtualMachineContributor
        | BuiltinRole::ManagedIdentityOperator => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_contributor_writes_control_plane_nothing() {
        assert!(allows(BuiltinRole::StorageBlobDataReader, DataAction::Read));
        assert!(!allows(
            BuiltinRole::StorageBlobDataReader,
            DataAction::Write
        ));
        assert!(allows(
            BuiltinRole::StorageBlobDataContributor,
            DataAction::Write
        ));
        assert!(allows(
            BuiltinRole::StorageBlobDataOwner,
            DataAction::Delete
        ));
        assert!(!allows(BuiltinRole::Owner, DataAction::Read));
        assert!(!allows(BuiltinRole::Contributor, DataAction::Write));
    }
}
