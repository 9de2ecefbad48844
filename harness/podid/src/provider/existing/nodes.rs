//! Which nodes of an existing cluster stand for the scenarios' logical nodes, and the Azure
//! machine behind each, read from `spec.providerID` (what MIC reads too).

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;
use podid_scenario::LOGICAL_NODES;

use crate::provider::cluster::Machine;
use crate::provider::error::ProviderError;
use crate::provider::mock_world::PlannedMachine;

/// A node scenarios use, with what its providerID says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub logical: String,
    pub name: String,
    pub address: Option<std::net::IpAddr>,
    pub azure: Option<AzureMachine>,
}

/// An Azure machine named by a providerID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureMachine {
    pub subscription_id: String,
    pub resource_group: String,
    pub machine: Machine,
    /// The ARM id of the scale set or VM (what identities are assigned to).
    pub resource_id: String,
}

/// Parses `azure:///subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/
/// virtualMachineScaleSets/SS/virtualMachines/N` or `…/virtualMachines/VM`; anything else
/// (kind, k3d, minikube) is not an Azure machine.
pub fn parse_provider_id(provider_id: &str) -> Option<AzureMachine> {
    let path = provider_id.strip_prefix("azure://")?;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
    let at = |name: &str| lower.iter().position(|p| p == name).map(|i| i + 1);
    let subscription_id = parts.get(at("subscriptions")?)?.to_string();
    let resource_group = parts.get(at("resourcegroups")?)?.to_string();
    if let Some(i) = at("virtualmachinescalesets") {
        let scale_set = parts.get(i)?.to_string();
        let instance: u32 = parts.get(at("virtualmachines")?)?.parse().ok()?;
        let resource_id = format!(
            "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachineScaleSets/{scale_set}"
        );
        return Some(AzureMachine {
            subscription_id,
            resource_group,
            machine: Machine::ScaleSetInstance {
                scale_set,
                instance,
            },
            resource_id,
        });
    }
    let name = parts.get(at("virtualmachines")?)?.to_string();
    let resource_id = format!(
        "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/{name}"
    );
    Some(AzureMachine {
        subscription_id,
        resource_group,
        machine: Machine::VirtualMachine { name },
        resource_id,
    })
}

fn schedulable(node: &Node) -> bool {
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        return false;
    }
    let no_schedule = spec.and_then(|s| s.taints.as_ref()).is_some_and(|t| {
        t.iter()
            .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    });
    let linux = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/os"))
        .is_none_or(|os| os == "linux");
    !no_schedule && linux
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn internal_address(node: &Node) -> Option<std::net::IpAddr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()
}

/// The first ready, schedulable Linux nodes (by name), one per logical node.
pub async fn choose(client: &kube::Client) -> Result<Vec<ClusterNode>, ProviderError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut nodes = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ProviderError::new("listing the cluster's nodes", e))?
        .items;
    nodes.retain(|n| schedulable(n) && ready(n));
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if nodes.len() < LOGICAL_NODES.len() {
        return Err(ProviderError::plain(format!(
            "the cluster has {} ready, schedulable Linux node(s); scenarios need {} (add a node, or remove the NoSchedule taint)",
            nodes.len(),
            LOGICAL_NODES.len()
        )));
    }
    Ok(LOGICAL_NODES
        .iter()
        .zip(nodes)
        .map(|(logical, node)| ClusterNode {
            logical: logical.to_string(),
            name: node.metadata.name.clone().unwrap_or_default(),
            address: internal_address(&node),
            azure: node
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .and_then(parse_provider_id),
        })
        .collect())
}

/// The machine behind a node for the mock cloud: its Azure machine where the providerID names
/// one (so MIC finds it), else a VM of its own named after the node.
pub fn mock_machine(node: &ClusterNode) -> PlannedMachine {
    match &node.azure {
        Some(azure) => PlannedMachine {
            machine: azure.machine.clone(),
            resource_group: azure.resource_group.clone(),
        },
        None => PlannedMachine {
            machine: Machine::VirtualMachine {
                name: node.name.clone(),
            },
            resource_group: crate::provider::mock_world::NODE_RESOURCE_GROUP.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_set_and_vm_provider_ids_parse_and_others_do_not() {
        let vmss = parse_provider_id("azure:///subscriptions/s1/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-pool-1/virtualMachines/3").unwrap();
        assert_eq!(vmss.subscription_id, "s1");
        assert_eq!(vmss.resource_group, "MC_rg");
        assert_eq!(
            vmss.machine,
            Machine::ScaleSetInstance {
                scale_set: "aks-pool-1".into(),
                instance: 3
            }
        );
        assert!(
            vmss.resource_id
                .ends_with("/virtualMachineScaleSets/aks-pool-1")
        );
        let vm = parse_provider_id(
            "azure:///subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm0",
        )
        .unwrap();
        assert_eq!(vm.machine, Machine::VirtualMachine { name: "vm0".into() });
        assert_eq!(parse_provider_id("kind://docker/c/c-worker"), None);
        assert_eq!(parse_provider_id("k3s://node"), None);
    }
}
