//! kind clusters driven through the real `kind` CLI: created on a docker network podid owns
//! (so the caller knows its bridge, subnet and gateway), given pod networking by [`crate::cni`],
//! waited on until every node is Ready, and removed without leftovers.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use podid_wait::{Check, Poll};

use crate::cni::{self, NodeNet};
use crate::config::{self, ClusterSpec};
use crate::docker::{Docker, NetworkInfo};
use crate::error::{KindError, Result};
use crate::net::{Ipv4Cidr, free_subnet, host_routes};
use crate::process::Cmd;
use crate::progress::{Outcome, Phase, Progress};
use crate::shim::DockerShim;

/// kind's label naming a node container's cluster.
pub const KIND_CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// The label every podid-created docker network carries, with the run id as value.
pub const RUN_LABEL: &str = "podid.run";
/// The label marking a docker network as a podid kind cluster's, with the cluster as value.
pub const NETWORK_LABEL: &str = "podid.kind.network";
/// The label naming the process that owns a cluster's network, so a clean-up can tell a live
/// run's cluster from a killed run's.
pub const OWNER_PID_LABEL: &str = "podid.pid";
/// Where cluster networks' subnets are taken from (one /24 each).
pub const NETWORK_POOL: &str = "172.29.0.0/16";

/// The kind CLI, possibly behind the docker shim.
#[derive(Debug, Clone)]
pub struct KindTool {
    binary: PathBuf,
    shim: Option<DockerShim>,
}

impl KindTool {
    /// kind talking to docker directly.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            shim: None,
        }
    }

    /// kind with `shim` first in its PATH.
    pub fn with_shim(binary: impl Into<PathBuf>, shim: DockerShim) -> Self {
        Self {
            binary: binary.into(),
            shim: Some(shim),
        }
    }

    /// kind, behind the shim only if this host needs it: a container from `probe_image` (any
    /// image with `/bin/true`, such as the node image) is started with `--privileged`; if that
    /// is refused but the replacement works, the shim is written into `shim_dir`.
    pub async fn detect(
        docker: &Docker,
        binary: impl Into<PathBuf>,
        probe_image: &str,
        shim_dir: &Path,
    ) -> Result<Self> {
        let binary = binary.into();
        if !binary.is_file() {
            return Err(KindError::MissingInput {
                what: "the kind binary".to_owned(),
                path: binary,
            });
        }
        if docker.needs_privileged_shim(probe_image).await? {
            let shim = DockerShim::write(shim_dir, &docker.resolved_program()?)?;
            tracing::info!(
                shim = %shim.dir().display(),
                "docker refuses --privileged here; kind runs behind the docker shim"
            );
            Ok(Self::with_shim(binary, shim))
        } else {
            Ok(Self::new(binary))
        }
    }

    /// The kind binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The shim, if kind runs behind one.
    pub fn shim(&self) -> Option<&DockerShim> {
        self.shim.as_ref()
    }

    fn cmd(&self, action: impl Into<String>) -> Cmd {
        let cmd = Cmd::new(&self.binary, action);
        match &self.shim {
            Some(shim) => cmd.env("PATH", shim.path_env()),
            None => cmd,
        }
    }

    /// `kind version`.
    pub async fn version(&self) -> Result<String> {
        Ok(self
            .cmd("asking kind for its version")
            .arg("version")
            .output()
            .await?
            .trim()
            .to_owned())
    }

    /// `kind get clusters`.
    pub async fn clusters(&self) -> Result<Vec<String>> {
        let out = self
            .cmd("listing kind clusters")
            .args(["get", "clusters"])
            .output()
            .await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("No kind clusters"))
            .map(str::to_owned)
            .collect())
    }

    /// `kind delete cluster --name`.
    pub async fn delete_cluster(&self, name: &str, kubeconfig: Option<&Path>) -> Result<()> {
        let mut cmd = self
            .cmd(format!("deleting kind cluster {name}"))
            .args(["delete", "cluster", "--name", name]);
        if let Some(k) = kubeconfig {
            cmd = cmd.arg("--kubeconfig").arg(k);
        }
        cmd.run().await
    }
}

/// A node of a running cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindNode {
    /// Node (and container) name.
    pub name: String,
    /// Whether it runs the control plane.
    pub control_plane: bool,
    /// Its address on the cluster's docker network.
    pub ip: Ipv4Addr,
    /// Its pod range.
    pub pod_cidr: Ipv4Cidr,
    /// The provider ID it was configured with (`None`: kind's default).
    pub provider_id: Option<String>,
}

/// How long creation took, phase by phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterTimings {
    /// Creating the docker network.
    pub network: Duration,
    /// `kind create cluster` (nodes up, kubeadm done).
    pub create: Duration,
    /// Waiting for pod ranges and configuring pod networking.
    pub cni: Duration,
    /// From pod networking configured to every node Ready.
    pub ready: Duration,
}

impl ClusterTimings {
    /// Everything together.
    pub fn total(&self) -> Duration {
        self.network + self.create + self.cni + self.ready
    }
}

/// Knobs for [`KindCluster::create`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// How long nodes may take to get pod ranges, and then to become Ready.
    pub ready_timeout: Duration,
    /// Keep the nodes and network of a failed creation for inspection (`kind --retain`).
    pub keep_on_failure: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            ready_timeout: Duration::from_secs(240),
            keep_on_failure: false,
        }
    }
}

/// A running kind cluster.
pub struct KindCluster {
    spec: ClusterSpec,
    docker: Docker,
    kind: KindTool,
    network: NetworkInfo,
    nodes: Vec<KindNode>,
    kubeconfig: PathBuf,
    timings: ClusterTimings,
    client: kube::Client,
}

impl std::fmt::Debug for KindCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindCluster")
            .field("name", &self.spec.name)
            .field("network", &self.network)
            .field("nodes", &self.nodes)
            .field("kubeconfig", &self.kubeconfig)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

/// Creates the cluster's docker network: a bridge with a free /24 from [`NETWORK_POOL`] that
/// overlaps neither another docker network nor a host route, labelled with the run id.
pub async fn create_network(docker: &Docker, name: &str, run_id: &str) -> Result<NetworkInfo> {
    let pool: Ipv4Cidr = NETWORK_POOL.parse().expect("valid pool");
    let labels = vec![
        (RUN_LABEL.to_owned(), run_id.to_owned()),
        (NETWORK_LABEL.to_owned(), name.to_owned()),
        (OWNER_PID_LABEL.to_owned(), std::process::id().to_string()),
    ];
    let mut last = None;
    for _ in 0..5 {
        let mut used = docker.network_subnets().await?;
        used.extend(host_routes());
        let subnet = free_subnet(pool, 24, &used).ok_or_else(|| {
            KindError::invalid(
                format!("creating docker network {name}"),
                format!("no free /24 left in {NETWORK_POOL}"),
            )
        })?;
        match docker
            .network_create(name, subnet, subnet.host(1), &labels)
            .await
        {
            Ok(info) => return Ok(info),
            // Another process took the subnet between the look and the create: look again.
            Err(e) if e.to_string().contains("overlap") => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("the loop ran"))
}

impl KindCluster {
    /// Creates the cluster described by `spec` with the real kind CLI on a new docker network
    /// (see [`create_network`]), configures pod networking and waits until every node is Ready.
    /// The kind config and kubeconfig are written into `workdir`. On failure, everything
    /// created is removed again (unless `options.keep_on_failure`).
    pub async fn create(
        docker: &Docker,
        kind: &KindTool,
        spec: &ClusterSpec,
        run_id: &str,
        workdir: &Path,
        options: &CreateOptions,
        progress: &dyn Progress,
    ) -> Result<KindCluster> {
        docker.ping().await?;
        let started = Instant::now();
        let network = create_network(docker, &spec.name, run_id).await?;
        let network_took = started.elapsed();
        let result = Self::create_on_network(
            docker,
            kind,
            spec,
            network.clone(),
            workdir,
            options,
            progress,
        )
        .await;
        match result {
            Ok(mut cluster) => {
                cluster.timings.network = network_took;
                Ok(cluster)
            }
            Err(e) => {
                if !options.keep_on_failure {
                    if let Err(cleanup) = docker.network_rm(&network.name).await {
                        tracing::warn!(error = %cleanup, "removing the failed cluster's network");
                    }
                }
                Err(e)
            }
        }
    }

    /// Like [`KindCluster::create`], on a network the caller created beforehand (e.g. with
    /// [`create_network`], to prepare addresses on its bridge first). The cluster owns the
    /// network from then on: [`KindCluster::delete`] removes it. If creation fails, the
    /// cluster's nodes are removed (unless `options.keep_on_failure`) but the network is left
    /// to the caller.
    pub async fn create_on_network(
        docker: &Docker,
        kind: &KindTool,
        spec: &ClusterSpec,
        network: NetworkInfo,
        workdir: &Path,
        options: &CreateOptions,
        progress: &dyn Progress,
    ) -> Result<KindCluster> {
        std::fs::create_dir_all(workdir).map_err(KindError::io("creating", workdir))?;
        let result = Self::bring_up(docker, kind, spec, network, workdir, options, progress).await;
        if result.is_err() && !options.keep_on_failure {
            // kind removes its nodes when `create` fails; this covers the steps after it.
            if let Err(cleanup) = kind.delete_cluster(&spec.name, None).await {
                tracing::warn!(error = %cleanup, "removing the failed cluster");
            }
        }
        result
    }

    async fn bring_up(
        docker: &Docker,
        kind: &KindTool,
        spec: &ClusterSpec,
        network: NetworkInfo,
        workdir: &Path,
        options: &CreateOptions,
        progress: &dyn Progress,
    ) -> Result<KindCluster> {
        let mut timings = ClusterTimings::default();
        let config_path = workdir.join("kind-config.yaml");
        let kubeconfig = workdir.join("kubeconfig");
        let config = config::render(spec)?;
        std::fs::write(&config_path, &config)
            .map_err(KindError::io("writing the kind config", &config_path))?;

        let phase = Phase::CreateCluster {
            name: spec.name.clone(),
        };
        progress.started(&phase);
        let started = Instant::now();
        let mut cmd = kind
            .cmd(format!("creating kind cluster {}", spec.name))
            .env("KIND_EXPERIMENTAL_DOCKER_NETWORK", &network.name)
            .args([
                "create",
                "cluster",
                "--name",
                &spec.name,
                "--image",
                &spec.node_image,
            ])
            .arg("--config")
            .arg(&config_path)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--wait", "0s"]);
        if options.keep_on_failure {
            cmd = cmd.arg("--retain");
        }
        cmd.run().await?;
        timings.create = started.elapsed();
        progress.finished(&phase, Outcome::Done, timings.create);

        let client = client_from_kubeconfig(&kubeconfig).await?;

        let phase = Phase::Cni;
        progress.started(&phase);
        let started = Instant::now();
        let names = spec.node_names();
        let pod_cidrs = wait_for_pod_cidrs(&client, &names, options.ready_timeout).await?;
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ip = docker.container_ip(name, &network.name).await?;
            let provider_id = if i == 0 {
                spec.control_plane.provider_id.clone()
            } else {
                spec.workers[i - 1].provider_id.clone()
            };
            nodes.push(KindNode {
                name: name.clone(),
                control_plane: i == 0,
                ip,
                pod_cidr: pod_cidrs[i],
                provider_id,
            });
        }
        let nets: Vec<NodeNet> = nodes
            .iter()
            .map(|n| NodeNet {
                container: n.name.clone(),
                ip: n.ip,
                pod_cidr: n.pod_cidr,
            })
            .collect();
        cni::configure(docker, &nets, spec.pod_subnet).await?;
        timings.cni = started.elapsed();
        progress.finished(&phase, Outcome::Done, timings.cni);

        let phase = Phase::NodesReady;
        progress.started(&phase);
        let started = Instant::now();
        wait_for_ready(&client, &names, options.ready_timeout).await?;
        timings.ready = started.elapsed();
        progress.finished(&phase, Outcome::Done, timings.ready);

        Ok(KindCluster {
            spec: spec.clone(),
            docker: docker.clone(),
            kind: kind.clone(),
            network,
            nodes,
            kubeconfig,
            timings,
            client,
        })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What the cluster was created from.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Its nodes, control plane first.
    pub fn nodes(&self) -> &[KindNode] {
        &self.nodes
    }

    /// The worker nodes.
    pub fn workers(&self) -> impl Iterator<Item = &KindNode> {
        self.nodes.iter().filter(|n| !n.control_plane)
    }

    /// The docker network the nodes live on (bridge device, subnet, gateway).
    pub fn network(&self) -> &NetworkInfo {
        &self.network
    }

    /// The admin kubeconfig (server on 127.0.0.1).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client for the cluster's API server.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// How long creation took.
    pub fn timings(&self) -> ClusterTimings {
        self.timings
    }

    /// Runs `cmd` in a node's container; returns its stdout.
    pub async fn exec_in_node(&self, node: &str, cmd: &[&str]) -> Result<String> {
        self.docker.exec(node, cmd).await
    }

    /// Runs a bash script in a node's container; returns its stdout.
    pub async fn script_in_node(&self, node: &str, action: &str, script: &str) -> Result<String> {
        self.docker.exec_script(node, action, script).await
    }

    /// Makes local docker images available on every node (`kind load docker-image`), all in
    /// one archive so each node imports once.
    pub async fn load_images(&self, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        self.kind
            .cmd(format!(
                "loading images {} into cluster {}",
                tags.join(", "),
                self.spec.name
            ))
            .args(["load", "docker-image", "--name", &self.spec.name])
            .args(tags)
            .run()
            .await
    }

    /// Deletes the cluster and its network.
    pub async fn delete(self) -> Result<()> {
        self.kind
            .delete_cluster(&self.spec.name, Some(&self.kubeconfig))
            .await?;
        self.docker.network_rm(&self.network.name).await
    }
}

/// What [`clean_leftovers`] removed, and what it left to live runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// kind clusters (by name).
    pub clusters: Vec<String>,
    /// Containers removed directly (nodes kind no longer knew, build containers).
    pub containers: Vec<String>,
    /// Docker networks.
    pub networks: Vec<String>,
    /// Clusters left alone because the process that owns them still runs.
    pub live: Vec<String>,
}

impl Leftovers {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty() && self.containers.is_empty() && self.networks.is_empty()
    }
}

/// Which clusters a clean-up takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanScope {
    /// Clusters whose owning process is gone (killed runs), and stray build containers.
    Dead,
    /// The clusters process `pid` created (a run tearing itself down after Ctrl-C).
    OwnedBy(u32),
}

fn process_alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes podid kind clusters, their node containers and networks in `scope`. A cluster is
/// found through its network's labels, so a cluster whose `kind create` never finished is
/// found too.
pub async fn clean_leftovers(
    docker: &Docker,
    kind: Option<&KindTool>,
    scope: CleanScope,
) -> Result<Leftovers> {
    let mut found = Leftovers::default();
    let known = match kind {
        Some(kind) => kind.clusters().await?,
        None => Vec::new(),
    };
    for network in docker.networks(&[format!("label={NETWORK_LABEL}")]).await? {
        let labels = docker.network_inspect(&network).await?.labels;
        let cluster = labels.get(NETWORK_LABEL).cloned().unwrap_or_default();
        let take = match scope {
            CleanScope::OwnedBy(pid) => labels
                .get(OWNER_PID_LABEL)
                .is_some_and(|p| *p == pid.to_string()),
            CleanScope::Dead => !labels
                .get(OWNER_PID_LABEL)
                .is_some_and(|p| process_alive(p)),
        };
        if !take {
            if scope == CleanScope::Dead {
                found.live.push(cluster);
            }
            continue;
        }
        if let Some(kind) = kind
            && known.contains(&cluster)
        {
            kind.delete_cluster(&cluster, None).await?;
        }
        for name in docker
            .containers(&[format!("label={KIND_CLUSTER_LABEL}={cluster}")])
            .await?
        {
            docker.rm(&name).await?;
            found.containers.push(name);
        }
        docker.network_rm(&network).await?;
        found.networks.push(network);
        found.clusters.push(cluster);
    }
    if scope == CleanScope::Dead {
        for name in docker
            .containers(&[format!("label={}", crate::node_image::BUILD_LABEL)])
            .await?
        {
            docker.rm(&name).await?;
            found.containers.push(name);
        }
    }
    Ok(found)
}

async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    let action = format!("reading the cluster's kubeconfig {}", path.display());
    let text = std::fs::read_to_string(path).map_err(KindError::io("reading", path))?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text)
        .map_err(|e| KindError::invalid(action.clone(), e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| KindError::invalid(action.clone(), e.to_string()))?;
    kube::Client::try_from(config).map_err(KindError::kube("building a client for the cluster"))
}

/// Polls the Node objects until `look` has an answer for every node in `names`; returns the
/// answers in order. `look` says why a node is not there yet; on timeout the error carries the
/// last reasons. The one node wait of this module.
async fn wait_for_nodes<T>(
    client: &kube::Client,
    names: &[String],
    timeout: Duration,
    action: &str,
    look: impl Fn(&str, Option<&Node>) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let api: Api<Node> = Api::all(client.clone());
    let look = &look;
    podid_wait::until(Poll::every(Duration::from_millis(500), timeout), || {
        let api = api.clone();
        async move {
            let list = match api.list(&Default::default()).await {
                Ok(list) => list,
                Err(e) => return Check::Pending(format!("listing nodes: {e}")),
            };
            let mut found = Vec::new();
            let mut waiting = Vec::new();
            for name in names {
                let node = list
                    .items
                    .iter()
                    .find(|n| n.metadata.name.as_deref() == Some(name));
                match look(name, node) {
                    Ok(answer) => found.push(answer),
                    Err(why) => waiting.push(why),
                }
            }
            if waiting.is_empty() {
                Check::Done(found)
            } else {
                Check::Pending(waiting.join("; "))
            }
        }
    })
    .await
    .map_err(|e| KindError::Timeout {
        action: action.to_owned(),
        waited: e.waited(),
        last: e.into_state(),
    })
}

/// Waits until `names` all exist with a pod range; returns the ranges in order.
async fn wait_for_pod_cidrs(
    client: &kube::Client,
    names: &[String],
    timeout: Duration,
) -> Result<Vec<Ipv4Cidr>> {
    let action = "waiting for every node to be assigned a pod range";
    wait_for_nodes(client, names, timeout, action, |name, node| {
        let node = node.ok_or_else(|| format!("node {name} is not registered"))?;
        node.spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Ipv4Cidr>().ok())
            .ok_or_else(|| format!("node {name} has no podCIDR"))
    })
    .await
}

/// Waits until every node in `names` has condition Ready=True.
async fn wait_for_ready(client: &kube::Client, names: &[String], timeout: Duration) -> Result<()> {
    let action = "waiting for every node to be Ready";
    wait_for_nodes(client, names, timeout, action, |name, node| {
        let ready = node
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .ok_or_else(|| format!("{name}: no Ready condition yet"))?;
        if ready.status == "True" {
            Ok(())
        } else {
            Err(format!(
                "{name}: {}",
                ready
                    .message
                    .clone()
                    .unwrap_or_else(|| ready.status.clone())
            ))
        }
    })
    .await
    .map(|_| ())
}
