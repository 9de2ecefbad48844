//! What a provider's sides can do. The runner derives each trial's needs from the scenario and
//! skips, with the reason, a trial whose needs the provider lacks.

use std::collections::BTreeSet;
use std::fmt;

/// One thing a cluster side or a cloud side may be able to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// NMI in managed mode (`--operation-mode=managed`), MIC not running.
    ManagedMode,
    /// NMI in standard mode with MIC assigning identities.
    StandardMode,
    /// Any NMI and MIC command-line flags a scenario asks for.
    ComponentFlags,
    /// Each logical node has a machine of its own whose identities the cloud side can change.
    PerNodeMachines,
    /// AzureIdentities of service principals (types 1 and 2) that NMI can use.
    ServicePrincipalIdentities,
    /// A log of the requests the cloud received, for `requests` expectations.
    RequestLog,
    /// Making chosen cloud requests fail or stall.
    FaultRules,
    /// Changing identities, roles and assignments while a scenario runs.
    CloudChanges,
    /// Restarting NMI, MIC or the API server while a scenario runs.
    Restarts,
    /// MIC with two replicas and leader election.
    MicReplicas,
    /// Reading each component's `/healthz`.
    HealthEndpoints,
    /// Reading NMI's iptables chain on a node.
    NodeIptables,
    /// Pods that report phase `Pending` while running (as during init containers).
    PendingPods,
    /// A cluster identity MIC treats as immutable (azure.json `userAssignedIdentityID`).
    ClusterIdentity,
    /// Running commands inside pods (`exec` steps with `command`).
    Exec,
    /// The Python SDK client (azure-identity, azure-storage-blob) inside pods.
    PythonClient,
    /// The JavaScript SDK client (@azure/identity, @azure/storage-blob) inside pods.
    JavaScriptClient,
    /// The Azure CLI inside pods.
    AzCliClient,
    /// Pod objects whose status reports another pod's address (`ipOf`).
    ForgedPodStatus,
    /// Sending a pod's request from another pod's address (`sourceAddress`).
    SpoofedSource,
    /// Cloud-wide ARM and IMDS behaviour (`cloud.arm`, `cloud.imds`).
    CloudBehaviour,
}

impl Capability {
    /// Every capability, in display order.
    pub const ALL: [Capability; 21] = [
        Self::ManagedMode,
        Self::StandardMode,
        Self::ComponentFlags,
        Self::PerNodeMachines,
        Self::ServicePrincipalIdentities,
        Self::RequestLog,
        Self::FaultRules,
        Self::CloudChanges,
        Self::Restarts,
        Self::MicReplicas,
        Self::HealthEndpoints,
        Self::NodeIptables,
        Self::PendingPods,
        Self::ClusterIdentity,
        Self::Exec,
        Self::PythonClient,
        Self::JavaScriptClient,
        Self::AzCliClient,
        Self::ForgedPodStatus,
        Self::SpoofedSource,
        Self::CloudBehaviour,
    ];

    /// A short noun phrase for skip reasons and listings.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ManagedMode => "NMI in managed mode",
            Self::StandardMode => "NMI and MIC in standard mode",
            Self::ComponentFlags => "arbitrary NMI/MIC flags",
            Self::PerNodeMachines => "a machine per node whose identities can be set",
            Self::ServicePrincipalIdentities => "service-principal AzureIdentities",
            Self::RequestLog => "the cloud's request log",
            Self::FaultRules => "cloud fault rules",
            Self::CloudChanges => "cloud changes mid-scenario",
            Self::Restarts => "component restarts mid-scenario",
            Self::MicReplicas => "two MIC replicas with leader election",
            Self::HealthEndpoints => "component health endpoints",
            Self::NodeIptables => "reading a node's iptables",
            Self::PendingPods => "pods that stay in phase Pending",
            Self::ClusterIdentity => "a cluster identity MIC must not remove",
            Self::Exec => "commands run inside pods",
            Self::PythonClient => "the Python SDK client inside pods",
            Self::JavaScriptClient => "the JavaScript SDK client inside pods",
            Self::AzCliClient => "the Azure CLI inside pods",
            Self::ForgedPodStatus => "pod objects reporting another pod's address",
            Self::SpoofedSource => "requests sent from another pod's address",
            Self::CloudBehaviour => "cloud-wide ARM and IMDS behaviour settings",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A set of capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(BTreeSet<Capability>);

impl Capabilities {
    /// A set of exactly these.
    pub fn of(items: impl IntoIterator<Item = Capability>) -> Self {
        Self(items.into_iter().collect())
    }

    pub fn has(&self, capability: Capability) -> bool {
        self.0.contains(&capability)
    }

    /// What either set has (a provider offers what its cluster side or its cloud side offers).
    pub fn union(&self, other: &Capabilities) -> Capabilities {
        Self(self.0.union(&other.0).copied().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = Capability> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        Self::of(iter)
    }
}
