//! The mock cloud on the project's own container network: AAD, ARM and Blob on addresses added
//! to the network's bridge (port 443 each, under their real host names), one IMDS listener per
//! node on the gateway, and in every node a DNAT of 169.254.169.254:80 to that node's IMDS.
//! Nothing binds outside the network, and a guard chain keeps any other metadata traffic from
//! leaving a node.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

use podid_mocks::{Endpoint, MockCloud, ServerHandle};

use crate::provider::cluster::NodeInfo;
use crate::provider::error::ProviderError;
use crate::provider::kube_cluster::ServiceHosts;
use crate::provider::mock_cloud::machine_ref;
use crate::provider::mock_world::{AAD_HOST, ARM_HOST};

/// The instance metadata address NMI intercepts and calls.
pub const METADATA_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// nat chain in each node holding the DNAT of the metadata address to the node's mock IMDS.
pub const IMDS_CHAIN: &str = "PODID-IMDS";
/// filter chain in each node refusing metadata traffic that was not redirected.
pub const GUARD_CHAIN: &str = "PODID-GUARD";

/// A container network the project created: its bridge on the host, subnet and gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerNetwork {
    pub bridge: String,
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

impl ContainerNetwork {
    /// The last usable address of the subnet (the one before broadcast).
    fn last_host(&self) -> Ipv4Addr {
        let size = 1u64 << (32 - u32::from(self.prefix));
        let base = u64::from(u32::from(self.subnet));
        Ipv4Addr::from((base + size - 2) as u32)
    }
}

/// Where the cloud's HTTPS services listen on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudAddresses {
    pub aad: Ipv4Addr,
    pub arm: Ipv4Addr,
    pub blob: Ipv4Addr,
}

impl CloudAddresses {
    /// Three addresses at the top of `network`: the container runtime hands out addresses
    /// from the bottom, so these never collide with a node.
    pub fn within(network: &ContainerNetwork) -> Self {
        let top = u32::from(network.last_host());
        Self {
            aad: Ipv4Addr::from(top - 2),
            arm: Ipv4Addr::from(top - 1),
            blob: Ipv4Addr::from(top),
        }
    }

    pub fn all(&self) -> [Ipv4Addr; 3] {
        [self.aad, self.arm, self.blob]
    }

    /// What NMI and MIC resolve: the real host names of AAD and ARM.
    pub fn service_hosts(&self) -> Vec<(IpAddr, String)> {
        vec![
            (self.aad.into(), AAD_HOST.to_string()),
            (self.arm.into(), ARM_HOST.to_string()),
        ]
    }

    /// What a pod resolves: AAD, ARM and the blob host of each storage account.
    pub fn hosts(&self) -> ServiceHosts {
        ServiceHosts {
            services: self.service_hosts(),
            blob: Some(self.blob.into()),
        }
    }
}

/// The mock cloud served on the network.
pub struct ServedCloud {
    pub servers: Vec<ServerHandle>,
    /// Each logical node's IMDS listener (on the gateway).
    pub imds: Vec<(String, SocketAddr)>,
}

fn bind(addr: SocketAddr) -> Result<TcpListener, ProviderError> {
    TcpListener::bind(addr).map_err(|e| ProviderError::new(format!("binding {addr}"), e))
}

/// Puts the cloud addresses on the network's bridge and serves AAD, ARM, Blob and each node's
/// IMDS there. The addresses go away with the bridge when the network is removed.
pub async fn serve_on_network(
    cloud: &MockCloud,
    network: &ContainerNetwork,
    addresses: &CloudAddresses,
    nodes: &[NodeInfo],
) -> Result<ServedCloud, ProviderError> {
    let netlink = podid_netns::Netlink::host()
        .map_err(|e| ProviderError::new("opening netlink on the host", e))?;
    let present = netlink
        .ipv4_addresses(&network.bridge)
        .await
        .map_err(|e| ProviderError::new(format!("reading {}", network.bridge), e))?;
    for address in addresses.all() {
        if !present.contains(&address) {
            netlink
                .add_address(&network.bridge, address, 32)
                .await
                .map_err(|e| ProviderError::new("adding a cloud address", e))?;
        }
    }
    let mut servers = Vec::new();
    for (endpoint, address) in [
        (Endpoint::Aad, addresses.aad),
        (Endpoint::Arm, addresses.arm),
        (Endpoint::Blob, addresses.blob),
    ] {
        let addr = SocketAddr::from((address, 443));
        let server = cloud
            .serve(endpoint, bind(addr)?)
            .await
            .map_err(|e| ProviderError::new(format!("serving the mock cloud at {addr}"), e))?;
        servers.push(server);
    }
    let mut imds = Vec::new();
    for node in nodes {
        let listener = bind(SocketAddr::from((network.gateway, 0)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ProviderError::new("reading an IMDS listener's port", e))?;
        let endpoint = Endpoint::Imds {
            machine: machine_ref(&node.machine),
            label: node.logical.clone(),
        };
        let server = cloud
            .serve(endpoint, listener)
            .await
            .map_err(|e| ProviderError::new(format!("serving IMDS of {}", node.logical), e))?;
        servers.push(server);
        imds.push((node.logical.clone(), addr));
    }
    Ok(ServedCloud { servers, imds })
}

/// A shell script (run as root in a node) that sends the node's own metadata calls to `imds`
/// and refuses any other metadata traffic. Idempotent: running it again replaces the redirect.
pub fn node_rules_script(imds: SocketAddr) -> String {
    format!(
        "set -e
iptables -w -t nat -N {IMDS_CHAIN} 2>/dev/null || iptables -w -t nat -F {IMDS_CHAIN}
iptables -w -t nat -A {IMDS_CHAIN} -d {METADATA_IP}/32 -p tcp --dport 80 -j DNAT --to-destination {imds}
iptables -w -t nat -C OUTPUT -j {IMDS_CHAIN} 2>/dev/null || iptables -w -t nat -I OUTPUT 1 -j {IMDS_CHAIN}
iptables -w -N {GUARD_CHAIN} 2>/dev/null || iptables -w -F {GUARD_CHAIN}
iptables -w -A {GUARD_CHAIN} -d {METADATA_IP}/32 -j REJECT
for hook in FORWARD OUTPUT; do
  iptables -w -C $hook -j {GUARD_CHAIN} 2>/dev/null || iptables -w -I $hook 1 -j {GUARD_CHAIN}
done
"
    )
}

/// The script that takes the redirect of [`node_rules_script`] out again and keeps the guard:
/// a kept cluster's nodes must not reach a real metadata service once the mock is gone.
pub fn remove_redirect_script() -> String {
    format!(
        "iptables -w -t nat -D OUTPUT -j {IMDS_CHAIN} 2>/dev/null
iptables -w -t nat -F {IMDS_CHAIN} 2>/dev/null; iptables -w -t nat -X {IMDS_CHAIN} 2>/dev/null
true
"
    )
}

/// The command a node runs to show that its metadata address answers from the mock: a request
/// carrying `nonce`, which only the mock's log can then contain.
pub fn imds_check_command(nonce: &str) -> Vec<String> {
    [
        "curl",
        "-sS",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Metadata: true",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!(
        "http://{METADATA_IP}/metadata/instance?api-version=2021-02-01&podid-check={nonce}"
    )])
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use podid_mocks::BLOB_HOST_SUFFIX;

    fn network() -> ContainerNetwork {
        ContainerNetwork {
            bridge: "br-podid".into(),
            subnet: Ipv4Addr::new(172, 30, 0, 0),
            prefix: 16,
            gateway: Ipv4Addr::new(172, 30, 0, 1),
        }
    }

    #[test]
    fn cloud_addresses_sit_at_the_top_of_the_subnet() {
        let a = CloudAddresses::within(&network());
        assert_eq!(a.aad, Ipv4Addr::new(172, 30, 255, 252));
        assert_eq!(a.arm, Ipv4Addr::new(172, 30, 255, 253));
        assert_eq!(a.blob, Ipv4Addr::new(172, 30, 255, 254));
        let hosts = a.hosts().for_pod(&["acct".into()]);
        assert!(hosts.contains(&(a.blob.into(), format!("acct{BLOB_HOST_SUFFIX}"))));
        assert!(hosts.contains(&(a.aad.into(), AAD_HOST.into())));
    }

    #[test]
    fn node_rules_redirect_only_port_80_and_guard_the_rest() {
        let script = node_rules_script("172.30.0.1:40001".parse().unwrap());
        assert!(script.contains(
            "-d 169.254.169.254/32 -p tcp --dport 80 -j DNAT --to-destination 172.30.0.1:40001"
        ));
        assert!(script.contains("-A PODID-GUARD -d 169.254.169.254/32 -j REJECT"));
        assert!(script.contains("for hook in FORWARD OUTPUT"));
        let removal = remove_redirect_script();
        assert!(removal.contains("-X PODID-IMDS"));
        assert!(!removal.contains("GUARD"), "a kept node stays guarded");
    }

    #[test]
    fn the_check_request_carries_its_nonce() {
        let cmd = imds_check_command("abc");
        assert!(cmd.last().unwrap().ends_with("podid-check=abc"));
        assert!(cmd.contains(&"Metadata: true".to_string()));
    }
}
