//! The mock cloud a mock cloud side drives: in this process (local and kind serve it here), or
//! inside a cluster, reached through its control port. One set of async calls over both, so
//! [`MockCloudSide`](super::mock_cloud::MockCloudSide) does not care where it runs.

use std::sync::Arc;

use podid_mocks::control::{ControlError, RemoteMockCloud};
use podid_mocks::{
    ArmBehaviour, FaultId, FaultRule, ImdsBehaviour, MachineRef, MockCloud, MockError,
    RecordedRequest, RoleAssignment, SystemAssignedIdentity, UserAssignedIdentity,
};

/// Why a call to the mock failed: the mock refused it, or (remote) it could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Mock(#[from] MockError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

type Result<T> = std::result::Result<T, BackendError>;

/// Where the mock cloud runs.
#[derive(Clone)]
pub enum MockBackend {
    InProcess(MockCloud),
    Remote {
        client: Arc<RemoteMockCloud>,
        log: Arc<LogReader>,
    },
}

/// Reads a remote mock's request log from synchronous code (the runner reads the log without
/// awaiting): its own client on its own runtime, driven from a short-lived thread, so pooled
/// connections outlive each call. A caller on a runtime worker hands that worker's other tasks
/// on while it waits: the read may travel through a port-forward those tasks serve.
pub struct LogReader {
    runtime: Option<tokio::runtime::Runtime>,
    client: RemoteMockCloud,
}

impl LogReader {
    /// Connects a second client to the control API at `url`.
    pub fn connect(url: url::Url, timeout: std::time::Duration) -> Result<Self> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for reading the request log");
                    let client = runtime.block_on(RemoteMockCloud::connect(url, timeout))?;
                    Ok(Self {
                        runtime: Some(runtime),
                        client,
                    })
                })
                .join()
                .expect("request-log thread")
        })
    }

    fn block_on<T: Send>(&self, future: impl std::future::Future<Output = T> + Send) -> T {
        let runtime = self.runtime.as_ref().expect("runtime lives until drop");
        let read = || {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| runtime.block_on(future))
                    .join()
                    .expect("request-log thread")
            })
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(read)
            }
            _ => read(),
        }
    }

    fn next_seq(&self) -> Result<u64> {
        Ok(self.block_on(self.client.next_seq())?)
    }

    fn requests_since(&self, seq: u64) -> Result<Vec<RecordedRequest>> {
        Ok(self.block_on(self.client.requests_since(seq))?)
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl MockBackend {
    /// Connects to a mock's control API at `url` (its log is read through a second client).
    pub async fn connect_remote(url: url::Url, timeout: std::time::Duration) -> Result<Self> {
        let client = RemoteMockCloud::connect(url.clone(), timeout).await?;
        let log = tokio::task::spawn_blocking(move || LogReader::connect(url, timeout))
            .await
            .expect("request-log connect thread")?;
        Ok(Self::Remote {
            client: Arc::new(client),
            log: Arc::new(log),
        })
    }

    /// The control client of a remote mock.
    pub fn remote(&self) -> Option<&RemoteMockCloud> {
        match self {
            Self::InProcess(_) => None,
            Self::Remote { client, .. } => Some(client),
        }
    }

    pub fn tenant_id(&self) -> String {
        match self {
            Self::InProcess(c) => c.tenant_id(),
            Self::Remote { client: r, .. } => r.tenant_id(),
        }
    }

    pub fn subscription_id(&self) -> String {
        match self {
            Self::InProcess(c) => c.subscription_id(),
            Self::Remote { client: r, .. } => r.subscription_id(),
        }
    }

    pub async fn apply(&self, spec: &podid_mocks::CloudSpec) -> Result<()> {
        match self {
            Self::InProcess(c) => Ok(c.apply(spec)?),
            Self::Remote { client: r, .. } => Ok(r.apply(spec).await?),
        }
    }

    pub async fn assign_identity(&self, machine: &MachineRef, identity: &str) -> Result<()> {
        match self {
            Self::InProcess(c) => Ok(c.assign_identity(machine, identity)?),
            Self::Remote { client: r, .. } => Ok(r.assign_identity(machine, identity).await?),
        }
    }

    pub async fn unassign_identity(&self, machine: &MachineRef, identity: &str) -> Result<()> {
        match self {
            Self::InProcess(c) => c.unassign_identity(machine, identity).map(|_| ())?,
            Self::Remote { client: r, .. } => {
                r.unassign_identity(machine, identity).await.map(|_| ())?
            }
        }
        Ok(())
    }

    pub async fn assigned_identities(&self, machine: &MachineRef) -> Result<Vec<String>> {
        match self {
            Self::InProcess(c) => Ok(c.assigned_identities(machine)?),
            Self::Remote { client: r, .. } => Ok(r.assigned_identities(machine).await?),
        }
    }

    pub async fn enable_system_assigned(
        &self,
        machine: &MachineRef,
    ) -> Result<SystemAssignedIdentity> {
        match self {
            Self::InProcess(c) => Ok(c.enable_system_assigned(machine)?),
            Self::Remote { client: r, .. } => Ok(r.enable_system_assigned(machine).await?),
        }
    }

    pub async fn disable_system_assigned(&self, machine: &MachineRef) -> Result<()> {
        match self {
            Self::InProcess(c) => Ok(c.disable_system_assigned(machine)?),
            Self::Remote { client: r, .. } => Ok(r.disable_system_assigned(machine).await?),
        }
    }

    pub async fn system_assigned(
        &self,
        machine: &MachineRef,
    ) -> Result<Option<SystemAssignedIdentity>> {
        match self {
            Self::InProcess(c) => Ok(c.system_assigned(machine)?),
            Self::Remote { client: r, .. } => Ok(r.system_assigned(machine).await?),
        }
    }

    pub async fn add_role_assignment(&self, assignment: &RoleAssignment) -> Result<bool> {
        match self {
            Self::InProcess(c) => Ok(c.add_role_assignment(assignment)?),
            Self::Remote { client: r, .. } => Ok(r.add_role_assignment(assignment).await?),
        }
    }

    pub async fn remove_role_assignment(&self, assignment: &RoleAssignment) -> Result<bool> {
        match self {
            Self::InProcess(c) => Ok(c.remove_role_assignment(assignment)),
            Self::Remote { client: r, .. } => Ok(r.remove_role_assignment(assignment).await?),
        }
    }

    pub async fn delete_identity(&self, resource_id: &str) -> Result<()> {
        match self {
            Self::InProcess(c) => Ok(c.delete_identity(resource_id)?),
            Self::Remote { client: r, .. } => Ok(r.delete_identity(resource_id).await?),
        }
    }

    pub async fn recreate_identity(&self, resource_id: &str) -> Result<UserAssignedIdentity> {
        match self {
            Self::InProcess(c) => Ok(c.recreate_identity(resource_id, None, None)?),
            Self::Remote { client: r, .. } => {
                Ok(r.recreate_identity(resource_id, None, None).await?)
            }
        }
    }

    pub async fn add_fault(&self, rule: FaultRule) -> Result<FaultId> {
        match self {
            Self::InProcess(c) => Ok(c.add_fault(rule)),
            Self::Remote { client: r, .. } => Ok(r.add_fault(rule).await?),
        }
    }

    pub async fn remove_fault(&self, id: FaultId) -> Result<()> {
        match self {
            Self::InProcess(c) => {
                c.remove_fault(id);
            }
            Self::Remote { client: r, .. } => {
                r.remove_fault(id).await?;
            }
        }
        Ok(())
    }

    pub async fn set_behaviour(&self, arm: ArmBehaviour, imds: ImdsBehaviour) -> Result<()> {
        match self {
            Self::InProcess(c) => {
                c.set_arm_behaviour(arm);
                c.set_imds_behaviour(imds);
            }
            Self::Remote { client: r, .. } => {
                r.set_arm_behaviour(arm).await?;
                r.set_imds_behaviour(imds).await?;
            }
        }
        Ok(())
    }

    pub async fn jwks(&self) -> Result<serde_json::Value> {
        match self {
            Self::InProcess(c) => Ok(c.jwks()),
            Self::Remote { client: r, .. } => Ok(r.jwks().await?),
        }
    }

    /// The sequence number the next request will get (the request log is read synchronously
    /// by the runner; a remote call blocks this thread briefly).
    pub fn next_seq(&self) -> u64 {
        match self {
            Self::InProcess(c) => c.next_seq(),
            Self::Remote { log, .. } => log.next_seq().unwrap_or_else(|e| {
                tracing::warn!("reading the mock cloud's request cursor: {e}");
                0
            }),
        }
    }

    /// Every request at or after `seq`.
    pub fn requests_since(&self, seq: u64) -> Vec<RecordedRequest> {
        match self {
            Self::InProcess(c) => c.requests().into_iter().filter(|r| r.seq >= seq).collect(),
            Self::Remote { log, .. } => log.requests_since(seq).unwrap_or_else(|e| {
                tracing::warn!("reading the mock cloud's request log: {e}");
                Vec::new()
            }),
        }
    }
}
