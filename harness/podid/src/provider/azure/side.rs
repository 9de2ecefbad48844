//! `AzureCloudSide`: a scenario's cloud in a real Azure subscription. Identities, storage and
//! role assignments are created per run in the run's resource group (or taken from a mapping
//! file), identities are put on the nodes' machines through ARM, and everything created is
//! deleted again at shutdown, newest first.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use podid_scenario::{Cloud, MIC_PRINCIPAL, Role};
use serde_json::{Map, Value};

use super::arm::{ArmClient, Deleted, RetryPolicy, Wait};
use super::blob_upload::BlobUploader;
use super::credential::{CredentialSource, TokenClaims, TokenSource};
use super::mapping::Mapping;
use super::resources::{self, Granted, IdentityChange, last_segment, same_id};
use crate::provider::capability::{Capabilities, Capability};
use crate::provider::cloud::{
    CloudNames, CloudSide, DeclaredCloud, IdentityValues, MachineIdentities, RequestLog, RoleChange,
};
use crate::provider::cluster::{Machine, ShutdownReport};
use crate::provider::error::{ProviderError, error_chain};

/// Where Azure's services are. [`AzureEndpoints::public`] is the public cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureEndpoints {
    /// ARM's base URL (`https://management.azure.com`).
    pub arm: String,
    /// The audience of ARM tokens (`https://management.azure.com/`).
    pub arm_audience: String,
    /// AAD's base URL (`https://login.microsoftonline.com`).
    pub authority: String,
    /// Storage's endpoint suffix: an account's blob endpoint is
    /// `https://{account}.blob.{storage_suffix}` (`core.windows.net`).
    pub storage_suffix: String,
    /// A CA (PEM) trusted besides the system's.
    pub extra_ca_pem: Option<String>,
    /// Host names, or `*.suffix` patterns, reached at these addresses instead of through DNS
    /// (private endpoints; tests).
    pub host_overrides: Vec<(String, IpAddr)>,
}

impl AzureEndpoints {
    /// The public Azure cloud.
    pub fn public() -> Self {
        Self {
            arm: "https://management.azure.com".into(),
            arm_audience: "https://management.azure.com/".into(),
            authority: "https://login.microsoftonline.com".into(),
            storage_suffix: "core.windows.net".into(),
            extra_ca_pem: None,
            host_overrides: Vec::new(),
        }
    }
}

impl Default for AzureEndpoints {
    fn default() -> Self {
        Self::public()
    }
}

/// What the Azure cloud side needs to start.
#[derive(Debug, Clone)]
pub struct AzureCloudConfig {
    /// The run's id: names the resource group and goes into every resource's tags.
    pub run_id: String,
    pub subscription_id: String,
    /// The tenant; taken from the credential when not given.
    pub tenant_id: Option<String>,
    /// The region new resources go to.
    pub location: String,
    /// An existing resource group to create resources in; `None`: create `podid-<run_id>` and
    /// delete it at shutdown.
    pub resource_group: Option<String>,
    /// The ARM id of each node's machine (its VM, or its instance's scale set), from the
    /// nodes' `providerID`s.
    pub machines: HashMap<Machine, String>,
    /// Existing identities and accounts to use instead of creating them.
    pub mapping: Option<Mapping>,
    pub endpoints: AzureEndpoints,
    /// How to sign in ([`CredentialSource::from_env`] reads the SDKs' variables).
    pub credential: CredentialSource,
    pub retry: RetryPolicy,
}

/// What podid created, to delete at shutdown (newest first).
#[derive(Debug, Default)]
struct Ledger {
    /// The run's resource group, when podid created it.
    own_group: Option<String>,
    role_assignments: Vec<GrantRecord>,
    /// `(machine id, identity id)` pairs podid assigned.
    machine_assignments: Vec<(String, String)>,
    /// Machines whose system-assigned identity podid enabled.
    system_enabled: Vec<String>,
    identities: Vec<IdentityValues>,
    accounts: Vec<String>,
    /// Real account name (lower-case) → its resource group, for role scopes.
    account_groups: HashMap<String, String>,
    /// Accounts the runner may write blobs to already.
    writable_accounts: HashSet<String>,
}

/// A role assignment podid created.
#[derive(Debug, Clone)]
struct GrantRecord {
    principal_id: String,
    role: Role,
    scope: String,
    id: String,
}

impl GrantRecord {
    fn is(&self, principal_id: &str, role: Role, scope: &str) -> bool {
        self.role == role
            && self.principal_id.eq_ignore_ascii_case(principal_id)
            && same_id(&self.scope, scope)
    }
}

/// A scenario's cloud in a real Azure subscription.
pub struct AzureCloudSide {
    subscription_id: String,
    tenant_id: String,
    location: String,
    run_id: String,
    resource_group: String,
    created_at: chrono::DateTime<chrono::Utc>,
    machines: HashMap<Machine, String>,
    mapping: Mapping,
    has_mapping: bool,
    endpoints: AzureEndpoints,
    credential: String,
    runner_object_id: String,
    http: reqwest::Client,
    arm: ArmClient,
    uploader: BlobUploader,
    ledger: Mutex<Ledger>,
}

impl std::fmt::Debug for AzureCloudSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureCloudSide")
            .field("subscription_id", &self.subscription_id)
            .field("tenant_id", &self.tenant_id)
            .field("resource_group", &self.resource_group)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// What the Azure cloud side can do: change identities, roles and assignments mid-scenario.
/// It has no request log, fault rules or behaviour switches (Azure offers none), and no
/// service principals (ARM cannot create app registrations).
pub fn capabilities() -> Capabilities {
    Capabilities::of([Capability::CloudChanges])
}

impl AzureCloudSide {
    /// Signs in, checks the subscription, and creates the run's resource group (or checks the
    /// given one exists).
    pub async fn connect(config: AzureCloudConfig) -> Result<Self, ProviderError> {
        let endpoints = config.endpoints.clone();
        let http =
            super::http::client(endpoints.extra_ca_pem.as_deref(), &endpoints.host_overrides)
                .map_err(|e| ProviderError::new("setting up HTTPS to Azure", e))?;
        let credential = config.credential.describe();
        let tokens = Arc::new(TokenSource::new(
            config.credential.clone(),
            &endpoints.authority,
            http.clone(),
        ));
        let token = tokens.token(&endpoints.arm_audience).await.map_err(|e| {
            ProviderError::new(format!("signing in to Azure with the {credential}"), e)
        })?;
        let claims = TokenClaims::of(&token).unwrap_or_default();
        let tenant_id = config
            .tenant_id
            .clone()
            .or_else(|| config.credential.tenant_id().map(str::to_string))
            .unwrap_or_else(|| claims.tid.clone());
        if tenant_id.is_empty() {
            return Err(ProviderError::plain(
                "the Azure tenant is unknown: set AZURE_TENANT_ID",
            ));
        }
        if !claims.tid.is_empty() && !claims.tid.eq_ignore_ascii_case(&tenant_id) {
            return Err(ProviderError::plain(format!(
                "the {credential} signs in to tenant {}, not to tenant {tenant_id}",
                claims.tid
            )));
        }
        if claims.oid.is_empty() {
            return Err(ProviderError::plain(format!(
                "the ARM token of the {credential} names no object id (`oid`), so podid cannot grant itself access to the storage it creates"
            )));
        }
        let arm = ArmClient::new(
            http.clone(),
            &endpoints.arm,
            &endpoints.arm_audience,
            tokens.clone(),
            config.retry.clone(),
        );
        let sub = &config.subscription_id;
        if resources::subscription(&arm, sub).await?.is_none() {
            return Err(ProviderError::plain(format!(
                "subscription {sub} is not visible to the {credential} (check AZURE_SUBSCRIPTION_ID and the credential's role assignments)"
            )));
        }
        let created_at = chrono::Utc::now();
        let (resource_group, created_group) = match &config.resource_group {
            Some(rg) => {
                if resources::resource_group(&arm, sub, rg).await?.is_none() {
                    return Err(ProviderError::plain(format!(
                        "resource group {rg} does not exist in subscription {sub}"
                    )));
                }
                (rg.clone(), false)
            }
            None => {
                let rg = format!("podid-{}", config.run_id);
                let tags = resources::run_tags(&config.run_id, created_at);
                resources::create_resource_group(&arm, sub, &rg, &config.location, &tags).await?;
                tracing::info!(resource_group = %rg, "created the run's resource group");
                (rg, true)
            }
        };
        let mut ledger = Ledger {
            own_group: created_group.then(|| resource_group.clone()),
            ..Ledger::default()
        };
        let mapping = config.mapping.clone().unwrap_or_default();
        for account in mapping.storage_accounts.values() {
            if let Some(rg) = &account.resource_group {
                ledger
                    .account_groups
                    .insert(account.name.to_ascii_lowercase(), rg.clone());
            }
        }
        Ok(Self {
            subscription_id: config.subscription_id.clone(),
            tenant_id,
            location: config.location.clone(),
            run_id: config.run_id.clone(),
            resource_group,
            created_at,
            machines: config.machines.clone(),
            has_mapping: config.mapping.is_some(),
            mapping,
            endpoints,
            credential,
            runner_object_id: claims.oid,
            uploader: BlobUploader::new(http.clone(), tokens, config.retry.clone()),
            http,
            arm,
            ledger: Mutex::new(ledger),
        })
    }

    /// The resource group podid creates resources in.
    pub fn resource_group(&self) -> &str {
        &self.resource_group
    }

    /// The object id podid signs in as (what its own role assignments name).
    pub fn runner_object_id(&self) -> &str {
        &self.runner_object_id
    }

    /// The real name of a declared storage account the mapping file gives, if it does: the
    /// name pods must use instead of the run's generated one.
    pub fn mapped_account(&self, declared: &str) -> Option<String> {
        self.mapping.account(declared).map(|a| a.name.clone())
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tags(&self) -> Map<String, Value> {
        resources::run_tags(&self.run_id, self.created_at)
    }

    fn machine_id(&self, machine: &Machine) -> Result<String, ProviderError> {
        self.machines.get(machine).cloned().ok_or_else(|| {
            ProviderError::plain(format!(
                "machine {machine} has no ARM resource id (is its node's providerID an Azure one?)"
            ))
        })
    }

    /// The scope of a role: a storage account (or one of its containers), or, for a
    /// control-plane role given without an account, the run's resource group: a test identity
    /// needs no more, and a role on the run's group goes away with the group, even after a run
    /// that crashed.
    fn scope(
        &self,
        account: Option<&str>,
        container: Option<&str>,
    ) -> Result<String, ProviderError> {
        let Some(account) = account else {
            return Ok(resources::resource_group_path(
                &self.subscription_id,
                &self.resource_group,
            ));
        };
        let rg = self
            .ledger()
            .account_groups
            .get(&account.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                ProviderError::plain(format!(
                    "the resource group of storage account {account} is not known: give `resourceGroup` for it in the mapping file, or set `roles: preassigned`"
                ))
            })?;
        Ok(match container {
            Some(c) => resources::container_path(&self.subscription_id, &rg, account, c),
            None => resources::storage_account_path(&self.subscription_id, &rg, account),
        })
    }

    /// Grants `role` at `scope` and remembers it for shutdown (unless it was there already).
    async fn grant(
        &self,
        principal_id: &str,
        role: Role,
        scope: &str,
        principal_type: Option<&str>,
    ) -> Result<(), ProviderError> {
        let granted = resources::create_role_assignment(
            &self.arm,
            &self.subscription_id,
            scope,
            role,
            principal_id,
            principal_type,
        )
        .await?;
        if let Granted::Created { id } = granted {
            self.ledger().role_assignments.push(GrantRecord {
                principal_id: principal_id.to_string(),
                role,
                scope: scope.to_string(),
                id,
            });
        }
        Ok(())
    }

    /// Deletes a role assignment podid created; one it did not create is left alone.
    async fn revoke(
        &self,
        principal_id: &str,
        role: Role,
        scope: &str,
    ) -> Result<(), ProviderError> {
        let record = {
            let ledger = self.ledger();
            ledger
                .role_assignments
                .iter()
                .find(|r| r.is(principal_id, role, scope))
                .cloned()
        };
        if let Some(record) = record {
            resources::delete_role_assignment(&self.arm, &record.id).await?;
            self.ledger().role_assignments.retain(|r| r.id != record.id);
        }
        Ok(())
    }

    /// The values of declared identity `name`: mapped, or created in the run's group.
    async fn identity(
        &self,
        name: &str,
        decl: &podid_scenario::IdentityDecl,
        names: &CloudNames,
    ) -> Result<IdentityValues, ProviderError> {
        let pinned =
            |v: &Option<podid_scenario::Located<String>>| v.as_ref().map(|v| v.value.clone());
        if let Some(mapped) = self.mapping.identity(name) {
            for (field, pin, real) in [
                ("clientId", pinned(&decl.client_id), &mapped.client_id),
                (
                    "principalId",
                    pinned(&decl.principal_id),
                    &mapped.principal_id,
                ),
            ] {
                if let Some(pin) = pin.filter(|p| !p.eq_ignore_ascii_case(real)) {
                    return Err(ProviderError::plain(format!(
                        "identity `{name}` pins {field} {pin}, but the mapping file maps it to an identity with {field} {real}"
                    )));
                }
            }
            return Ok(IdentityValues {
                name: last_segment(&mapped.resource_id).to_string(),
                client_id: mapped.client_id.clone(),
                principal_id: mapped.principal_id.clone(),
                resource_id: mapped.resource_id.clone(),
            });
        }
        if decl.client_id.is_some() || decl.principal_id.is_some() {
            return Err(ProviderError::plain(format!(
                "identity `{name}` pins its clientId or principalId; Azure chooses the ids of a new identity, so map `{name}` to an existing identity in the mapping file (--azure-mapping)"
            )));
        }
        let real = format!("{name}-{}", names.suffix);
        let values = resources::create_identity(
            &self.arm,
            &self.subscription_id,
            &self.resource_group,
            &real,
            &self.location,
            &self.tags(),
        )
        .await?;
        self.ledger().identities.push(values.clone());
        Ok(values)
    }

    /// Creates a declared storage account with its containers and blobs (a mapped one is used
    /// as it is); returns its real name.
    async fn storage_account(
        &self,
        declared: &str,
        decl: &podid_scenario::StorageAccountDecl,
        names: &CloudNames,
    ) -> Result<String, ProviderError> {
        if let Some(mapped) = self.mapping.account(declared) {
            return Ok(mapped.name.clone());
        }
        let account = names.accounts.get(declared).cloned().ok_or_else(|| {
            ProviderError::plain(format!("storage account `{declared}` has no run name"))
        })?;
        let (sub, rg) = (&self.subscription_id, &self.resource_group);
        resources::create_storage_account(
            &self.arm,
            sub,
            rg,
            &account,
            &self.location,
            &self.tags(),
        )
        .await?;
        {
            let mut ledger = self.ledger();
            ledger.accounts.push(account.clone());
            ledger
                .account_groups
                .insert(account.to_ascii_lowercase(), rg.clone());
        }
        for (container, blobs) in &decl.containers {
            resources::create_container(&self.arm, sub, rg, &account, &container.value).await?;
            if blobs.is_empty() {
                continue;
            }
            self.ensure_writable(&account).await?;
            let url = self.account_url(&account);
            for (blob, content) in blobs {
                self.uploader
                    .upload(&url, &container.value, &blob.value, content)
                    .await
                    .map_err(|e| {
                        ProviderError::new(format!("filling storage account {account}"), e)
                    })?;
            }
        }
        Ok(account)
    }

    /// Grants the runner Storage Blob Data Contributor on an account it created, once.
    async fn ensure_writable(&self, account: &str) -> Result<(), ProviderError> {
        if self.ledger().writable_accounts.contains(account) {
            return Ok(());
        }
        let scope = self.scope(Some(account), None)?;
        let me = self.runner_object_id.clone();
        self.grant(&me, Role::StorageBlobDataContributor, &scope, None)
            .await?;
        self.ledger().writable_accounts.insert(account.to_string());
        Ok(())
    }

    /// The real name of a declared account.
    fn real_account(&self, declared: &str, names: &CloudNames) -> Result<String, ProviderError> {
        self.mapped_account(declared)
            .or_else(|| names.accounts.get(declared).cloned())
            .ok_or_else(|| {
                ProviderError::plain(format!("storage account `{declared}` has no run name"))
            })
    }

    fn created_identity(&self, identity: &IdentityValues) -> Result<(), ProviderError> {
        let created = self
            .ledger()
            .identities
            .iter()
            .any(|i| same_id(&i.resource_id, &identity.resource_id));
        if created {
            Ok(())
        } else {
            Err(ProviderError::plain(format!(
                "identity {} was not created by this run (it comes from the mapping file); podid changes only identities it created",
                identity.name
            )))
        }
    }

    /// Every machine the run knows (once each: a scale set's instances share it), and those
    /// it assigned identities to.
    fn known_machines(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        let assigned: Vec<String> = self
            .ledger()
            .machine_assignments
            .iter()
            .map(|(m, _)| m.clone())
            .collect();
        for id in self.machines.values().cloned().chain(assigned) {
            if !ids.iter().any(|known| same_id(known, &id)) {
                ids.push(id);
            }
        }
        ids.sort();
        ids
    }

    /// Takes `identity_id` off every machine the run knows (whoever put it there: MIC assigns
    /// identities too). Azure keeps a deleted identity listed on a machine, and the machine's
    /// next identity update then fails, so an identity leaves the machines before it goes.
    /// Returns the machines it was taken off.
    async fn take_off_machines(&self, identity_id: &str) -> Result<Vec<String>, ProviderError> {
        let mut taken_off = Vec::new();
        for machine_id in self.known_machines() {
            if self.remove_from_machine(&machine_id, identity_id).await? {
                taken_off.push(machine_id);
            }
        }
        Ok(taken_off)
    }

    async fn remove_from_machine(
        &self,
        machine_id: &str,
        identity_id: &str,
    ) -> Result<bool, ProviderError> {
        let current = resources::machine_identities(&self.arm, machine_id).await?;
        let held = current.holds(identity_id);
        if held {
            resources::change_machine_identity(
                &self.arm,
                machine_id,
                &current,
                IdentityChange::Remove(identity_id),
            )
            .await?;
        }
        self.ledger()
            .machine_assignments
            .retain(|(m, id)| !(same_id(m, machine_id) && same_id(id, identity_id)));
        Ok(held)
    }
}

#[async_trait::async_trait]
impl CloudSide for AzureCloudSide {
    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    fn tenant_id(&self) -> String {
        self.tenant_id.clone()
    }

    fn subscription_id(&self) -> String {
        self.subscription_id.clone()
    }

    fn account_url(&self, account: &str) -> String {
        format!("https://{account}.blob.{}", self.endpoints.storage_suffix)
    }

    async fn declare(
        &self,
        cloud: &Cloud,
        names: &CloudNames,
    ) -> Result<DeclaredCloud, ProviderError> {
        if !cloud.service_principals.is_empty() {
            let listed: Vec<String> = cloud
                .service_principals
                .keys()
                .map(|k| format!("`{}`", k.value))
                .collect();
            return Err(ProviderError::plain(format!(
                "the scenario declares service principals ({}); Azure Resource Manager cannot create app registrations, so it cannot run with the Azure cloud (run it with the mock cloud)",
                listed.join(", ")
            )));
        }
        let mut declared = DeclaredCloud::default();
        for (name, decl) in &cloud.identities {
            let values = self.identity(&name.value, decl, names).await?;
            declared.identities.insert(name.value.clone(), values);
        }
        for (name, decl) in &cloud.storage_accounts {
            let real = self.storage_account(&name.value, decl, names).await?;
            declared.accounts.insert(name.value.clone(), real);
        }
        if self.mapping.creates_roles() {
            for ra in &cloud.role_assignments {
                let ra = &ra.value;
                // MIC's principal is the cluster's, granted by whoever set the cluster up.
                if ra.principal.value == MIC_PRINCIPAL {
                    continue;
                }
                let principal = declared
                    .identities
                    .get(&ra.principal.value)
                    .map(|i| i.principal_id.clone())
                    .ok_or_else(|| {
                        ProviderError::plain(format!(
                            "role assignment for `{}`, which is not a declared identity",
                            ra.principal.value
                        ))
                    })?;
                let account = match &ra.account {
                    Some(a) => Some(self.real_account(&a.value, names)?),
                    None => None,
                };
                let scope = self.scope(
                    account.as_deref(),
                    ra.container.as_ref().map(|c| c.value.as_str()),
                )?;
                self.grant(&principal, ra.role.value, &scope, Some("ServicePrincipal"))
                    .await?;
            }
        }
        Ok(declared)
    }

    async fn assign_identity(
        &self,
        machine: &Machine,
        identity_resource_id: &str,
    ) -> Result<(), ProviderError> {
        let machine_id = self.machine_id(machine)?;
        let current = resources::machine_identities(&self.arm, &machine_id).await?;
        if current.holds(identity_resource_id) {
            return Ok(());
        }
        resources::change_machine_identity(
            &self.arm,
            &machine_id,
            &current,
            IdentityChange::Add(identity_resource_id),
        )
        .await?;
        self.ledger()
            .machine_assignments
            .push((machine_id, identity_resource_id.to_string()));
        Ok(())
    }

    async fn unassign_identity(
        &self,
        machine: &Machine,
        identity_resource_id: &str,
    ) -> Result<(), ProviderError> {
        let machine_id = self.machine_id(machine)?;
        self.remove_from_machine(&machine_id, identity_resource_id)
            .await
            .map(|_| ())
    }

    async fn enable_system_assigned(&self, machine: &Machine) -> Result<String, ProviderError> {
        let machine_id = self.machine_id(machine)?;
        let current = resources::machine_identities(&self.arm, &machine_id).await?;
        if let Some(principal) = current.system_principal {
            return Ok(principal);
        }
        let after = resources::change_machine_identity(
            &self.arm,
            &machine_id,
            &current,
            IdentityChange::EnableSystemAssigned,
        )
        .await?;
        self.ledger().system_enabled.push(machine_id.clone());
        match after.system_principal {
            Some(p) => Ok(p),
            None => resources::machine_identities(&self.arm, &machine_id)
                .await?
                .system_principal
                .ok_or_else(|| {
                    ProviderError::plain(format!(
                        "the system-assigned identity of {machine} was enabled but ARM reports no principal"
                    ))
                }),
        }
    }

    async fn disable_system_assigned(&self, machine: &Machine) -> Result<(), ProviderError> {
        let machine_id = self.machine_id(machine)?;
        let enabled_by_run = self
            .ledger()
            .system_enabled
            .iter()
            .any(|m| same_id(m, &machine_id));
        if !enabled_by_run {
            return Err(ProviderError::plain(format!(
                "the system-assigned identity of {machine} was not enabled by this run; podid does not disable it"
            )));
        }
        let current = resources::machine_identities(&self.arm, &machine_id).await?;
        if current.system_principal.is_some() {
            resources::change_machine_identity(
                &self.arm,
                &machine_id,
                &current,
                IdentityChange::DisableSystemAssigned,
            )
            .await?;
        }
        self.ledger()
            .system_enabled
            .retain(|m| !same_id(m, &machine_id));
        Ok(())
    }

    async fn machine_identities(
        &self,
        machine: &Machine,
    ) -> Result<MachineIdentities, ProviderError> {
        let machine_id = self.machine_id(machine)?;
        let state = resources::machine_identities(&self.arm, &machine_id).await?;
        Ok(MachineIdentities {
            user_assigned: state.user_assigned,
            system_assigned: state.system_principal,
        })
    }

    async fn change_role(&self, change: &RoleChange, add: bool) -> Result<(), ProviderError> {
        let scope = self.scope(change.account.as_deref(), change.container.as_deref())?;
        if add {
            self.grant(
                &change.principal_id,
                change.role,
                &scope,
                Some("ServicePrincipal"),
            )
            .await
        } else {
            self.revoke(&change.principal_id, change.role, &scope).await
        }
    }

    async fn delete_identity(&self, identity: &IdentityValues) -> Result<(), ProviderError> {
        self.created_identity(identity)?;
        self.take_off_machines(&identity.resource_id).await?;
        resources::delete_identity(&self.arm, &identity.resource_id).await?;
        self.ledger()
            .identities
            .retain(|i| !same_id(&i.resource_id, &identity.resource_id));
        Ok(())
    }

    async fn recreate_identity(
        &self,
        identity: &IdentityValues,
    ) -> Result<IdentityValues, ProviderError> {
        self.created_identity(identity)?;
        resources::delete_identity(&self.arm, &identity.resource_id).await?;
        let recreated = resources::create_identity(
            &self.arm,
            &self.subscription_id,
            &self.resource_group,
            &identity.name,
            &self.location,
            &self.tags(),
        )
        .await?;
        let mut ledger = self.ledger();
        for i in ledger.identities.iter_mut() {
            if same_id(&i.resource_id, &identity.resource_id) {
                *i = recreated.clone();
            }
        }
        Ok(IdentityValues {
            resource_id: identity.resource_id.clone(),
            ..recreated
        })
    }

    async fn signing_keys(&self) -> Result<Value, ProviderError> {
        let url = format!(
            "{}/{}/discovery/v2.0/keys",
            self.endpoints.authority.trim_end_matches('/'),
            self.tenant_id
        );
        let what = || {
            format!(
                "reading the signing keys of tenant {} ({url})",
                self.tenant_id
            )
        };
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| ProviderError::new(what(), e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ProviderError::plain(format!("{}: {status}", what())));
        }
        resp.json().await.map_err(|e| ProviderError::new(what(), e))
    }

    fn request_log(&self) -> Option<&dyn RequestLog> {
        None
    }

    async fn shutdown(&self) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        let ledger = std::mem::take(&mut *self.ledger());
        let mut record = |done: Result<Option<String>, ProviderError>| match done {
            Ok(Some(what)) => report.stopped.push(what),
            Ok(None) => {}
            Err(e) => report.errors.push(error_chain(&e)),
        };
        for grant in ledger.role_assignments.iter().rev() {
            let done = resources::delete_role_assignment(&self.arm, &grant.id).await;
            record(done.map_err(ProviderError::from).map(|_| {
                Some(format!(
                    "azure role assignment {} for {} at {}",
                    grant.role.as_str(),
                    grant.principal_id,
                    grant.scope
                ))
            }));
        }
        for (machine_id, identity_id) in ledger.machine_assignments.iter().rev() {
            let done = self.remove_from_machine(machine_id, identity_id).await;
            record(done.map(|held| {
                held.then(|| {
                    format!(
                        "azure identity {} taken off {}",
                        last_segment(identity_id),
                        resources::describe_machine(machine_id)
                    )
                })
            }));
        }
        for machine_id in ledger.system_enabled.iter().rev() {
            let done = async {
                let current = resources::machine_identities(&self.arm, machine_id).await?;
                if current.system_principal.is_some() {
                    resources::change_machine_identity(
                        &self.arm,
                        machine_id,
                        &current,
                        IdentityChange::DisableSystemAssigned,
                    )
                    .await?;
                }
                Ok::<_, ProviderError>(Some(format!(
                    "azure system-assigned identity of {} disabled",
                    resources::describe_machine(machine_id)
                )))
            }
            .await;
            record(done);
        }
        for identity in ledger.identities.iter().rev() {
            let done = async {
                let taken_off = self.take_off_machines(&identity.resource_id).await?;
                resources::delete_identity(&self.arm, &identity.resource_id).await?;
                let mut what = format!("azure identity {}", identity.name);
                if !taken_off.is_empty() {
                    let machines: Vec<String> = taken_off
                        .iter()
                        .map(|m| resources::describe_machine(m))
                        .collect();
                    what.push_str(&format!(" (taken off {} first)", machines.join(", ")));
                }
                Ok::<_, ProviderError>(Some(what))
            }
            .await;
            record(done);
        }
        for account in ledger.accounts.iter().rev() {
            let done = resources::delete_storage_account(
                &self.arm,
                &self.subscription_id,
                &self.resource_group,
                account,
            )
            .await;
            record(
                done.map_err(ProviderError::from)
                    .map(|_| Some(format!("azure storage account {account}"))),
            );
        }
        if let Some(group) = &ledger.own_group {
            let done = resources::delete_resource_group(
                &self.arm,
                &self.subscription_id,
                group,
                Wait::UntilAccepted,
            )
            .await;
            record(done.map_err(ProviderError::from).map(|d| {
                Some(match d {
                    Deleted::Accepted => format!(
                        "azure resource group {group} (deletion accepted; Azure finishes it in the background)"
                    ),
                    _ => format!("azure resource group {group}"),
                })
            }));
        }
        report
    }

    fn environment(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "cloud".to_string(),
                format!(
                    "azure, subscription {}, resource group {}",
                    self.subscription_id, self.resource_group
                ),
            ),
            ("azure credential".to_string(), self.credential.clone()),
        ];
        if self.has_mapping {
            env.push((
                "azure mapping".to_string(),
                format!(
                    "{} identities, {} storage accounts, roles {}",
                    self.mapping.identities.len(),
                    self.mapping.storage_accounts.len(),
                    if self.mapping.creates_roles() {
                        "created"
                    } else {
                        "preassigned"
                    }
                ),
            ));
        }
        env
    }
}
