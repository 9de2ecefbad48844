//! The cluster side of a provider: its nodes, NMI/MIC configuration, pods and the workload run
//! in them, API objects, diagnostics and shutdown. Plain data types first, then the trait.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use podid_probe::ProbeReport;
use podid_scenario::{
    ClientKind, Component, LifecycleAction, MicReplica, NmiMode, OwnerKind, PodPhase,
};

use super::capability::Capabilities;
use super::error::ProviderError;
use super::objects::ObjectStore;

/// The Azure machine behind a node, as plain data: what the cloud side assigns identities to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Machine {
    /// Instance `instance` of virtual machine scale set `scale_set`.
    ScaleSetInstance { scale_set: String, instance: u32 },
    /// A standalone virtual machine.
    VirtualMachine { name: String },
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ScaleSetInstance {
                scale_set,
                instance,
            } => write!(f, "{scale_set}/{instance}"),
            Self::VirtualMachine { name } => f.write_str(name),
        }
    }
}

/// One node the provider offers, under the logical name scenarios use (`node-0`, `node-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub logical: String,
    /// The Kubernetes Node name.
    pub name: String,
    pub machine: Machine,
    /// The address pods reach their node at (its host-network services: NMI's health and
    /// metrics ports), where the provider knows it.
    pub address: Option<IpAddr>,
}

/// How NMI (and, in standard mode, MIC) must run for a trial.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityConfig {
    pub mode: NmiMode,
    pub nmi_flags: Vec<String>,
    /// Only meaningful in standard mode; MIC does not run in managed mode.
    pub mic_flags: Vec<String>,
    /// MIC replicas (1 or 2) in standard mode; 0 in managed mode.
    pub mic_replicas: u8,
}

/// What stopping NMI on one node showed: upstream NMI removes its own iptables chain when
/// told to stop, and a suite must notice when it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmiStopCheck {
    /// Logical node name.
    pub node: String,
    pub removed_own_chain: bool,
}

/// What (re)configuring NMI/MIC did that the trial asking for it must answer for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigureReport {
    /// One entry per NMI that was stopped to apply the new configuration.
    pub nmi_stops: Vec<NmiStopCheck>,
}

/// A pod the runner wants, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRequest {
    pub namespace: String,
    pub name: String,
    /// Logical node name.
    pub node: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// The pod's owner reference.
    pub owner: Option<(OwnerKind, String)>,
    /// The phase the pod reports (`Pending` as while init containers run).
    pub phase: PodPhase,
    /// A pod object that reports this address as its own (another pod's): no network of its
    /// own, only a stale or forged status.
    pub ip_of: Option<IpAddr>,
    /// Host names the pod must resolve (storage accounts of the scenario).
    pub storage_accounts: Vec<String>,
}

/// A command to run inside a pod, with the pod's network, host names and trust store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment on top of what the provider sets (the run's CA in `SSL_CERT_FILE`,
    /// `REQUESTS_CA_BUNDLE` and `NODE_EXTRA_CA_CERTS`).
    pub env: Vec<(String, String)>,
    /// The command is killed after this long.
    pub timeout: Duration,
}

/// How a command run in a pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; `None` when it was killed (by a signal or the timeout).
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// It ran past its timeout and was killed.
    pub timed_out: bool,
}

/// How a person enters a pod from another process (`podid exec`): the command prefix that
/// runs a program inside it and the environment it needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodShell {
    pub prefix: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// A pod that runs, with the address NMI will see it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHandle {
    pub namespace: String,
    pub name: String,
    /// Logical node name.
    pub node: String,
    pub ip: IpAddr,
}

/// A file the provider saved for a failure report.
#[derive(Debug, Clone)]
pub struct SavedFile {
    pub name: String,
    pub path: PathBuf,
}

/// What shutting a provider down did.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    /// Processes, containers or clusters stopped.
    pub stopped: Vec<String>,
    /// Anything that could not be undone.
    pub errors: Vec<String>,
}

/// The component a lifecycle or health request addresses, in provider terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRef {
    pub component: Component,
    /// NMI: one logical node, or every node when `None`.
    pub node: Option<String>,
    /// MIC: the leader or a follower, or every replica when `None`.
    pub replica: Option<MicReplica>,
}

/// One component instance's `/healthz` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthAnswer {
    /// Which instance answered (`nmi@node-0`, `mic#1 (leader)`).
    pub instance: String,
    pub status: u16,
    pub body: String,
}

/// The cluster identity a provider's MIC treats as immutable (azure.json
/// `userAssignedIdentityID`, AKS's `<cluster>-agentpool` identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    pub client_id: String,
    pub principal_id: String,
    pub resource_id: String,
}

fn unsupported(what: &str) -> ProviderError {
    ProviderError::plain(format!("this provider cannot {what}"))
}

/// Where the cluster lives: everything the runner does to nodes, pods and API objects.
#[async_trait::async_trait]
pub trait ClusterSide: Send + Sync {
    /// What this side can do (modes, flags, restarts, machines per node).
    fn capabilities(&self) -> Capabilities;
    /// The nodes, one per logical name.
    fn nodes(&self) -> &[NodeInfo];
    /// Versions of what runs (NMI, kube-apiserver, …) for reports.
    fn environment(&self) -> Vec<(String, String)>;
    /// The API objects of the cluster.
    fn objects(&self) -> &dyn ObjectStore;
    /// The CA bundle pods must trust for the cloud's endpoints, as a path pods can read (none
    /// when the cloud's certificates are publicly trusted).
    fn ca_file(&self) -> Option<&Path>;
    /// Makes NMI (and MIC) run as `config` says, restarting what runs otherwise.
    async fn configure(&self, config: &IdentityConfig) -> Result<ConfigureReport, ProviderError>;
    /// Creates the namespace (and what the provider needs in it).
    async fn ensure_namespace(&self, namespace: &str) -> Result<(), ProviderError>;
    async fn create_pod(&self, request: &PodRequest) -> Result<PodHandle, ProviderError>;
    async fn delete_pod(&self, pod: &PodHandle) -> Result<(), ProviderError>;
    /// Runs the probe with `args` inside the pod and returns its report.
    async fn run_probe(
        &self,
        pod: &PodHandle,
        args: &[String],
    ) -> Result<ProbeReport, ProviderError>;
    /// Copies component logs written since `since` into `dir` for a failure report.
    async fn save_diagnostics(&self, since: SystemTime, dir: &Path) -> Vec<SavedFile>;
    /// Stops everything this side started; called once, when no trial runs any more.
    async fn shutdown(&self) -> ShutdownReport;

    /// What the runner multiplies its waits by (a real cloud and real image pulls are slower).
    fn timeout_scale(&self) -> u32 {
        1
    }
    /// The namespace MIC runs in: where AzureAssignedIdentities live.
    fn mic_namespace(&self) -> String {
        "default".into()
    }
    /// The identity MIC must never remove from a node, if the provider has one.
    fn cluster_identity(&self) -> Option<ClusterIdentity> {
        None
    }
    /// Stops, starts, kills or restarts a component (needs [`Capability::Restarts`]).
    ///
    /// [`Capability::Restarts`]: super::Capability::Restarts
    async fn lifecycle(
        &self,
        action: LifecycleAction,
        target: &ComponentRef,
    ) -> Result<(), ProviderError> {
        let _ = target;
        Err(unsupported(&format!("{} components", action.keyword())))
    }
    /// Brings every component back to `config` after a trial stopped or killed some of them.
    async fn recover(&self, config: &IdentityConfig) -> Result<ConfigureReport, ProviderError> {
        let _ = config;
        Ok(ConfigureReport::default())
    }
    /// Each addressed instance's `/healthz` answer.
    async fn health(&self, target: &ComponentRef) -> Result<Vec<HealthAnswer>, ProviderError> {
        let _ = target;
        Err(unsupported("read component health"))
    }
    /// The program and leading arguments that start one of the project's SDK clients in a
    /// pod (needs the client's capability).
    fn client_program(&self, client: ClientKind) -> Option<Vec<String>> {
        let _ = client;
        None
    }
    /// Runs a command inside a pod (needs [`Capability::Exec`]).
    ///
    /// [`Capability::Exec`]: super::Capability::Exec
    async fn exec(
        &self,
        pod: &PodHandle,
        request: &ExecRequest,
    ) -> Result<ExecOutput, ProviderError> {
        let _ = (pod, request);
        Err(unsupported("run commands in pods"))
    }
    /// Runs the probe with `args` from `source` (an address the pod takes on for the request,
    /// another pod's: needs [`Capability::SpoofedSource`]).
    ///
    /// [`Capability::SpoofedSource`]: super::Capability::SpoofedSource
    async fn run_probe_from(
        &self,
        pod: &PodHandle,
        source: IpAddr,
        args: &[String],
    ) -> Result<ProbeReport, ProviderError> {
        let _ = (pod, source, args);
        Err(unsupported("send from another pod's address"))
    }
    /// The cluster's kubeconfig, where a person can use it.
    fn kubeconfig(&self) -> Option<PathBuf> {
        None
    }
    /// How to run programs inside `pod` from another process, where the provider can say.
    fn pod_shell(&self, pod: &PodHandle) -> Option<PodShell> {
        let _ = pod;
        None
    }
    /// Whether NMI's `aad-metadata` chain is in a node's nat table (logical node name).
    async fn nmi_chain_present(&self, node: &str) -> Result<bool, ProviderError> {
        let _ = node;
        Err(unsupported("read a node's iptables"))
    }
}
