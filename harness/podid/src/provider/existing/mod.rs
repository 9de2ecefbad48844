//! The existing provider: any cluster given by kubeconfig and context: a real AKS cluster with
//! the real Azure cloud, or kind, k3d, minikube with podid's mock cloud installed into it
//! (`--cloud mock`).
//!
//! Start-up: preflight (the API server answers, in seconds, or one line says why) → nodes →
//! discovery of NMI/MIC (what runs is tested as it is; when nothing runs podid installs the
//! pinned upstream manifests, if the credentials allow, and removes them at the end) → the
//! run's namespace with podid's node agents (and, with the mock cloud, the mock and each
//! node's metadata redirect, proven per node before anything else runs) → the cloud side.

pub mod discovery;
pub mod install;
pub mod leftovers;
pub mod mock_in_cluster;
pub mod node_agent;
pub mod nodes;
pub mod options;
pub mod port_forward;
pub mod preflight;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use podid_incluster::{CloudAccess, ImagePullPolicy};
use podid_scenario::NmiMode;

pub use options::{CloudChoice, ExistingOptions, InstallPolicy};

use super::capability::{Capabilities, Capability};
use super::cluster::{IdentityConfig, NodeInfo, ShutdownReport};
use super::error::ProviderError;
use super::kube_cluster::deploy::{DeploymentBase, IDENTITY_NAMESPACE, mic_credentials};
use super::kube_cluster::{
    IdentityInstall, KubeClusterParts, KubeClusterSide, ServiceHosts, Teardown, WorkloadImage,
};
use super::mock_cloud::MockCloudSide;
use super::{CloudSide, Provider, mock_world};
use node_agent::{AgentRole, AgentShell};
use nodes::ClusterNode;

/// What the existing provider's cluster side can do when podid installs NMI/MIC (what `podid
/// list --provider existing` plans with; a cluster that already runs them offers less, and
/// trials are then skipped with the reason when they start).
pub fn cluster_capabilities(cloud: CloudChoice) -> Capabilities {
    let mut caps = vec![
        Capability::ManagedMode,
        Capability::StandardMode,
        Capability::ComponentFlags,
        Capability::MicReplicas,
        Capability::HealthEndpoints,
        Capability::NodeIptables,
    ];
    // The mock gives every node a machine of its own; on Azure that needs nodes on distinct
    // scale sets or VMs (checked when the run starts: the nightly cluster has a pool per node).
    caps.push(Capability::PerNodeMachines);
    if cloud == CloudChoice::Mock {
        caps.push(Capability::ClusterIdentity);
    }
    Capabilities::of(caps)
}

/// What the existing provider can do with `cloud`, known without a cluster.
pub fn capabilities(cloud: CloudChoice) -> Capabilities {
    let cloud_side = match cloud {
        CloudChoice::Mock => super::mock_cloud::capabilities(),
        CloudChoice::Azure => super::azure::capabilities(),
    };
    cluster_capabilities(cloud).union(&cloud_side)
}

/// What the existing provider needs to start.
pub struct ExistingProviderConfig {
    pub run_id: String,
    /// The cluster, already proven to answer ([`preflight::connect`]).
    pub connected: preflight::Connected,
    pub options: ExistingOptions,
    /// The pinned aad-pod-identity module (upstream's manifests, for installing).
    pub aad_pod_identity_module: PathBuf,
    /// Upstream's chart CRDs (all four kinds).
    pub crds: PathBuf,
}

/// How long each start-up phase took.
#[derive(Debug, Clone, Default)]
pub struct ExistingTimings {
    pub preflight: Duration,
    pub discovery: Duration,
    pub cloud: Duration,
}

impl std::fmt::Display for ExistingTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "preflight {:.1}s, discovery {:.1}s, cloud {:.1}s",
            self.preflight.as_secs_f64(),
            self.discovery.as_secs_f64(),
            self.cloud.as_secs_f64()
        )
    }
}

/// How long podid waits for what it starts in the cluster (images may be pulled).
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Real clouds and real image pulls are slower than kind: pod, probe and rollout waits scale.
const TIMEOUT_SCALE_AZURE: u32 = 4;
const TIMEOUT_SCALE_MOCK: u32 = 2;

/// The run's own namespace: podid's node agents and, with the mock cloud, the mock.
fn run_namespace(run_id: &str) -> String {
    format!("podid-{run_id}")
}

/// Removes the run's namespace (and CRDs podid created) at the end.
struct ExistingTeardown {
    client: kube::Client,
    namespace: String,
    /// The CRDs, when podid created them (deleting them removes every object of their kinds).
    crds: Option<Vec<serde_json::Value>>,
}

#[async_trait::async_trait]
impl Teardown for ExistingTeardown {
    fn cluster_outlives_run(&self) -> bool {
        true
    }

    async fn teardown(&self, report: &mut ShutdownReport) {
        match mock_in_cluster::remove(&self.client, &self.namespace, START_TIMEOUT).await {
            Ok(()) => report.stopped.push(format!(
                "namespace {} (podid's node agents{})",
                self.namespace, ", the mock cloud and the metadata redirects"
            )),
            Err(e) => report.errors.push(super::error_chain(&e)),
        }
        if let Some(crds) = &self.crds {
            for crd in crds {
                let name = crd["metadata"]["name"].as_str().unwrap_or_default();
                let api: kube::Api<
                    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
                > = kube::Api::all(self.client.clone());
                match api.delete(name, &Default::default()).await {
                    Ok(_) => report.stopped.push(format!("CRD {name}")),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => report.errors.push(format!("deleting CRD {name}: {e}")),
                }
            }
        }
    }
}

fn to_nmi_mode(mode: podid_incluster::Mode) -> NmiMode {
    match mode {
        podid_incluster::Mode::Managed => NmiMode::Managed,
        podid_incluster::Mode::Standard => NmiMode::Standard,
    }
}

/// What runs already, as the configuration trials must ask for; the capabilities it leaves.
fn existing_install(found: &discovery::Discovery) -> Option<(IdentityInstall, Vec<Capability>)> {
    let nmi = found.nmi()?;
    let mode = to_nmi_mode(nmi.mode());
    let mut workloads = vec![nmi.workload()];
    workloads.extend(found.mic().map(|m| m.workload()));
    let mut caps = vec![match mode {
        NmiMode::Managed => Capability::ManagedMode,
        NmiMode::Standard => Capability::StandardMode,
    }];
    // Per-node machines hold when the nodes' machines differ (checked once the cloud is known).
    caps.extend([
        Capability::HealthEndpoints,
        Capability::NodeIptables,
        Capability::PerNodeMachines,
    ]);
    Some((
        IdentityInstall::Existing {
            config: IdentityConfig {
                mode,
                nmi_flags: Vec::new(),
                mic_flags: Vec::new(),
                mic_replicas: found.mic().map(|m| m.desired.min(2) as u8).unwrap_or(0),
            },
            // AzureAssignedIdentities live in MIC's namespace.
            namespace: found.mic().unwrap_or(nmi).namespace.clone(),
            workloads,
        },
        caps,
    ))
}

/// The workload image, which the existing provider cannot do without.
pub fn workload_image(options: &ExistingOptions) -> Result<String, ProviderError> {
    options.workload_image.clone().ok_or_else(|| {
        ProviderError::plain(
            "the existing provider needs the image its pods run: give --workload-image (or PODID_WORKLOAD_IMAGE); build one with `podid image build`",
        )
    })
}

/// Checks, in seconds, that the cluster of `options` answers (before anything slow).
pub async fn connect(options: &ExistingOptions) -> Result<preflight::Connected, ProviderError> {
    workload_image(options)?;
    preflight::connect(options.kubeconfig.as_deref(), options.context.as_deref())
        .await
        .map_err(|e| ProviderError::plain(e.to_string()))
}

/// Starts the existing provider.
pub async fn start(
    config: ExistingProviderConfig,
) -> Result<(Provider, ExistingTimings), ProviderError> {
    let mut timings = ExistingTimings::default();
    let options = &config.options;
    let started = Instant::now();
    let connected = config.connected.clone();
    let client = connected.client.clone();
    let image = workload_image(options)?;
    let nodes = nodes::choose(&client).await?;
    timings.preflight = started.elapsed();

    let started = Instant::now();
    let found = discovery::discover(&client)
        .await
        .map_err(|e| ProviderError::plain(e.to_string()))?;
    let problems = found.problems();
    if !problems.is_empty() {
        return Err(ProviderError::plain(problems.join("; ")));
    }
    let existing = existing_install(&found);
    if existing.is_none() {
        if options.install == InstallPolicy::Never {
            return Err(ProviderError::plain(
                "the cluster runs no NMI and --install never forbids installing it",
            ));
        }
        let permission = preflight::install_permission(&client, IDENTITY_NAMESPACE)
            .await
            .map_err(|e| ProviderError::plain(e.to_string()))?;
        permission
            .require()
            .map_err(|e| ProviderError::plain(e.to_string()))?;
    }
    timings.discovery = started.elapsed();

    let started = Instant::now();
    let namespace = run_namespace(&config.run_id);
    let result = start_in_cluster(
        &config, &connected, &image, &nodes, &found, existing, &namespace,
    )
    .await;
    timings.cloud = started.elapsed();
    match result {
        Ok(provider) => Ok((provider, timings)),
        Err(e) => {
            if let Err(cleanup) = mock_in_cluster::remove(&client, &namespace, START_TIMEOUT).await
            {
                tracing::error!("removing namespace {namespace} after a failed start: {cleanup}");
            }
            Err(e)
        }
    }
}

/// The cloud side and what the cluster side needs from it.
struct CloudSetup {
    side: Box<dyn CloudSide>,
    /// Where pods find the cloud's services (mock only).
    hosts: ServiceHosts,
    /// What pods must trust (mock only).
    ca_pem: Option<String>,
    /// What NMI and MIC need to reach the cloud.
    access: CloudAccess,
    /// The machine behind each node, as the cloud side knows it.
    machines: Vec<super::cluster::Machine>,
    cluster_identity: Option<super::cluster::ClusterIdentity>,
    /// The node agent pod on each node.
    agents: std::collections::BTreeMap<String, String>,
    timeout_scale: u32,
}

/// The mock cloud installed into the cluster, with each node's metadata redirect.
async fn mock_cloud(
    config: &ExistingProviderConfig,
    client: &kube::Client,
    image: &str,
    nodes: &[ClusterNode],
    namespace: &str,
) -> Result<CloudSetup, ProviderError> {
    let planned: Vec<_> = nodes
        .iter()
        .map(|n| (n.clone(), nodes::mock_machine(n)))
        .collect();
    let machines: Vec<_> = planned.iter().map(|(_, m)| m.clone()).collect();
    let subscription = nodes
        .iter()
        .find_map(|n| n.azure.as_ref().map(|a| a.subscription_id.clone()));
    let plan = mock_world::plan(subscription, &machines);
    let mock = mock_in_cluster::install(
        client,
        &mock_in_cluster::InClusterMockConfig {
            run_id: &config.run_id,
            namespace,
            image,
            pull_policy: PULL_POLICY,
            spec: &plan.spec,
            nodes: &planned,
            timeout: START_TIMEOUT,
        },
    )
    .await?;
    let group = machines
        .first()
        .map(|m| m.resource_group.clone())
        .unwrap_or_else(|| mock_world::NODE_RESOURCE_GROUP.to_string());
    let access = CloudAccess {
        host_aliases: podid_incluster::trust::group_host_aliases(mock.hosts.services.clone()),
        ca_bundle_pem: Some(mock.ca_pem.clone()),
        mic_credentials: Some(mic_credentials(
            &plan.tenant_id,
            &plan.subscription_id,
            &group,
            &plan.mic.client_id,
            &plan.mic.secret,
            &plan.cluster_identity.client_id,
        )),
    };
    let hosts = mock.hosts.clone();
    let ca_pem = Some(mock.ca_pem.clone());
    let agents = mock.agents.clone();
    let side = MockCloudSide::over(mock.backend.clone(), "installed in the cluster")
        .with_mic_principal(plan.mic.object_id.clone())
        .keeping(std::sync::Arc::new(mock));
    Ok(CloudSetup {
        side: Box::new(side),
        hosts,
        ca_pem,
        access,
        machines: machines.into_iter().map(|m| m.machine).collect(),
        cluster_identity: Some(plan.cluster_identity),
        agents,
        timeout_scale: TIMEOUT_SCALE_MOCK,
    })
}

/// Real Azure: the node agents (a shell on each node, no redirect) and the ARM cloud side.
async fn azure_cloud(
    config: &ExistingProviderConfig,
    client: &kube::Client,
    image: &str,
    nodes: &[ClusterNode],
    namespace: &str,
) -> Result<CloudSetup, ProviderError> {
    let mut machines = Vec::new();
    let mut resource_ids = std::collections::HashMap::new();
    for node in nodes {
        let azure = node.azure.as_ref().ok_or_else(|| {
            ProviderError::plain(format!(
                "node {} is not an Azure machine (its providerID is not azure://…); use --cloud mock for clusters outside Azure",
                node.name
            ))
        })?;
        machines.push(azure.machine.clone());
        resource_ids.insert(azure.machine.clone(), azure.resource_id.clone());
    }
    let subscription_id = nodes
        .iter()
        .find_map(|n| n.azure.as_ref().map(|a| a.subscription_id.clone()))
        .unwrap_or_default();
    let agents = install_agents(client, image, nodes, namespace, &config.run_id).await?;
    let location = config.options.azure_location.clone().ok_or_else(|| {
        ProviderError::plain(
            "the Azure cloud needs the region of the resources podid creates: give --azure-location (or PODID_AZURE_LOCATION)",
        )
    })?;
    let mapping = match &config.options.azure_mapping {
        Some(path) => Some(
            super::azure::Mapping::load(path).map_err(|e| ProviderError::plain(e.to_string()))?,
        ),
        None => None,
    };
    let subscription_id = std::env::var("AZURE_SUBSCRIPTION_ID")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(subscription_id);
    let side = super::azure::AzureCloudSide::connect(super::azure::AzureCloudConfig {
        run_id: config.run_id.clone(),
        subscription_id,
        tenant_id: std::env::var("AZURE_TENANT_ID")
            .ok()
            .filter(|t| !t.is_empty()),
        location,
        resource_group: None,
        machines: resource_ids,
        mapping,
        endpoints: super::azure::AzureEndpoints::public(),
        credential: super::azure::CredentialSource::from_env(),
        retry: super::azure::RetryPolicy::default(),
    })
    .await?;
    Ok(CloudSetup {
        side: Box::new(side),
        hosts: ServiceHosts::default(),
        ca_pem: None,
        // MIC reads the nodes' azure.json, as on any AKS cluster.
        access: CloudAccess::default(),
        machines,
        cluster_identity: None,
        agents,
        timeout_scale: TIMEOUT_SCALE_AZURE,
    })
}

/// The node agents alone (a real cloud): the namespace and the DaemonSet, ready on every node.
async fn install_agents(
    client: &kube::Client,
    image: &str,
    nodes: &[ClusterNode],
    namespace: &str,
    run_id: &str,
) -> Result<std::collections::BTreeMap<String, String>, ProviderError> {
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let objects = [
        mock_in_cluster::namespace_object(namespace, run_id),
        node_agent::daemon_set(namespace, image, PULL_POLICY, &names, &AgentRole::Shell),
    ];
    podid_incluster::apply_objects(client, &objects, &Default::default())
        .await
        .map_err(|e| ProviderError::new("installing podid's node agents", e))?;
    mock_in_cluster::ready_pods(
        client,
        namespace,
        node_agent::NODE_AGENT,
        names.len(),
        START_TIMEOUT,
    )
    .await?;
    Ok(node_agent::agent_pods(client, namespace)
        .await?
        .into_iter()
        .map(|(node, pod)| (node, pod.metadata.name.unwrap_or_default()))
        .collect())
}

/// Applies upstream's CRDs unless the cluster has them; returns them when podid created them.
async fn ensure_crds(
    client: &kube::Client,
    crds: &std::path::Path,
) -> Result<Option<Vec<serde_json::Value>>, ProviderError> {
    let manifest = podid_incluster::Manifest::load(crds)
        .map_err(|e| ProviderError::new("reading upstream's CRDs", e))?;
    let api: kube::Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = kube::Api::all(client.clone());
    let mut missing = false;
    for crd in &manifest.documents {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        if api
            .get_opt(name)
            .await
            .map_err(|e| ProviderError::new(format!("reading CRD {name}"), e))?
            .is_none()
        {
            missing = true;
        }
    }
    if !missing {
        return Ok(None);
    }
    podid_incluster::apply_objects(client, &manifest.documents, &Default::default())
        .await
        .map_err(|e| ProviderError::new("installing upstream's CRDs", e))?;
    Ok(Some(manifest.documents))
}

const PULL_POLICY: &str = "IfNotPresent";

async fn start_in_cluster(
    config: &ExistingProviderConfig,
    connected: &preflight::Connected,
    image: &str,
    nodes: &[ClusterNode],
    found: &discovery::Discovery,
    existing: Option<(IdentityInstall, Vec<Capability>)>,
    namespace: &str,
) -> Result<Provider, ProviderError> {
    let client = &connected.client;
    let options = &config.options;
    let cloud = match options.cloud {
        CloudChoice::Mock => mock_cloud(config, client, image, nodes, namespace).await?,
        CloudChoice::Azure => azure_cloud(config, client, image, nodes, namespace).await?,
    };
    let mut environment = vec![
        (
            "cluster".to_string(),
            format!(
                "{} ({}, Kubernetes {})",
                connected.context, connected.server, connected.version
            ),
        ),
        ("workload image".to_string(), image.to_string()),
    ];
    environment.extend(found.environment());
    let (install, mut caps, crds) = match existing {
        Some((install, caps)) => (install, caps, None),
        None => {
            let crds = ensure_crds(client, &config.crds).await?;
            let base = DeploymentBase {
                nmi_image: options
                    .nmi_image
                    .clone()
                    .unwrap_or_else(|| install::DEFAULT_NMI_IMAGE.to_string()),
                mic_image: options
                    .mic_image
                    .clone()
                    .unwrap_or_else(|| install::DEFAULT_MIC_IMAGE.to_string()),
                cloud: cloud.access.clone(),
                image_pull_policy: ImagePullPolicy::IfNotPresent,
            };
            environment.push((
                "nmi/mic".into(),
                format!(
                    "installed by podid from upstream's manifests: {}, {}",
                    base.nmi_image, base.mic_image
                ),
            ));
            let caps = cluster_capabilities(options.cloud).iter().collect();
            (
                IdentityInstall::Podid {
                    module_dir: config.aad_pod_identity_module.clone(),
                    base: Box::new(base),
                },
                caps,
                crds,
            )
        }
    };
    let distinct: std::collections::HashSet<_> = cloud.machines.iter().collect();
    if distinct.len() < cloud.machines.len() {
        // Nodes of one scale set share its identities: an assignment is not per node.
        caps.retain(|c| *c != Capability::PerNodeMachines);
        environment.push((
            "per-node machines".into(),
            "no: the nodes share a scale set, so trials that give nodes different identities are skipped".into(),
        ));
    }
    let node_list: Vec<NodeInfo> = nodes
        .iter()
        .zip(&cloud.machines)
        .map(|(n, machine)| NodeInfo {
            logical: n.logical.clone(),
            name: n.name.clone(),
            machine: machine.clone(),
            address: n.address,
        })
        .collect();
    let side = KubeClusterSide::new(KubeClusterParts {
        provider: "existing",
        client: client.clone(),
        shell: Box::new(AgentShell {
            client: client.clone(),
            namespace: namespace.to_string(),
            pods: cloud.agents.clone(),
        }),
        nodes: node_list,
        install,
        workload: WorkloadImage {
            image: image.to_string(),
            probe: vec!["podid".into(), "probe".into()],
            pull_policy: ImagePullPolicy::IfNotPresent,
        },
        hosts: cloud.hosts.clone(),
        ca_pem: cloud.ca_pem.clone(),
        environment,
        capabilities: Capabilities::of(caps),
        cluster_identity: cloud.cluster_identity.clone(),
        timeout_scale: cloud.timeout_scale,
        teardown: Box::new(ExistingTeardown {
            client: client.clone(),
            namespace: namespace.to_string(),
            crds,
        }),
    });
    Ok(Provider::new("existing", Box::new(side), cloud.side))
}
