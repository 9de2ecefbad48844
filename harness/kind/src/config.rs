//! The kind cluster configuration podid uses: one control plane and N workers, each node's
//! kubelet started with the Azure provider ID MIC maps it by, kind's default CNI off (it cannot
//! be built locally; [`crate::cni`] configures pod networking instead), and the kubelet allowed
//! to run on cgroup v1 hosts.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{KindError, Result};
use crate::net::Ipv4Cidr;

/// Prefix of every cluster (and docker network) podid creates, so leftovers can be found.
pub const CLUSTER_PREFIX: &str = "podid-";

/// What one node should look like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// The kubelet's `--provider-id`, e.g.
    /// `azure:///subscriptions/…/virtualMachineScaleSets/ss/virtualMachines/0`; `None` keeps
    /// kind's `kind://…` ID.
    pub provider_id: Option<String>,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
}

/// A whole cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// The kind cluster name (see [`cluster_name`]).
    pub name: String,
    /// The node image tag.
    pub node_image: String,
    /// The control-plane node.
    pub control_plane: NodeSpec,
    /// The workers, in order (`<name>-worker`, `<name>-worker2`, …).
    pub workers: Vec<NodeSpec>,
    /// The range node pod ranges are carved from.
    pub pod_subnet: Ipv4Cidr,
    /// The range Service IPs come from.
    pub service_subnet: Ipv4Cidr,
}

impl ClusterSpec {
    /// A cluster named after `run_id` with `workers` plain workers and kind's default ranges.
    pub fn new(run_id: &str, node_image: impl Into<String>, workers: usize) -> Self {
        Self {
            name: cluster_name(run_id),
            node_image: node_image.into(),
            control_plane: NodeSpec::default(),
            workers: vec![NodeSpec::default(); workers],
            pod_subnet: "10.244.0.0/16".parse().expect("valid"),
            service_subnet: "10.96.0.0/16".parse().expect("valid"),
        }
    }

    /// The docker container (and Kubernetes node) names kind gives the nodes, control plane
    /// first.
    pub fn node_names(&self) -> Vec<String> {
        let mut names = vec![format!("{}-control-plane", self.name)];
        for i in 0..self.workers.len() {
            names.push(match i {
                0 => format!("{}-worker", self.name),
                n => format!("{}-worker{}", self.name, n + 1),
            });
        }
        names
    }
}

/// `podid-<run id>`, lower-cased with anything but letters, digits and `-` replaced, short
/// enough that node names (`…-control-plane`) stay valid host names.
pub fn cluster_name(run_id: &str) -> String {
    let mut id: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    id.truncate(32);
    let id = id.trim_matches('-');
    format!("{CLUSTER_PREFIX}{id}")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindConfig {
    kind: &'static str,
    api_version: &'static str,
    networking: Networking,
    kubeadm_config_patches: Vec<String>,
    nodes: Vec<Node>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    #[serde(rename = "disableDefaultCNI")]
    disable_default_cni: bool,
    pod_subnet: String,
    service_subnet: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    role: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kubeadm_config_patches: Vec<String>,
}

/// The kind config for `spec`, as YAML.
pub fn render(spec: &ClusterSpec) -> Result<String> {
    let mut nodes = vec![node(
        "control-plane",
        "InitConfiguration",
        &spec.control_plane,
    )?];
    for worker in &spec.workers {
        nodes.push(node("worker", "JoinConfiguration", worker)?);
    }
    let config = KindConfig {
        kind: "Cluster",
        api_version: "kind.x-k8s.io/v1alpha4",
        networking: Networking {
            disable_default_cni: true,
            pod_subnet: spec.pod_subnet.to_string(),
            service_subnet: spec.service_subnet.to_string(),
        },
        // Kubernetes 1.35+ kubelets refuse cgroup v1 hosts unless told otherwise.
        kubeadm_config_patches: vec![yaml(&json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": false,
        }))?],
        nodes,
    };
    serde_saphyr::to_string(&config)
        .map_err(|e| KindError::invalid("rendering the kind config", e.to_string()))
}

/// One node; its provider ID goes into kubeadm's `kubeletExtraArgs` (v1beta4's list of
/// name/value pairs, which kind merges by name, replacing its own `provider-id`).
fn node(role: &'static str, kubeadm_kind: &str, spec: &NodeSpec) -> Result<Node> {
    let mut patches = Vec::new();
    if let Some(id) = &spec.provider_id {
        patches.push(yaml(&json!({
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": kubeadm_kind,
            "nodeRegistration": {
                "kubeletExtraArgs": [ { "name": "provider-id", "value": id } ],
            },
        }))?);
    }
    Ok(Node {
        role,
        labels: spec.labels.clone(),
        kubeadm_config_patches: patches,
    })
}

fn yaml(value: &Value) -> Result<String> {
    serde_saphyr::to_string(value)
        .map_err(|e| KindError::invalid("rendering a kubeadm config patch", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    fn spec() -> ClusterSpec {
        let mut spec = ClusterSpec::new("Run_42", "podid-kind/node:v1.36.3-abc", 2);
        spec.workers[0].provider_id = Some(
            "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0"
                .into(),
        );
        spec.workers[1].provider_id = Some("azure:///x/1".into());
        spec.workers[1]
            .labels
            .insert("podid.io/node".into(), "node-1".into());
        spec
    }

    #[test]
    fn names_follow_kind() {
        let spec = spec();
        assert_eq!(spec.name, "podid-run-42");
        assert_eq!(
            spec.node_names(),
            [
                "podid-run-42-control-plane",
                "podid-run-42-worker",
                "podid-run-42-worker2"
            ]
        );
        assert_eq!(cluster_name("--a b--"), "podid-a-b");
        assert!(cluster_name(&"x".repeat(100)).len() <= CLUSTER_PREFIX.len() + 32);
    }

    #[test]
    fn config_has_one_control_plane_and_the_workers() {
        let config = parse(&render(&spec()).unwrap());
        assert_eq!(config["kind"], "Cluster");
        assert_eq!(config["apiVersion"], "kind.x-k8s.io/v1alpha4");
        assert_eq!(config["networking"]["disableDefaultCNI"], true);
        assert_eq!(config["networking"]["podSubnet"], "10.244.0.0/16");
        assert_eq!(config["networking"]["serviceSubnet"], "10.96.0.0/16");
        let roles: Vec<&str> = config["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["control-plane", "worker", "worker"]);
        assert!(config["nodes"][0].get("kubeadmConfigPatches").is_none());
        assert_eq!(config["nodes"][2]["labels"]["podid.io/node"], "node-1");
    }

    #[test]
    fn kubelet_may_run_on_cgroup_v1() {
        let config = parse(&render(&spec()).unwrap());
        let patch = parse(config["kubeadmConfigPatches"][0].as_str().unwrap());
        assert_eq!(patch["kind"], "KubeletConfiguration");
        assert_eq!(patch["apiVersion"], "kubelet.config.k8s.io/v1beta1");
        assert_eq!(patch["failCgroupV1"], false);
    }

    #[test]
    fn each_worker_joins_with_its_provider_id_in_v1beta4_list_form() {
        let config = parse(&render(&spec()).unwrap());
        let patch = parse(
            config["nodes"][1]["kubeadmConfigPatches"][0]
                .as_str()
                .unwrap(),
        );
        assert_eq!(patch["kind"], "JoinConfiguration");
        assert_eq!(patch["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(
            patch["nodeRegistration"]["kubeletExtraArgs"],
            json!([{
                "name": "provider-id",
                "value": "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0"
            }])
        );
        let second = parse(
            config["nodes"][2]["kubeadmConfigPatches"][0]
                .as_str()
                .unwrap(),
        );
        assert_eq!(
            second["nodeRegistration"]["kubeletExtraArgs"][0]["value"],
            "azure:///x/1"
        );
    }

    #[test]
    fn control_plane_provider_id_patches_init_configuration() {
        let mut spec = spec();
        spec.control_plane.provider_id = Some("azure:///cp".into());
        let config = parse(&render(&spec).unwrap());
        let patch = parse(
            config["nodes"][0]["kubeadmConfigPatches"][0]
                .as_str()
                .unwrap(),
        );
        assert_eq!(patch["kind"], "InitConfiguration");
    }
}
