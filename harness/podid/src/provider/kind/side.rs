//! The kind cluster as a provider's cluster side: NMI and MIC through upstream's manifests
//! (re-installed when a trial needs other flags or another mode), workload pods as real pods
//! running the probe through `exec`, and NMI/MIC pod logs for failure reports.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use podid_incluster::{
    RemoveOptions, RenderedDeployment, RolloutOptions, WorkloadOwner, WorkloadSpec,
    workload::Placement,
};
use podid_kind::{Docker, KindCluster};
use podid_mocks::ServerHandle;
use podid_probe::ProbeReport;
use podid_wait::{Check, Poll};

use podid_scenario::{Component, MicReplica, OwnerKind, PodPhase};

use super::cloud_network::CloudAddresses;
use super::deploy::{DeploymentBase, IDENTITY_NAMESPACE, identity_deployment, workloads};
use super::health::{healthz, lease_holder};
use super::images::RunImages;
use super::node_guard::{self, NodeShell};
use crate::provider::capability::Capabilities;
use crate::provider::cluster::{
    ClusterIdentity, ClusterSide, ComponentRef, ConfigureReport, HealthAnswer, IdentityConfig,
    NmiStopCheck, NodeInfo, PodHandle, PodRequest, SavedFile, ShutdownReport,
};
use crate::provider::error::ProviderError;
use crate::provider::kube_objects::KubeObjects;
use crate::provider::objects::ObjectStore;

/// How long a workload pod may take to run (image already on the node).
const POD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one probe run may take inside a pod (NMI's own retries included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long NMI and MIC may take to say `Active` after their pods are ready.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(90);
/// NMI's `/healthz` port in upstream's DaemonSet (`--http-probe-port=8085`, host network).
const NMI_PROBE_PORT: u16 = 8085;
/// MIC's `/healthz` port (its default `--http-probe-port`).
const MIC_PROBE_PORT: u16 = 8080;

/// Runs commands in node containers through `docker exec`.
pub struct DockerNodes(pub Docker);

#[async_trait::async_trait]
impl NodeShell for DockerNodes {
    async fn run(&self, node: &str, argv: &[String]) -> Result<String, ProviderError> {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.0.exec(node, &args).await.map_err(|e| {
            ProviderError::new(format!("running `{}` in node {node}", argv.join(" ")), e)
        })
    }
}

/// What runs now: the configuration and the objects installed for it.
struct Installed {
    config: IdentityConfig,
    rendered: RenderedDeployment,
}

/// Everything [`KindClusterSide`] is made of; built by the provider's start.
pub struct KindParts {
    pub cluster: KindCluster,
    pub docker: Docker,
    pub nodes: Vec<NodeInfo>,
    pub module_dir: PathBuf,
    pub base: DeploymentBase,
    pub images: RunImages,
    pub addresses: CloudAddresses,
    pub ca_pem: String,
    pub servers: Vec<ServerHandle>,
    pub environment: Vec<(String, String)>,
    pub keep: bool,
    pub cluster_identity: ClusterIdentity,
}

/// The kind cluster side.
pub struct KindClusterSide {
    cluster: tokio::sync::Mutex<Option<KindCluster>>,
    shell: DockerNodes,
    client: kube::Client,
    objects: KubeObjects,
    nodes: Vec<NodeInfo>,
    /// Every node container, control plane included.
    containers: Vec<String>,
    module_dir: PathBuf,
    base: DeploymentBase,
    images: RunImages,
    addresses: CloudAddresses,
    ca_pem: String,
    ca_in_pod: PathBuf,
    servers: Mutex<Vec<ServerHandle>>,
    installed: tokio::sync::Mutex<Option<Installed>>,
    environment: Vec<(String, String)>,
    keep: bool,
    cluster_identity: ClusterIdentity,
}

fn err(action: String, e: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
    ProviderError::new(action, e)
}

impl KindClusterSide {
    pub fn new(parts: KindParts) -> Self {
        let client = parts.cluster.client();
        let containers = parts
            .cluster
            .nodes()
            .iter()
            .map(|n| n.name.clone())
            .collect();
        Self {
            objects: KubeObjects::new(client.clone()),
            client,
            containers,
            cluster: tokio::sync::Mutex::new(Some(parts.cluster)),
            shell: DockerNodes(parts.docker),
            nodes: parts.nodes,
            module_dir: parts.module_dir,
            base: parts.base,
            images: parts.images,
            addresses: parts.addresses,
            ca_pem: parts.ca_pem,
            ca_in_pod: PathBuf::from(podid_incluster::trust::ca_file_path()),
            servers: Mutex::new(parts.servers),
            installed: tokio::sync::Mutex::new(None),
            environment: parts.environment,
            keep: parts.keep,
            cluster_identity: parts.cluster_identity,
        }
    }

    fn node(&self, logical: &str) -> Result<&NodeInfo, ProviderError> {
        self.nodes
            .iter()
            .find(|n| n.logical == logical)
            .ok_or_else(|| ProviderError::plain(format!("the kind cluster has no node {logical}")))
    }

    /// Removes what `installed` put in the cluster, waits for its pods to be gone, and reports
    /// whether each NMI took its iptables chain with it.
    async fn uninstall(&self, installed: &Installed) -> Result<Vec<NmiStopCheck>, ProviderError> {
        podid_incluster::remove(&self.client, &installed.rendered, &RemoveOptions::default())
            .await
            .map_err(|e| err("removing NMI and MIC".into(), e))?;
        let mut checks = Vec::new();
        for node in &self.nodes {
            let present = node_guard::nmi_chain_present(&self.shell, &node.name).await?;
            checks.push(NmiStopCheck {
                node: node.logical.clone(),
                removed_own_chain: !present,
            });
        }
        Ok(checks)
    }

    /// Waits until every NMI answers `Active` on its node and, in standard mode, one MIC does
    /// (the leader, caches synced): a ready pod alone does not mean NMI serves yet.
    async fn wait_active(&self, rendered: &RenderedDeployment) -> Result<(), ProviderError> {
        let client = self.client.clone();
        let poll = Poll::every(Duration::from_millis(500), ACTIVE_TIMEOUT);
        let outcome = podid_wait::until(poll, || async {
            let mut waiting = Vec::new();
            for node in &self.nodes {
                if !self.healthz(&node.name, "127.0.0.1", NMI_PROBE_PORT).await {
                    waiting.push(format!("NMI on {}", node.name));
                }
            }
            if let Some(mic) = &rendered.mic {
                let pods = podid_incluster::rollout::list_pods(&client, mic)
                    .await
                    .unwrap_or_default();
                let mut any = false;
                for ip in pods
                    .iter()
                    .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                {
                    if self.healthz(&self.nodes[0].name, &ip, MIC_PROBE_PORT).await {
                        any = true;
                        break;
                    }
                }
                if !any {
                    waiting.push("MIC (no replica is the Active leader)".into());
                }
            }
            if waiting.is_empty() {
                Check::Done(())
            } else {
                Check::Pending(waiting.join(", "))
            }
        })
        .await;
        outcome.map_err(|e| {
            ProviderError::plain(format!(
                "NMI/MIC did not become Active within {}s: still waiting for {}",
                ACTIVE_TIMEOUT.as_secs(),
                e.into_state()
            ))
        })
    }

    /// Whether `http://host:port/healthz`, asked from node container `node`, answers `Active`.
    async fn healthz(&self, node: &str, host: &str, port: u16) -> bool {
        let url = format!("http://{host}:{port}/healthz");
        let argv = ["curl", "-s", "-m", "2", &url].map(String::from);
        matches!(self.shell.run(node, &argv).await, Ok(body) if body.trim() == "Active")
    }

    /// Each addressed MIC pod's `/healthz`, labelled leader or follower by the lease.
    async fn mic_health(
        &self,
        replica: Option<MicReplica>,
    ) -> Result<Vec<HealthAnswer>, ProviderError> {
        let (mic, flags) = {
            let installed = self.installed.lock().await;
            let installed = installed.as_ref();
            match installed.and_then(|i| i.rendered.mic.clone()) {
                Some(mic) => (
                    mic,
                    installed
                        .map(|i| i.config.mic_flags.clone())
                        .unwrap_or_default(),
                ),
                None => {
                    return Err(ProviderError::plain(
                        "MIC does not run (it runs in standard mode only)",
                    ));
                }
            }
        };
        let holder = lease_holder(&self.client, &flags).await?;
        let mut pods = podid_incluster::rollout::list_pods(&self.client, &mic)
            .await
            .map_err(|e| err(format!("listing the pods of {mic}"), e))?;
        pods.retain(|p| p.metadata.deletion_timestamp.is_none());
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut answers = Vec::new();
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let leads = holder.as_deref() == Some(name.as_str());
            let wanted = match replica {
                None => true,
                Some(MicReplica::Leader) => leads,
                Some(MicReplica::Follower) => !leads,
            };
            if !wanted {
                continue;
            }
            let instance = format!("mic {name} ({})", if leads { "leader" } else { "follower" });
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
            answers.push(match ip {
                Some(ip) => {
                    let url = format!("http://{ip}:{MIC_PROBE_PORT}/healthz");
                    healthz(&self.shell, &self.nodes[0].name, &url, instance).await
                }
                None => HealthAnswer {
                    instance,
                    status: 0,
                    body: "the pod has no IP yet".into(),
                },
            });
        }
        Ok(answers)
    }

    fn workload_spec(&self, request: &PodRequest, node: &NodeInfo) -> WorkloadSpec {
        let mut aliases: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for (ip, host) in self.addresses.pod_hosts(&request.storage_accounts) {
            aliases.entry(ip).or_default().push(host);
        }
        WorkloadSpec {
            namespace: request.namespace.clone(),
            name: request.name.clone(),
            placement: Some(Placement::NodeName(node.name.clone())),
            labels: request.labels.iter().cloned().collect(),
            annotations: request.annotations.iter().cloned().collect(),
            owner: request.owner.as_ref().map(|(kind, name)| match kind {
                OwnerKind::ReplicaSet => WorkloadOwner::ReplicaSet(name.clone()),
                OwnerKind::DaemonSet => WorkloadOwner::DaemonSet(name.clone()),
            }),
            image: self.images.workload.clone(),
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            host_aliases: aliases.into_iter().collect(),
            ca_bundle_pem: Some(self.ca_pem.clone()),
            image_pull_policy: podid_incluster::ImagePullPolicy::Never,
        }
    }
}

#[async_trait::async_trait]
impl ClusterSide for KindClusterSide {
    fn capabilities(&self) -> Capabilities {
        super::cluster_capabilities()
    }

    fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    fn environment(&self) -> Vec<(String, String)> {
        self.environment.clone()
    }

    fn objects(&self) -> &dyn ObjectStore {
        &self.objects
    }

    fn ca_file(&self) -> Option<&Path> {
        Some(&self.ca_in_pod)
    }

    async fn configure(&self, config: &IdentityConfig) -> Result<ConfigureReport, ProviderError> {
        let mut installed = self.installed.lock().await;
        if installed.as_ref().is_some_and(|i| &i.config == config) {
            return Ok(ConfigureReport::default());
        }
        let request = identity_deployment(&self.base, config);
        let rendered = podid_incluster::render_from_module(&self.module_dir, &request)
            .map_err(|e| err("rendering upstream's NMI/MIC manifests".into(), e))?;
        let mut report = ConfigureReport::default();
        if let Some(previous) = installed.take() {
            report.nmi_stops = self.uninstall(&previous).await?;
        }
        podid_incluster::apply(&self.client, &rendered, &Default::default())
            .await
            .map_err(|e| {
                err(
                    format!("installing NMI in {} mode", config.mode.as_str()),
                    e,
                )
            })?;
        let on_failure = Installed {
            config: config.clone(),
            rendered: rendered.clone(),
        };
        // Recorded before the waits, so a failed rollout is still removed at shutdown.
        *installed = Some(on_failure);
        podid_incluster::wait_rolled_out(
            &self.client,
            &workloads(&rendered),
            &RolloutOptions::default(),
        )
        .await
        .map_err(|e| err("waiting for NMI/MIC to roll out".into(), e))?;
        self.wait_active(&rendered).await?;
        Ok(report)
    }

    fn mic_namespace(&self) -> String {
        IDENTITY_NAMESPACE.to_string()
    }

    fn cluster_identity(&self) -> Option<ClusterIdentity> {
        Some(self.cluster_identity.clone())
    }

    async fn health(&self, target: &ComponentRef) -> Result<Vec<HealthAnswer>, ProviderError> {
        match target.component {
            Component::Nmi => {
                let nodes: Vec<&NodeInfo> = match &target.node {
                    Some(logical) => vec![self.node(logical)?],
                    None => self.nodes.iter().collect(),
                };
                let url = format!("http://127.0.0.1:{NMI_PROBE_PORT}/healthz");
                let mut answers = Vec::new();
                for node in nodes {
                    let instance = format!("nmi@{}", node.logical);
                    answers.push(healthz(&self.shell, &node.name, &url, instance).await);
                }
                Ok(answers)
            }
            Component::Mic => self.mic_health(target.replica).await,
            Component::Apiserver => Err(ProviderError::plain(
                "the kind provider does not read kube-apiserver's health",
            )),
        }
    }

    async fn nmi_chain_present(&self, node: &str) -> Result<bool, ProviderError> {
        let node = self.node(node)?;
        node_guard::nmi_chain_present(&self.shell, &node.name).await
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<(), ProviderError> {
        podid_incluster::workload::ensure_namespace(&self.client, namespace)
            .await
            .map_err(|e| err(format!("creating namespace {namespace}"), e))
    }

    async fn create_pod(&self, request: &PodRequest) -> Result<PodHandle, ProviderError> {
        let what = format!("pod {}/{}", request.namespace, request.name);
        if request.phase == PodPhase::Pending {
            return Err(ProviderError::plain(format!(
                "{what}: the kind provider cannot keep a running pod in phase Pending"
            )));
        }
        let node = self.node(&request.node)?;
        let spec = self.workload_spec(request, node);
        let running = podid_incluster::create_and_wait_running(&self.client, &spec, POD_TIMEOUT)
            .await
            .map_err(|e| {
                err(
                    format!("running pod {}/{}", request.namespace, request.name),
                    e,
                )
            })?;
        Ok(PodHandle {
            namespace: running.namespace,
            name: running.name,
            node: request.node.clone(),
            ip: running.ip,
        })
    }

    async fn delete_pod(&self, pod: &PodHandle) -> Result<(), ProviderError> {
        podid_incluster::delete_and_wait_gone(&self.client, &pod.namespace, &pod.name, POD_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| err(format!("deleting pod {}/{}", pod.namespace, pod.name), e))
    }

    async fn run_probe(
        &self,
        pod: &PodHandle,
        args: &[String],
    ) -> Result<ProbeReport, ProviderError> {
        let what = format!("running the probe in pod {}/{}", pod.namespace, pod.name);
        let command: Vec<String> = self.images.probe.iter().chain(args).cloned().collect();
        let output = podid_incluster::exec(
            &self.client,
            &pod.namespace,
            &pod.name,
            Some(podid_incluster::workload::WORKLOAD_CONTAINER),
            &command,
            PROBE_TIMEOUT,
        )
        .await
        .map_err(|e| err(what.clone(), e))?;
        crate::provider::probe_report(&what, &output.stdout, &output.stderr, output.exit_code)
    }

    async fn save_diagnostics(&self, since: SystemTime, dir: &Path) -> Vec<SavedFile> {
        let Some(installed) = &*self.installed.lock().await else {
            return Vec::new();
        };
        let since = k8s_openapi::jiff::Timestamp::try_from(since).ok();
        let logs_dir = dir.join("pod-logs");
        let report = match podid_incluster::collect_logs(
            &self.client,
            &workloads(&installed.rendered),
            since,
            &logs_dir,
        )
        .await
        {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!("collecting NMI/MIC logs: {e}");
                return Vec::new();
            }
        };
        for failure in &report.failures {
            tracing::warn!("collecting NMI/MIC logs: {failure}");
        }
        report
            .files
            .into_iter()
            .filter_map(|path| {
                let text = std::fs::read_to_string(&path).ok()?;
                std::fs::write(&path, podid_reports::redact(&text)).ok()?;
                let name = path.file_name()?.to_string_lossy().into_owned();
                Some(SavedFile {
                    name: format!("pod log {name}"),
                    path,
                })
            })
            .collect()
    }

    async fn shutdown(&self) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        let servers = std::mem::take(&mut *self.servers.lock().expect("server list lock"));
        let Some(cluster) = self.cluster.lock().await.take() else {
            return report;
        };
        if self.keep {
            for container in &self.containers {
                if let Err(e) = node_guard::remove_rules(&self.shell, container).await {
                    report.errors.push(crate::provider::error_chain(&e));
                }
            }
            eprintln!(
                "podid: kept kind cluster {} (kubeconfig {}); remove it with `podid clean`",
                cluster.name(),
                cluster.kubeconfig().display()
            );
        } else {
            let name = cluster.name().to_string();
            match cluster.delete().await {
                Ok(()) => report
                    .stopped
                    .push(format!("kind cluster {name} and its network")),
                Err(e) => report
                    .errors
                    .push(format!("deleting kind cluster {name}: {e}")),
            }
        }
        for server in servers {
            server.shutdown().await;
        }
        report
    }
}
