//! Starting the local provider: the mock cloud (node scale sets, MIC's principal), the local
//! cluster, and each node's IMDS and cloud endpoints inside its namespace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use podid_local::{
    Binaries, LocalCluster, LocalClusterConfig, MicCloudConfig, MicConfig, NmiConfig, NodeConfig,
};
use podid_mocks::{Endpoint, MockCloud, ServerHandle};
use podid_scenario::LOGICAL_NODES;
use podid_toolchain::Toolchain;

use crate::provider::ProviderError;
use crate::provider::cluster::{ClusterIdentity, NodeInfo};
use crate::provider::mock_cloud::machine_ref;
use crate::provider::mock_world::{
    self, AAD_HOST, ARM_HOST, NODE_RESOURCE_GROUP, machine_of, provider_id_of,
};

/// Address of the mock AAD inside every node namespace (TEST-NET-1: never routed anywhere).
pub const AAD_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Address of the mock ARM inside every node namespace.
pub const ARM_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
/// Address of the mock Blob service inside every node namespace.
pub const BLOB_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
/// The nodes whose namespaces MIC's replicas run in (standard mode), as hostNetwork pods would:
/// replica slot `i` in `MIC_NODES[i]`.
pub const MIC_NODES: [&str; 2] = ["node-0", "node-1"];

/// The host names every node and pod resolves to the mock cloud.
pub fn cloud_hosts() -> Vec<(IpAddr, String)> {
    vec![
        (AAD_ADDRESS.into(), AAD_HOST.into()),
        (ARM_ADDRESS.into(), ARM_HOST.into()),
    ]
}

fn err(action: &str, e: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
    ProviderError::new(action, e)
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

/// The mock cloud of a local run, and what MIC needs to talk to it.
pub struct LocalCloud {
    pub cloud: MockCloud,
    pub ca_file: PathBuf,
    /// MIC's azure.json (principal secret inside, root-only).
    pub mic_cloud_config: PathBuf,
    pub subscription: String,
    pub cluster_identity: ClusterIdentity,
    /// MIC's principal (object) ID, for role assignments to `mic`.
    pub mic_principal_id: String,
}

/// Creates the mock cloud (see [`mock_world`]), its CA bundle and MIC's azure.json.
pub fn create_cloud(work_dir: &Path) -> Result<LocalCloud, ProviderError> {
    let world = mock_world::create(
        [AAD_ADDRESS, ARM_ADDRESS, BLOB_ADDRESS]
            .map(|a| a.to_string())
            .to_vec(),
    )?;
    let mic_cloud_config = work_dir.join("azure.json");
    let azure_json = MicCloudConfig {
        tenant_id: &world.tenant_id,
        subscription_id: &world.subscription_id,
        resource_group: NODE_RESOURCE_GROUP,
        client_id: &world.mic.client_id,
        client_secret: &world.mic.secret,
        cluster_identity_client_id: Some(&world.cluster_identity.client_id),
    }
    .render();
    write_private(&mic_cloud_config, &azure_json)
        .map_err(|e| err(&format!("writing {}", mic_cloud_config.display()), e))?;
    let ca_file = work_dir.join("cloud-ca.pem");
    world
        .cloud
        .tls()
        .write_ca_bundle(&ca_file)
        .map_err(|e| err("writing the cloud CA bundle", e))?;
    Ok(LocalCloud {
        cloud: world.cloud,
        ca_file,
        mic_cloud_config,
        subscription: world.subscription_id,
        cluster_identity: world.cluster_identity,
        mic_principal_id: world.mic.object_id,
    })
}

/// Starts etcd, kube-apiserver and the node namespaces (NMI starts with the first trial).
pub async fn start_cluster(
    run_id: &str,
    work_dir: &Path,
    toolchain: &Toolchain,
    cloud: &LocalCloud,
) -> Result<LocalCluster, ProviderError> {
    let subscription = &cloud.subscription;
    let nodes = LOGICAL_NODES
        .iter()
        .enumerate()
        .map(|(i, name)| NodeConfig {
            name: name.to_string(),
            provider_id: provider_id_of(subscription, name),
            pod_cidr_index: u8::try_from(i + 1).unwrap_or(1),
            extra_addresses: vec![AAD_ADDRESS, ARM_ADDRESS, BLOB_ADDRESS],
        })
        .collect();
    LocalCluster::start(LocalClusterConfig {
        run_id: run_id.to_string(),
        work_dir: work_dir.join("cluster"),
        binaries: Binaries {
            etcd: toolchain.etcd.clone(),
            kube_apiserver: toolchain.kube_apiserver.clone(),
            nmi: toolchain.nmi.clone(),
            mic: Some(toolchain.mic.clone()),
            crds: toolchain.crds.clone(),
        },
        nodes,
        nmi: NmiConfig {
            extra_args: Vec::new(),
            extra_env: vec![("SSL_CERT_FILE".into(), cloud.ca_file.display().to_string())],
        },
    })
    .await
    .map_err(|e| err("starting the local cluster", e))
}

/// How MIC is started in standard mode (one replica; the configuration sets the count).
pub fn mic_config(run_id: &str, cloud: &LocalCloud) -> MicConfig {
    MicConfig {
        replicas: 1,
        nodes: MIC_NODES.map(String::from).to_vec(),
        cloud_config: cloud.mic_cloud_config.clone(),
        instance: format!("podid-{run_id}"),
        extra_args: Vec::new(),
        extra_env: vec![("SSL_CERT_FILE".into(), cloud.ca_file.display().to_string())],
    }
}

/// Serves each node's own IMDS at 169.254.169.254:80 and the cloud's HTTPS endpoints at their
/// addresses inside the node's namespace, and makes the node resolve the cloud's host names.
/// Returns the node list and the servers (stopped at shutdown).
pub async fn serve_cloud_in_nodes(
    cluster: &LocalCluster,
    cloud: &MockCloud,
) -> Result<(Vec<NodeInfo>, Vec<ServerHandle>), ProviderError> {
    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for logical in LOGICAL_NODES {
        let node = cluster
            .node(logical)
            .ok_or_else(|| ProviderError::plain(format!("the local cluster has no {logical}")))?;
        let machine = machine_of(logical);
        let endpoints = [
            (
                Endpoint::Imds {
                    machine: machine_ref(&machine),
                    label: logical.to_string(),
                },
                SocketAddr::from((podid_local::METADATA_IP, 80)),
            ),
            (Endpoint::Aad, SocketAddr::from((AAD_ADDRESS, 443))),
            (Endpoint::Arm, SocketAddr::from((ARM_ADDRESS, 443))),
            (Endpoint::Blob, SocketAddr::from((BLOB_ADDRESS, 443))),
        ];
        for (endpoint, addr) in endpoints {
            let listener = node
                .netns
                .bind_tcp(addr)
                .map_err(|e| err(&format!("binding {addr} in node {logical}"), e))?;
            let handle = cloud
                .serve(endpoint, listener)
                .await
                .map_err(|e| err(&format!("serving the mock cloud at {addr} in {logical}"), e))?;
            servers.push(handle);
        }
        cluster
            .set_node_hosts(logical, &cloud_hosts())
            .map_err(|e| err(&format!("writing the hosts file of {logical}"), e))?;
        nodes.push(NodeInfo {
            logical: logical.to_string(),
            name: logical.to_string(),
            machine,
            address: Some(IpAddr::V4(node.addressing.gateway())),
        });
    }
    Ok((nodes, servers))
}
