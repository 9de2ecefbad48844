//! One run of one scenario in one mode: the concrete names and IDs its declarations get, and the
//! values `${...}` references resolve to.

use std::collections::HashMap;

pub use podid_scenario::CLUSTER_IDENTITY;
use podid_scenario::reference::{Reference, Resolve, Root};
use podid_scenario::{MIC_NAMESPACE, NmiMode, ObjectKind, Scenario};
use rand::Rng;

use crate::provider::{CloudNames, ClusterIdentity, DeclaredCloud, NodeInfo, PodHandle};

pub use crate::provider::cloud::{IdentityValues, ServicePrincipalValues};

/// Names, IDs and run-time values of one scenario run.
#[derive(Debug, Clone)]
pub struct ScenarioInstance {
    pub scenario: String,
    pub mode: NmiMode,
    pub run_id: String,
    /// Random suffix that keeps this run's names apart from every other's.
    pub suffix: String,
    pub namespace: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub namespaces: HashMap<String, String>,
    /// Filled from the cloud side once it has declared the scenario's cloud.
    pub identities: HashMap<String, IdentityValues>,
    pub service_principals: HashMap<String, ServicePrincipalValues>,
    /// Declared account name → real account name.
    pub accounts: HashMap<String, String>,
    pub account_urls: HashMap<String, String>,
    pub nodes: Vec<NodeInfo>,
    /// Pods by name; a pod group's members by member name (`app-0`).
    pub pods: HashMap<String, PodHandle>,
    /// Pod groups (`replicas: N`): group name → member names, in order.
    pub pod_groups: HashMap<String, Vec<String>>,
    /// The namespace MIC runs in (what `namespace: mic` means).
    pub mic_namespace: String,
    /// Whether the trial put pods in MIC's namespace (their AzureAssignedIdentities name it).
    pub pods_in_mic_namespace: bool,
    /// The provider's cluster identity (identity name `cluster`), if it has one.
    pub cluster_identity: Option<ClusterIdentity>,
    /// Principal IDs `enableSystemAssigned` got, by logical node.
    pub system_assigned: HashMap<String, String>,
    /// Identity values replaced by `recreateIdentity`: requests made with them are still this
    /// trial's.
    pub retired_identities: Vec<IdentityValues>,
}

/// What the provider contributes to every scenario instance.
#[derive(Debug, Clone)]
pub struct ProviderFacts {
    pub run_id: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub nodes: Vec<NodeInfo>,
    pub mic_namespace: String,
    pub cluster_identity: Option<ClusterIdentity>,
}

fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl ScenarioInstance {
    /// Gives every declaration of the scenario its concrete name and IDs.
    pub fn new(
        scenario: &Scenario,
        mode: NmiMode,
        facts: ProviderFacts,
        account_url: impl Fn(&str) -> String,
    ) -> Self {
        let suffix = random_suffix(5);
        let base: String = scenario.name.value.chars().take(40).collect();
        let namespace = format!("{base}-{suffix}");
        let namespaces = scenario
            .cluster
            .namespaces
            .iter()
            .chain(
                scenario
                    .steps
                    .iter()
                    .flat_map(|s| s.value.apply.iter().flat_map(|a| a.namespaces.iter())),
            )
            .filter(|n| n.value != MIC_NAMESPACE)
            .map(|n| (n.value.clone(), format!("{}-{suffix}", n.value)))
            .collect();
        let accounts: HashMap<String, String> = scenario
            .cloud
            .storage_accounts
            .keys()
            .map(|k| (k.value.clone(), format!("{}{}", k.value, random_suffix(6))))
            .collect();
        let account_urls = accounts
            .iter()
            .map(|(k, real)| (k.clone(), account_url(real)))
            .collect();
        Self {
            scenario: scenario.name.value.clone(),
            mode,
            run_id: facts.run_id,
            suffix,
            namespace,
            tenant_id: facts.tenant_id,
            subscription_id: facts.subscription_id,
            namespaces,
            identities: HashMap::new(),
            service_principals: HashMap::new(),
            accounts,
            account_urls,
            nodes: facts.nodes,
            pods: HashMap::new(),
            pod_groups: HashMap::new(),
            mic_namespace: facts.mic_namespace,
            pods_in_mic_namespace: false,
            cluster_identity: facts.cluster_identity,
            system_assigned: HashMap::new(),
            retired_identities: Vec::new(),
        }
    }

    /// The real value of a binding selector (or an `aadpodidbinding` label) the scenario
    /// wrote: made unique to this trial like every other name, because MIC (unless namespaced)
    /// matches a binding to pods of every namespace, so two trials both binding `reader` would
    /// get each other's identities. An empty value stays empty (it matches no binding).
    pub fn selector(&self, written: &str) -> String {
        match written {
            "" => String::new(),
            w => format!("{w}-{}", self.suffix),
        }
    }

    /// The real namespace for an optional declared one (the scenario's own when absent, MIC's
    /// for [`MIC_NAMESPACE`]).
    pub fn namespace_for(&self, declared: Option<&str>) -> String {
        match declared {
            Some(MIC_NAMESPACE) => self.mic_namespace.clone(),
            Some(d) => self
                .namespaces
                .get(d)
                .cloned()
                .unwrap_or_else(|| self.namespace.clone()),
            None => self.namespace.clone(),
        }
    }

    /// The real namespace of an object of `kind` a step names: as [`Self::namespace_for`], except
    /// that AzureAssignedIdentities live in MIC's namespace unless told otherwise.
    pub fn object_namespace(&self, kind: ObjectKind, declared: Option<&str>) -> String {
        match (kind, declared) {
            (ObjectKind::AzureAssignedIdentity, None) => self.mic_namespace.clone(),
            _ => self.namespace_for(declared),
        }
    }

    /// The namespaces this trial's pods live in: what its AzureAssignedIdentities'
    /// `spec.podNamespace` names.
    pub fn pod_namespaces(&self) -> Vec<String> {
        let mut out = vec![self.namespace.clone()];
        out.extend(self.namespaces.values().cloned());
        if self.pods_in_mic_namespace {
            out.push(self.mic_namespace.clone());
        }
        out
    }

    /// The resource ID of a `cloud.identities` name, or of the cluster identity for
    /// [`CLUSTER_IDENTITY`].
    pub fn identity_resource_id(&self, name: &str) -> Option<String> {
        match name {
            CLUSTER_IDENTITY => self
                .cluster_identity
                .as_ref()
                .map(|c| c.resource_id.clone()),
            _ => self.identities.get(name).map(|v| v.resource_id.clone()),
        }
    }

    /// The pods a step naming `name` addresses: a group's members, or the pod itself.
    pub fn pod_names(&self, name: &str) -> Vec<String> {
        match self.pod_groups.get(name) {
            Some(members) => members.clone(),
            None => vec![name.to_string()],
        }
    }

    pub fn node(&self, logical: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.logical == logical)
    }

    /// The run's names for the scenario's cloud declarations.
    pub fn cloud_names(&self) -> CloudNames {
        CloudNames {
            suffix: self.suffix.clone(),
            accounts: self.accounts.clone(),
        }
    }

    /// Keeps the values the cloud side gave the declared identities and principals.
    pub fn record_declared(&mut self, declared: DeclaredCloud) {
        self.accounts.extend(declared.accounts);
        self.identities = declared.identities;
        self.service_principals = declared.service_principals;
    }
}

impl Resolve for ScenarioInstance {
    fn resolve(&self, r: &Reference) -> Option<String> {
        let name = r.name.as_deref();
        let field = r.field.as_str();
        match r.root {
            Root::Identities => {
                let v = self.identities.get(name?)?;
                Some(match field {
                    "clientId" => v.client_id.clone(),
                    "principalId" => v.principal_id.clone(),
                    "resourceId" => v.resource_id.clone(),
                    "name" => v.name.clone(),
                    _ => return None,
                })
            }
            Root::ServicePrincipals => {
                let v = self.service_principals.get(name?)?;
                Some(match field {
                    "clientId" => v.client_id.clone(),
                    "objectId" => v.object_id.clone(),
                    _ => return None,
                })
            }
            Root::StorageAccounts => match field {
                "name" => self.accounts.get(name?).cloned(),
                "url" => self.account_urls.get(name?).cloned(),
                _ => None,
            },
            Root::Pods => {
                let p = self.pods.get(name?)?;
                Some(match field {
                    "ip" => p.ip.to_string(),
                    "name" => p.name.clone(),
                    "namespace" => p.namespace.clone(),
                    "node" => self.node(&p.node).map(|n| n.name.clone())?,
                    _ => return None,
                })
            }
            Root::Namespaces => self.namespaces.get(name?).cloned(),
            Root::Nodes => {
                let node = self.node(name?)?;
                match field {
                    "ip" => node.address.map(|a| a.to_string()),
                    _ => Some(node.name.clone()),
                }
            }
            Root::Cloud => match field {
                "tenantId" => Some(self.tenant_id.clone()),
                "subscriptionId" => Some(self.subscription_id.clone()),
                "clusterIdentityClientId" => {
                    Some(self.cluster_identity.as_ref()?.client_id.clone())
                }
                "clusterIdentityResourceId" => {
                    Some(self.cluster_identity.as_ref()?.resource_id.clone())
                }
                "clusterIdentityPrincipalId" => {
                    Some(self.cluster_identity.as_ref()?.principal_id.clone())
                }
                _ => None,
            },
            Root::Scenario => match field {
                "name" => Some(self.scenario.clone()),
                "namespace" => Some(self.namespace.clone()),
                "runId" => Some(self.run_id.clone()),
                "mode" => Some(self.mode.as_str().to_string()),
                "micNamespace" => Some(self.mic_namespace.clone()),
                _ => None,
            },
        }
    }
}
