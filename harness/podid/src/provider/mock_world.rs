//! The mock cloud every mock-backed provider starts from: one scale set per logical node (so
//! per-node views differ), MIC's service principal, the cluster identity, and a CA for the run.
//! Providers differ only in where they serve it and how MIC gets its credentials.

use podid_mocks::{
    CloudSpec, MachineKind, MockCloud, ServicePrincipal, SpCredential, SystemAssignedIdentity,
    UserAssignedIdentity, VirtualMachine, resource_id,
};
use podid_scenario::LOGICAL_NODES;

use super::cluster::{ClusterIdentity, Machine};
use super::error::ProviderError;

/// Resource group of the node scale sets.
pub const NODE_RESOURCE_GROUP: &str = "podid-nodes";
/// Display name of MIC's service principal in the mock cloud.
pub const MIC_PRINCIPAL: &str = "podid-mic";
/// Name of the cluster identity: AKS's `<cluster>-agentpool` user-assigned identity, in the
/// node resource group. It is on no node at start; MIC gets its client ID as azure.json's
/// `userAssignedIdentityID` and must never take it off a node.
pub const CLUSTER_IDENTITY: &str = "podid-agentpool";
/// Host name of the mock AAD (public cloud), resolved to the mock by nodes and pods.
pub const AAD_HOST: &str = "login.microsoftonline.com";
/// Host name of the mock ARM (public cloud).
pub const ARM_HOST: &str = "management.azure.com";

/// The scale set behind a logical node: one pool per node, so per-node views differ.
pub fn scale_set_of(logical: &str) -> String {
    format!("podid-pool{}", logical.trim_start_matches("node-"))
}

/// The machine behind a logical node: instance 0 of its own scale set.
pub fn machine_of(logical: &str) -> Machine {
    Machine::ScaleSetInstance {
        scale_set: scale_set_of(logical),
        instance: 0,
    }
}

/// The Azure `providerID` of a logical node, which MIC parses to find its scale set.
pub fn provider_id_of(subscription: &str, logical: &str) -> String {
    format!(
        "azure:///subscriptions/{subscription}/resourceGroups/{NODE_RESOURCE_GROUP}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/0",
        scale_set_of(logical)
    )
}

/// MIC's service principal: the credentials MIC signs in to ARM with.
#[derive(Clone)]
pub struct MicPrincipal {
    pub client_id: String,
    /// Its object ID: what ARM authorizes (`oid` of its tokens).
    pub object_id: String,
    pub secret: String,
}

impl std::fmt::Debug for MicPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicPrincipal")
            .field("client_id", &self.client_id)
            .field("object_id", &self.object_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A created mock cloud and the values providers hand to the cluster.
pub struct MockWorld {
    pub cloud: MockCloud,
    pub tenant_id: String,
    pub subscription_id: String,
    pub mic: MicPrincipal,
    pub cluster_identity: ClusterIdentity,
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What a mock cloud starts from, before it is served anywhere.
pub struct WorldPlan {
    pub spec: CloudSpec,
    pub tenant_id: String,
    pub subscription_id: String,
    pub mic: MicPrincipal,
    pub cluster_identity: ClusterIdentity,
}

/// A node machine of the plan: a scale set (instances `0..=instance`) or a VM, in its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMachine {
    pub machine: Machine,
    pub resource_group: String,
}

/// One scale set per logical node, in [`NODE_RESOURCE_GROUP`] (the local and kind providers).
pub fn logical_machines() -> Vec<PlannedMachine> {
    LOGICAL_NODES
        .iter()
        .map(|node| PlannedMachine {
            machine: machine_of(node),
            resource_group: NODE_RESOURCE_GROUP.to_string(),
        })
        .collect()
}

/// The cloud for `machines` in `subscription_id` (a fresh one when `None`): each machine with a
/// system-assigned identity, MIC's principal and the cluster identity.
pub fn plan(subscription_id: Option<String>, machines: &[PlannedMachine]) -> WorldPlan {
    let subscription_id = subscription_id.unwrap_or_else(guid);
    let tenant_id = guid();
    let mic = MicPrincipal {
        client_id: guid(),
        object_id: guid(),
        secret: format!("podid-{}", guid()),
    };
    let cluster_group = machines
        .first()
        .map(|m| m.resource_group.clone())
        .unwrap_or_else(|| NODE_RESOURCE_GROUP.to_string());
    let cluster_identity = ClusterIdentity {
        client_id: guid(),
        principal_id: guid(),
        resource_id: resource_id::user_assigned_identity(
            &subscription_id,
            &cluster_group,
            CLUSTER_IDENTITY,
        ),
    };
    let spec = CloudSpec {
        tenant_id: tenant_id.clone(),
        subscription_id: subscription_id.clone(),
        machines: machines
            .iter()
            .map(|m| {
                let (name, kind) = match &m.machine {
                    Machine::ScaleSetInstance {
                        scale_set,
                        instance,
                    } => (
                        scale_set.clone(),
                        MachineKind::ScaleSet {
                            instances: instance + 1,
                        },
                    ),
                    Machine::VirtualMachine { name } => (name.clone(), MachineKind::Vm),
                };
                VirtualMachine {
                    name,
                    resource_group: m.resource_group.clone(),
                    kind,
                    system_assigned: Some(SystemAssignedIdentity {
                        principal_id: guid(),
                        client_id: guid(),
                    }),
                    user_assigned: Vec::new(),
                    location: "eastus".into(),
                    provisioning_state: "Succeeded".into(),
                }
            })
            .collect(),
        identities: vec![UserAssignedIdentity {
            name: CLUSTER_IDENTITY.into(),
            resource_group: cluster_group,
            client_id: cluster_identity.client_id.clone(),
            principal_id: cluster_identity.principal_id.clone(),
        }],
        service_principals: vec![ServicePrincipal {
            name: MIC_PRINCIPAL.into(),
            client_id: mic.client_id.clone(),
            object_id: mic.object_id.clone(),
            credential: SpCredential::Secret {
                secret: mic.secret.clone(),
            },
        }],
        ..CloudSpec::default()
    };
    WorldPlan {
        spec,
        tenant_id,
        subscription_id,
        mic,
        cluster_identity,
    }
}

/// Creates the mock cloud; `extra_sans` are the addresses its certificates must also cover.
pub fn create(extra_sans: Vec<String>) -> Result<MockWorld, ProviderError> {
    let plan = plan(None, &logical_machines());
    let cloud = MockCloud::builder()
        .extra_sans(extra_sans)
        .build(plan.spec)
        .map_err(|e| ProviderError::new("creating the mock cloud", e))?;
    Ok(MockWorld {
        cloud,
        tenant_id: plan.tenant_id,
        subscription_id: plan.subscription_id,
        mic: plan.mic,
        cluster_identity: plan.cluster_identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_name_each_nodes_own_scale_set() {
        let id = provider_id_of("sub", "node-1");
        assert!(id.starts_with("azure:///subscriptions/sub/resourceGroups/podid-nodes/"));
        assert!(id.ends_with("/virtualMachineScaleSets/podid-pool1/virtualMachines/0"));
        assert_eq!(
            machine_of("node-0"),
            Machine::ScaleSetInstance {
                scale_set: "podid-pool0".into(),
                instance: 0
            }
        );
    }

    #[test]
    fn the_cluster_identity_exists_on_no_node() {
        let world = create(Vec::new()).unwrap();
        let identity = &world.cluster_identity;
        assert!(
            identity.resource_id.ends_with(&format!(
                "/resourcegroups/{NODE_RESOURCE_GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{CLUSTER_IDENTITY}"
            )),
            "{}",
            identity.resource_id
        );
        assert_ne!(identity.client_id, world.mic.client_id);
        for node in LOGICAL_NODES {
            let machine = super::super::mock_cloud::machine_ref(&machine_of(node));
            assert!(
                world
                    .cloud
                    .assigned_identities(&machine)
                    .unwrap()
                    .is_empty(),
                "{node} starts without the cluster identity"
            );
        }
        // It exists: it can be assigned.
        let machine = super::super::mock_cloud::machine_ref(&machine_of(LOGICAL_NODES[0]));
        world
            .cloud
            .assign_identity(&machine, &identity.resource_id)
            .unwrap();
        assert_eq!(world.cloud.assigned_identities(&machine).unwrap().len(), 1);
    }

    #[test]
    fn the_mic_secret_never_prints() {
        let p = MicPrincipal {
            object_id: "o".into(),
            client_id: "c".into(),
            secret: "s3cret".into(),
        };
        assert!(!format!("{p:?}").contains("s3cret"));
    }
}
