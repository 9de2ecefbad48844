//! Pod networking for kind nodes, in place of kind's default CNI (kindnetd), which cannot be
//! built from the Go module proxy. Each node gets what kindnetd would set up: a `ptp` +
//! `host-local` CNI config for its own pod range, routes to the other nodes' pod ranges via
//! their addresses on the shared docker network, and masquerading for pod traffic that leaves
//! the pod network. Pod-to-pod traffic keeps its source address, which NMI relies on to tell
//! pods apart.

use std::net::Ipv4Addr;

use serde_json::json;

use crate::docker::Docker;
use crate::error::Result;
use crate::net::Ipv4Cidr;

/// Where the CNI config is written on each node.
pub const CONFLIST_PATH: &str = "/etc/cni/net.d/10-podid.conflist";

/// The iptables nat chain holding the masquerade rules.
pub const MASQ_CHAIN: &str = "PODID-MASQ";

/// One node's place in the pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNet {
    /// The node's container name.
    pub container: String,
    /// Its address on the cluster's docker network.
    pub ip: Ipv4Addr,
    /// The pod range Kubernetes assigned to it (`Node.spec.podCIDR`).
    pub pod_cidr: Ipv4Cidr,
}

/// The CNI config list for a node whose pods take addresses from `pod_cidr`.
pub fn conflist(pod_cidr: Ipv4Cidr) -> String {
    let config = json!({
        "cniVersion": "0.4.0",
        "name": "podid",
        "plugins": [
            {
                "type": "ptp",
                // Masquerading is done per node for the whole pod network (see MASQ_CHAIN),
                // so traffic between pods on different nodes keeps its source address.
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "dataDir": "/run/cni-ipam-state",
                    "ranges": [[{ "subnet": pod_cidr.to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                },
                "mtu": 1500,
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    });
    serde_json::to_string_pretty(&config).expect("JSON values always serialise")
}

/// The script that configures `this` node, given every node of the cluster.
pub fn node_script(this: &NodeNet, all: &[NodeNet], pod_subnet: Ipv4Cidr) -> String {
    let mut script = String::from("sysctl -qw net.ipv4.ip_forward=1\n");
    for other in all.iter().filter(|n| n.container != this.container) {
        script.push_str(&format!(
            "ip route replace {} via {}\n",
            other.pod_cidr, other.ip
        ));
    }
    script.push_str(&format!(
        "iptables -t nat -N {chain} 2>/dev/null || iptables -t nat -F {chain}\n\
         iptables -t nat -A {chain} -d {subnet} -j RETURN\n\
         iptables -t nat -A {chain} -j MASQUERADE\n\
         iptables -t nat -C POSTROUTING -s {subnet} -j {chain} 2>/dev/null \
         || iptables -t nat -A POSTROUTING -s {subnet} -j {chain}\n",
        chain = MASQ_CHAIN,
        subnet = pod_subnet,
    ));
    // The config goes last and atomically: its appearance is what makes the node Ready.
    script.push_str(&format!(
        "mkdir -p /etc/cni/net.d\ncat > {path}.tmp <<'PODID_CNI'\n{conflist}\nPODID_CNI\nmv {path}.tmp {path}\n",
        path = CONFLIST_PATH,
        conflist = conflist(this.pod_cidr),
    ));
    script
}

/// Configures pod networking on every node.
pub async fn configure(docker: &Docker, nodes: &[NodeNet], pod_subnet: Ipv4Cidr) -> Result<()> {
    for node in nodes {
        docker
            .exec_script(
                &node.container,
                &format!("configuring pod networking for {}", node.pod_cidr),
                &node_script(node, nodes, pod_subnet),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeNet> {
        (0..3)
            .map(|i| NodeNet {
                container: format!("n{i}"),
                ip: Ipv4Addr::new(172, 29, 0, 2 + i),
                pod_cidr: format!("10.244.{i}.0/24").parse().unwrap(),
            })
            .collect()
    }

    #[test]
    fn conflist_uses_the_nodes_range_without_plugin_masquerade() {
        let v: serde_json::Value =
            serde_json::from_str(&conflist("10.244.1.0/24".parse().unwrap())).unwrap();
        assert_eq!(v["plugins"][0]["type"], "ptp");
        assert_eq!(v["plugins"][0]["ipMasq"], false);
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.244.1.0/24"
        );
        assert_eq!(v["plugins"][1]["type"], "portmap");
    }

    #[test]
    fn script_routes_to_the_other_nodes_and_masquerades_outside_the_pod_network() {
        let all = nodes();
        let script = node_script(&all[1], &all, "10.244.0.0/16".parse().unwrap());
        assert!(script.contains("ip route replace 10.244.0.0/24 via 172.29.0.2\n"));
        assert!(script.contains("ip route replace 10.244.2.0/24 via 172.29.0.4\n"));
        assert!(!script.contains("10.244.1.0/24 via"));
        assert!(script.contains("-A PODID-MASQ -d 10.244.0.0/16 -j RETURN"));
        assert!(script.contains("-A POSTROUTING -s 10.244.0.0/16 -j PODID-MASQ"));
        assert!(script.find("ip route").unwrap() < script.find(CONFLIST_PATH).unwrap());
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}
