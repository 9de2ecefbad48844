//! One run of one scenario in one mode: the concrete names and IDs its declarations get, and the
//! values `${...}` references resolve to.

use std::collections::HashMap;

use podid_mocks::{
    BlobSpec, BuiltinRole, CloudSpec, Container, RoleAssignment, ServicePrincipal, SpCredential,
    StorageAccount, UserAssignedIdentity, resource_id,
};
use podid_scenario::reference::{Reference, Resolve, Root};
use podid_scenario::{NmiMode, Role, Scenario};
use rand::Rng;

use crate::provider::{NodeInfo, PodHandle};

/// Resource group that holds the identities a scenario declares (unless it names another).
pub const IDENTITY_RESOURCE_GROUP: &str = "podid-identities";
/// Resource group of the storage accounts scenarios declare.
pub const STORAGE_RESOURCE_GROUP: &str = "podid-storage";

/// Concrete values for a declared user-assigned identity.
#[derive(Debug, Clone)]
pub struct IdentityValues {
    pub name: String,
    pub client_id: String,
    pub principal_id: String,
    pub resource_id: String,
}

/// Concrete values for a declared service principal.
#[derive(Debug, Clone)]
pub struct ServicePrincipalValues {
    pub client_id: String,
    pub object_id: String,
}

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
    pub identities: HashMap<String, IdentityValues>,
    pub service_principals: HashMap<String, ServicePrincipalValues>,
    /// Declared account name → real account name.
    pub accounts: HashMap<String, String>,
    pub account_urls: HashMap<String, String>,
    pub nodes: Vec<NodeInfo>,
    pub pods: HashMap<String, PodHandle>,
}

fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl ScenarioInstance {
    /// Gives every declaration of the scenario its concrete name and IDs.
    pub fn new(
        scenario: &Scenario,
        mode: NmiMode,
        run_id: &str,
        tenant_id: &str,
        subscription_id: &str,
        nodes: &[NodeInfo],
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
            .map(|n| (n.value.clone(), format!("{}-{suffix}", n.value)))
            .collect();
        let identities = scenario
            .cloud
            .identities
            .iter()
            .map(|(name, decl)| {
                let real_name = format!("{}-{suffix}", name.value);
                let rg = decl
                    .resource_group
                    .clone()
                    .unwrap_or_else(|| IDENTITY_RESOURCE_GROUP.to_string());
                let values = IdentityValues {
                    resource_id: resource_id::user_assigned_identity(
                        subscription_id,
                        &rg,
                        &real_name,
                    ),
                    name: real_name,
                    client_id: decl
                        .client_id
                        .as_ref()
                        .map(|v| v.value.to_ascii_lowercase())
                        .unwrap_or_else(guid),
                    principal_id: decl
                        .principal_id
                        .as_ref()
                        .map(|v| v.value.to_ascii_lowercase())
                        .unwrap_or_else(guid),
                };
                (name.value.clone(), values)
            })
            .collect();
        let service_principals = scenario
            .cloud
            .service_principals
            .iter()
            .map(|(name, decl)| {
                (
                    name.value.clone(),
                    ServicePrincipalValues {
                        client_id: decl
                            .client_id
                            .as_ref()
                            .map(|v| v.value.clone())
                            .unwrap_or_else(guid),
                        object_id: decl
                            .object_id
                            .as_ref()
                            .map(|v| v.value.clone())
                            .unwrap_or_else(guid),
                    },
                )
            })
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
            run_id: run_id.to_string(),
            suffix,
            namespace,
            tenant_id: tenant_id.to_string(),
            subscription_id: subscription_id.to_string(),
            namespaces,
            identities,
            service_principals,
            accounts,
            account_urls,
            nodes: nodes.to_vec(),
            pods: HashMap::new(),
        }
    }

    /// The real namespace for an optional declared one (the scenario's own when absent).
    pub fn namespace_for(&self, declared: Option<&str>) -> String {
        declared
            .and_then(|d| self.namespaces.get(d).cloned())
            .unwrap_or_else(|| self.namespace.clone())
    }

    pub fn node(&self, logical: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.logical == logical)
    }

    /// What the mock cloud must hold for this scenario (identities, principals, storage, roles).
    /// Certificate credentials are not generated yet, so principals declared with
    /// `certificate: true` are refused here with the reason.
    pub fn cloud_spec(&self, scenario: &Scenario) -> Result<CloudSpec, String> {
        let cloud = &scenario.cloud;
        let mut spec = CloudSpec {
            tenant_id: self.tenant_id.clone(),
            subscription_id: self.subscription_id.clone(),
            ..CloudSpec::default()
        };
        for name in cloud.identities.keys() {
            let v = &self.identities[name.as_str()];
            let rg = cloud.identities[name.as_str()]
                .resource_group
                .clone()
                .unwrap_or_else(|| IDENTITY_RESOURCE_GROUP.to_string());
            spec.identities.push(UserAssignedIdentity {
                name: v.name.clone(),
                resource_group: rg,
                client_id: v.client_id.clone(),
                principal_id: v.principal_id.clone(),
            });
        }
        for (name, decl) in &cloud.service_principals {
            let v = &self.service_principals[name.as_str()];
            let credential = match &decl.secret {
                Some(secret) => SpCredential::Secret {
                    secret: secret.value.clone(),
                },
                None => {
                    return Err(format!(
                        "service principal `{}` uses a certificate, which podid does not generate yet; give it a `secret`",
                        name.value
                    ));
                }
            };
            spec.service_principals.push(ServicePrincipal {
                name: format!("{}-{}", name.value, self.suffix),
                client_id: v.client_id.clone(),
                object_id: v.object_id.clone(),
                credential,
            });
        }
        for (name, account) in &cloud.storage_accounts {
            spec.storage_accounts.push(StorageAccount {
                name: self.accounts[name.as_str()].clone(),
                resource_group: STORAGE_RESOURCE_GROUP.to_string(),
                containers: account
                    .containers
                    .iter()
                    .map(|(c, blobs)| Container {
                        name: c.value.clone(),
                        blobs: blobs
                            .iter()
                            .map(|(b, content)| BlobSpec {
                                name: b.value.clone(),
                                content: content.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            });
        }
        for ra in &cloud.role_assignments {
            let ra = &ra.value;
            let principal_id = self
                .identities
                .get(ra.principal.as_str())
                .map(|i| i.principal_id.clone())
                .or_else(|| {
                    self.service_principals
                        .get(ra.principal.as_str())
                        .map(|s| s.object_id.clone())
                })
                .unwrap_or_default();
            let account = &self.accounts[ra.account.as_str()];
            let scope = match &ra.container {
                Some(c) => resource_id::container_scope(
                    &self.subscription_id,
                    STORAGE_RESOURCE_GROUP,
                    account,
                    c,
                ),
                None => resource_id::storage_account(
                    &self.subscription_id,
                    STORAGE_RESOURCE_GROUP,
                    account,
                ),
            };
            spec.role_assignments.push(RoleAssignment {
                principal_id,
                role: builtin_role(ra.role.value),
                scope,
            });
        }
        Ok(spec)
    }
}

fn builtin_role(role: Role) -> BuiltinRole {
    match role {
        Role::StorageBlobDataReader => BuiltinRole::StorageBlobDataReader,
        Role::StorageBlobDataContributor => BuiltinRole::StorageBlobDataContributor,
        Role::StorageBlobDataOwner => BuiltinRole::StorageBlobDataOwner,
        Role::Reader => BuiltinRole::Reader,
        Role::Contributor => BuiltinRole::Contributor,
        Role::Owner => BuiltinRole::Owner,
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
            Root::Nodes => self.node(name?).map(|n| n.name.clone()),
            Root::Cloud => match field {
                "tenantId" => Some(self.tenant_id.clone()),
                "subscriptionId" => Some(self.subscription_id.clone()),
                _ => None,
            },
            Root::Scenario => match field {
                "name" => Some(self.scenario.clone()),
                "namespace" => Some(self.namespace.clone()),
                "runId" => Some(self.run_id.clone()),
                "mode" => Some(self.mode.as_str().to_string()),
                _ => None,
            },
        }
    }
}
