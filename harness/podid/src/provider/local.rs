//! The local provider: the local cluster (etcd, kube-apiserver, NMI in node namespaces) wired to
//! the mock cloud. Each node namespace holds its own IMDS at 169.254.169.254:80 and the cloud's
//! HTTPS endpoints at documentation-range addresses that only the project's namespaces route.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use podid_local::{
    Binaries, LocalCluster, LocalClusterConfig, LocalPod, MicCloudConfig, MicConfig, NmiConfig,
    NodeConfig, PodSpec, TeardownReport,
};
use podid_mocks::{
    CloudSpec, Endpoint, MachineKind, MachineRef, MockCloud, ServerHandle, ServicePrincipal,
    SpCredential, SystemAssignedIdentity, VirtualMachine,
};
use podid_probe::ProbeReport;
use podid_scenario::NmiMode;
use podid_toolchain::Toolchain;

use super::{NodeInfo, PodHandle, PodRequest, ProbeCommand, Provider, ProviderError, SavedFile};

/// Address of the mock AAD inside every node namespace (TEST-NET-1: never routed anywhere).
pub const AAD_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Address of the mock ARM inside every node namespace.
pub const ARM_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
/// Address of the mock Blob service inside every node namespace.
pub const BLOB_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
/// Resource group of the node scale sets.
pub const NODE_RESOURCE_GROUP: &str = "podid-nodes";
/// Logical node names and the scale set behind each (one pool per node, so per-node views differ).
pub const NODES: [(&str, &str); 2] = [("node-0", "podid-pool0"), ("node-1", "podid-pool1")];
/// The node whose namespace MIC runs in (standard mode), as a hostNetwork pod would.
pub const MIC_NODE: &str = "node-0";
/// Display name of MIC's service principal in the mock cloud.
pub const MIC_PRINCIPAL: &str = "podid-mic";

/// What the local provider needs to start.
pub struct LocalProviderConfig {
    pub run_id: String,
    /// Everything the run writes (logs, certificates, kubeconfig) goes under it.
    pub work_dir: PathBuf,
    pub toolchain: Toolchain,
    /// How to run the probe inside pods.
    pub probe: ProbeCommand,
}

/// The default provider: everything on this machine, no Docker, no Azure.
pub struct LocalProvider {
    /// Shared so callers can keep using the provider through `&self` until `shutdown`.
    cluster: Mutex<Option<Arc<LocalCluster>>>,
    cloud: MockCloud,
    servers: Mutex<Vec<ServerHandle>>,
    nodes: Vec<NodeInfo>,
    ca_file: PathBuf,
    probe: ProbeCommand,
    pods: Mutex<HashMap<(String, String), LocalPod>>,
    /// Whether NMI runs, and the extra flags of the MIC that runs (standard mode only).
    running: tokio::sync::Mutex<Running>,
    environment: Vec<(String, String)>,
    /// What MIC is started with (standard mode only).
    mic: MicConfig,
}

fn err(context: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError(format!("{context}: {e}"))
}

/// What runs besides the cluster's control plane.
#[derive(Default)]
struct Running {
    nmi: bool,
    /// The extra flags MIC runs with; `None` when it does not run.
    mic: Option<Vec<String>>,
}

/// Writes a file only root can read (it holds a client secret).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl LocalProvider {
    /// Starts the mock cloud and the local cluster, and puts each node's IMDS and the cloud's
    /// endpoints into its namespace. NMI starts with the first scenario (its flags vary).
    pub async fn start(config: LocalProviderConfig) -> Result<Self, ProviderError> {
        std::fs::create_dir_all(&config.work_dir)
            .map_err(|e| err(&format!("creating {}", config.work_dir.display()), e))?;
        let subscription = guid();
        let tenant = guid();
        let mic_principal = ServicePrincipal {
            name: MIC_PRINCIPAL.into(),
            client_id: guid(),
            object_id: guid(),
            credential: SpCredential::Secret {
                secret: format!("podid-{}", guid()),
            },
        };
        let SpCredential::Secret { secret: mic_secret } = &mic_principal.credential else {
            unreachable!("built with a secret above")
        };
        let mic_cloud_config = config.work_dir.join("azure.json");
        let azure_json = MicCloudConfig {
            tenant_id: &tenant,
            subscription_id: &subscription,
            resource_group: NODE_RESOURCE_GROUP,
            client_id: &mic_principal.client_id,
            client_secret: mic_secret,
        }
        .render();
        write_private(&mic_cloud_config, &azure_json)
            .map_err(|e| err(&format!("writing {}", mic_cloud_config.display()), e))?;
        let spec = CloudSpec {
            tenant_id: tenant,
            subscription_id: subscription.clone(),
            machines: NODES
                .iter()
                .map(|(_, pool)| VirtualMachine {
                    name: pool.to_string(),
                    resource_group: NODE_RESOURCE_GROUP.to_string(),
                    kind: MachineKind::ScaleSet { instances: 1 },
                    system_assigned: Some(SystemAssignedIdentity {
                        principal_id: guid(),
                        client_id: guid(),
                    }),
                    user_assigned: Vec::new(),
                    location: "eastus".into(),
                    provisioning_state: "Succeeded".into(),
                })
                .collect(),
            service_principals: vec![mic_principal],
            ..CloudSpec::default()
        };
        let cloud = MockCloud::builder()
            .extra_sans([
                AAD_ADDRESS.to_string(),
                ARM_ADDRESS.to_string(),
                BLOB_ADDRESS.to_string(),
            ])
            .build(spec)
            .map_err(|e| err("creating the mock cloud", e))?;
        let ca_file = config.work_dir.join("cloud-ca.pem");
        cloud
            .tls()
            .write_ca_bundle(&ca_file)
            .map_err(|e| err("writing the cloud CA bundle", e))?;

        let nodes_config: Vec<NodeConfig> = NODES
            .iter()
            .enumerate()
            .map(|(i, (name, pool))| NodeConfig {
                name: name.to_string(),
                provider_id: format!(
                    "azure:///subscriptions/{subscription}/resourceGroups/{NODE_RESOURCE_GROUP}/providers/Microsoft.Compute/virtualMachineScaleSets/{pool}/virtualMachines/0"
                ),
                pod_cidr_index: u8::try_from(i + 1).unwrap_or(1),
                extra_addresses: vec![AAD_ADDRESS, ARM_ADDRESS, BLOB_ADDRESS],
            })
            .collect();
        let tc = &config.toolchain;
        let cluster = LocalCluster::start(LocalClusterConfig {
            run_id: config.run_id.clone(),
            work_dir: config.work_dir.join("cluster"),
            binaries: Binaries {
                etcd: tc.etcd.clone(),
                kube_apiserver: tc.kube_apiserver.clone(),
                nmi: tc.nmi.clone(),
                mic: Some(tc.mic.clone()),
                crds: tc.crds.clone(),
            },
            nodes: nodes_config,
            nmi: NmiConfig {
                extra_args: Vec::new(),
                extra_env: vec![("SSL_CERT_FILE".into(), ca_file.display().to_string())],
            },
        })
        .await
        .map_err(|e| err("starting the local cluster", e))?;

        let mut provider = LocalProvider {
            cluster: Mutex::new(Some(Arc::new(cluster))),
            cloud,
            servers: Mutex::new(Vec::new()),
            nodes: Vec::new(),
            probe: config.probe,
            pods: Mutex::new(HashMap::new()),
            running: tokio::sync::Mutex::new(Running::default()),
            mic: MicConfig {
                node: MIC_NODE.into(),
                cloud_config: mic_cloud_config,
                instance: format!("podid-{}", config.run_id),
                extra_args: Vec::new(),
                extra_env: vec![("SSL_CERT_FILE".into(), ca_file.display().to_string())],
            },
            ca_file,
            environment: vec![
                ("nmi".into(), tc.versions.nmi.clone()),
                ("mic".into(), tc.versions.mic.clone()),
                ("kube-apiserver".into(), tc.versions.kube_apiserver.clone()),
                ("etcd".into(), tc.versions.etcd.clone()),
            ],
        };
        if let Err(e) = provider.serve_cloud_in_nodes().await {
            provider.shutdown().await;
            return Err(e);
        }
        Ok(provider)
    }

    fn cluster(&self) -> Arc<LocalCluster> {
        self.cluster
            .lock()
            .expect("cluster lock")
            .clone()
            .expect("the cluster lives until shutdown")
    }

    async fn serve_cloud_in_nodes(&mut self) -> Result<(), ProviderError> {
        let cloud_hosts: Vec<(IpAddr, String)> = vec![
            (AAD_ADDRESS.into(), "login.microsoftonline.com".into()),
            (ARM_ADDRESS.into(), "management.azure.com".into()),
        ];
        let cluster = self.cluster();
        for (logical, pool) in NODES {
            let node = cluster
                .node(logical)
                .ok_or_else(|| err("finding the node", logical))?;
            let machine = MachineRef::scale_set_instance(pool, 0);
            let bind = |addr: SocketAddr| {
                node.netns
                    .bind_tcp(addr)
                    .map_err(|e| err(&format!("binding {addr} in node {logical}"), e))
            };
            let endpoints = [
                (
                    Endpoint::Imds {
                        machine: machine.clone(),
                        label: logical.to_string(),
                    },
                    SocketAddr::from((podid_local::METADATA_IP, 80)),
                ),
                (Endpoint::Aad, SocketAddr::from((AAD_ADDRESS, 443))),
                (Endpoint::Arm, SocketAddr::from((ARM_ADDRESS, 443))),
                (Endpoint::Blob, SocketAddr::from((BLOB_ADDRESS, 443))),
            ];
            for (endpoint, addr) in endpoints {
                let listener = bind(addr)?;
                let handle = self.cloud.serve(endpoint, listener).await.map_err(|e| {
                    err(&format!("serving the mock cloud at {addr} in {logical}"), e)
                })?;
                self.servers.lock().expect("server list lock").push(handle);
            }
            cluster
                .set_node_hosts(logical, &cloud_hosts)
                .map_err(|e| err(&format!("writing the hosts file of {logical}"), e))?;
            self.nodes.push(NodeInfo {
                logical: logical.to_string(),
                name: logical.to_string(),
                machine,
            });
        }
        Ok(())
    }

    /// How long the cluster's start-up phases took.
    pub fn timings(&self) -> podid_local::StartupTimings {
        self.cluster().timings().clone()
    }

    /// Stops everything the provider started; call once at the end of a run, when no scenario
    /// runs any more (a cluster still in use is torn down when its last user drops it).
    pub async fn shutdown(&self) -> Option<TeardownReport> {
        let servers = std::mem::take(&mut *self.servers.lock().expect("server list lock"));
        for server in servers {
            server.shutdown().await;
        }
        let cluster = self.cluster.lock().expect("cluster lock").take()?;
        match Arc::try_unwrap(cluster) {
            Ok(cluster) => match cluster.shutdown().await {
                Ok(report) => Some(report),
                Err(e) => {
                    tracing::error!("tearing down the local cluster: {e}");
                    None
                }
            },
            Err(_) => {
                tracing::warn!("the local cluster is still in use; it is torn down when released");
                None
            }
        }
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn client(&self) -> kube::Client {
        self.cluster().client()
    }

    fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    fn cloud(&self) -> &MockCloud {
        &self.cloud
    }

    fn environment(&self) -> Vec<(String, String)> {
        self.environment.clone()
    }

    async fn configure_nmi(
        &self,
        mode: NmiMode,
        flags: &[String],
        mic_flags: &[String],
    ) -> Result<(), ProviderError> {
        let mut running = self.running.lock().await;
        let cluster = self.cluster();
        // MIC runs only in standard mode: in managed mode it would assign identities that
        // scenarios expect to be absent.
        let wanted_mic = (mode == NmiMode::Standard).then(|| mic_flags.to_vec());
        if running.mic != wanted_mic {
            if running.mic.take().is_some() {
                cluster
                    .stop_mic()
                    .await
                    .map_err(|e| err("stopping MIC", e))?;
            }
            if let Some(extra_args) = wanted_mic {
                let config = MicConfig {
                    extra_args: extra_args.clone(),
                    ..self.mic.clone()
                };
                let started = std::time::Instant::now();
                cluster
                    .start_mic(&config)
                    .await
                    .map_err(|e| err("starting MIC", e))?;
                tracing::info!(took = ?started.elapsed(), "MIC Active");
                running.mic = Some(extra_args);
            }
        }
        let local_mode = match mode {
            NmiMode::Managed => podid_local::NmiMode::Managed,
            NmiMode::Standard => podid_local::NmiMode::Standard,
        };
        let result = if running.nmi {
            cluster.restart_nmi(local_mode, flags).await
        } else {
            cluster.start_nmi(local_mode, flags).await
        };
        running.nmi = result.is_ok();
        result.map_err(|e| err(&format!("starting NMI in {} mode", mode.as_str()), e))
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<(), ProviderError> {
        self.cluster()
            .ensure_namespace(namespace)
            .await
            .map_err(|e| err(&format!("creating namespace {namespace}"), e))
    }

    async fn create_pod(&self, request: &PodRequest) -> Result<PodHandle, ProviderError> {
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
            owner_replicaset: request.owner_replica_set.clone(),
        };
        let what = format!("pod {}/{}", request.namespace, request.name);
        let pod = self
            .cluster()
            .create_pod(spec)
            .await
            .map_err(|e| err(&format!("creating {what}"), e))?;
        let mut hosts: Vec<(IpAddr, String)> = vec![
            (AAD_ADDRESS.into(), "login.microsoftonline.com".into()),
            (ARM_ADDRESS.into(), "management.azure.com".into()),
        ];
        hosts.extend(request.storage_accounts.iter().map(|a| {
            (
                IpAddr::from(BLOB_ADDRESS),
                format!("{a}.blob.core.windows.net"),
            )
        }));
        self.cluster()
            .set_pod_hosts(&pod, &hosts)
            .map_err(|e| err(&format!("writing the hosts file of {what}"), e))?;
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
        self.pods
            .lock()
            .expect("pod map lock")
            .remove(&(pod.namespace.clone(), pod.name.clone()));
        self.cluster()
            .delete_pod(&pod.namespace, &pod.name)
            .await
            .map_err(|e| err(&format!("deleting pod {}/{}", pod.namespace, pod.name), e))
    }

    async fn run_probe(
        &self,
        pod: &PodHandle,
        args: &[String],
    ) -> Result<ProbeReport, ProviderError> {
        let local = self
            .pods
            .lock()
            .expect("pod map lock")
            .get(&(pod.namespace.clone(), pod.name.clone()))
            .cloned()
            .ok_or_else(|| {
                ProviderError(format!("pod {}/{} is not running", pod.namespace, pod.name))
            })?;
        let cluster = self.cluster();
        let mut command = cluster.pod_command(&local, &self.probe.program);
        command.args(&self.probe.args).args(args).kill_on_drop(true);
        let output = command.output().await.map_err(|e| {
            err(
                &format!("running the probe in pod {}/{}", pod.namespace, pod.name),
                e,
            )
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().rev().find(|l| l.starts_with('{'));
        match line.map(serde_json::from_str::<ProbeReport>) {
            Some(Ok(report)) => Ok(report),
            _ => Err(ProviderError(format!(
                "the probe in pod {}/{} printed no report (exit {}): {}",
                pod.namespace,
                pod.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
        }
    }

    fn ca_file(&self) -> Option<&Path> {
        Some(&self.ca_file)
    }

    async fn save_diagnostics(&self, _since: SystemTime, dir: &Path) -> Vec<SavedFile> {
        let mut out = Vec::new();
        let cluster = self.cluster();
        for node in cluster.nodes() {
            let target = dir.join(format!("nmi-{}.log", node.name));
            match std::fs::read_to_string(&node.nmi_log) {
                Ok(text) => {
                    if std::fs::write(&target, podid_reports::redact(&text)).is_ok() {
                        out.push(SavedFile {
                            name: format!("NMI log ({})", node.name),
                            path: target,
                        });
                    }
                }
                Err(e) => tracing::warn!("cannot read {}: {e}", node.nmi_log.display()),
            }
        }
        let mic_log = cluster.mic_log();
        if mic_log.is_file() {
            let target = dir.join("mic.log");
            match std::fs::read_to_string(&mic_log) {
                Ok(text) => {
                    if std::fs::write(&target, podid_reports::redact(&text)).is_ok() {
                        out.push(SavedFile {
                            name: "MIC log".into(),
                            path: target,
                        });
                    }
                }
                Err(e) => tracing::warn!("cannot read {}: {e}", mic_log.display()),
            }
        }
        out
    }
}
