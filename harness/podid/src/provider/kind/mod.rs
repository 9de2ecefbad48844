//! The kind provider: a kind cluster (real kubelet, containerd and CNI) running NMI and MIC from
//! upstream's manifests with upstream RBAC, pods as real pods, and the in-process mock cloud
//! served on the cluster's own container network (see [`cloud_network`]).
//!
//! Start-up: Docker → node image (built locally unless one is given) → run images → network and
//! cluster → images loaded → mock cloud served, metadata redirected in every node and proven to
//! be the mock (fail closed) → NMI/MIC installed by the first trial's configuration.

mod cloud_network;
pub mod images;
mod node_guard;
mod options;
mod progress;
mod side;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use options::{KindOptions, MIC_IMAGE_VAR, NMI_IMAGE_VAR, NODE_IMAGE_VAR};
pub use progress::KindProgress;

use podid_incluster::{CloudAccess, ImagePullPolicy};
use podid_kind::{
    ClusterSpec, CreateOptions, Docker, KindCluster, KindTool, NodeImageInputs, Progress,
};
use podid_scenario::LOGICAL_NODES;

use super::capability::{Capabilities, Capability};
use super::cluster::NodeInfo;
use super::error::ProviderError;
use super::mock_cloud::MockCloudSide;
use super::mock_world::{self, machine_of, provider_id_of};
use super::{ProbeCommand, Provider};
use crate::provider::kube_cluster::deploy::{DeploymentBase, mic_credentials};
use crate::provider::kube_cluster::{
    IdentityInstall, KubeClusterParts, KubeClusterSide, WorkloadImage,
};
use cloud_network::{CloudAddresses, ContainerNetwork};
use images::ImageInputs;
use side::{DockerNodes, KindTeardown};

/// What the kind cluster side can do (also what `podid list --provider kind` plans with).
pub fn cluster_capabilities() -> Capabilities {
    Capabilities::of([
        Capability::ManagedMode,
        Capability::StandardMode,
        Capability::ComponentFlags,
        Capability::PerNodeMachines,
        Capability::MicReplicas,
        Capability::HealthEndpoints,
        Capability::NodeIptables,
        Capability::ClusterIdentity,
    ])
}

/// Where the node image comes from.
pub enum NodeImageSource {
    /// Built here from these inputs (no registry needed).
    Build(Box<NodeImageInputs>),
    /// A ready image, such as a published `kindest/node`.
    Given(String),
}

/// What the kind provider needs to start.
pub struct KindProviderConfig {
    pub run_id: String,
    /// Everything the run writes (kind config, kubeconfig, logs) goes under it.
    pub work_dir: PathBuf,
    /// Where built roots and images are cached between runs.
    pub cache_dir: PathBuf,
    pub node_image: NodeImageSource,
    pub kind_binary: PathBuf,
    pub nmi_binary: PathBuf,
    pub mic_binary: PathBuf,
    /// The pinned aad-pod-identity module: upstream's manifests are read from it.
    pub aad_pod_identity_module: PathBuf,
    /// Upstream's chart CRDs (all four kinds; managed mode's manifest lacks
    /// AzureAssignedIdentity), installed once so every mode sees the same API.
    pub crds: PathBuf,
    /// Versions for the report header.
    pub versions: Vec<(String, String)>,
    pub probe: ProbeCommand,
    pub options: KindOptions,
}

/// How long each start-up phase took.
#[derive(Debug, Clone, Default)]
pub struct KindTimings {
    pub node_image: Duration,
    pub node_image_built: bool,
    pub run_images: Duration,
    pub cluster_create: Duration,
    pub nodes_ready: Duration,
    pub images_loaded: Duration,
    pub imds_proven: Duration,
}

impl std::fmt::Display for KindTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |d: Duration| d.as_secs_f64();
        write!(
            f,
            "node image {:.1}s ({}), run images {:.1}s, cluster create {:.1}s, nodes ready {:.1}s, images loaded {:.1}s, IMDS proven {:.1}s",
            s(self.node_image),
            if self.node_image_built {
                "built"
            } else {
                "cached"
            },
            s(self.run_images),
            s(self.cluster_create),
            s(self.nodes_ready),
            s(self.images_loaded),
            s(self.imds_proven)
        )
    }
}

fn err(action: &str) -> impl FnOnce(podid_kind::KindError) -> ProviderError + '_ {
    move |e| ProviderError::new(action, e)
}

/// Starts the kind provider.
pub async fn start(
    config: KindProviderConfig,
    progress: &dyn Progress,
) -> Result<(Provider, KindTimings), ProviderError> {
    let mut timings = KindTimings::default();
    std::fs::create_dir_all(&config.work_dir)
        .map_err(|e| ProviderError::new(format!("creating {}", config.work_dir.display()), e))?;
    let docker = Docker::connect().await.map_err(err(
        "connecting to the Docker daemon (the kind provider's nodes are containers)",
    ))?;
    podid_incluster::verify_module(&config.aad_pod_identity_module)
        .map_err(|e| ProviderError::new("reading upstream's NMI/MIC manifests", e))?;

    let started = Instant::now();
    let node_image = match &config.node_image {
        NodeImageSource::Given(tag) => tag.clone(),
        NodeImageSource::Build(inputs) => {
            let image = podid_kind::ensure_node_image(&docker, inputs, &config.cache_dir, progress)
                .await
                .map_err(err("building the kind node image"))?;
            timings.node_image_built = image.built;
            image.tag
        }
    };
    timings.node_image = started.elapsed();

    let started = Instant::now();
    let images = images::ensure_run_images(
        &docker,
        &ImageInputs {
            nmi_binary: &config.nmi_binary,
            mic_binary: &config.mic_binary,
            probe: &config.probe,
            nmi_image: config.options.nmi_image.as_deref(),
            mic_image: config.options.mic_image.as_deref(),
        },
        &config.cache_dir,
        progress,
    )
    .await?;
    timings.run_images = started.elapsed();

    let kind = KindTool::detect(
        &docker,
        &config.kind_binary,
        &node_image,
        &config.cache_dir.join("shim"),
    )
    .await
    .map_err(err("preparing the kind CLI"))?;
    let world = mock_world::create(Vec::new())?;
    let mut spec = ClusterSpec::new(&config.run_id, node_image.clone(), LOGICAL_NODES.len());
    for (worker, logical) in spec.workers.iter_mut().zip(LOGICAL_NODES) {
        worker.provider_id = Some(provider_id_of(&world.subscription_id, logical));
    }
    let cluster = KindCluster::create(
        &docker,
        &kind,
        &spec,
        &config.run_id,
        &config.work_dir.join("kind"),
        &CreateOptions::default(),
        progress,
    )
    .await
    .map_err(err("creating the kind cluster"))?;
    let created = cluster.timings();
    timings.cluster_create = created.create;
    timings.nodes_ready = created.cni + created.ready;

    // From here on the cluster exists: any failure deletes it before returning.
    match finish_start(&config, docker, cluster, world, images, &mut timings).await {
        Ok(provider) => Ok((provider, timings)),
        Err((e, cluster)) => {
            if let Some(cluster) = cluster
                && let Err(cleanup) = cluster.delete().await
            {
                tracing::error!("deleting the kind cluster after a failed start: {cleanup}");
            }
            Err(e)
        }
    }
}

type StartFailure = (ProviderError, Option<KindCluster>);

async fn finish_start(
    config: &KindProviderConfig,
    docker: Docker,
    cluster: KindCluster,
    world: mock_world::MockWorld,
    images: images::RunImages,
    timings: &mut KindTimings,
) -> Result<Provider, StartFailure> {
    macro_rules! tryc {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((e, Some(cluster))),
            }
        };
    }
    let started = Instant::now();
    tryc!(
        cluster
            .load_images(&images.built)
            .await
            .map_err(|e| ProviderError::new("loading the run's images into the cluster", e))
    );
    timings.images_loaded = started.elapsed();

    let workers: Vec<_> = cluster.workers().map(|n| (n.name.clone(), n.ip)).collect();
    if workers.len() < LOGICAL_NODES.len() {
        return Err((
            ProviderError::plain(format!(
                "the kind cluster has {} workers; scenarios need {}",
                workers.len(),
                LOGICAL_NODES.len()
            )),
            Some(cluster),
        ));
    }
    let nodes: Vec<NodeInfo> = LOGICAL_NODES
        .iter()
        .zip(&workers)
        .map(|(logical, (name, ip))| NodeInfo {
            logical: logical.to_string(),
            name: name.clone(),
            machine: machine_of(logical),
            address: Some(std::net::IpAddr::V4(*ip)),
        })
        .collect();
    let net = cluster.network();
    let network = ContainerNetwork {
        bridge: net.bridge.clone(),
        subnet: net.subnet.network(),
        prefix: net.subnet.prefix(),
        gateway: net.gateway,
    };
    let addresses = CloudAddresses::within(&network);
    let served =
        tryc!(cloud_network::serve_on_network(&world.cloud, &network, &addresses, &nodes).await);
    let shell = DockerNodes(docker.clone());
    let started = Instant::now();
    for node in cluster.nodes() {
        let imds = nodes
            .iter()
            .find(|n| n.name == node.name)
            .and_then(|n| served.imds.iter().find(|(l, _)| *l == n.logical))
            .map(|(_, addr)| *addr);
        tryc!(node_guard::install_rules(&shell, &node.name, imds).await);
    }
    let pairs: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.logical.clone(), n.name.clone()))
        .collect();
    tryc!(node_guard::prove_imds_is_mock(&shell, &world.cloud, &pairs).await);
    timings.imds_proven = started.elapsed();

    let crds = tryc!(
        podid_incluster::Manifest::load(&config.crds)
            .map_err(|e| ProviderError::new("reading upstream's CRDs", e))
    );
    tryc!(
        podid_incluster::apply_objects(&cluster.client(), &crds.documents, &Default::default())
            .await
            .map(|_| ())
            .map_err(|e| ProviderError::new("installing upstream's CRDs", e))
    );

    let ca_pem = world.cloud.tls().ca_pem().to_string();
    let hosts = addresses
        .service_hosts()
        .into_iter()
        .map(|(ip, host)| (ip, vec![host]))
        .collect();
    let base = DeploymentBase {
        nmi_image: images.nmi.clone(),
        mic_image: images.mic.clone(),
        cloud: CloudAccess {
            host_aliases: hosts,
            ca_bundle_pem: Some(ca_pem.clone()),
            mic_credentials: Some(mic_credentials(
                &world.tenant_id,
                &world.subscription_id,
                mock_world::NODE_RESOURCE_GROUP,
                &world.mic.client_id,
                &world.mic.secret,
                &world.cluster_identity.client_id,
            )),
        },
        image_pull_policy: if config.options.nmi_image.is_some()
            || config.options.mic_image.is_some()
        {
            ImagePullPolicy::IfNotPresent
        } else {
            ImagePullPolicy::Never
        },
    };
    let mut environment = config.versions.clone();
    environment.push(("kind node image".into(), cluster.spec().node_image.clone()));
    environment.push(("nmi image".into(), images.nmi.clone()));
    environment.push(("mic image".into(), images.mic.clone()));
    let containers = cluster.nodes().iter().map(|n| n.name.clone()).collect();
    let side = KubeClusterSide::new(KubeClusterParts {
        provider: "kind",
        client: cluster.client(),
        shell: Box::new(DockerNodes(docker.clone())),
        nodes,
        install: IdentityInstall::Podid {
            module_dir: config.aad_pod_identity_module.clone(),
            base: Box::new(base),
        },
        workload: WorkloadImage {
            image: images.workload.clone(),
            probe: images.probe.clone(),
            pull_policy: ImagePullPolicy::Never,
        },
        hosts: addresses.hosts(),
        ca_pem: Some(ca_pem),
        environment,
        capabilities: cluster_capabilities(),
        cluster_identity: Some(world.cluster_identity.clone()),
        timeout_scale: 1,
        teardown: Box::new(KindTeardown {
            cluster: tokio::sync::Mutex::new(Some(cluster)),
            shell: DockerNodes(docker),
            containers,
            servers: std::sync::Mutex::new(served.servers),
            keep: config.options.keep,
            workload_image: images.workload.clone(),
            nmi_image: images.nmi.clone(),
            mic_image: images.mic.clone(),
        }),
    });
    Ok(Provider::new(
        "kind",
        Box::new(side),
        Box::new(MockCloudSide::new(world.cloud).with_mic_principal(world.mic.object_id)),
    ))
}
