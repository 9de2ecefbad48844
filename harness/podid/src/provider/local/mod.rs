//! The local provider: the local cluster (etcd, kube-apiserver, NMI and MIC in node
//! namespaces, the harness as kubelet) as the cluster side, the in-process mock cloud as the
//! cloud side. Each node namespace holds its own IMDS at 169.254.169.254:80 and the cloud's
//! HTTPS endpoints at documentation-range addresses that only the project's namespaces route.

mod components;
mod exec;
mod start;

pub use exec::pod_environment;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use podid_local::{LocalCluster, LocalPod, MicConfig, NmiStop, PodOwner, PodSpec, StartupTimings};
use podid_mocks::ServerHandle;
use podid_probe::ProbeReport;
use podid_scenario::{ClientKind, LifecycleAction, OwnerKind, PodPhase};
use podid_toolchain::Toolchain;

pub use start::{AAD_ADDRESS, ARM_ADDRESS, BLOB_ADDRESS, MIC_NODES};

use super::capability::{Capabilities, Capability};
use super::cluster::{
    ClusterIdentity, ClusterSide, ComponentRef, ConfigureReport, HealthAnswer, IdentityConfig,
    NmiStopCheck, NodeInfo, PodHandle, PodRequest, SavedFile, ShutdownReport,
};
use super::cluster::{ExecOutput, ExecRequest, PodShell};
use super::error::ProviderError;
use super::kube_objects::KubeObjects;
use super::mock_cloud::MockCloudSide;
use super::objects::ObjectStore;
use super::{ProbeCommand, Provider};
use crate::clients::ClientPrograms;

/// What the local provider needs to start.
pub struct LocalProviderConfig {
    pub run_id: String,
    /// Everything the run writes (logs, certificates, kubeconfig) goes under it.
    pub work_dir: PathBuf,
    pub toolchain: Toolchain,
    /// How to run the probe inside pods.
    pub probe: ProbeCommand,
    /// Where the SDK clients pods run are.
    pub clients: ClientPrograms,
}

/// How NMI and MIC were last configured; `None` before the first trial or after a failed
/// configuration.
#[derive(Default)]
struct Running {
    config: Option<IdentityConfig>,
}

/// The local cluster as a provider's cluster side.
pub struct LocalClusterSide {
    /// Taken at shutdown; shared so callers keep using the side through `&self` until then.
    cluster: Mutex<Option<Arc<LocalCluster>>>,
    servers: Mutex<Vec<ServerHandle>>,
    nodes: Vec<NodeInfo>,
    objects: KubeObjects,
    ca_file: PathBuf,
    probe: ProbeCommand,
    clients: ClientPrograms,
    pods: Mutex<HashMap<(String, String), LocalPod>>,
    /// Pod objects with another pod's address and no network (`ipOf`).
    pod_records: Mutex<HashSet<(String, String)>>,
    running: tokio::sync::Mutex<Running>,
    environment: Vec<(String, String)>,
    mic: MicConfig,
    cluster_identity: ClusterIdentity,
}

fn err(action: String, e: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
    ProviderError::new(action, e)
}

fn stop_checks(stops: Vec<NmiStop>) -> Vec<NmiStopCheck> {
    stops
        .into_iter()
        .map(|s| NmiStopCheck {
            node: s.node,
            removed_own_chain: s.removed_own_chain,
        })
        .collect()
}

/// Starts the local provider: the mock cloud, the local cluster, each node's cloud endpoints.
pub async fn start(
    config: LocalProviderConfig,
) -> Result<(Provider, StartupTimings), ProviderError> {
    std::fs::create_dir_all(&config.work_dir)
        .map_err(|e| err(format!("creating {}", config.work_dir.display()), e))?;
    let cloud = start::create_cloud(&config.work_dir)?;
    let cluster =
        start::start_cluster(&config.run_id, &config.work_dir, &config.toolchain, &cloud).await?;
    let (nodes, servers) = match start::serve_cloud_in_nodes(&cluster, &cloud.cloud).await {
        Ok(x) => x,
        Err(e) => {
            if let Err(teardown) = cluster.shutdown().await {
                tracing::error!("tearing down the local cluster after a failed start: {teardown}");
            }
            return Err(e);
        }
    };
    let timings = cluster.timings().clone();
    let tc: &Toolchain = &config.toolchain;
    let side = LocalClusterSide {
        objects: KubeObjects::new(cluster.client()),
        cluster: Mutex::new(Some(Arc::new(cluster))),
        servers: Mutex::new(servers),
        nodes,
        ca_file: cloud.ca_file.clone(),
        probe: config.probe,
        clients: config.clients,
        pods: Mutex::new(HashMap::new()),
        pod_records: Mutex::new(HashSet::new()),
        running: tokio::sync::Mutex::new(Running::default()),
        environment: vec![
            ("nmi".into(), tc.versions.nmi.clone()),
            ("mic".into(), tc.versions.mic.clone()),
            ("kube-apiserver".into(), tc.versions.kube_apiserver.clone()),
            ("etcd".into(), tc.versions.etcd.clone()),
        ],
        mic: start::mic_config(&config.run_id, &cloud),
        cluster_identity: cloud.cluster_identity.clone(),
    };
    let provider = Provider::new(
        "local",
        Box::new(side),
        Box::new(MockCloudSide::new(cloud.cloud).with_mic_principal(cloud.mic_principal_id)),
    );
    Ok((provider, timings))
}

/// What the local cluster side can do (also what `podid list --provider local` plans with).
pub fn cluster_capabilities() -> Capabilities {
    Capabilities::of([
        Capability::ManagedMode,
        Capability::StandardMode,
        Capability::ComponentFlags,
        Capability::PerNodeMachines,
        Capability::Restarts,
        Capability::MicReplicas,
        Capability::HealthEndpoints,
        Capability::NodeIptables,
        Capability::PendingPods,
        Capability::ClusterIdentity,
        Capability::Exec,
        Capability::PythonClient,
        Capability::JavaScriptClient,
        Capability::AzCliClient,
        Capability::ForgedPodStatus,
        Capability::SpoofedSource,
    ])
}

impl LocalClusterSide {
    fn cluster(&self) -> Result<Arc<LocalCluster>, ProviderError> {
        self.cluster
            .lock()
            .expect("cluster lock")
            .clone()
            .ok_or_else(|| ProviderError::plain("the local cluster has been shut down"))
    }

    fn local_pod(&self, pod: &PodHandle) -> Result<LocalPod, ProviderError> {
        self.pods
            .lock()
            .expect("pod map lock")
            .get(&(pod.namespace.clone(), pod.name.clone()))
            .cloned()
            .ok_or_else(|| {
                ProviderError::plain(format!("pod {}/{} is not running", pod.namespace, pod.name))
            })
    }

    /// Copies a log into `dir`, redacted, for a failure report.
    fn save_log(source: &Path, target: PathBuf, name: String) -> Option<SavedFile> {
        match std::fs::read_to_string(source) {
            Ok(text) => std::fs::write(&target, podid_reports::redact(&text))
                .ok()
                .map(|()| SavedFile { name, path: target }),
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", source.display());
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl ClusterSide for LocalClusterSide {
    fn capabilities(&self) -> Capabilities {
        cluster_capabilities()
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
        Some(&self.ca_file)
    }

    async fn configure(&self, config: &IdentityConfig) -> Result<ConfigureReport, ProviderError> {
        let mut running = self.running.lock().await;
        // Forgotten first: after a failure, nothing is assumed about what runs.
        running.config = None;
        let report = self.apply_config(config).await?;
        running.config = Some(config.clone());
        Ok(report)
    }

    async fn recover(&self, config: &IdentityConfig) -> Result<ConfigureReport, ProviderError> {
        let mut running = self.running.lock().await;
        let configured = running.config.take();
        let report = self.recover_components(config, configured.as_ref()).await?;
        running.config = Some(config.clone());
        Ok(report)
    }

    async fn lifecycle(
        &self,
        action: LifecycleAction,
        target: &ComponentRef,
    ) -> Result<(), ProviderError> {
        let _running = self.running.lock().await;
        self.change_component(action, target).await
    }

    async fn health(&self, target: &ComponentRef) -> Result<Vec<HealthAnswer>, ProviderError> {
        self.read_health(target).await
    }

    async fn nmi_chain_present(&self, node: &str) -> Result<bool, ProviderError> {
        let rules = self
            .cluster()?
            .nmi_rules(node)
            .await
            .map_err(|e| err(format!("reading NMI's iptables on {node}"), e))?;
        Ok(!rules.gone())
    }

    fn mic_namespace(&self) -> String {
        podid_local::MIC_POD_NAMESPACE.to_string()
    }

    fn cluster_identity(&self) -> Option<ClusterIdentity> {
        Some(self.cluster_identity.clone())
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<(), ProviderError> {
        self.cluster()?
            .ensure_namespace(namespace)
            .await
            .map_err(|e| err(format!("creating namespace {namespace}"), e))
    }

    async fn create_pod(&self, request: &PodRequest) -> Result<PodHandle, ProviderError> {
        let cluster = self.cluster()?;
        let spec = PodSpec {
            namespace: request.namespace.clone(),
            name: request.name.clone(),
            labels: request.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            annotations: request
                .annotations
                .iter()
                .cloned()
                .collect::<BTreeMap<_, _>>(),
            node: request.node.clone(),
            owner: request.owner.as_ref().map(|(kind, name)| PodOwner {
                kind: match kind {
                    OwnerKind::ReplicaSet => podid_local::OwnerKind::ReplicaSet,
                    OwnerKind::DaemonSet => podid_local::OwnerKind::DaemonSet,
                },
                name: name.clone(),
            }),
            phase: match request.phase {
                PodPhase::Running => podid_local::PodPhase::Running,
                PodPhase::Pending => podid_local::PodPhase::Pending,
            },
        };
        let what = format!("pod {}/{}", request.namespace, request.name);
        if let Some(ip) = request.ip_of {
            let IpAddr::V4(ip) = ip else {
                return Err(ProviderError::plain(format!(
                    "{what}: pods have IPv4 addresses, not {ip}"
                )));
            };
            cluster
                .create_pod_record(spec, ip)
                .await
                .map_err(|e| err(format!("creating {what}"), e))?;
            self.pod_records
                .lock()
                .expect("pod record lock")
                .insert((request.namespace.clone(), request.name.clone()));
            return Ok(PodHandle {
                namespace: request.namespace.clone(),
                name: request.name.clone(),
                node: request.node.clone(),
                ip: IpAddr::V4(ip),
            });
        }
        let pod = cluster
            .create_pod(spec)
            .await
            .map_err(|e| err(format!("creating {what}"), e))?;
        let mut hosts = start::cloud_hosts();
        hosts.extend(request.storage_accounts.iter().map(|a| {
            (
                IpAddr::from(BLOB_ADDRESS),
                format!("{a}{}", podid_mocks::BLOB_HOST_SUFFIX),
            )
        }));
        cluster
            .set_pod_hosts(&pod, &hosts)
            .map_err(|e| err(format!("writing the hosts file of {what}"), e))?;
        let handle = PodHandle {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            node: pod.node.clone(),
            ip: IpAddr::V4(pod.ip),
        };
        self.pods
            .lock()
            .expect("pod map lock")
            .insert((pod.namespace.clone(), pod.name.clone()), pod);
        Ok(handle)
    }

    async fn delete_pod(&self, pod: &PodHandle) -> Result<(), ProviderError> {
        let key = (pod.namespace.clone(), pod.name.clone());
        if self
            .pod_records
            .lock()
            .expect("pod record lock")
            .remove(&key)
        {
            return self
                .cluster()?
                .delete_pod_record(&pod.namespace, &pod.name)
                .await
                .map_err(|e| err(format!("deleting pod {}/{}", pod.namespace, pod.name), e));
        }
        self.pods
            .lock()
            .expect("pod map lock")
            .remove(&(pod.namespace.clone(), pod.name.clone()));
        self.cluster()?
            .delete_pod(&pod.namespace, &pod.name)
            .await
            .map_err(|e| err(format!("deleting pod {}/{}", pod.namespace, pod.name), e))
    }

    async fn run_probe(
        &self,
        pod: &PodHandle,
        args: &[String],
    ) -> Result<ProbeReport, ProviderError> {
        let local = self.local_pod(pod)?;
        let what = format!("running the probe in pod {}/{}", pod.namespace, pod.name);
        let mut command = self.cluster()?.pod_command(&local, &self.probe.program);
        command.args(&self.probe.args).args(args).kill_on_drop(true);
        let output = command.output().await.map_err(|e| err(what.clone(), e))?;
        super::probe_report(
            &what,
            &String::from_utf8_lossy(&output.stdout),
            &String::from_utf8_lossy(&output.stderr),
            output.status,
        )
    }

    fn kubeconfig(&self) -> Option<PathBuf> {
        self.cluster().ok().map(|c| c.kubeconfig().to_path_buf())
    }

    fn pod_shell(&self, pod: &PodHandle) -> Option<PodShell> {
        let local = self.local_pod(pod).ok()?;
        Some(PodShell {
            prefix: ["ip", "netns", "exec", local.netns.name()]
                .map(String::from)
                .to_vec(),
            env: pod_environment(&self.ca_file),
        })
    }

    fn client_program(&self, client: ClientKind) -> Option<Vec<String>> {
        Some(self.clients.argv(client))
    }

    async fn exec(
        &self,
        pod: &PodHandle,
        request: &ExecRequest,
    ) -> Result<ExecOutput, ProviderError> {
        let local = self.local_pod(pod)?;
        let what = format!(
            "running `{}` in pod {}/{}",
            request.argv.join(" "),
            pod.namespace,
            pod.name
        );
        let (program, args) = request
            .argv
            .split_first()
            .ok_or_else(|| ProviderError::plain(format!("{what}: no program")))?;
        let mut command = self.cluster()?.pod_command(&local, Path::new(program));
        command
            .args(args)
            .env_clear()
            .envs(pod_environment(&self.ca_file))
            .envs(request.env.iter().cloned())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        exec::run(command, request.timeout)
            .await
            .map_err(|e| err(what, e))
    }

    async fn run_probe_from(
        &self,
        pod: &PodHandle,
        source: IpAddr,
        args: &[String],
    ) -> Result<ProbeReport, ProviderError> {
        let local = self.local_pod(pod)?;
        let IpAddr::V4(address) = source else {
            return Err(ProviderError::plain(format!(
                "pods have IPv4 addresses, not {source}"
            )));
        };
        let what = format!("taking on {source} in pod {}/{}", pod.namespace, pod.name);
        let netlink = local
            .netns
            .netlink()
            .await
            .map_err(|e| err(what.clone(), e))?;
        netlink
            .add_address("eth0", address, 32)
            .await
            .map_err(|e| err(what.clone(), e))?;
        let mut with_source = args.to_vec();
        with_source.extend(["--source-address".to_string(), source.to_string()]);
        let report = self.run_probe(pod, &with_source).await;
        let removed = netlink.delete_address("eth0", address).await;
        let report = report?;
        removed.map_err(|e| {
            err(
                format!("giving {source} back in pod {}/{}", pod.namespace, pod.name),
                e,
            )
        })?;
        Ok(report)
    }

    async fn save_diagnostics(&self, _since: SystemTime, dir: &Path) -> Vec<SavedFile> {
        let Ok(cluster) = self.cluster() else {
            return Vec::new();
        };
        let mut out: Vec<SavedFile> = cluster
            .nodes()
            .iter()
            .filter_map(|node| {
                Self::save_log(
                    &node.nmi_log,
                    dir.join(format!("nmi-{}.log", node.name)),
                    format!("NMI log ({})", node.name),
                )
            })
            .collect();
        for slot in 0..MIC_NODES.len() as u8 {
            let mic_log = cluster.mic_log(slot);
            if mic_log.is_file() {
                out.extend(Self::save_log(
                    &mic_log,
                    dir.join(format!("mic-{slot}.log")),
                    format!("MIC log (replica {slot})"),
                ));
            }
        }
        out
    }

    async fn shutdown(&self) -> ShutdownReport {
        let servers = std::mem::take(&mut *self.servers.lock().expect("server list lock"));
        for server in servers {
            server.shutdown().await;
        }
        self.pods.lock().expect("pod map lock").clear();
        let Some(cluster) = self.cluster.lock().expect("cluster lock").take() else {
            return ShutdownReport::default();
        };
        match Arc::try_unwrap(cluster) {
            Ok(cluster) => match cluster.shutdown().await {
                Ok(report) => ShutdownReport {
                    stopped: report.processes_stopped,
                    errors: report.errors,
                },
                Err(e) => ShutdownReport {
                    stopped: Vec::new(),
                    errors: vec![format!("tearing down the local cluster: {e}")],
                },
            },
            Err(_) => ShutdownReport {
                stopped: Vec::new(),
                errors: vec![
                    "the local cluster is still in use; it is torn down when released".into(),
                ],
            },
        }
    }
}
