//! Providers bring up a cluster with NMI on its nodes and let the runner place pods and run the
//! probe in them. `local` (processes + network namespaces) is the default; `kind` and an existing
//! AKS cluster are later additions behind the same trait.

pub mod local;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use podid_mocks::{MachineRef, MockCloud};
use podid_probe::ProbeReport;
use podid_scenario::NmiMode;

/// One node the provider offers, under the logical name scenarios use (`node-0`, `node-1`).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub logical: String,
    /// The Kubernetes Node name.
    pub name: String,
    /// The VM scale-set instance behind the node (what its IMDS speaks for).
    pub machine: MachineRef,
}

/// A pod the runner wants, in provider-neutral terms.
#[derive(Debug, Clone)]
pub struct PodRequest {
    pub namespace: String,
    pub name: String,
    /// Logical node name.
    pub node: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub owner_replica_set: Option<String>,
    /// Host names the pod must resolve (storage accounts of the scenario).
    pub storage_accounts: Vec<String>,
}

/// A pod that runs, with the address NMI will see it by.
#[derive(Debug, Clone)]
pub struct PodHandle {
    pub namespace: String,
    pub name: String,
    /// Logical node name.
    pub node: String,
    pub ip: IpAddr,
}

/// How to start the probe: a program and the arguments that come before the probe's own (the
/// `podid-probe` binary, or `podid probe`).
#[derive(Debug, Clone)]
pub struct ProbeCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl ProbeCommand {
    /// The `podid-probe` binary.
    pub fn binary(path: PathBuf) -> Self {
        Self {
            program: path,
            args: Vec::new(),
        }
    }
}

/// A file the provider saved for a failure report.
#[derive(Debug, Clone)]
pub struct SavedFile {
    pub name: String,
    pub path: PathBuf,
}

/// Why a provider operation failed (message carries what was being done, with which object).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(pub String);

/// What the runner needs from a cluster environment.
#[allow(async_fn_in_trait)]
pub trait Provider {
    /// Short name for reports (`local`).
    fn name(&self) -> &'static str;
    fn client(&self) -> kube::Client;
    fn nodes(&self) -> &[NodeInfo];
    /// The cloud the scenario's `cloud` section is declared in.
    fn cloud(&self) -> &MockCloud;
    /// Versions of what runs (NMI, kube-apiserver, …) for reports.
    fn environment(&self) -> Vec<(String, String)>;
    /// (Re)starts NMI on every node in this mode with these extra flags; in standard mode MIC
    /// runs too, with `mic_flags` (in managed mode it must not run).
    async fn configure_nmi(
        &self,
        mode: NmiMode,
        flags: &[String],
        mic_flags: &[String],
    ) -> Result<(), ProviderError>;
    /// Creates the namespace (and what the provider needs in it).
    async fn ensure_namespace(&self, namespace: &str) -> Result<(), ProviderError>;
    async fn create_pod(&self, request: &PodRequest) -> Result<PodHandle, ProviderError>;
    async fn delete_pod(&self, pod: &PodHandle) -> Result<(), ProviderError>;
    /// Runs `podid-probe <args>` inside the pod and parses its report.
    async fn run_probe(
        &self,
        pod: &PodHandle,
        args: &[String],
    ) -> Result<ProbeReport, ProviderError>;
    /// The base URL pods use for a storage account.
    fn storage_account_url(&self, account: &str) -> String {
        format!("https://{account}.blob.core.windows.net")
    }
    /// CA bundle pods must trust for the cloud's TLS endpoints (none for real Azure).
    fn ca_file(&self) -> Option<&Path>;
    /// Copies NMI logs (and the like) written since `since` into `dir` for a failure report.
    async fn save_diagnostics(&self, since: SystemTime, dir: &Path) -> Vec<SavedFile>;
}
