//! What a local cluster is made of: binaries, nodes, NMI settings, pod requests.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Paths of the programs and manifests the local cluster runs; the caller resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// etcd 3.6.x.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// aad-pod-identity NMI.
    pub nmi: PathBuf,
    /// aad-pod-identity MIC (needed only to run it: [`crate::LocalCluster::run_mic`]).
    pub mic: Option<PathBuf>,
    /// The aad-pod-identity CRD manifest (multi-document YAML).
    pub crds: PathBuf,
}

/// One fake node: a network namespace running NMI, registered as a Node object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Node name (`--node` of its NMI, `spec.nodeName` of its pods).
    pub name: String,
    /// `spec.providerID`, e.g. `azure:///subscriptions/…/virtualMachineScaleSets/<vmss>/virtualMachines/<i>`.
    pub provider_id: String,
    /// N in the node's pod range `10.244.N.0/24` (1..=254, unique per cluster).
    pub pod_cidr_index: u8,
    /// Extra local addresses of the node (mock cloud endpoints the caller binds there).
    pub extra_addresses: Vec<Ipv4Addr>,
}

/// The mode NMI runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NmiMode {
    /// `--operation-mode=standard`: identities come from AzureAssignedIdentities.
    #[default]
    Standard,
    /// `--operation-mode=managed --forceNamespaced`: identities come from bindings directly.
    Managed,
}

/// How NMI is started on every node (the mode is chosen at each start).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NmiConfig {
    /// Flags appended after podid's own (a later flag wins in pflag).
    pub extra_args: Vec<String>,
    /// Extra environment for NMI (e.g. `SSL_CERT_FILE` for a mock AAD over https).
    pub extra_env: Vec<(String, String)>,
}

/// How MIC runs: `replicas` processes with leader election, replica `i` inside the namespace
/// of `nodes[i]` (like a hostNetwork pod: that node's hosts file, API forwarder and cloud
/// addresses apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicConfig {
    /// 1 or 2.
    pub replicas: u8,
    /// Where each replica slot runs; at least `replicas` nodes.
    pub nodes: Vec<String>,
    /// `--cloudconfig`: the azure.json MIC reads.
    pub cloud_config: PathBuf,
    /// Unique per run; replica `i` runs with `--leader-election-instance=<instance>-<i>`, the
    /// same name at every start, so a restarted leader takes its lease back at once.
    pub instance: String,
    /// Flags appended after podid's own (a later flag wins in Go's `flag`).
    pub extra_args: Vec<String>,
    /// Extra environment (e.g. `SSL_CERT_FILE` for the mock cloud's CA).
    pub extra_env: Vec<(String, String)>,
}

impl MicConfig {
    /// The `--leader-election-instance` of replica `slot`.
    pub fn instance_of(&self, slot: u8) -> String {
        format!("{}-{slot}", self.instance)
    }
}

/// Everything [`crate::LocalCluster::start`] needs.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    /// Short run id (`[a-z0-9]{6}`), part of every namespace name; see [`crate::generate_run_id`].
    pub run_id: String,
    /// Logs, certificates, kubeconfigs and etcd data all go under this directory.
    pub work_dir: PathBuf,
    /// Programs to run.
    pub binaries: Binaries,
    /// The fake nodes.
    pub nodes: Vec<NodeConfig>,
    /// NMI settings.
    pub nmi: NmiConfig,
}

/// A pod for the harness (acting as kubelet) to create and wire up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSpec {
    /// Kubernetes namespace (must exist; see [`crate::LocalCluster::ensure_namespace`]).
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Labels, e.g. `aadpodidbinding`.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Node to put the pod on.
    pub node: String,
    /// The pod's owner reference (NMI's "is this MIC" check looks at an owning ReplicaSet).
    pub owner: Option<PodOwner>,
    /// The phase the pod reports while it runs.
    pub phase: PodPhase,
}

/// The kind of object that owns a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    ReplicaSet,
    DaemonSet,
}

impl OwnerKind {
    /// The `kind` of the owner reference.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReplicaSet => "ReplicaSet",
            Self::DaemonSet => "DaemonSet",
        }
    }
}

/// A pod's owner: only referenced (no controller runs to own anything here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOwner {
    pub kind: OwnerKind,
    pub name: String,
}

/// The phase the harness, as kubelet, reports for a running pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodPhase {
    /// Running and Ready.
    #[default]
    Running,
    /// Pending with its IP assigned, as while init containers run (NMI serves such pods).
    Pending,
}
