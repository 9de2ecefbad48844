//! A provider is where trials run: a **cluster side** (nodes, NMI/MIC, pods, API objects) and
//! a **cloud side** (identities, storage, roles, token keys, request log), each saying what it
//! can do. `local` is the default; the runner only ever sees the two traits.

pub mod azure;
pub mod capability;
pub mod cloud;
pub mod cluster;
pub mod error;
pub mod existing;
#[cfg(test)]
pub(crate) mod fake;
pub mod kind;
pub mod kube_cluster;
pub mod kube_objects;
pub mod local;
pub mod mock_backend;
pub mod mock_cloud;
pub mod mock_world;
pub mod objects;
pub mod registry;

use std::path::PathBuf;

pub use capability::{Capabilities, Capability};
pub use cloud::{
    CloudBehaviour, CloudNames, CloudRequest, CloudSide, DeclaredCloud, FaultHandle, FaultSpec,
    MachineIdentities, RequestLog, RoleChange,
};
pub use cluster::{
    ClusterIdentity, ClusterSide, ComponentRef, ConfigureReport, ExecOutput, ExecRequest,
    HealthAnswer, IdentityConfig, Machine, NmiStopCheck, NodeInfo, PodHandle, PodRequest, PodShell,
    SavedFile, ShutdownReport,
};
pub use error::{ProviderError, error_chain};
pub use objects::{ObjectKey, ObjectStore};
pub use registry::{PROVIDER_VAR, ProviderKind, UnknownProvider};

/// A running provider: its two sides under one name.
pub struct Provider {
    name: &'static str,
    pub cluster: Box<dyn ClusterSide>,
    pub cloud: Box<dyn CloudSide>,
}

impl Provider {
    pub fn new(
        name: &'static str,
        cluster: Box<dyn ClusterSide>,
        cloud: Box<dyn CloudSide>,
    ) -> Self {
        Self {
            name,
            cluster,
            cloud,
        }
    }

    /// The name reports and trial names carry (`local`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What either side can do.
    pub fn capabilities(&self) -> Capabilities {
        self.cluster
            .capabilities()
            .union(&self.cloud.capabilities())
    }

    /// The cloud's request-log position now (`None` when the cloud keeps no log).
    pub fn request_cursor(&self) -> Option<u64> {
        self.cloud.request_log().map(|log| log.cursor())
    }

    /// Stops everything the provider started.
    pub async fn shutdown(&self) -> ShutdownReport {
        let mut report = self.cluster.shutdown().await;
        let cloud = self.cloud.shutdown().await;
        report.stopped.extend(cloud.stopped);
        report.errors.extend(cloud.errors);
        report
    }
}

/// The probe's report from what it printed: its last line that is a JSON object, or an error
/// saying what it printed instead (`what` names the run, `exit` how it ended).
pub fn probe_report(
    what: &str,
    stdout: &str,
    stderr: &str,
    exit: impl std::fmt::Display,
) -> Result<podid_probe::ProbeReport, ProviderError> {
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    match line.map(serde_json::from_str::<podid_probe::ProbeReport>) {
        Some(Ok(report)) => Ok(report),
        _ => Err(ProviderError::plain(format!(
            "{what}: it printed no report (exit {exit}): {}",
            stderr.trim()
        ))),
    }
}

/// How to start the probe inside pods: a program and the arguments that come before the
/// probe's own (the `podid-probe` binary, or `podid probe`).
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
