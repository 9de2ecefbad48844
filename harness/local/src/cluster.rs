//! The local cluster: etcd and kube-apiserver as children, nodes and pods as network namespaces,
//! NMI per node, the harness acting as kubelet.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use podid_netns::{NetNamespace, PodLink, child_dies_with_parent, connect_pod, namespace_name};
use tokio::sync::Mutex;

use crate::LocalError;
use crate::addressing::{NodeAddressing, PodAddressPool};
use crate::apiserver::{ApiServerFlags, apiserver_args, wait_apiserver_ready};
use crate::config::{LocalClusterConfig, MicConfig, NmiMode, NodeConfig, PodSpec};
use crate::crds::install_crds;
use crate::etcd::{etcd_args, wait_etcd_healthy};
use crate::forwarder::LoopbackForwarder;
use crate::iptables::{nmi_jump_present, remove_nmi_chain, require_iptables};
use crate::kubeconfig::render_kubeconfig;
use crate::mic::{MicFlags, mic_args};
use crate::nmi::{NmiNodeFlags, kubelet_config_contents, nmi_args};
use crate::objects::{node_object, node_status_patch, now_rfc3339, pod_object, pod_status_patch};
use crate::pki::ClusterPki;
use crate::ports::free_loopback_ports;
use crate::probe::get_in_namespace;
use crate::process::{ChildProcess, log_tail};
use crate::run_id::is_valid_run_id;
use crate::state::{RecordedProcess, RunState, clean_leftovers};

/// The address NMI intercepts and the mock IMDS listens on inside each node.
pub const METADATA_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// Interface holding a node's local addresses (falls back to `lo` where dummies are missing).
const NODE_LOCAL_INTERFACE: &str = "podid0";
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(60);
const CRD_TIMEOUT: Duration = Duration::from_secs(30);
const NMI_READY_TIMEOUT: Duration = Duration::from_secs(30);
const MIC_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One fake node: its namespace (holding NMI, the metadata address and its extra addresses).
#[derive(Debug, Clone)]
pub struct LocalNode {
    /// Node name.
    pub name: String,
    /// The node's network namespace.
    pub netns: NetNamespace,
    /// The node's address plan (gateway `10.244.N.1`, host IP `10.240.0.N`).
    pub addressing: NodeAddressing,
    /// NMI's log file (appended across restarts).
    pub nmi_log: PathBuf,
    /// NMI's `/healthz` port on the node's loopback.
    pub probe_port: u16,
    /// NMI's metrics port.
    pub metrics_port: u16,
    kubelet_config: PathBuf,
}

impl LocalNode {
    /// The gateway of every pod on this node.
    pub fn pod_gateway(&self) -> Ipv4Addr {
        self.addressing.gateway()
    }
}

/// A pod the harness created: its API object's identity and its network namespace.
#[derive(Debug, Clone)]
pub struct LocalPod {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node it runs on.
    pub node: String,
    /// Its `status.podIP`, held by `eth0` in its namespace.
    pub ip: Ipv4Addr,
    /// Its network namespace.
    pub netns: NetNamespace,
    host: u8,
}

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

/// What [`LocalCluster::shutdown`] did.
#[derive(Debug, Clone, Default)]
pub struct TeardownReport {
    /// Processes stopped (name and pid).
    pub processes_stopped: Vec<String>,
    /// Network namespaces deleted.
    pub namespaces_deleted: Vec<String>,
    /// Anything that could not be undone.
    pub errors: Vec<String>,
}

/// Everything that must be undone at teardown.
#[derive(Default)]
struct Owned {
    etcd: Option<ChildProcess>,
    apiserver: Option<ChildProcess>,
    nmi: BTreeMap<String, ChildProcess>,
    mic: Option<ChildProcess>,
    forwarders: Vec<LoopbackForwarder>,
    pools: BTreeMap<String, PodAddressPool>,
    pods: BTreeMap<(String, String), LocalPod>,
    state: Option<RunState>,
}

impl Owned {
    fn record_process(&mut self, process: &ChildProcess) -> Result<(), LocalError> {
        if let Some(state) = &mut self.state {
            state.processes.retain(|p| p.name != process.name());
            state
                .processes
                .extend(RecordedProcess::of(process.name(), process.pid()));
            state.save()?;
        }
        Ok(())
    }

    fn forget_process(&mut self, name: &str) -> Result<(), LocalError> {
        if let Some(state) = &mut self.state {
            state.processes.retain(|p| p.name != name);
            state.save()?;
        }
        Ok(())
    }

    fn record_namespace(&mut self, name: &str, add: bool) -> Result<(), LocalError> {
        if let Some(state) = &mut self.state {
            state.namespaces.retain(|n| n != name);
            if add {
                state.namespaces.push(name.to_string());
            }
            state.save()?;
        }
        Ok(())
    }

    /// Synchronous teardown (for `Drop` and failed starts): SIGKILL everything, delete namespaces.
    fn teardown_blocking(&mut self) -> TeardownReport {
        let mut report = TeardownReport::default();
        self.forwarders.clear();
        let processes = std::mem::take(&mut self.nmi)
            .into_values()
            .chain(self.mic.take())
            .chain(self.apiserver.take())
            .chain(self.etcd.take());
        for mut process in processes {
            process.kill_blocking(Duration::from_secs(3));
            report
                .processes_stopped
                .push(format!("{} (pid {})", process.name(), process.pid()));
        }
        self.delete_namespaces(&mut report);
        report
    }

    fn delete_namespaces(&mut self, report: &mut TeardownReport) {
        self.pods.clear();
        if let Some(state) = self.state.take() {
            // Pods first: their veths go with them, then the nodes.
            let (pods, nodes): (Vec<_>, Vec<_>) =
                state.namespaces.iter().partition(|n| n.contains("-pod-"));
            for name in pods.into_iter().chain(nodes) {
                match NetNamespace::delete_by_name(name) {
                    Ok(()) => report.namespaces_deleted.push(name.clone()),
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
            RunState::remove(&state.run_id);
        }
    }
}

/// A running local cluster. Dropping it kills everything it started and deletes its namespaces.
pub struct LocalCluster {
    config: LocalClusterConfig,
    client: kube::Client,
    kubeconfig: PathBuf,
    nodes: Vec<LocalNode>,
    timings: StartupTimings,
    owned: Mutex<Owned>,
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
        let mut owned = Owned {
            state: Some(RunState {
                run_id: config.run_id.clone(),
                owner: RecordedProcess::of("podid", std::process::id())
                    .ok_or_else(|| LocalError::Config("cannot read own /proc entry".into()))?,
                processes: Vec::new(),
                namespaces: Vec::new(),
            }),
            ..Owned::default()
        };
        match start_parts(&config, &mut owned).await {
            Ok(parts) => Ok(LocalCluster {
                config,
                client: parts.client,
                kubeconfig: parts.kubeconfig,
                nodes: parts.nodes,
                timings: parts.timings,
                owned: Mutex::new(owned),
            }),
            Err(e) => {
                owned.teardown_blocking();
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

    /// Starts NMI on every node in `mode` (configured flags, then `extra_args`) and waits until
    /// each `/healthz` answers `Active`; on failure the error carries the end of NMI's log.
    pub async fn start_nmi(&self, mode: NmiMode, extra_args: &[String]) -> Result<(), LocalError> {
        let mut owned = self.owned.lock().await;
        for node in &self.nodes {
            if owned.nmi.contains_key(&node.name) {
                return Err(LocalError::Config(format!(
                    "NMI already runs on node {}",
                    node.name
                )));
            }
            let process = self.spawn_nmi(node, mode, extra_args)?;
            owned.record_process(&process)?;
            owned.nmi.insert(node.name.clone(), process);
        }
        for node in &self.nodes {
            let process = owned.nmi.get_mut(&node.name).expect("just inserted");
            wait_active(
                &format!("NMI on node {}", node.name),
                node,
                node.probe_port,
                process,
                NMI_READY_TIMEOUT,
            )
            .await?;
        }
        // Healthy means caches filled, not watches open: wait for the watches too, so objects a
        // scenario creates next are not missed (managed-mode NMI does not retry).
        let watched: &[&str] = match mode {
            NmiMode::Managed => &[
                "azureidentities",
                "azureidentitybindings",
                "azurepodidentityexceptions",
            ],
            NmiMode::Standard => &["azureassignedidentities"],
        };
        crate::watchers::wait_for_watches(
            &self.client,
            watched,
            self.nodes.len() as u64,
            NMI_READY_TIMEOUT,
        )
        .await
    }

    /// Stops NMI everywhere (letting it remove its iptables chain, without its 10 s exit sleep)
    /// and starts it again in `mode` with `extra_args`.
    pub async fn restart_nmi(
        &self,
        mode: NmiMode,
        extra_args: &[String],
    ) -> Result<(), LocalError> {
        {
            let mut owned = self.owned.lock().await;
            let running = std::mem::take(&mut owned.nmi);
            drop(owned);
            for (name, mut process) in running {
                let node = self.node(&name).expect("NMI runs only on known nodes");
                stop_nmi(node, &mut process).await;
            }
        }
        self.start_nmi(mode, extra_args).await
    }

    /// Whether MIC runs (was started and has not been stopped).
    pub async fn mic_running(&self) -> bool {
        self.owned.lock().await.mic.is_some()
    }

    /// MIC's log file (appended across restarts).
    pub fn mic_log(&self) -> PathBuf {
        self.config.work_dir.join("logs").join("mic.log")
    }

    /// Starts MIC inside `config.node`'s namespace (like a hostNetwork pod: that node's hosts
    /// file, API forwarder and cloud addresses apply) and waits until its `/healthz` answers
    /// `Active` (leader, caches synced). MIC uses the admin kubeconfig and
    /// `MIC_POD_NAMESPACE=default`.
    pub async fn start_mic(&self, config: &MicConfig) -> Result<(), LocalError> {
        let program =
            self.config
                .binaries
                .mic
                .clone()
                .ok_or_else(|| LocalError::MissingProgram {
                    program: "mic".into(),
                    hint: "no MIC binary was configured (Binaries::mic)".into(),
                })?;
        let node = self
            .node(&config.node)
            .ok_or_else(|| LocalError::NotFound {
                kind: "node",
                name: config.node.clone(),
            })?;
        let mut owned = self.owned.lock().await;
        if owned.mic.is_some() {
            return Err(LocalError::Config("MIC already runs".into()));
        }
        let probe_port = free_port_in(&node.netns)?;
        let metrics_port = free_port_in(&node.netns)?;
        let args = mic_args(
            &MicFlags {
                kubeconfig: &self.kubeconfig,
                cloud_config: &config.cloud_config,
                instance: &config.instance,
                probe_port,
                metrics_port,
            },
            &config.extra_args,
        );
        let log = self.mic_log();
        append(
            &log,
            &format!(
                "=== podid: starting MIC in node {} {} ===\n",
                node.name,
                args.join(" ")
            ),
        )?;
        let mut cmd = node.netns.exec_command(&program);
        cmd.args(&args)
            .env("MIC_POD_NAMESPACE", "default")
            .env_remove("KUBECONFIG")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("AZURE_ENVIRONMENT_FILEPATH");
        for (key, value) in &config.extra_env {
            cmd.env(key, value);
        }
        let process = ChildProcess::spawn("mic", cmd, &log)?;
        owned.record_process(&process)?;
        let process = owned.mic.insert(process);
        let ready = wait_active("MIC", node, probe_port, process, MIC_READY_TIMEOUT).await;
        if ready.is_err() {
            if let Some(mut process) = owned.mic.take() {
                process.kill().await;
            }
            owned.forget_process("mic")?;
        }
        ready
    }

    /// Stops MIC (SIGKILL: it keeps no local state; its leader lease is re-acquired at once by
    /// the next MIC of this run, which uses the same instance name). No-op when it does not run.
    pub async fn stop_mic(&self) -> Result<(), LocalError> {
        let mut owned = self.owned.lock().await;
        if let Some(mut process) = owned.mic.take() {
            process.kill().await;
            owned.forget_process("mic")?;
            tracing::debug!(pid = process.pid(), "MIC stopped");
        }
        Ok(())
    }

    /// Creates a pod on its node: the Pod object, its namespace and veth with the node's next
    /// address, then a Running/Ready status with that podIP.
    pub async fn create_pod(&self, spec: PodSpec) -> Result<LocalPod, LocalError> {
        let node = self.node(&spec.node).ok_or_else(|| LocalError::NotFound {
            kind: "node",
            name: spec.node.clone(),
        })?;
        let key = (spec.namespace.clone(), spec.name.clone());
        let host = {
            let mut owned = self.owned.lock().await;
            if owned.pods.contains_key(&key) {
                return Err(LocalError::Config(format!(
                    "pod {}/{} already exists",
                    spec.namespace, spec.name
                )));
            }
            owned
                .pools
                .entry(node.name.clone())
                .or_default()
                .allocate()
                .ok_or_else(|| LocalError::AddressesExhausted {
                    node: node.name.clone(),
                })?
        };
        match self.wire_pod(node, &spec, host).await {
            Ok(pod) => {
                self.owned.lock().await.pods.insert(key, pod.clone());
                Ok(pod)
            }
            Err(e) => {
                let _ = self
                    .unwire_pod(&spec.namespace, &spec.name, node, host)
                    .await;
                Err(e)
            }
        }
    }

    /// Deletes a pod (grace 0) and its namespace, and frees its address.
    pub async fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), LocalError> {
        let pod = self
            .owned
            .lock()
            .await
            .pods
            .remove(&(namespace.to_string(), name.to_string()))
            .ok_or_else(|| LocalError::NotFound {
                kind: "pod",
                name: format!("{namespace}/{name}"),
            })?;
        let node = self.node(&pod.node).expect("pods live on known nodes");
        self.unwire_pod(namespace, name, node, pod.host).await
    }

    /// A command running `program` inside the pod's namespace via `ip netns exec`, so the pod's
    /// hosts file (see [`LocalCluster::set_pod_hosts`]) applies.
    pub fn pod_command(&self, pod: &LocalPod, program: &Path) -> tokio::process::Command {
        pod.netns.exec_command(program)
    }

    /// Sets the host names the pod resolves (its `/etc/netns/<ns>/hosts`).
    pub fn set_pod_hosts(
        &self,
        pod: &LocalPod,
        entries: &[(IpAddr, String)],
    ) -> Result<(), LocalError> {
        Ok(pod.netns.write_hosts(entries)?)
    }

    /// Sets the host names a node (and so its NMI, from its next start) resolves.
    pub fn set_node_hosts(
        &self,
        node: &str,
        entries: &[(IpAddr, String)],
    ) -> Result<(), LocalError> {
        let node = self.node(node).ok_or_else(|| LocalError::NotFound {
            kind: "node",
            name: node.to_string(),
        })?;
        Ok(node.netns.write_hosts(entries)?)
    }

    /// Creates Namespace `namespace` and its `default` ServiceAccount if missing.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), LocalError> {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": namespace}
        }))
        .expect("static object");
        create_if_missing(&Api::<Namespace>::all(self.client.clone()), &ns)
            .await
            .map_err(|e| LocalError::kube(format!("creating namespace {namespace}"), e))?;
        let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "default", "namespace": namespace}
        }))
        .expect("static object");
        create_if_missing(
            &Api::<ServiceAccount>::namespaced(self.client.clone(), namespace),
            &sa,
        )
        .await
        .map_err(|e| LocalError::kube(format!("creating serviceaccount {namespace}/default"), e))
    }

    /// `iptables -t nat -S` as seen inside a node (NMI's `aad-metadata` chain lives there).
    pub async fn node_nat_rules(&self, node: &str) -> Result<String, LocalError> {
        let node = self.node(node).ok_or_else(|| LocalError::NotFound {
            kind: "node",
            name: node.to_string(),
        })?;
        let out = node
            .netns
            .command("iptables")
            .args(["-w", "-t", "nat", "-S"])
            .output()
            .await
            .map_err(|e| {
                LocalError::io(format!("listing nat rules in {}", node.netns.name()), e)
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops everything (NMI, kube-apiserver, etcd), deletes every namespace and the state file.
    pub async fn shutdown(self) -> Result<TeardownReport, LocalError> {
        let mut owned = self.owned.lock().await;
        let mut report = TeardownReport::default();
        owned.forwarders.clear();
        // NMI's iptables live in its node namespace and vanish with it: no SIGTERM cleanup needed.
        let nmi_and_mic: Vec<ChildProcess> = std::mem::take(&mut owned.nmi)
            .into_values()
            .chain(owned.mic.take())
            .collect();
        for mut process in nmi_and_mic {
            process.kill().await;
            report
                .processes_stopped
                .push(format!("{} (pid {})", process.name(), process.pid()));
        }
        // The control plane is thrown away with its data directory: a graceful stop only costs
        // time (kube-apiserver drains for seconds), so it is killed outright.
        for mut process in owned.apiserver.take().into_iter().chain(owned.etcd.take()) {
            process.kill().await;
            report
                .processes_stopped
                .push(format!("{} (pid {})", process.name(), process.pid()));
        }
        owned.delete_namespaces(&mut report);
        Ok(report)
    }

    fn spawn_nmi(
        &self,
        node: &LocalNode,
        mode: NmiMode,
        extra_args: &[String],
    ) -> Result<ChildProcess, LocalError> {
        let flags = NmiNodeFlags {
            node: &node.name,
            kubelet_config: &node.kubelet_config,
            probe_port: node.probe_port,
            metrics_port: node.metrics_port,
        };
        let args = nmi_args(&flags, mode, &self.config.nmi, extra_args);
        let header = format!("=== podid: starting NMI {} ===\n", args.join(" "));
        append(&node.nmi_log, &header)?;
        let mut cmd = node.netns.exec_command(&self.config.binaries.nmi);
        cmd.args(&args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("MSI_ENDPOINT")
            .env_remove("MSI_SECRET");
        for (key, value) in &self.config.nmi.extra_env {
            cmd.env(key, value);
        }
        ChildProcess::spawn(&format!("nmi-{}", node.name), cmd, &node.nmi_log)
    }

    async fn wire_pod(
        &self,
        node: &LocalNode,
        spec: &PodSpec,
        host: u8,
    ) -> Result<LocalPod, LocalError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &spec.namespace);
        let object: Pod =
            serde_json::from_value(pod_object(spec, &uuid::Uuid::new_v4().to_string())).map_err(
                |e| LocalError::Parse {
                    what: format!("pod {}", spec.name),
                    message: e.to_string(),
                },
            )?;
        let what = format!("pod {}/{}", spec.namespace, spec.name);
        pods.create(&PostParams::default(), &object)
            .await
            .map_err(|e| LocalError::kube(format!("creating {what}"), e))?;

        let ns_name = pod_namespace_name(&self.config.run_id, node.addressing.index, host);
        let _ = NetNamespace::delete_by_name(&ns_name);
        self.owned.lock().await.record_namespace(&ns_name, true)?;
        let netns = NetNamespace::create(&ns_name)?;
        let ip = node.addressing.pod_ip(host);
        let link = PodLink {
            node_interface: pod_interface_name(host),
            pod_interface: "eth0".into(),
            gateway: node.addressing.gateway(),
            pod_ip: ip,
        };
        connect_pod(&node.netns, &netns, &link).await?;

        let status = pod_status_patch(ip, node.addressing.host_ip(), &now_rfc3339());
        pods.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| LocalError::kube(format!("setting the status of {what}"), e))?;
        Ok(LocalPod {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            node: node.name.clone(),
            ip,
            netns,
            host,
        })
    }

    async fn unwire_pod(
        &self,
        namespace: &str,
        name: &str,
        node: &LocalNode,
        host: u8,
    ) -> Result<(), LocalError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        let deleted = match pods.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(LocalError::kube(
                format!("deleting pod {namespace}/{name}"),
                e,
            )),
        };
        let ns_name = pod_namespace_name(&self.config.run_id, node.addressing.index, host);
        // Delete the veth explicitly: a namespace (and its veth end) outlives its name while any
        // descriptor, e.g. a caller's `LocalPod`, still refers to it.
        let unlinked = match node.netns.netlink().await {
            Ok(netlink) => netlink.delete_link(&pod_interface_name(host)).await,
            Err(e) => Err(e),
        };
        let removed = NetNamespace::delete_by_name(&ns_name).and(unlinked);
        let mut owned = self.owned.lock().await;
        owned.record_namespace(&ns_name, false)?;
        if let Some(pool) = owned.pools.get_mut(&node.name) {
            pool.release(host);
        }
        deleted?;
        Ok(removed?)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let owned = self.owned.get_mut();
        if owned.state.is_some() {
            let report = owned.teardown_blocking();
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
}

async fn start_parts(
    config: &LocalClusterConfig,
    owned: &mut Owned,
) -> Result<StartedParts, LocalError> {
    let work = &config.work_dir;
    let logs = work.join("logs");
    fs::create_dir_all(&logs)
        .map_err(|e| LocalError::io(format!("creating {}", logs.display()), e))?;
    owned.state.as_ref().expect("state set").save()?;
    let mut timings = StartupTimings::default();

    let ports = free_loopback_ports(3)?;
    let (etcd_port, peer_port, api_port) = (ports[0], ports[1], ports[2]);

    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&config.binaries.etcd);
    cmd.args(etcd_args(&work.join("etcd"), etcd_port, peer_port));
    child_dies_with_parent(&mut cmd);
    let etcd = owned
        .etcd
        .insert(ChildProcess::spawn("etcd", cmd, &logs.join("etcd.log"))?);
    wait_etcd_healthy(etcd, etcd_port, ETCD_READY_TIMEOUT).await?;
    let etcd_pid = (etcd.name().to_string(), etcd.pid());
    if let Some(state) = &mut owned.state {
        state
            .processes
            .extend(RecordedProcess::of(&etcd_pid.0, etcd_pid.1));
    }
    timings.etcd_ready = started.elapsed();

    let pki = ClusterPki::generate()?;
    let pki_dir = work.join("pki");
    let pki_files = pki.write(&pki_dir)?;
    let kubeconfig = work.join("admin.kubeconfig");
    let kubeconfig_text = render_kubeconfig(
        &format!("https://127.0.0.1:{api_port}"),
        &pki.ca_cert,
        &pki.admin_cert,
        &pki.admin_key,
    );
    fs::write(&kubeconfig, &kubeconfig_text)
        .map_err(|e| LocalError::io(format!("writing {}", kubeconfig.display()), e))?;
    let client = client_from_kubeconfig(&kubeconfig_text).await?;

    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&config.binaries.kube_apiserver);
    cmd.args(apiserver_args(&ApiServerFlags {
        etcd_port,
        secure_port: api_port,
        pki: &pki_files,
        cert_dir: &pki_dir,
    }));
    child_dies_with_parent(&mut cmd);
    let apiserver = owned.apiserver.insert(ChildProcess::spawn(
        "kube-apiserver",
        cmd,
        &logs.join("kube-apiserver.log"),
    )?);
    let recorded = RecordedProcess::of(apiserver.name(), apiserver.pid());
    if let Some(state) = &mut owned.state {
        state.processes.extend(recorded);
        state.save()?;
    }
    let apiserver = owned.apiserver.as_mut().expect("just set");
    wait_apiserver_ready(apiserver, &client, APISERVER_READY_TIMEOUT).await?;
    timings.apiserver_ready = started.elapsed();

    let started = Instant::now();
    install_crds(&client, &config.binaries.crds, CRD_TIMEOUT).await?;
    timings.crds_established = started.elapsed();

    let started = Instant::now();
    let mut nodes = Vec::new();
    for node in &config.nodes {
        nodes.push(start_node(config, node, api_port, &client, owned).await?);
    }
    timings.nodes_ready = started.elapsed();

    Ok(StartedParts {
        client,
        kubeconfig,
        nodes,
        timings,
    })
}

/// Creates a node's namespace (loopback, local addresses, route_localnet, API forwarder), its
/// kubelet-config file and its Ready Node object.
async fn start_node(
    config: &LocalClusterConfig,
    node: &NodeConfig,
    api_port: u16,
    client: &kube::Client,
    owned: &mut Owned,
) -> Result<LocalNode, LocalError> {
    let addressing = NodeAddressing {
        index: node.pod_cidr_index,
    };
    let ns_name = namespace_name(&config.run_id, &format!("node-{}", node.pod_cidr_index));
    owned.record_namespace(&ns_name, true)?;
    let netns = NetNamespace::create(&ns_name)?;
    let netlink = netns.netlink().await?;
    netlink.set_up("lo").await?;
    let mut addresses = vec![METADATA_IP, addressing.host_ip()];
    addresses.extend(node.extra_addresses.iter().copied());
    netlink
        .add_local_addresses(NODE_LOCAL_INTERFACE, &addresses)
        .await?;
    netns.write_sysctl("net.ipv4.conf.all.route_localnet", "1")?;
    owned
        .forwarders
        .push(LoopbackForwarder::start(&netns, api_port)?);

    let probe_port = free_port_in(&netns)?;
    let metrics_port = free_port_in(&netns)?;
    let kubelet_config = config.work_dir.join(format!("kubelet-{}.conf", node.name));
    fs::write(&kubelet_config, kubelet_config_contents(&node.name))
        .map_err(|e| LocalError::io(format!("writing {}", kubelet_config.display()), e))?;

    let nodes: Api<Node> = Api::all(client.clone());
    let object: Node =
        serde_json::from_value(node_object(node)).map_err(|e| LocalError::Parse {
            what: format!("node {}", node.name),
            message: e.to_string(),
        })?;
    nodes
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| LocalError::kube(format!("creating node {}", node.name), e))?;
    nodes
        .patch_status(
            &node.name,
            &PatchParams::default(),
            &Patch::Merge(&node_status_patch(node, &now_rfc3339())),
        )
        .await
        .map_err(|e| LocalError::kube(format!("setting node {} Ready", node.name), e))?;

    Ok(LocalNode {
        name: node.name.clone(),
        netns,
        addressing,
        nmi_log: config
            .work_dir
            .join("logs")
            .join(format!("nmi-{}.log", node.name)),
        probe_port,
        metrics_port,
        kubelet_config,
    })
}

/// Polls `/healthz` on `port` inside the node until it answers `Active` (NMI and MIC alike).
async fn wait_active(
    component: &str,
    node: &LocalNode,
    port: u16,
    process: &mut ChildProcess,
    timeout: Duration,
) -> Result<(), LocalError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < timeout {
        if let Some(status) = process.exited() {
            last = format!("exited with {status}");
            break;
        }
        match get_in_namespace(&node.netns, addr, "/healthz", Duration::from_secs(2)).await {
            Ok((200, body)) if body.trim() == "Active" => return Ok(()),
            Ok((status, body)) => last = format!("/healthz answered {status} {body:?}"),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(LocalError::NotReady {
        component: component.to_string(),
        waited_secs: start.elapsed().as_secs(),
        reason: last,
        log: process.log().to_path_buf(),
        log_tail: log_tail(process.log(), 30),
    })
}

/// SIGTERM, wait for NMI to remove its PREROUTING jump, then SIGKILL instead of waiting out its
/// 10 s exit sleep; if it never cleans up, SIGKILL and remove the chain ourselves.
async fn stop_nmi(node: &LocalNode, process: &mut ChildProcess) {
    let started = Instant::now();
    process.signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut cleaned = false;
    while Instant::now() < deadline {
        if !nmi_jump_present(&node.netns).await {
            cleaned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process.kill().await;
    if !cleaned {
        remove_nmi_chain(&node.netns).await;
    }
    tracing::debug!(node = %node.name, cleaned_by_nmi = cleaned, took = ?started.elapsed(), "NMI stopped");
}

/// A port that is free on the loopback of `netns`.
fn free_port_in(netns: &NetNamespace) -> Result<u16, LocalError> {
    netns
        .bind_tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LocalError::io(format!("finding a free port in {}", netns.name()), e))
}

/// The node-side interface name of pod `host`.
fn pod_interface_name(host: u8) -> String {
    format!("vp{host}")
}

/// The namespace name of pod `host` on node `index`.
fn pod_namespace_name(run_id: &str, index: u8, host: u8) -> String {
    namespace_name(run_id, &format!("pod-{index}-{host}"))
}

async fn client_from_kubeconfig(text: &str) -> Result<kube::Client, LocalError> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(text).map_err(|e| LocalError::Parse {
        what: "the admin kubeconfig".into(),
        message: e.to_string(),
    })?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| LocalError::Parse {
        what: "the admin kubeconfig".into(),
        message: e.to_string(),
    })?;
    kube::Client::try_from(config).map_err(|e| LocalError::kube("building the admin client", e))
}

async fn create_if_missing<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn append(path: &Path, text: &str) -> Result<(), LocalError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| LocalError::io(format!("creating {}", dir.display()), e))?;
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| LocalError::io(format!("writing {}", path.display()), e))
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
    use crate::config::{Binaries, NmiConfig};

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

    #[test]
    fn pod_namespaces_are_named_by_node_and_host() {
        assert_eq!(pod_namespace_name("abc123", 2, 7), "podid-abc123-pod-2-7");
    }
}
