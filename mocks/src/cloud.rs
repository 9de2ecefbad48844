//! `MockCloud`: the public, cheap-to-clone handle the harness uses; a thin layer over the core.

use std::net::TcpListener;
use std::sync::Arc;

use crate::behaviour::{ArmBehaviour, ImdsBehaviour};
use crate::core::CloudCore;
use crate::error::MockError;
use crate::fault::{FaultId, FaultRule};
use crate::record::{RecordedRequest, RequestFilter};
use crate::server::{Endpoint, ServerHandle};
use crate::spec::{
    CloudSpec, MachineRef, RoleAssignment, SystemAssignedIdentity, UserAssignedIdentity,
};
use crate::state::CloudState;
use crate::tls::CloudTls;
use crate::token::mint;
use crate::token::{IssuedToken, TokenRequest};

/// A running mock Azure cloud: cheap to clone, safe to share across threads and servers.
#[derive(Clone)]
pub struct MockCloud {
    core: Arc<CloudCore>,
}

impl std::fmt::Debug for MockCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockCloud")
            .field("tenant_id", &self.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Options for creating a `MockCloud` beyond its spec.
#[derive(Debug, Default, Clone)]
pub struct MockCloudBuilder {
    extra_sans: Vec<String>,
}

impl MockCloudBuilder {
    /// Extra host names or IP addresses the server certificate must cover.
    pub fn extra_sans<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_sans.extend(names.into_iter().map(Into::into));
        self
    }

    /// Generates the run's CA, server certificate and token key and loads `spec`.
    pub fn build(self, spec: CloudSpec) -> Result<MockCloud, MockError> {
        let core = CloudCore::generate(&spec, &self.extra_sans)?;
        Ok(MockCloud {
            core: Arc::new(core),
        })
    }
}

impl MockCloud {
    /// Creates a cloud from `spec` with a fresh CA and token-signing key.
    pub fn new(spec: CloudSpec) -> Result<Self, MockError> {
        Self::builder().build(spec)
    }

    /// Starts configuring a cloud (extra certificate names, …).
    pub fn builder() -> MockCloudBuilder {
        MockCloudBuilder::default()
    }

    /// Adds the objects of `spec` atomically; duplicates of existing objects are an error.
    pub fn apply(&self, spec: &CloudSpec) -> Result<(), MockError> {
        self.core.apply(spec)
    }

    /// The run's CA and server certificate.
    pub fn tls(&self) -> &CloudTls {
        self.core.tls()
    }

    /// Tenant GUID.
    pub fn tenant_id(&self) -> String {
        self.core.tenant_id()
    }

    /// Subscription GUID.
    pub fn subscription_id(&self) -> String {
        self.core.with_state(|s| s.subscription_id.clone())
    }

    /// Serves `endpoint` on an already-bound listener until the handle is shut down or dropped.
    pub async fn serve(
        &self,
        endpoint: Endpoint,
        listener: TcpListener,
    ) -> Result<ServerHandle, MockError> {
        crate::server::serve(self.core.clone(), endpoint, listener).await
    }

    /// All recorded requests, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.core.requests(|_| true)
    }

    /// Recorded requests passing `filter`, in arrival order.
    pub fn requests_matching(&self, filter: &RequestFilter) -> Vec<RecordedRequest> {
        self.core.requests(|r| filter.matches(r))
    }

    /// Sequence number the next request will get (use as `since_seq` for "from now on").
    pub fn next_seq(&self) -> u64 {
        self.core.next_seq()
    }

    /// Installs a fault rule (its `duration`, if any, counts from now) and returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> FaultId {
        self.core.add_fault(rule)
    }

    /// Removes one fault rule; returns whether it was still installed (not used up, expired or
    /// removed before).
    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.core.remove_fault(id)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.core.clear_faults();
    }

    /// Sets how every IMDS of the cloud behaves from the next request on
    /// (`ImdsBehaviour::default()` turns it all off).
    pub fn set_imds_behaviour(&self, behaviour: ImdsBehaviour) {
        self.core.set_imds_behaviour(behaviour);
    }

    /// The IMDS behaviour in force.
    pub fn imds_behaviour(&self) -> ImdsBehaviour {
        self.core.imds_behaviour()
    }

    /// Sets how ARM behaves from the next request on (`ArmBehaviour::default()` turns it all
    /// off; operations already started keep their number of polls).
    pub fn set_arm_behaviour(&self, behaviour: ArmBehaviour) {
        self.core.set_arm_behaviour(behaviour);
    }

    /// The ARM behaviour in force.
    pub fn arm_behaviour(&self) -> ArmBehaviour {
        self.core.arm_behaviour()
    }

    /// Assigns user identity `identity_resource_id` to a machine (what ARM PATCH does).
    pub fn assign_identity(
        &self,
        machine: &MachineRef,
        identity_resource_id: &str,
    ) -> Result<(), MockError> {
        self.core.with_state_mut(|state| {
            let idx = machine_index(state, machine)?;
            state.assign(idx, identity_resource_id)
        })
    }

    /// Removes a user identity from a machine; returns whether it was assigned.
    pub fn unassign_identity(
        &self,
        machine: &MachineRef,
        identity_resource_id: &str,
    ) -> Result<bool, MockError> {
        self.core.with_state_mut(|state| {
            let idx = machine_index(state, machine)?;
            Ok(state.unassign(idx, identity_resource_id))
        })
    }

    /// Resource ids of the user identities currently assigned to a machine.
    pub fn assigned_identities(&self, machine: &MachineRef) -> Result<Vec<String>, MockError> {
        self.core.with_state(|state| {
            let idx = machine_index(state, machine)?;
            Ok(state.machines[idx]
                .user_assigned
                .iter()
                .map(|n| state.canonical_identity_id(n))
                .collect())
        })
    }

    /// Enables the system-assigned identity of a machine (of its whole scale set) and returns
    /// it; one already enabled keeps its principal, as in Azure.
    pub fn enable_system_assigned(
        &self,
        machine: &MachineRef,
    ) -> Result<SystemAssignedIdentity, MockError> {
        self.core.with_state_mut(|state| {
            let idx = machine_index(state, machine)?;
            Ok(state.enable_system_assigned(idx))
        })
    }

    /// Disables the system-assigned identity of a machine (of its whole scale set); enabling it
    /// again gives a new principal, as in Azure.
    pub fn disable_system_assigned(&self, machine: &MachineRef) -> Result<(), MockError> {
        self.core.with_state_mut(|state| {
            let idx = machine_index(state, machine)?;
            state.disable_system_assigned(idx);
            Ok(())
        })
    }

    /// The system-assigned identity of a machine, if enabled.
    pub fn system_assigned(
        &self,
        machine: &MachineRef,
    ) -> Result<Option<SystemAssignedIdentity>, MockError> {
        self.core.with_state(|state| {
            let idx = machine_index(state, machine)?;
            Ok(state.machines[idx].system.clone())
        })
    }

    /// Deletes a user-assigned identity: ARM no longer knows it and no machine holds it, so IMDS
    /// answers for it as for any identity the machine lacks.
    pub fn delete_identity(&self, identity_resource_id: &str) -> Result<(), MockError> {
        self.core
            .with_state_mut(|state| state.delete_identity(identity_resource_id).map(|_| ()))
    }

    /// Deletes a user-assigned identity and creates one with the same name and resource id but
    /// new client and principal ids (generated when `None`). Machines that held the old one keep
    /// a stale reference: ARM lists it without ids and IMDS answers `Identity not found` until it
    /// is removed from the machine and assigned again.
    pub fn recreate_identity(
        &self,
        identity_resource_id: &str,
        client_id: Option<String>,
        principal_id: Option<String>,
    ) -> Result<UserAssignedIdentity, MockError> {
        self.core.with_state_mut(|state| {
            state.recreate_identity(identity_resource_id, client_id, principal_id)
        })
    }

    /// Adds a role assignment; returns `false` when the same one already exists (Azure keeps
    /// one assignment per principal, role and scope).
    pub fn add_role_assignment(&self, assignment: &RoleAssignment) -> Result<bool, MockError> {
        self.core.with_state_mut(|state| {
            if state.has_role_assignment(assignment) {
                return Ok(false);
            }
            let mut next = state.clone();
            next.merge(&CloudSpec {
                role_assignments: vec![assignment.clone()],
                ..CloudSpec::default()
            })?;
            *state = next;
            Ok(true)
        })
    }

    /// Removes a role assignment; returns whether it existed.
    pub fn remove_role_assignment(&self, assignment: &RoleAssignment) -> bool {
        self.core
            .with_state_mut(|state| state.remove_role_assignment(assignment))
    }

    /// Current content of a blob, for assertions.
    pub fn blob_content(&self, account: &str, container: &str, blob: &str) -> Option<Vec<u8>> {
        self.core.with_state(|state| {
            state
                .accounts
                .get(&account.to_ascii_lowercase())?
                .containers
                .get(container)?
                .blobs
                .get(blob)
                .map(|b| b.content.clone())
        })
    }

    /// Mints a token directly, signed like the ones AAD and IMDS hand out.
    pub fn issue_token(&self, req: &TokenRequest) -> Result<IssuedToken, MockError> {
        self.core.issue(req)
    }

    /// The JWKS document AAD publishes for this cloud (verifies every token it issues).
    pub fn jwks(&self) -> serde_json::Value {
        self.core.jwks()
    }

    /// Issuer of v1 tokens (`https://sts.windows.net/{tid}/`).
    pub fn issuer_v1(&self) -> String {
        mint::v1_issuer(&self.tenant_id())
    }

    /// Issuer of v2 tokens (`https://login.microsoftonline.com/{tid}/v2.0`).
    pub fn issuer_v2(&self) -> String {
        mint::v2_issuer(&self.tenant_id())
    }
}

/// Index of `machine` in the state, or the `NotFound` error the public methods report.
fn machine_index(state: &CloudState, machine: &MachineRef) -> Result<usize, MockError> {
    state
        .machine_index(machine)
        .ok_or_else(|| MockError::NotFound {
            kind: "machine",
            id: machine.to_string(),
        })
}
