//! A Kubernetes cluster as a provider's cluster side: NMI and MIC through upstream's manifests
//! (re-installed when a trial needs other flags or another mode) or as the cluster already runs
//! them, workload pods as real pods running the probe through `exec`, and NMI/MIC pod logs for
//! failure reports. What differs between kind and an existing cluster comes in [`KubeClusterParts`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use podid_incluster::{
    ImagePullPolicy, RemoveOptions, RenderedDeployment, RolloutOptions, WorkloadOwner,
    WorkloadSpec, workload::Placement,
};
use podid_probe::ProbeReport;
use podid_wait::{Check, Poll};

use podid_scenario::{Component, MicReplica, OwnerKind, PodPhase};

use super::deploy::{DeploymentBase, IDENTITY_NAMESPACE, identity_deployment, workloads};
use super::health::{healthz, lease_holder};
use super::{NodeShell, ServiceHosts, nmi_chain_present};
use crate::provider::capability::Capabilities;
use crate::provider::cluster::{
    ClusterIdentity, ClusterSide, ComponentRef, ConfigureReport, HealthAnswer, IdentityConfig,
    NmiStopCheck, NodeInfo, PodHandle, PodRequest, SavedFile, ShutdownReport,
};
use crate::provider::error::ProviderError;
use crate::provider::kube_objects::KubeObjects;
use crate::provider::objects::ObjectStore;

/// How long a workload pod may take to run, once its image is on the node (a cluster that
/// pulls it gets [`KubeClusterParts::timeout_scale`] times as long).
const POD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one probe run may take inside a pod (NMI's own retries included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long NMI and MIC may take to say `Active` after their pods are ready.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(90);
/// NMI's `/healthz` port in upstream's DaemonSet (`--http-probe-port=8085`, host network).
const NMI_PROBE_PORT: u16 = 8085;
/// MIC's `/healthz` port (its default `--http-probe-port`).
const MIC_PROBE_PORT: u16 = 8080;

/// What runs now: the configuration and the objects installed for it.
struct Installed {
    config: IdentityConfig,
    rendered: RenderedDeployment,
}

/// How NMI and MIC come to run in the cluster.
#[derive(Debug, Clone)]
pub enum IdentityInstall {
    /// podid installs them from upstream's manifests as each trial needs, and removes them at
    /// the end.
    Podid {
        /// The pinned aad-pod-identity module the manifests are read from.
        module_dir: PathBuf,
        base: Box<DeploymentBase>,
    },
    /// The cluster already runs them (found by discovery); podid only checks that a trial asks
    /// for what runs.
    Existing {
        /// What runs, as a configuration trials are compared with.
        config: IdentityConfig,
        /// Their namespace (where AzureAssignedIdentities live) and workloads.
        namespace: String,
        workloads: Vec<podid_incluster::WorkloadRef>,
    },
}

/// The image workload pods run and how the probe starts in it.
#[derive(Debug, Clone)]
pub struct WorkloadImage {
    pub image: String,
    /// Program and leading arguments of the probe inside the image.
    pub probe: Vec<String>,
    pub pull_policy: ImagePullPolicy,
}

/// What the cluster side does at shutdown beyond removing what podid installed (deleting a kind
/// cluster, removing the mock cloud from an existing one).
#[async_trait::async_trait]
pub trait Teardown: Send + Sync {
    /// Whether the cluster stays after the run, so podid removes what it put there (NMI/MIC,
    /// the trials' namespaces) rather than leave it to the cluster's deletion.
    fn cluster_outlives_run(&self) -> bool;
    async fn teardown(&self, report: &mut ShutdownReport);
}

/// Everything [`KubeClusterSide`] is made of; built by a provider's start.
pub struct KubeClusterParts {
    /// The provider's name, for messages (`kind`, `existing`).
    pub provider: &'static str,
    pub client: kube::Client,
    pub shell: Box<dyn NodeShell>,
    pub nodes: Vec<NodeInfo>,
    pub install: IdentityInstall,
    pub workload: WorkloadImage,
    pub hosts: ServiceHosts,
    /// The CA pods must trust for the cloud (none for a publicly trusted cloud).
    pub ca_pem: Option<String>,
    pub environment: Vec<(String, String)>,
    pub capabilities: Capabilities,
    pub cluster_identity: Option<ClusterIdentity>,
    /// Pod and probe timeouts are multiplied by this (real clouds and image pulls are slower).
    pub timeout_scale: u32,
    pub teardown: Box<dyn Teardown>,
}

/// A Kubernetes cluster as a cluster side.
pub struct KubeClusterSide {
    provider: &'static str,
    shell: Box<dyn NodeShell>,
    client: kube::Client,
    objects: KubeObjects,
    nodes: Vec<NodeInfo>,
    install: IdentityInstall,
    workload: WorkloadImage,
    hosts: ServiceHosts,
    ca_pem: Option<String>,
    ca_in_pod: PathBuf,
    installed: tokio::sync::Mutex<Option<Installed>>,
    environment: Vec<(String, String)>,
    capabilities: Capabilities,
    cluster_identity: Option<ClusterIdentity>,
    timeout_scale: u32,
    teardown: tokio::sync::Mutex<Option<Box<dyn Teardown>>>,
    /// Namespaces podid created (they did not exist before), to delete when the cluster stays.
    created_namespaces: std::sync::Mutex<Vec<String>>,
}

fn err(action: String, e: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
    ProviderError::new(action, e)
}

impl KubeClusterSide {
    pub fn new(parts: KubeClusterParts) -> Self {
        Self {
            provider: parts.provider,
            objects: KubeObjects::new(parts.client.clone()),
            client: parts.client,
            shell: parts.shell,
            nodes: parts.nodes,
            install: parts.install,
            workload: parts.workload,
            hosts: parts.hosts,
            ca_pem: parts.ca_pem,
            ca_in_pod: PathBuf::from(podid_incluster::trust::ca_file_path()),
            installed: tokio::sync::Mutex::new(None),
            environment: parts.environment,
            capabilities: parts.capabilities,
            cluster_identity: parts.cluster_identity,
            timeout_scale: parts.timeout_scale.max(1),
            teardown: tokio::sync::Mutex::new(Some(parts.teardown)),
            created_namespaces: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn scaled(&self, timeout: Duration) -> Duration {
        timeout * self.timeout_scale
    }

    fn node(&self, logical: &str) -> Result<&NodeInfo, ProviderError> {
        self.nodes
            .iter()
            .find(|n| n.logical == logical)
            .ok_or_else(|| {
                ProviderError::plain(format!(
                    "the {} cluster has no node {logical}",
                    self.provider
                ))
            })
    }

    /// Removes what `installed` put in the cluster, waits for its pods to be gone, and reports
    /// whether each NMI took its iptables chain with it.
    async fn uninstall(&self, installed: &Installed) -> Result<Vec<NmiStopCheck>, ProviderError> {
        podid_incluster::remove(&self.client, &installed.rendered, &RemoveOptions::default())
            .await
            .map_err(|e| err("removing NMI and MIC".into(), e))?;
        let mut checks = Vec::new();
        for node in &self.nodes {
            let present = nmi_chain_present(self.shell.as_ref(), &node.name).await?;
            checks.push(NmiStopCheck {
                node: node.logical.clone(),
                removed_own_chain: !present,
            });
        }
        Ok(checks)
    }

    /// Waits until every NMI answers `Active` on its node and, in standard mode, one MIC does
    /// (the leader, caches synced): a ready pod alone does not mean NMI serves yet.
    async fn wait_active(
        &self,
        mic: Option<&podid_incluster::WorkloadRef>,
    ) -> Result<(), ProviderError> {
        let client = self.client.clone();
        let poll = Poll::every(Duration::from_millis(500), self.scaled(ACTIVE_TIMEOUT));
        let outcome = podid_wait::until(poll, || async {
            let mut waiting = Vec::new();
            for node in &self.nodes {
                if !self.healthz(&node.name, "127.0.0.1", NMI_PROBE_PORT).await {
                    waiting.push(format!("NMI on {}", node.name));
                }
            }
            if let Some(mic) = mic {
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
                self.scaled(ACTIVE_TIMEOUT).as_secs(),
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
        let (mic, flags) = match &self.install {
            IdentityInstall::Existing {
                config, workloads, ..
            } => match workloads
                .iter()
                .find(|w| w.kind == podid_incluster::WorkloadKind::Deployment)
            {
                Some(mic) => (mic.clone(), config.mic_flags.clone()),
                None => {
                    return Err(ProviderError::plain(
                        "MIC does not run in this cluster (it runs in standard mode only)",
                    ));
                }
            },
            IdentityInstall::Podid { .. } => {
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
                    healthz(self.shell.as_ref(), &self.nodes[0].name, &url, instance).await
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
        for (ip, host) in self.hosts.for_pod(&request.storage_accounts) {
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
            image: self.workload.image.clone(),
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            host_aliases: aliases.into_iter().collect(),
            ca_bundle_pem: self.ca_pem.clone(),
            image_pull_policy: self.workload.pull_policy,
        }
    }
}

#[async_trait::async_trait]
impl ClusterSide for KubeClusterSide {
    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
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
        let (module_dir, base) = match &self.install {
            IdentityInstall::Podid { module_dir, base } => (module_dir, base),
            IdentityInstall::Existing { config: runs, .. } => {
                return if runs.mode == config.mode
                    && config.nmi_flags.is_empty()
                    && config.mic_flags.is_empty()
                {
                    Ok(ConfigureReport::default())
                } else {
                    Err(ProviderError::plain(format!(
                        "the cluster runs NMI in {} mode as it was installed; the trial needs {} mode{}",
                        runs.mode.as_str(),
                        config.mode.as_str(),
                        if config.nmi_flags.is_empty() && config.mic_flags.is_empty() {
                            ""
                        } else {
                            " with its own flags"
                        }
                    )))
                };
            }
        };
        let mut installed = self.installed.lock().await;
        if installed.as_ref().is_some_and(|i| &i.config == config) {
            return Ok(ConfigureReport::default());
        }
        let request = identity_deployment(base, config);
        let mut rendered = podid_incluster::render_from_module(module_dir, &request)
            .map_err(|e| err("rendering upstream's NMI/MIC manifests".into(), e))?;
        // Marked as podid's, so discovery (and a user) can tell them from their own.
        for object in &mut rendered.objects {
            crate::provider::existing::install::label_as_podids(object);
        }
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
        let rollout = RolloutOptions {
            timeout: self.scaled(RolloutOptions::default().timeout),
            ..RolloutOptions::default()
        };
        podid_incluster::wait_rolled_out(&self.client, &workloads(&rendered), &rollout)
            .await
            .map_err(|e| err("waiting for NMI/MIC to roll out".into(), e))?;
        self.wait_active(rendered.mic.as_ref()).await?;
        Ok(report)
    }

    fn timeout_scale(&self) -> u32 {
        self.timeout_scale
    }

    fn mic_namespace(&self) -> String {
        match &self.install {
            IdentityInstall::Podid { .. } => IDENTITY_NAMESPACE.to_string(),
            IdentityInstall::Existing { namespace, .. } => namespace.clone(),
        }
    }

    fn cluster_identity(&self) -> Option<ClusterIdentity> {
        self.cluster_identity.clone()
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
                    answers.push(healthz(self.shell.as_ref(), &node.name, &url, instance).await);
                }
                Ok(answers)
            }
            Component::Mic => self.mic_health(target.replica).await,
            Component::Apiserver => Err(ProviderError::plain(
                "a cluster provider does not read kube-apiserver's health",
            )),
        }
    }

    async fn nmi_chain_present(&self, node: &str) -> Result<bool, ProviderError> {
        let node = self.node(node)?;
        nmi_chain_present(self.shell.as_ref(), &node.name).await
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<(), ProviderError> {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.client.clone());
        let existed = api
            .get_opt(namespace)
            .await
            .map_err(|e| err(format!("reading namespace {namespace}"), e))?
            .is_some();
        podid_incluster::workload::ensure_namespace(&self.client, namespace)
            .await
            .map_err(|e| err(format!("creating namespace {namespace}"), e))?;
        if !existed {
            crate::provider::existing::leftovers::mark_namespace(&self.client, namespace).await?;
            let mut created = self.created_namespaces.lock().expect("namespace list lock");
            if !created.iter().any(|n| n == namespace) {
                created.push(namespace.to_string());
            }
        }
        Ok(())
    }

    async fn create_pod(&self, request: &PodRequest) -> Result<PodHandle, ProviderError> {
        let what = format!("pod {}/{}", request.namespace, request.name);
        if request.phase == PodPhase::Pending {
            return Err(ProviderError::plain(format!(
                "{what}: the {} provider cannot keep a running pod in phase Pending",
                self.provider
            )));
        }
        let node = self.node(&request.node)?;
        let spec = self.workload_spec(request, node);
        let running =
            podid_incluster::create_and_wait_running(&self.client, &spec, self.scaled(POD_TIMEOUT))
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
        podid_incluster::delete_and_wait_gone(
            &self.client,
            &pod.namespace,
            &pod.name,
            self.scaled(POD_TIMEOUT),
        )
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
        let command: Vec<String> = self.workload.probe.iter().chain(args).cloned().collect();
        let output = podid_incluster::exec(
            &self.client,
            &pod.namespace,
            &pod.name,
            Some(podid_incluster::workload::WORKLOAD_CONTAINER),
            &command,
            self.scaled(PROBE_TIMEOUT),
        )
        .await
        .map_err(|e| err(what.clone(), e))?;
        crate::provider::probe_report(&what, &output.stdout, &output.stderr, output.exit_code)
    }

    async fn save_diagnostics(&self, since: SystemTime, dir: &Path) -> Vec<SavedFile> {
        let running = match &self.install {
            IdentityInstall::Existing { workloads, .. } => workloads.clone(),
            IdentityInstall::Podid { .. } => match &*self.installed.lock().await {
                Some(installed) => workloads(&installed.rendered),
                None => return Vec::new(),
            },
        };
        let since = k8s_openapi::jiff::Timestamp::try_from(since).ok();
        let logs_dir = dir.join("pod-logs");
        let report =
            match podid_incluster::collect_logs(&self.client, &running, since, &logs_dir).await {
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
        let Some(teardown) = self.teardown.lock().await.take() else {
            return report;
        };
        if teardown.cluster_outlives_run()
            && let Some(installed) = self.installed.lock().await.take()
        {
            match podid_incluster::remove(
                &self.client,
                &installed.rendered,
                &RemoveOptions::default(),
            )
            .await
            {
                Ok(_) => report.stopped.push(format!(
                    "NMI{} installed by podid",
                    if installed.rendered.mic.is_some() {
                        " and MIC"
                    } else {
                        ""
                    }
                )),
                Err(e) => report.errors.push(format!("removing NMI and MIC: {e}")),
            }
        }
        if teardown.cluster_outlives_run() {
            let created =
                std::mem::take(&mut *self.created_namespaces.lock().expect("namespace list lock"));
            let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                kube::Api::all(self.client.clone());
            for namespace in created {
                match api.delete(&namespace, &Default::default()).await {
                    Ok(_) => report.stopped.push(format!("namespace {namespace}")),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => report
                        .errors
                        .push(format!("deleting namespace {namespace}: {e}")),
                }
            }
        }
        teardown.teardown(&mut report).await;
        report
    }
}
