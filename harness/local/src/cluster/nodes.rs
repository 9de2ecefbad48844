//! Nodes: one network namespace each (loopback, the metadata and node addresses, an API
//! forwarder), a kubelet-config file for NMI, a Ready Node object, and its hosts file.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use podid_netns::{NetNamespace, namespace_name};

use super::LocalCluster;
use crate::LocalError;
use crate::addressing::NodeAddressing;
use crate::config::{LocalClusterConfig, NodeConfig};

use crate::forwarder::LoopbackForwarder;
use crate::nmi::kubelet_config_contents;
use crate::objects::{node_object, node_status_patch, now_rfc3339};
use crate::state::NamespaceKind;

/// NMI's health port in the upstream manifests (`--http-probe-port=8085`).
pub const NMI_PROBE_PORT: u16 = 8085;
/// NMI's Prometheus port (its default `--prometheus-port`).
pub const NMI_METRICS_PORT: u16 = 9090;
use crate::teardown::RunRegistry;

/// The address NMI intercepts and the mock IMDS listens on inside each node.
pub const METADATA_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// Interface holding a node's local addresses (falls back to `lo` where dummies are missing).
const NODE_LOCAL_INTERFACE: &str = "podid0";

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
    pub(super) kubelet_config: PathBuf,
}

impl LocalNode {
    /// The gateway of every pod on this node.
    pub fn pod_gateway(&self) -> Ipv4Addr {
        self.addressing.gateway()
    }
}

impl LocalCluster {
    /// Sets the host names a node (and so its NMI, from its next start) resolves.
    pub fn set_node_hosts(
        &self,
        node: &str,
        entries: &[(IpAddr, String)],
    ) -> Result<(), LocalError> {
        Ok(self.known_node(node)?.netns.write_hosts(entries)?)
    }

    /// `iptables -t nat -S` as seen inside a node (NMI's `aad-metadata` chain lives there).
    pub async fn node_nat_rules(&self, node: &str) -> Result<String, LocalError> {
        let node = self.known_node(node)?;
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
}

/// Creates a node's namespace (loopback, local addresses, route_localnet, API forwarder), its
/// kubelet-config file and its Ready Node object.
pub(super) async fn start_node(
    config: &LocalClusterConfig,
    node: &NodeConfig,
    api_port: u16,
    client: &kube::Client,
    registry: &mut RunRegistry,
) -> Result<LocalNode, LocalError> {
    let addressing = NodeAddressing {
        index: node.pod_cidr_index,
    };
    let ns_name = namespace_name(&config.run_id, &format!("node-{}", node.pod_cidr_index));
    let netns = registry.create_namespace(&ns_name, NamespaceKind::Node)?;
    let netlink = netns.netlink().await?;
    netlink.set_up("lo").await?;
    let mut addresses = vec![METADATA_IP, addressing.host_ip()];
    addresses.extend(node.extra_addresses.iter().copied());
    netlink
        .add_local_addresses(NODE_LOCAL_INTERFACE, &addresses)
        .await?;
    netns.write_sysctl("net.ipv4.conf.all.route_localnet", "1")?;
    registry.register_forwarder(&ns_name, LoopbackForwarder::start(&netns, api_port)?);

    // The ports of the upstream manifests (`--http-probe-port=8085`, the default
    // `--prometheus-port=9090`): scenarios reach them from pods as on a real node.
    let probe_port = NMI_PROBE_PORT;
    let metrics_port = NMI_METRICS_PORT;
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

/// A port that is free on the loopback of `netns`.
pub(super) fn free_port_in(netns: &NetNamespace) -> Result<u16, LocalError> {
    netns
        .bind_tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LocalError::io(format!("finding a free port in {}", netns.name()), e))
}
