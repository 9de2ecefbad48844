//! The local cluster: etcd and kube-apiserver as children, nodes and pods as network namespaces,
//! NMI per node, MIC as one or two replicas, the harness acting as kubelet. Each job has its own
//! module; everything the cluster must undo goes through one [`RunRegistry`].

mod control_plane;
mod daemons;
mod health;
mod mic_replicas;
mod nodes;
mod pods;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::LocalError;
use crate::config::{LocalClusterConfig, NmiMode};
use crate::iptables::require_iptables;
use crate::run_id::is_valid_run_id;
use crate::state::clean_leftovers;
use crate::teardown::{Role, RunRegistry, TeardownReport};

use control_plane::ApiServerLaunch;
pub use daemons::{NmiStop, StopSignal};
pub use health::HealthReading;
use mic_replicas::MicRun;
pub use mic_replicas::{MicReplicaState, MicSelector};
pub use nodes::{LocalNode, METADATA_IP};
pub use pods::LocalPod;
use pods::PodTable;

/// How long each start-up phase took.
#[derive(Debug, Clone, Default)]
pub struct StartupTimings {
    /// etcd spawn to `/health` true.
    pub etcd_ready: Duration,
    /// kube-apiserver spawn to `/readyz` ok and the `default` namespace present.
    pub apiserver_ready: Duration,
    /// CRD apply to all Established.
    pub crds_established: Duration,
    /// Node namespaces and Node objects.
    pub nodes_ready: Duration,
}

/// How NMI runs on every node: the mode and flags of its last start, kept so one node's NMI
/// can be started again as the others run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NmiRun {
    mode: NmiMode,
    extra_args: Vec<String>,
}

/// What changes while the cluster runs, behind one lock: what must be undone, the pods, and how
/// NMI and MIC are configured (to start them again and to tell their watches apart).
struct Running {
    registry: RunRegistry,
    pods: PodTable,
    nmi: Option<NmiRun>,
    mic: Option<MicRun>,
}

impl Running {
    /// Fails when kube-apiserver is down: NMI and MIC cannot become ready without it.
    fn require_apiserver(&mut self, what: &str) -> Result<(), LocalError> {
        if self.registry.is_up(&Role::ApiServer) {
            Ok(())
        } else {
            Err(LocalError::Config(format!(
                "cannot {what} while kube-apiserver is down; start it first"
            )))
        }
    }

    /// How many NMIs are up.
    fn nmis_up(&mut self, nodes: &[LocalNode]) -> u64 {
        nodes
            .iter()
            .filter(|n| self.registry.is_up(&Role::nmi(&n.name)))
            .count() as u64
    }
}

/// A running local cluster. Dropping it kills everything it started and deletes its namespaces.
pub struct LocalCluster {
    config: LocalClusterConfig,
    client: kube::Client,
    kubeconfig: PathBuf,
    nodes: Vec<LocalNode>,
    timings: StartupTimings,
    apiserver: ApiServerLaunch,
    running: Mutex<Running>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("run_id", &self.config.run_id)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// Starts etcd, kube-apiserver, installs the CRDs (Established) and creates the nodes
    /// (namespaces + Node objects). NMI is not started yet: see [`LocalCluster::start_nmi`].
    pub async fn start(config: LocalClusterConfig) -> Result<LocalCluster, LocalError> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        validate(&config)?;
        require_iptables()?;
        match clean_leftovers() {
            Ok(report) if !report.dead_runs.is_empty() || !report.namespaces.is_empty() => {
                tracing::info!(?report, "cleaned up after earlier runs")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cleaning up after earlier runs: {e}"),
        }
        let logs = config.work_dir.join("logs");
        std::fs::create_dir_all(&logs)
            .map_err(|e| LocalError::io(format!("creating {}", logs.display()), e))?;
        let mut registry = RunRegistry::create(&config.run_id)?;
        match start_parts(&config, &mut registry).await {
            Ok(parts) => Ok(LocalCluster {
                config,
                client: parts.client,
                kubeconfig: parts.kubeconfig,
                nodes: parts.nodes,
                timings: parts.timings,
                apiserver: parts.apiserver,
                running: Mutex::new(Running {
                    registry,
                    pods: PodTable::default(),
                    nmi: None,
                    mic: None,
                }),
            }),
            Err(e) => {
                registry.teardown_blocking();
                Err(e)
            }
        }
    }

    /// A client with admin (system:masters) rights.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig; its server `https://127.0.0.1:<port>` also works inside node namespaces.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.config.run_id
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&LocalNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// All nodes, in configuration order.
    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    /// How long start-up phases took.
    pub fn timings(&self) -> &StartupTimings {
        &self.timings
    }

    /// A node by name, or the error naming it.
    fn known_node(&self, name: &str) -> Result<&LocalNode, LocalError> {
        self.node(name).ok_or_else(|| LocalError::NotFound {
            kind: "node",
            name: name.to_string(),
        })
    }

    /// Stops everything (NMI and MIC, then kube-apiserver and etcd, all killed outright: their
    /// iptables vanish with the node namespaces and the control plane's data is thrown away),
    /// deletes every namespace and the state file.
    pub async fn shutdown(self) -> Result<TeardownReport, LocalError> {
        let mut running = self.running.lock().await;
        // Pod handles keep their namespaces alive: drop them before the namespaces go.
        running.pods.clear();
        Ok(running.registry.teardown().await)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let running = self.running.get_mut();
        if !running.registry.is_torn_down() {
            running.pods.clear();
            let report = running.registry.teardown_blocking();
            tracing::info!(?report, "local cluster torn down on drop");
        }
    }
}

/// What a successful start produced.
struct StartedParts {
    client: kube::Client,
    kubeconfig: PathBuf,
    nodes: Vec<LocalNode>,
    timings: StartupTimings,
    apiserver: ApiServerLaunch,
}

async fn start_parts(
    config: &LocalClusterConfig,
    registry: &mut RunRegistry,
) -> Result<StartedParts, LocalError> {
    let control_plane = control_plane::start(config, registry).await?;
    let mut timings = control_plane.timings;
    let started = Instant::now();
    let mut nodes = Vec::new();
    for node in &config.nodes {
        nodes.push(
            nodes::start_node(
                config,
                node,
                control_plane.api_port,
                &control_plane.client,
                registry,
            )
            .await?,
        );
    }
    timings.nodes_ready = started.elapsed();
    Ok(StartedParts {
        client: control_plane.client,
        kubeconfig: control_plane.kubeconfig,
        nodes,
        timings,
        apiserver: control_plane.apiserver,
    })
}

/// Checks the configuration before anything is started.
fn validate(config: &LocalClusterConfig) -> Result<(), LocalError> {
    if !is_valid_run_id(&config.run_id) {
        return Err(LocalError::Config(format!(
            "run id {:?} is not 6 characters of [a-z0-9]",
            config.run_id
        )));
    }
    if config.nodes.is_empty() {
        return Err(LocalError::Config("at least one node is needed".into()));
    }
    let mut names = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    for node in &config.nodes {
        if !names.insert(&node.name) {
            return Err(LocalError::Config(format!(
                "node {} is listed twice",
                node.name
            )));
        }
        if node.pod_cidr_index == 0
            || node.pod_cidr_index == 255
            || !indexes.insert(node.pod_cidr_index)
        {
            return Err(LocalError::Config(format!(
                "node {}: pod CIDR index {} must be unique and in 1..=254",
                node.name, node.pod_cidr_index
            )));
        }
    }
    let b = &config.binaries;
    for (what, path) in [
        ("etcd", &b.etcd),
        ("kube-apiserver", &b.kube_apiserver),
        ("nmi", &b.nmi),
        ("CRD manifest", &b.crds),
    ] {
        if !path.is_file() {
            return Err(LocalError::MissingProgram {
                program: what.into(),
                hint: format!("{} does not exist", path.display()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Binaries, NmiConfig, NodeConfig};

    fn config(nodes: Vec<NodeConfig>) -> LocalClusterConfig {
        LocalClusterConfig {
            run_id: "abc123".into(),
            work_dir: PathBuf::from("/nonexistent"),
            binaries: Binaries {
                etcd: "/nonexistent/etcd".into(),
                kube_apiserver: "/nonexistent/kube-apiserver".into(),
                nmi: "/nonexistent/nmi".into(),
                mic: None,
                crds: "/nonexistent/crd.yaml".into(),
            },
            nodes,
            nmi: NmiConfig::default(),
        }
    }

    fn node(name: &str, index: u8) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            provider_id: String::new(),
            pod_cidr_index: index,
            extra_addresses: vec![],
        }
    }

    #[test]
    fn duplicate_nodes_and_indexes_are_refused() {
        let err = validate(&config(vec![node("a", 1), node("a", 2)])).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err = validate(&config(vec![node("a", 1), node("b", 1)])).unwrap_err();
        assert!(err.to_string().contains("unique"), "{err}");
        let err = validate(&config(vec![node("a", 0)])).unwrap_err();
        assert!(err.to_string().contains("1..=254"), "{err}");
    }

    #[test]
    fn missing_binaries_are_named() {
        let err = validate(&config(vec![node("a", 1)])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/etcd"), "{err}");
    }
}
