//! What a caller asks for: NMI (and in standard mode MIC) in a namespace, from which images,
//! with which extra flags, and how they reach the cloud. The same request serves a throw-away
//! cluster pointed at a mock cloud and a real cluster talking to real Azure; only
//! [`CloudAccess`] differs.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// A host-file entry: an address and the names that resolve to it (a pod's `hostAliases`).
pub type HostAlias = (IpAddr, Vec<String>);

/// Which of upstream's installations to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// NMI alone, in managed mode: identities are assigned to the nodes outside the cluster.
    Managed,
    /// NMI and MIC: MIC assigns identities to the nodes' machines through ARM.
    Standard,
}

impl Mode {
    /// The lower-case name (`managed`, `standard`), as NMI's `--operation-mode` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managed => "managed",
            Self::Standard => "standard",
        }
    }
}

/// When the kubelet pulls NMI's, MIC's and workloads' images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ImagePullPolicy {
    /// Use the node's copy when it has one (images loaded into the nodes beforehand, or pulled
    /// once from a registry).
    #[default]
    IfNotPresent,
    /// Never pull: the image must already be on the node (clusters without a registry).
    Never,
    /// Pull on every start (moving tags on a real registry).
    Always,
}

impl ImagePullPolicy {
    /// The value of a container's `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
            Self::Always => "Always",
        }
    }
}

/// The service principal MIC uses to assign identities through ARM, given to it the way
/// upstream's no-azure.json installation does: a Secret read into environment variables.
#[derive(Clone, PartialEq, Eq)]
pub struct MicCredentials {
    /// go-autorest cloud name (`AzurePublicCloud`); MIC refuses to start without one. With the
    /// public cloud's host names resolving to a mock (see [`CloudAccess::host_aliases`]) this
    /// stays `AzurePublicCloud`.
    pub cloud: String,
    pub tenant_id: String,
    pub subscription_id: String,
    /// Resource group of the nodes' machines.
    pub resource_group: String,
    pub client_id: String,
    pub client_secret: String,
    /// `vmss` or `standard`; MIC parses but does not use it (the node's providerID decides).
    pub vm_type: String,
    /// The cluster identity's client ID (`USER_ASSIGNED_MSI_CLIENT_ID`, upstream chart's
    /// `adminsecret.userAssignedMSIClientID`): MIC never removes it from a node.
    pub user_assigned_identity_id: Option<String>,
}

impl std::fmt::Debug for MicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicCredentials")
            .field("cloud", &self.cloud)
            .field("tenant_id", &self.tenant_id)
            .field("subscription_id", &self.subscription_id)
            .field("resource_group", &self.resource_group)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("vm_type", &self.vm_type)
            .field("user_assigned_identity_id", &self.user_assigned_identity_id)
            .finish()
    }
}

/// How NMI, MIC and workload pods reach the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloudAccess {
    /// Host names to pin (e.g. `login.microsoftonline.com` and `management.azure.com` to a mock
    /// cloud's addresses); empty on a real cluster talking to real Azure.
    pub host_aliases: Vec<HostAlias>,
    /// PEM certificates to trust instead of the image's roots (a mock cloud's CA). Go, Python's
    /// requests and Node all read a file named by an environment variable, so one mounted
    /// ConfigMap serves NMI, MIC and workloads.
    pub ca_bundle_pem: Option<String>,
    /// MIC's service principal; needed in standard mode only.
    pub mic_credentials: Option<MicCredentials>,
}

/// NMI (and MIC) to install from upstream's manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityDeployment {
    pub mode: Mode,
    /// Namespace for the workloads, their service accounts and MIC's Secret (upstream's own
    /// manifests use `default` for standard mode and `kube-system` for managed mode).
    pub namespace: String,
    pub nmi_image: String,
    /// Ignored in managed mode.
    pub mic_image: String,
    /// Arguments appended after upstream's (a later repetition of a flag wins).
    pub nmi_flags: Vec<String>,
    /// Arguments appended after upstream's; ignored in managed mode.
    pub mic_flags: Vec<String>,
    /// MIC's replicas (upstream's manifest runs 2, with leader election); `None` keeps
    /// upstream's count.
    pub mic_replicas: Option<u32>,
    pub cloud: CloudAccess,
    pub image_pull_policy: ImagePullPolicy,
    /// Whether to apply upstream's CRDs too. Off when the cluster already has them (applying
    /// them again is harmless: server-side apply leaves an identical object as it is).
    pub install_crds: bool,
}

/// The kinds of workload NMI and MIC run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    DaemonSet,
    Deployment,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DaemonSet => "DaemonSet",
            Self::Deployment => "Deployment",
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the installed workloads: enough to find it, its pods and their logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// The workload's `spec.selector.matchLabels`: how its pods are listed.
    pub selector: BTreeMap<String, String>,
}

impl WorkloadRef {
    /// The selector as a label-selector query string (`a=b,c=d`).
    pub fn label_selector(&self) -> String {
        self.selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}
