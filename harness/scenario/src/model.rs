//! The scenario file format as plain data. Nothing here talks to a cluster or a mock; the loader
//! fills these types and the validator checks them before anything runs.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::located::Located;

/// The logical node names scenarios use; every provider maps each to one real node.
pub const LOGICAL_NODES: [&str; 2] = ["node-0", "node-1"];

/// The `namespace` value that means "the namespace MIC runs in" (where AzureAssignedIdentities
/// live, and where NMI's MIC short cut applies). It cannot be declared under `namespaces`.
pub const MIC_NAMESPACE: &str = "mic";

/// The identity name that stands for the provider's cluster identity (azure.json
/// `userAssignedIdentityID`, which MIC never removes) in `cloud` steps and
/// `expect.nodeIdentities`. A scenario cannot declare an identity of that name.
pub const CLUSTER_IDENTITY: &str = "cluster";

/// The principal name that stands for the principal MIC authenticates to ARM as, in
/// `cloud.roleAssignments` and `addRole`/`removeRole` steps. It takes only the ARM roles
/// ([`Role::is_arm`]); a scenario cannot declare an identity or service principal of that name.
pub const MIC_PRINCIPAL: &str = "mic";

/// A name written by the scenario author (a map key or a reference to one), with its position.
pub type Name = Located<String>;
/// A string that may contain `${...}` references, resolved when the scenario runs.
pub type Template = Located<String>;
/// Ordered map keyed by author-chosen names.
pub type Named<T> = IndexMap<Name, T>;

/// One scenario: what the cloud and the cluster hold, then the steps and what each must observe.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// Unique name (lowercase letters, digits and `-`); it names the test trial and the report
    /// entry.
    pub name: Name,
    /// What the scenario shows, in a sentence or two.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form tags for filtering (`podid list --tag smoke`).
    #[serde(default)]
    pub tags: Vec<Name>,
    /// NMI operation modes the scenario applies to; one trial runs per mode.
    #[serde(default = "default_modes")]
    pub modes: Vec<Located<NmiMode>>,
    /// Extra NMI command-line flags for this scenario (e.g. `--set-retry-after-header`).
    #[serde(default)]
    pub nmi: ComponentSettings,
    /// Extra MIC command-line flags and its replica count (standard mode only).
    #[serde(default)]
    pub mic: MicSettings,
    /// Objects the mock Azure cloud holds for this scenario.
    #[serde(default)]
    pub cloud: Cloud,
    /// Objects created in the cluster before the first step.
    #[serde(default)]
    pub cluster: Cluster,
    /// Faults the mock cloud injects for the whole trial (from before the first step to the
    /// end), e.g. an unreachable IMDS or a slow ARM.
    #[serde(default)]
    pub faults: Vec<Located<FaultDecl>>,
    /// What to do, in order; each step may carry expectations.
    pub steps: Vec<Located<Step>>,
}

pub fn default_modes() -> Vec<Located<NmiMode>> {
    vec![Located::new(NmiMode::Managed)]
}

/// NMI's `--operation-mode`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NmiMode {
    /// The AKS pod-identity add-on: NMI only, identities must already be on the node's VM(SS).
    Managed,
    /// MIC assigns identities to nodes through ARM; NMI waits for AzureAssignedIdentities.
    Standard,
}

impl NmiMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NmiMode::Managed => "managed",
            NmiMode::Standard => "standard",
        }
    }
}

/// Command-line overrides for one component of the system under test.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentSettings {
    /// Flags appended to the component's command line, e.g. `--set-retry-after-header=true`;
    /// `${...}` references are resolved per trial
    /// (`--immutable-user-msis=${identities.x.clientId}`).
    #[serde(default)]
    pub flags: Vec<Template>,
}

/// MIC's flags and how many replicas run (upstream's chart runs 2 with leader election).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MicSettings {
    /// Flags appended to MIC's command line (`${...}` allowed, as for `nmi.flags`).
    #[serde(default)]
    pub flags: Vec<Template>,
    /// MIC replicas, 1 or 2 (default 1); with 2, one is elected leader and the other waits.
    #[serde(default)]
    pub replicas: Option<Located<u8>>,
}

impl MicSettings {
    /// The replica count the trial asks for.
    pub fn replica_count(&self) -> u8 {
        self.replicas.as_ref().map_or(1, |r| r.value)
    }
}

// ---------------------------------------------------------------------------------------------
// The cloud
// ---------------------------------------------------------------------------------------------

/// What the mock Azure cloud holds. Identifiers left out are generated per run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cloud {
    /// User-assigned managed identities, by name.
    #[serde(default)]
    pub identities: Named<IdentityDecl>,
    /// Service principals (app registrations) with a secret or a certificate, by name.
    #[serde(default)]
    pub service_principals: Named<ServicePrincipalDecl>,
    /// Storage accounts with containers and blobs, by name.
    #[serde(default)]
    pub storage_accounts: Named<StorageAccountDecl>,
    /// Azure RBAC role assignments on storage.
    #[serde(default)]
    pub role_assignments: Vec<Located<RoleAssignmentDecl>>,
    /// Which identities are assigned to each node's VM scale set (`node-0: [reader]`).
    #[serde(default)]
    pub node_identities: Named<Vec<Name>>,
    /// How ARM treats MIC's calls: role checks and long-running operations (standard mode).
    #[serde(default)]
    pub arm: Option<ArmBehaviour>,
    /// How each node's instance metadata service treats identity requests: propagation delay
    /// and throttling.
    #[serde(default)]
    pub imds: Option<ImdsBehaviour>,
}

/// How the mock ARM treats the calls MIC makes to read and update machines.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArmBehaviour {
    /// ARM checks the caller's role assignments: MIC's principal needs `Virtual Machine
    /// Contributor` and `Managed Identity Operator`, given in `roleAssignments` with principal
    /// `mic`; without them ARM answers `AuthorizationFailed` or `LinkedAuthorizationFailed`.
    #[serde(default)]
    pub authorization: bool,
    /// VM/VMSS PATCHes are long-running: ARM answers 202 with `Azure-AsyncOperation`, and the
    /// operation reports `InProgress` this many times before `Succeeded` (0, the default, answers
    /// synchronously).
    #[serde(default)]
    pub async_polls: Option<Located<u32>>,
}

impl ArmBehaviour {
    /// The number of `InProgress` polls (0 when synchronous).
    pub fn poll_count(&self) -> u32 {
        self.async_polls.as_ref().map_or(0, |p| p.value)
    }
}

/// How the mock instance metadata service of every node treats identity requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImdsBehaviour {
    /// A newly assigned identity answers 400 "Identity not found" for this long, as Azure does
    /// while an assignment propagates to the machine.
    #[serde(default)]
    pub propagation_delay: Option<HumanDuration>,
    /// Identity requests per second per machine above which IMDS answers 429 (too many
    /// requests).
    #[serde(default)]
    pub requests_per_second: Option<Located<u32>>,
}

/// A user-assigned managed identity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentityDecl {
    /// Application (client) ID; a GUID is generated when omitted.
    #[serde(default)]
    pub client_id: Option<Located<String>>,
    /// Object (principal) ID; a GUID is generated when omitted.
    #[serde(default)]
    pub principal_id: Option<Located<String>>,
    /// Resource group holding the identity resource (default `podid-identities`).
    #[serde(default)]
    pub resource_group: Option<String>,
}

/// An app registration that authenticates with a secret or a certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePrincipalDecl {
    /// Application (client) ID; a GUID is generated when omitted.
    #[serde(default)]
    pub client_id: Option<Located<String>>,
    /// Object ID; a GUID is generated when omitted.
    #[serde(default)]
    pub object_id: Option<Located<String>>,
    /// Client secret; give this or `certificate: true`.
    #[serde(default)]
    pub secret: Option<Located<String>>,
    /// Generate a certificate credential (the private key goes into a Secret on demand).
    #[serde(default)]
    pub certificate: bool,
}

/// A storage account; its real name is derived from the key and made unique per run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageAccountDecl {
    /// Containers by name, each mapping blob names to their text content.
    #[serde(default)]
    pub containers: IndexMap<Name, IndexMap<Name, String>>,
}

/// A role for an identity or service principal: a storage role on a storage account or one of
/// its containers, or an ARM role (on the subscription) for MIC's principal `mic`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleAssignmentDecl {
    /// Name of an identity or service principal declared under `cloud`, or `mic` for the
    /// principal MIC authenticates to ARM as (ARM roles only).
    pub principal: Name,
    /// The built-in role to assign.
    pub role: Located<Role>,
    /// Name of a storage account declared under `cloud.storageAccounts`: required for storage
    /// roles, not given for ARM roles (their scope is the subscription).
    #[serde(default)]
    pub account: Option<Name>,
    /// Limit the assignment to one container of the account.
    #[serde(default)]
    pub container: Option<Name>,
}

/// Built-in Azure roles: those that matter for blob access, and the two MIC needs on ARM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Role {
    #[serde(rename = "Storage Blob Data Reader")]
    StorageBlobDataReader,
    #[serde(rename = "Storage Blob Data Contributor")]
    StorageBlobDataContributor,
    #[serde(rename = "Storage Blob Data Owner")]
    StorageBlobDataOwner,
    /// Control-plane role: grants no blob data access (a classic mistake worth a scenario).
    #[serde(rename = "Reader")]
    Reader,
    #[serde(rename = "Contributor")]
    Contributor,
    #[serde(rename = "Owner")]
    Owner,
    /// ARM role MIC needs to read and update VMs and scale sets (assigned on the subscription).
    #[serde(rename = "Virtual Machine Contributor")]
    VirtualMachineContributor,
    /// ARM role MIC needs to assign user-assigned identities to machines (assigned on the
    /// subscription).
    #[serde(rename = "Managed Identity Operator")]
    ManagedIdentityOperator,
}

impl Role {
    /// The role's name as Azure spells it (and scenarios write it).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::StorageBlobDataReader => "Storage Blob Data Reader",
            Role::StorageBlobDataContributor => "Storage Blob Data Contributor",
            Role::StorageBlobDataOwner => "Storage Blob Data Owner",
            Role::Reader => "Reader",
            Role::Contributor => "Contributor",
            Role::Owner => "Owner",
            Role::VirtualMachineContributor => "Virtual Machine Contributor",
            Role::ManagedIdentityOperator => "Managed Identity Operator",
        }
    }

    /// ARM roles are assigned on the subscription and take no `account`; every other role is
    /// assigned on a storage account (or one of its containers).
    pub fn is_arm(self) -> bool {
        matches!(
            self,
            Role::VirtualMachineContributor | Role::ManagedIdentityOperator
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// Kubernetes objects, as typed shorthand. Objects go into the scenario's own namespace unless
/// `namespace` names one of `namespaces`, or is [`MIC_NAMESPACE`] (the namespace MIC runs in).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    /// Extra namespaces (made unique per run; refer to them by the name written here).
    #[serde(default)]
    pub namespaces: Vec<Name>,
    /// AzureIdentity objects, by name.
    #[serde(default)]
    pub azure_identities: Named<AzureIdentityDecl>,
    /// AzureIdentityBinding objects, by name.
    #[serde(default)]
    pub azure_identity_bindings: Named<AzureIdentityBindingDecl>,
    /// AzurePodIdentityException objects, by name.
    #[serde(default)]
    pub azure_pod_identity_exceptions: Named<AzurePodIdentityExceptionDecl>,
    /// Secrets (string data), by name.
    #[serde(default)]
    pub secrets: Named<SecretDecl>,
    /// Pods, by name; each runs the podid probe in its own network namespace on its node.
    #[serde(default)]
    pub pods: Named<PodDecl>,
    /// Raw Kubernetes manifests for what the shorthand does not cover (applied as written; string
    /// values may use `${...}` references).
    #[serde(default)]
    pub manifests: Vec<Located<serde_json::Value>>,
}

impl Cluster {
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.azure_identities.is_empty()
            && self.azure_identity_bindings.is_empty()
            && self.azure_pod_identity_exceptions.is_empty()
            && self.secrets.is_empty()
            && self.pods.is_empty()
            && self.manifests.is_empty()
    }
}

/// An AzureIdentity. Give `identity` (type 0, user-assigned) or `servicePrincipal` (type 1 with a
/// secret, type 2 with a certificate); `clientId`/`resourceId` override what is derived.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AzureIdentityDecl {
    /// A `cluster.namespaces` entry, or `mic` for MIC's namespace (default: the scenario's
    /// namespace).
    #[serde(default)]
    pub namespace: Option<Name>,
    /// Name of a `cloud.identities` entry.
    #[serde(default)]
    pub identity: Option<Name>,
    /// Name of a `cloud.servicePrincipals` entry.
    #[serde(default)]
    pub service_principal: Option<Name>,
    /// Overrides `spec.clientID` (e.g. to point at an identity the node does not have).
    #[serde(default)]
    pub client_id: Option<Template>,
    /// Overrides `spec.resourceID`.
    #[serde(default)]
    pub resource_id: Option<Template>,
    /// Extra annotations, e.g. `aadpodidentity.k8s.io/Behavior: namespaced`.
    #[serde(default)]
    pub annotations: IndexMap<String, Template>,
}

/// An AzureIdentityBinding: pods labelled `aadpodidbinding: <selector>` may use the identity.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AzureIdentityBindingDecl {
    /// A `cluster.namespaces` entry, or `mic` for MIC's namespace (default: the scenario's
    /// namespace).
    #[serde(default)]
    pub namespace: Option<Name>,
    /// Name of an AzureIdentity (written as is, so a dangling name can be tested on purpose).
    pub azure_identity: Name,
    /// Pods labelled `aadpodidbinding: <selector>` may use the identity.
    pub selector: Template,
}

/// An AzurePodIdentityException: pods with any of these labels bypass NMI's identity checks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AzurePodIdentityExceptionDecl {
    /// A `cluster.namespaces` entry, or `mic` for MIC's namespace (default: the scenario's
    /// namespace).
    #[serde(default)]
    pub namespace: Option<Name>,
    /// Labels (at least one); a pod carrying any of them bypasses NMI's identity checks.
    pub pod_labels: IndexMap<String, Template>,
}

/// A Secret with string data.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretDecl {
    /// A `cluster.namespaces` entry, or `mic` for MIC's namespace (default: the scenario's
    /// namespace).
    #[serde(default)]
    pub namespace: Option<Name>,
    /// The Secret's data, as strings.
    #[serde(default)]
    pub string_data: IndexMap<String, Template>,
}

/// A pod scheduled on one of the provider's nodes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodDecl {
    /// A `cluster.namespaces` entry, or `mic` for MIC's namespace (default: the scenario's
    /// namespace).
    #[serde(default)]
    pub namespace: Option<Name>,
    /// Logical node name: `node-0` or `node-1`.
    pub node: Name,
    /// Pod labels, e.g. `aadpodidbinding: reader`.
    #[serde(default)]
    pub labels: IndexMap<String, Template>,
    /// Pod annotations.
    #[serde(default)]
    pub annotations: IndexMap<String, Template>,
    /// The pod's owner reference (NMI reads an owning ReplicaSet for its MIC short cut).
    #[serde(default)]
    pub owner: Option<OwnerDecl>,
    /// A group of this many pods (1 to 100) named `<name>-0` … `<name>-<n-1>`, all alike; a
    /// `token` or `blob` step naming the group sends from each member at once.
    #[serde(default)]
    pub replicas: Option<Located<u32>>,
    /// The phase the pod reports: `Running` (default) or `Pending` (as while init containers
    /// run, when NMI must already serve it).
    #[serde(default)]
    pub phase: Option<Located<PodPhase>>,
    /// Another pod on the same node whose IP this Pod object reports as its `status.podIP`; the
    /// pod gets no network of its own (a stale or forged status, for duplicate-IP scenarios), so
    /// no step can send from it.
    #[serde(default)]
    pub ip_of: Option<Name>,
}

impl PodDecl {
    /// The names of the pods this declaration stands for: itself, or its group's members.
    pub fn member_names(&self, name: &str) -> Vec<String> {
        match &self.replicas {
            Some(n) => (0..n.value).map(|i| format!("{name}-{i}")).collect(),
            None => vec![name.to_string()],
        }
    }
}

/// Kinds a pod's owner reference may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OwnerKind {
    /// Owned by a ReplicaSet, as a Deployment's pods (MIC's among them) are.
    ReplicaSet,
    /// Owned by a DaemonSet, as NMI's pods are.
    DaemonSet,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::ReplicaSet => "ReplicaSet",
            OwnerKind::DaemonSet => "DaemonSet",
        }
    }
}

/// A pod's owner reference (the owner object itself is not created).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OwnerDecl {
    /// `ReplicaSet` or `DaemonSet`.
    pub kind: Located<OwnerKind>,
    /// The owner's name; NMI's MIC short cut needs `namespace: mic` and a ReplicaSet named `mic…`.
    pub name: Template,
}

/// The phase a pod reports in its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum PodPhase {
    /// The default.
    #[default]
    Running,
    /// Running, but reporting phase Pending, as while init containers run.
    Pending,
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

/// One step: exactly one action key (`token`, `blob`, `exec`, `apply`, `delete`, `patch`,
/// `wait`, `sleep`, `cloud`, `stop`, `start`, `kill`, `restart`, `health`), an optional `name`,
/// optional `faults` active while it runs, and optional `expect`ations.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    /// Shown in reports; a name is derived from the action when omitted.
    #[serde(default)]
    pub name: Option<String>,
    /// Run this step only in these NMI modes (default: every mode of the scenario), where the
    /// modes legitimately differ; in other modes it is reported as not applicable.
    #[serde(default)]
    pub modes: Vec<Located<NmiMode>>,
    /// Ask for a token from inside a pod, as Azure SDKs do.
    #[serde(default)]
    pub token: Option<TokenStep>,
    /// Get a token inside a pod, then use it against Blob storage.
    #[serde(default)]
    pub blob: Option<BlobStep>,
    /// Run one of the project's SDK clients (or a raw command) inside a pod.
    #[serde(default)]
    pub exec: Option<ExecStep>,
    /// Create (or replace) more objects, same shorthand as `cluster`.
    #[serde(default)]
    pub apply: Option<Cluster>,
    /// Delete an object.
    #[serde(default)]
    pub delete: Option<ObjectRef>,
    /// JSON merge-patch an object.
    #[serde(default)]
    pub patch: Option<PatchStep>,
    /// Wait for an object to exist (with given fields) or be gone, for a number of objects, or
    /// for cloud requests.
    #[serde(default)]
    pub wait: Option<WaitStep>,
    /// Pause; only where elapsed time is the point (prefer `wait` and `expect.within`).
    #[serde(default)]
    pub sleep: Option<HumanDuration>,
    /// Change the cloud behind MIC's back, as an operator would.
    #[serde(default)]
    pub cloud: Option<CloudStep>,
    /// Stop a component gracefully (SIGTERM); it stays down until `start` or the trial's end.
    #[serde(default)]
    pub stop: Option<ComponentTarget>,
    /// Start what `stop` or `kill` took down, and wait until it is ready.
    #[serde(default)]
    pub start: Option<ComponentTarget>,
    /// Kill a component at once (SIGKILL, no clean-up); it stays down until `start`.
    #[serde(default)]
    pub kill: Option<ComponentTarget>,
    /// Stop a component gracefully and start it again, waiting until it is ready.
    #[serde(default)]
    pub restart: Option<ComponentTarget>,
    /// Ask components for their `/healthz`; expectations apply to every answer.
    #[serde(default)]
    pub health: Option<ComponentTarget>,
    /// Retry the action until the expectations hold or this much time has passed.
    #[serde(default)]
    pub within: Option<HumanDuration>,
    /// Faults the mock cloud injects only while this step runs (its retries included).
    #[serde(default)]
    pub faults: Vec<Located<FaultDecl>>,
    /// What the step must observe.
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// The action a step performs, borrowed from a [`Step`] once it is known to hold exactly one.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    Token(&'a TokenStep),
    Blob(&'a BlobStep),
    Exec(&'a ExecStep),
    Apply(&'a Cluster),
    Delete(&'a ObjectRef),
    Patch(&'a PatchStep),
    Wait(&'a WaitStep),
    Sleep(HumanDuration),
    Cloud(&'a CloudStep),
    Lifecycle(LifecycleAction, &'a ComponentTarget),
    Health(&'a ComponentTarget),
}

/// What a lifecycle step does to its component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleAction {
    Stop,
    Start,
    Kill,
    Restart,
}

impl LifecycleAction {
    pub fn keyword(self) -> &'static str {
        match self {
            LifecycleAction::Stop => "stop",
            LifecycleAction::Start => "start",
            LifecycleAction::Kill => "kill",
            LifecycleAction::Restart => "restart",
        }
    }
}

impl Action<'_> {
    pub fn keyword(&self) -> &'static str {
        match self {
            Action::Token(_) => "token",
            Action::Blob(_) => "blob",
            Action::Exec(_) => "exec",
            Action::Apply(_) => "apply",
            Action::Delete(_) => "delete",
            Action::Patch(_) => "patch",
            Action::Wait(_) => "wait",
            Action::Sleep(_) => "sleep",
            Action::Cloud(_) => "cloud",
            Action::Lifecycle(a, _) => a.keyword(),
            Action::Health(_) => "health",
        }
    }
}

impl Step {
    /// Whether the step counts cloud requests (`expect.requests` or `wait.requests`), which
    /// needs a provider whose cloud keeps a request log.
    pub fn counts_requests(&self) -> bool {
        self.expect.as_ref().is_some_and(|e| !e.requests.is_empty())
            || self.wait.as_ref().is_some_and(|w| !w.requests.is_empty())
    }

    /// All actions written on this step (a valid step has exactly one).
    pub fn actions(&self) -> Vec<Action<'_>> {
        let mut out = Vec::new();
        if let Some(a) = &self.token {
            out.push(Action::Token(a));
        }
        if let Some(a) = &self.blob {
            out.push(Action::Blob(a));
        }
        if let Some(a) = &self.exec {
            out.push(Action::Exec(a));
        }
        if let Some(a) = &self.apply {
            out.push(Action::Apply(a));
        }
        if let Some(a) = &self.delete {
            out.push(Action::Delete(a));
        }
        if let Some(a) = &self.patch {
            out.push(Action::Patch(a));
        }
        if let Some(a) = &self.wait {
            out.push(Action::Wait(a));
        }
        if let Some(a) = self.sleep {
            out.push(Action::Sleep(a));
        }
        if let Some(a) = &self.cloud {
            out.push(Action::Cloud(a));
        }
        for (action, target) in [
            (LifecycleAction::Stop, &self.stop),
            (LifecycleAction::Start, &self.start),
            (LifecycleAction::Kill, &self.kill),
            (LifecycleAction::Restart, &self.restart),
        ] {
            if let Some(t) = target {
                out.push(Action::Lifecycle(action, t));
            }
        }
        if let Some(a) = &self.health {
            out.push(Action::Health(a));
        }
        out
    }

    /// The single action of a validated step.
    pub fn action(&self) -> Option<Action<'_>> {
        let actions = self.actions();
        if actions.len() == 1 {
            actions.into_iter().next()
        } else {
            None
        }
    }
}

/// The identity-selecting query parameters of a token request, borrowed from a step.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentitySelector<'a> {
    pub client_id: Option<&'a Template>,
    pub mi_res_id: Option<&'a Template>,
    pub msi_res_id: Option<&'a Template>,
    pub object_id: Option<&'a Template>,
}

impl<'a> IdentitySelector<'a> {
    pub fn templates(&self) -> impl Iterator<Item = &'a Template> {
        [
            self.client_id,
            self.mi_res_id,
            self.msi_res_id,
            self.object_id,
        ]
        .into_iter()
        .flatten()
    }
}

/// A token request from a pod to the instance metadata endpoint (169.254.169.254 unless
/// `endpoint` says otherwise).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenStep {
    /// The pod the request is sent from: a pod, a pod group (every member at once) or a group
    /// member (`<group>-<i>`).
    pub pod: Name,
    /// The `resource` query parameter; omit it to test NMI's "resource cannot be empty".
    #[serde(default)]
    pub resource: Option<Template>,
    /// Sent as the `client_id` query parameter.
    #[serde(default)]
    pub client_id: Option<Template>,
    /// Sent as `mi_res_id`.
    #[serde(default)]
    pub mi_res_id: Option<Template>,
    /// Sent as `msi_res_id`.
    #[serde(default)]
    pub msi_res_id: Option<Template>,
    /// Sent as `object_id` (NMI ignores it; real IMDS does not).
    #[serde(default)]
    pub object_id: Option<Template>,
    /// `api-version` query parameter (default `2018-02-01`).
    #[serde(default)]
    pub api_version: Option<Template>,
    /// Send the `Metadata: true` header (default true).
    #[serde(default = "yes")]
    pub metadata_header: bool,
    /// Extra request headers; a list sends the header once per value, in order
    /// (`Metadata: ["false", "true"]`).
    #[serde(default)]
    pub headers: IndexMap<String, HeaderValue>,
    /// Request path (default `/metadata/identity/oauth2/token`), for malformed-path checks.
    #[serde(default)]
    pub path: Option<Template>,
    /// Extra query parameters, sent as written.
    #[serde(default)]
    pub query: IndexMap<String, Template>,
    /// Send this many identical requests at once (default 1; for a pod group, per member);
    /// every answer must meet the step's expectations.
    #[serde(default)]
    pub concurrent: Option<Located<u32>>,
    /// Base URL the request goes to (default `http://169.254.169.254`), e.g.
    /// `http://${nodes.node-0.ip}:8085` for NMI's port on the node.
    #[serde(default)]
    pub endpoint: Option<Template>,
    /// Send from this IPv4 address instead of the pod's own (e.g. `${pods.other.ip}`, to
    /// impersonate another pod).
    #[serde(default)]
    pub source_address: Option<Template>,
}

fn yes() -> bool {
    true
}

/// A request header's value: one value, or a list sending the header once per value in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderValue {
    One(Template),
    Many(Vec<Template>),
}

impl HeaderValue {
    /// The values, in the order the header is sent.
    pub fn values(&self) -> impl Iterator<Item = &Template> {
        match self {
            HeaderValue::One(v) => std::slice::from_ref(v).iter(),
            HeaderValue::Many(list) => list.iter(),
        }
    }
}

/// Reads a header value as written: a scalar (its position kept) or a list of scalars. Written
/// by hand because an untagged enum would lose the positions of the values.
impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        enum Written {
            One(String),
            Many(Vec<Template>),
        }
        impl<'de> Deserialize<'de> for Written {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct WrittenVisitor;
                impl<'de> serde::de::Visitor<'de> for WrittenVisitor {
                    type Value = Written;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a header value such as \"true\", or a list of values")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Written, E> {
                        Ok(Written::One(v.to_string()))
                    }
                    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Written, E> {
                        Ok(Written::One(v.to_string()))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Written, E> {
                        Ok(Written::One(v.to_string()))
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Written, E> {
                        Ok(Written::One(v.to_string()))
                    }
                    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Written, E> {
                        Err(E::custom(format!(
                            "header value {v} is read as a number, which may not keep its spelling (`1.10` reads as 1.1); quote it"
                        )))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Written, A::Error> {
                        let mut values = Vec::new();
                        while let Some(v) = seq.next_element::<Template>()? {
                            values.push(v);
                        }
                        Ok(Written::Many(values))
                    }
                }
                d.deserialize_any(WrittenVisitor)
            }
        }
        let written = Located::<Written>::deserialize(deserializer)?;
        Ok(match written.value {
            Written::One(value) => HeaderValue::One(Located {
                value,
                at: written.at,
            }),
            Written::Many(values) => HeaderValue::Many(values),
        })
    }
}

/// The SDK clients of the project, each with the same command line (see `scenarios/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// The Python client (`azure-identity` and `azure-storage-blob`).
    Python,
    /// The JavaScript client (`@azure/identity` and `@azure/storage-blob`).
    Javascript,
    /// The Azure CLI.
    Azcli,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Python => "python",
            ClientKind::Javascript => "javascript",
            ClientKind::Azcli => "azcli",
        }
    }
}

/// A command run inside a pod: one of the project's SDK clients, or a raw command. Its exit
/// code, standard output and standard error are what `expect` judges.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecStep {
    /// The pod the command runs in: a pod or a group member (`<group>-<i>`), not a whole group.
    pub pod: Name,
    /// One of the project's clients: `python`, `javascript` or `azcli` (give this or
    /// `command`).
    #[serde(default)]
    pub client: Option<Located<ClientKind>>,
    /// A raw command line, program first (give this or `client`).
    #[serde(default)]
    pub command: Vec<Template>,
    /// Arguments after the client's program, e.g. `[token, --resource, https://vault.azure.net]`
    /// (with `client` only).
    #[serde(default)]
    pub args: Vec<Template>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: IndexMap<String, Template>,
}

/// What a blob step does with the token it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlobOp {
    #[default]
    Read,
    Write,
    List,
}

/// Get a token in a pod (through NMI), then call Blob storage with it, as an SDK client would.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BlobStep {
    /// The pod the request is sent from: a pod, a pod group (every member at once) or a group
    /// member (`<group>-<i>`).
    pub pod: Name,
    /// `read` (Get Blob), `write` (Put Blob) or `list` (List Blobs).
    #[serde(default)]
    pub op: BlobOp,
    /// A `cloud.storageAccounts` name.
    pub account: Name,
    /// Container name.
    pub container: Template,
    /// Blob name (required for `read` and `write`).
    #[serde(default)]
    pub blob: Option<Template>,
    /// Content to upload (`write` only).
    #[serde(default)]
    pub content: Option<Template>,
    /// Token resource (default `https://storage.azure.com/`).
    #[serde(default)]
    pub resource: Option<Template>,
    /// Sent as the `client_id` query parameter.
    #[serde(default)]
    pub client_id: Option<Template>,
    /// Sent as `mi_res_id`.
    #[serde(default)]
    pub mi_res_id: Option<Template>,
    /// Sent as `msi_res_id`.
    #[serde(default)]
    pub msi_res_id: Option<Template>,
    /// Sent as `object_id` (NMI ignores it; real IMDS does not).
    #[serde(default)]
    pub object_id: Option<Template>,
}

macro_rules! identity_selector {
    ($ty:ty) => {
        impl $ty {
            /// The identity this request asks for.
            pub fn identity(&self) -> IdentitySelector<'_> {
                IdentitySelector {
                    client_id: self.client_id.as_ref(),
                    mi_res_id: self.mi_res_id.as_ref(),
                    msi_res_id: self.msi_res_id.as_ref(),
                    object_id: self.object_id.as_ref(),
                }
            }
        }
    };
}
identity_selector!(TokenStep);
identity_selector!(BlobStep);

/// One fault rule of the mock cloud: requests that match (service, node, path, method, client
/// ID) are answered with `status`, delayed by `latency`, or cut off (`disconnect`), for the next
/// `count` matches or for `duration`, whichever ends first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultDecl {
    /// The service that misbehaves: `imds`, `aad`, `arm` or `blob`.
    pub service: Located<Service>,
    /// `imds` only: just this node's metadata service (default every node's).
    #[serde(default)]
    pub node: Option<Name>,
    /// Only requests whose path starts with this, case-insensitively (default every path).
    #[serde(default)]
    pub path: Option<Template>,
    /// Only requests with this HTTP method (default any).
    #[serde(default)]
    pub method: Option<String>,
    /// `imds` and `aad` only: requests naming this client ID (query or form `client_id`).
    #[serde(default)]
    pub client_id: Option<Template>,
    /// Answer with this status instead of the real answer.
    #[serde(default)]
    pub status: Option<Located<u16>>,
    /// With `status`: the answer's body.
    #[serde(default)]
    pub body: Option<Template>,
    /// With `status`: the answer's `Retry-After` header.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// Wait this long before answering (with `status`), closing (with `disconnect`) or passing
    /// the request on.
    #[serde(default)]
    pub latency: Option<HumanDuration>,
    /// Close the connection without an answer, as for an unreachable service.
    #[serde(default)]
    pub disconnect: bool,
    /// Only the next this many matching requests (default every one).
    #[serde(default)]
    pub count: Option<Located<u32>>,
    /// Only for this long after the fault is put in place (default as long as it is in place).
    #[serde(default)]
    pub duration: Option<HumanDuration>,
}

/// Kinds of object the steps can address by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ObjectKind {
    Pod,
    Secret,
    Namespace,
    AzureIdentity,
    AzureIdentityBinding,
    AzurePodIdentityException,
    AzureAssignedIdentity,
}

impl ObjectKind {
    pub fn is_namespaced(self) -> bool {
        !matches!(self, ObjectKind::Namespace)
    }
}

/// One object, by kind and name, in the scenario namespace unless `namespace` says otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: Located<ObjectKind>,
    /// The object's real name; `delete` of a pod group deletes every member.
    pub name: Template,
    /// A `cluster.namespaces` entry or `mic` (default: the scenario's namespace; for
    /// AzureAssignedIdentities, MIC's namespace, the only one they live in).
    #[serde(default)]
    pub namespace: Option<Name>,
}

/// A JSON merge patch applied to an object.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchStep {
    /// The object's kind.
    pub kind: Located<ObjectKind>,
    /// The object's real name.
    pub name: Template,
    /// A `cluster.namespaces` entry or `mic` (default: the scenario's namespace; for
    /// AzureAssignedIdentities, MIC's namespace, the only one they live in).
    #[serde(default)]
    pub namespace: Option<Name>,
    /// The merge patch (string values may use `${...}`).
    pub patch: Located<serde_json::Value>,
}

/// The state a `wait` step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    #[default]
    Exists,
    Deleted,
}

/// Wait until an object exists or is gone (`kind` + `name`, optionally `fields`), until a number
/// of objects exist (`kind` + `count`), or until the mock cloud has received requests
/// (`requests`): a condition, never a fixed pause.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaitStep {
    /// The kind of object waited for.
    #[serde(default)]
    pub kind: Option<Located<ObjectKind>>,
    /// The object's real name; leave it out with `count`.
    #[serde(default)]
    pub name: Option<Template>,
    /// A `cluster.namespaces` entry or `mic` (default: the scenario's namespace; for
    /// AzureAssignedIdentities, MIC's namespace, the only one they live in).
    #[serde(default)]
    pub namespace: Option<Name>,
    /// `exists` (default) or `deleted`; `deleted` takes neither `fields` nor `count`.
    #[serde(default, rename = "for")]
    pub condition: WaitFor,
    /// Fields the object must have (`status.status: Assigned`); with `count`, a filter on the
    /// objects counted.
    #[serde(default)]
    pub fields: IndexMap<String, Template>,
    /// Wait until exactly this many objects of `kind` (in the namespace, matching `fields`)
    /// exist; AzureAssignedIdentities are counted for this trial's pods only.
    #[serde(default)]
    pub count: Option<Located<u32>>,
    /// Requests the mock cloud must have received; by default counted since this step began,
    /// with `since: trial` since the trial began (e.g. calls MIC makes on its own).
    #[serde(default)]
    pub requests: Vec<Located<RequestExpect>>,
    /// Give up after this long (default 30s).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}

/// A change to the cloud made behind MIC's back: exactly one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudStep {
    /// Put an identity on a node's machine, as `az vmss identity assign` does.
    #[serde(default)]
    pub assign: Option<NodeIdentityChange>,
    /// Take an identity off a node's machine, as `az vmss identity remove` does.
    #[serde(default)]
    pub unassign: Option<NodeIdentityChange>,
    /// Enable the system-assigned identity of a node's machine (its principal ID is recorded).
    #[serde(default)]
    pub enable_system_assigned: Option<Name>,
    /// Create a role assignment (`principal` may also be `cluster`, the cluster identity).
    #[serde(default)]
    pub add_role: Option<Located<RoleAssignmentDecl>>,
    /// Delete a role assignment given as for `addRole`.
    #[serde(default)]
    pub remove_role: Option<Located<RoleAssignmentDecl>>,
    /// Delete a user-assigned identity (it disappears from every machine too).
    #[serde(default)]
    pub delete_identity: Option<Name>,
    /// Delete an identity and create one of the same name: new client and principal IDs, which
    /// `${identities.<name>.*}` refers to from then on.
    #[serde(default)]
    pub recreate_identity: Option<Name>,
}

/// One identity and one node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeIdentityChange {
    /// A `cloud.identities` name, or `cluster` for the provider's cluster identity.
    pub identity: Name,
    /// A logical node: `node-0` or `node-1`.
    pub node: Name,
}

/// The component a lifecycle or `health` step addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// NMI on every node, or on the one `node` names.
    Nmi,
    /// Every MIC replica, or the one `replica` names (standard mode only).
    Mic,
    /// The Kubernetes API server.
    Apiserver,
}

/// Which MIC replica a step addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MicReplica {
    /// The replica holding the leader lease.
    Leader,
    /// A replica that is not the leader.
    Follower,
}

/// A component, and for NMI optionally one node, for MIC optionally one replica.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentTarget {
    /// `nmi`, `mic` (standard mode only) or `apiserver`.
    pub component: Located<Component>,
    /// NMI only: one node (default every node).
    #[serde(default)]
    pub node: Option<Name>,
    /// MIC only: the leader or a follower (default every replica).
    #[serde(default)]
    pub replica: Option<Located<MicReplica>>,
}

// ---------------------------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------------------------

/// What a step must observe. Every field is optional; all given ones must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// HTTP status, or a list of acceptable ones.
    #[serde(default)]
    pub status: Option<Located<StatusExpect>>,
    /// Response headers that must be present with exactly this value (names are case-insensitive).
    #[serde(default)]
    pub headers: IndexMap<String, Template>,
    /// Response headers that must be absent.
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// Response body checks.
    #[serde(default)]
    pub body: Option<BodyExpect>,
    /// The response is a token (NMI/IMDS shape, every field a string); check its JWT claims.
    #[serde(default)]
    pub token: Option<TokenExpect>,
    /// Blob storage error code (`x-ms-error-code`), e.g. `AuthorizationPermissionMismatch`.
    #[serde(default)]
    pub error_code: Option<Template>,
    /// `exec` steps: the command's exit code.
    #[serde(default)]
    pub exit_code: Option<Located<i32>>,
    /// `exec` steps: checks on the command's standard output.
    #[serde(default)]
    pub stdout: Option<BodyExpect>,
    /// `exec` steps: checks on the command's standard error.
    #[serde(default)]
    pub stderr: Option<BodyExpect>,
    /// The whole action took at most this long.
    #[serde(default)]
    pub max_latency: Option<HumanDuration>,
    /// The whole action took at least this long (a client or NMI waited, e.g. for
    /// `Retry-After` or a retry backoff).
    #[serde(default)]
    pub min_latency: Option<HumanDuration>,
    /// `token`/`blob` steps: `false` when the request must get no HTTP answer at all (the
    /// connection never opens or is closed); every answer is then a failure.
    #[serde(default)]
    pub answered: Option<Located<bool>>,
    /// What the mock cloud received while the step ran.
    #[serde(default)]
    pub requests: Vec<Located<RequestExpect>>,
    /// API objects as they are once the action is done.
    #[serde(default)]
    pub objects: Vec<Located<ObjectExpect>>,
    /// Identities on each node's machine (scale set or VM) once the action is done.
    #[serde(default)]
    pub node_identities: Named<MachineExpect>,
    /// Whether NMI's `aad-metadata` chain is in each node's nat table (`present`/`absent`).
    #[serde(default)]
    pub iptables: Named<Located<ChainState>>,
}

/// Checks on API objects: one named object, or the number of objects of a kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectExpect {
    /// The kind of object checked.
    pub kind: Located<ObjectKind>,
    /// The object checked; leave out with `count`.
    #[serde(default)]
    pub name: Option<Template>,
    /// A `cluster.namespaces` entry or `mic` (default: the scenario's namespace; for
    /// AzureAssignedIdentities, MIC's namespace, the only one they live in).
    #[serde(default)]
    pub namespace: Option<Name>,
    /// Dotted field paths and the values they must have (`spec.azureIdentityRef.namespace`).
    #[serde(default)]
    pub fields: IndexMap<String, Template>,
    /// Exactly this many objects of the kind (matching `fields`); AzureAssignedIdentities are
    /// counted for this trial's pods only.
    #[serde(default)]
    pub count: Option<Located<u32>>,
    /// The named object must not exist.
    #[serde(default)]
    pub absent: bool,
}

/// What a node's machine must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MachineExpect {
    /// `cloud.identities` names (or `cluster` for the provider's cluster identity) that must be
    /// assigned.
    #[serde(default)]
    pub has: Vec<Name>,
    /// Names that must not be assigned.
    #[serde(default)]
    pub lacks: Vec<Name>,
    /// The system-assigned identity is enabled (`true`) or not; when a `cloud` step enabled it,
    /// its principal ID must also be the one it got then.
    #[serde(default)]
    pub system_assigned: Option<Located<bool>>,
}

/// Whether an iptables chain exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChainState {
    /// The chain is in the node's nat table.
    Present,
    /// The chain is gone (NMI removes it when it stops cleanly).
    Absent,
}

/// One status or a set of acceptable statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusExpect {
    One(u16),
    AnyOf(Vec<u16>),
}

impl<'de> Deserialize<'de> for StatusExpect {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl<'de> serde::de::Visitor<'de> for StatusVisitor {
            type Value = StatusExpect;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an HTTP status code such as 200, or a list such as [404, 503]")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u16::try_from(v)
                    .map(StatusExpect::One)
                    .map_err(|_| E::custom(format!("{v} is not an HTTP status code")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is not an HTTP status code")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut codes = Vec::new();
                while let Some(code) = seq.next_element::<u16>()? {
                    codes.push(code);
                }
                Ok(StatusExpect::AnyOf(codes))
            }
        }
        deserializer.deserialize_any(StatusVisitor)
    }
}

impl StatusExpect {
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            StatusExpect::One(s) => *s == status,
            StatusExpect::AnyOf(list) => list.contains(&status),
        }
    }

    pub fn codes(&self) -> Vec<u16> {
        match self {
            StatusExpect::One(s) => vec![*s],
            StatusExpect::AnyOf(list) => list.clone(),
        }
    }
}

/// Checks on a body (or an exec step's output); several may be combined.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BodyExpect {
    /// The body equals this text exactly.
    #[serde(default)]
    pub equals: Option<Template>,
    /// The body contains this text.
    #[serde(default)]
    pub contains: Option<Template>,
    /// The body is JSON and contains this object as a subset.
    #[serde(default)]
    pub json: Option<Located<serde_json::Value>>,
}

/// Checks on a token response and the JWT inside it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenExpect {
    /// Claims that must have exactly these values (`aud`, `oid`, `appid`, `tid`, `xms_mirid`, …).
    #[serde(default)]
    pub claims: IndexMap<String, Template>,
    /// `exp` must lie this far in the future, within [min, max].
    #[serde(default)]
    pub expires_in: Option<DurationRange>,
}

/// An inclusive range of durations.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DurationRange {
    #[serde(default)]
    pub min: Option<HumanDuration>,
    #[serde(default)]
    pub max: Option<HumanDuration>,
}

/// Services of the mock cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Imds,
    Aad,
    Arm,
    Blob,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Imds => "imds",
            Service::Aad => "aad",
            Service::Arm => "arm",
            Service::Blob => "blob",
        }
    }
}

/// How many requests matching a filter the mock cloud received during the step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestExpect {
    pub service: Service,
    /// Only requests served by this node's IMDS.
    #[serde(default)]
    pub node: Option<Name>,
    /// Only requests for this client ID (query `client_id` or form `client_id`).
    #[serde(default)]
    pub client_id: Option<Template>,
    /// Only requests whose path starts with this.
    #[serde(default)]
    pub path: Option<Template>,
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests the cloud answered with this status (or one of these), e.g. MIC's
    /// successful PATCHes apart from those ARM refused and MIC retried.
    #[serde(default)]
    pub status: Option<Located<StatusExpect>>,
    /// Exactly this many (default: at least one).
    #[serde(default)]
    pub count: Option<u32>,
    /// Which requests count: those of the step's (last) attempt, or all since the trial began.
    #[serde(default)]
    pub since: RequestWindow,
}

/// The window of requests a `requests` expectation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RequestWindow {
    /// Requests received while the step's (last) attempt ran.
    #[default]
    Attempt,
    /// Requests received since the trial began, setup included: for what callers such as MIC do
    /// on their own, in reaction to the cluster rather than to the step.
    Trial,
}
