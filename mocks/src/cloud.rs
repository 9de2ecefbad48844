//! `MockCloud`: the shared, thread-safe handle the harness and all servers use.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::MockError;
use crate::fault::{FaultRule, FaultSet};
use crate::record::{RecordedRequest, RequestFilter};
use crate::server::{Endpoint, ServerHandle};
use crate::spec::{CloudSpec, MachineRef};
use crate::state::CloudState;
use crate::tls::CloudTls;
use crate::token::mint::{self, Principal};
use crate::token::{IssuedToken, TokenRequest, TokenSigner, TokenSubject, TokenVersion};

/// Everything shared by the four services of one mock cloud.
pub(crate) struct CloudInner {
    pub state: Mutex<CloudState>,
    pub signer: TokenSigner,
    pub tls: CloudTls,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub seq: AtomicU64,
    pub faults: Mutex<FaultSet>,
}

/// A running mock Azure cloud: cheap to clone, safe to share across threads and servers.
#[derive(Clone)]
pub struct MockCloud {
    pub(crate) inner: Arc<CloudInner>,
}

impl std::fmt::Debug for MockCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockCloud")
            .field("tenant_id", &self.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Options for creating a `MockCloud` beyond its spec.
#[derive(Debug, Default, Clone)]
pub struct MockCloudBuilder {
    extra_sans: Vec<String>,
}

impl MockCloudBuilder {
    /// Extra host names or IP addresses the server certificate must cover.
    pub fn extra_sans<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_sans.extend(names.into_iter().map(Into::into));
        self
    }

    /// Generates the run's CA, server certificate and token key and loads `spec`.
    pub fn build(self, spec: CloudSpec) -> Result<MockCloud, MockError> {
        let state = CloudState::from_spec(&spec)?;
        let hosts: Vec<String> = state
            .account_names()
            .iter()
            .map(|a| format!("{a}.blob.core.windows.net"))
            .collect();
        let tls = CloudTls::generate(&self.extra_sans, &hosts)?;
        let signer = TokenSigner::generate()?;
        Ok(MockCloud {
            inner: Arc::new(CloudInner {
                state: Mutex::new(state),
                signer,
                tls,
                log: Mutex::new(Vec::new()),
                seq: AtomicU64::new(1),
                faults: Mutex::new(FaultSet::default()),
            }),
        })
    }
}

/// Locks a mutex, recovering from poisoning (a panicked handler must not wedge the cloud).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MockCloud {
    /// Creates a cloud from `spec` with a fresh CA and token-signing key.
    pub fn new(spec: CloudSpec) -> Result<Self, MockError> {
        Self::builder().build(spec)
    }

    /// Starts configuring a cloud (extra certificate names, …).
    pub fn builder() -> MockCloudBuilder {
        MockCloudBuilder::default()
    }

    /// Adds the objects of `spec` atomically; duplicates of existing objects are an error.
    pub fn apply(&self, spec: &CloudSpec) -> Result<(), MockError> {
        let mut state = lock(&self.inner.state);
        let mut next = state.clone();
        next.merge(spec)?;
        let hosts: Vec<String> = next
            .account_names()
            .iter()
            .map(|a| format!("{a}.blob.core.windows.net"))
            .collect();
        self.inner.tls.ensure_names(&hosts)?;
        *state = next;
        Ok(())
    }

    /// The run's CA and server certificate.
    pub fn tls(&self) -> &CloudTls {
        &self.inner.tls
    }

    /// Tenant GUID.
    pub fn tenant_id(&self) -> String {
        lock(&self.inner.state).tenant_id.clone()
    }

    /// Subscription GUID.
    pub fn subscription_id(&self) -> String {
        lock(&self.inner.state).subscription_id.clone()
    }

    /// Serves `endpoint` on an already-bound listener until the handle is shut down or dropped.
    pub async fn serve(
        &self,
        endpoint: Endpoint,
        listener: TcpListener,
    ) -> Result<ServerHandle, MockError> {
        crate::server::serve(self.clone(), endpoint, listener).await
    }

    /// All recorded requests, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let mut all = lock(&self.inner.log).clone();
        all.sort_by_key(|r| r.seq);
        all
    }

    /// Recorded requests passing `filter`, in arrival order.
    pub fn requests_matching(&self, filter: &RequestFilter) -> Vec<RecordedRequest> {
        let mut all: Vec<RecordedRequest> = lock(&self.inner.log)
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        all.sort_by_key(|r| r.seq);
        all
    }

    /// Sequence number the next request will get (use as `since_seq` for "from now on").
    pub fn next_seq(&self) -> u64 {
        self.inner.seq.load(Ordering::SeqCst)
    }

    /// Installs a fault rule.
    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.inner.faults).add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Assigns user identity `identity_resource_id` to a machine (what ARM PATCH does).
    pub fn assign_identity(
        &self,
        machine: &MachineRef,
        identity_resource_id: &str,
    ) -> Result<(), MockError> {
        let mut state = lock(&self.inner.state);
        let idx = machine_index(&state, machine)?;
        state.assign(idx, identity_resource_id)
    }

    /// Removes a user identity from a machine; returns whether it was assigned.
    pub fn unassign_identity(
        &self,
        machine: &MachineRef,
        identity_resource_id: &str,
    ) -> Result<bool, MockError> {
        let mut state = lock(&self.inner.state);
        let idx = machine_index(&state, machine)?;
        Ok(state.unassign(idx, identity_resource_id))
    }

    /// Resource ids of the user identities currently assigned to a machine.
    pub fn assigned_identities(&self, machine: &MachineRef) -> Result<Vec<String>, MockError> {
        let state = lock(&self.inner.state);
        let idx = machine_index(&state, machine)?;
        Ok(state.machines[idx]
            .user_assigned
            .iter()
            .map(|n| state.canonical_identity_id(n))
            .collect())
    }

    /// Current content of a blob, for assertions.
    pub fn blob_content(&self, account: &str, container: &str, blob: &str) -> Option<Vec<u8>> {
        let state = lock(&self.inner.state);
        state
            .accounts
            .get(&account.to_ascii_lowercase())?
            .containers
            .get(container)?
            .blobs
            .get(blob)
            .map(|b| b.content.clone())
    }

    /// Mints a token directly, signed like the ones AAD and IMDS hand out.
    pub fn issue_token(&self, req: &TokenRequest) -> Result<IssuedToken, MockError> {
        let state = lock(&self.inner.state);
        let (principal, default_lifetime) = match &req.subject {
            TokenSubject::ManagedIdentity { client_id } => {
                let found = state
                    .identities
                    .iter()
                    .find(|i| i.client_id.eq_ignore_ascii_case(client_id))
                    .map(|i| {
                        (
                            i.client_id.clone(),
                            i.principal_id.clone(),
                            i.resource_id(&state.subscription_id),
                        )
                    })
                    .or_else(|| {
                        state.machines.iter().find_map(|m| {
                            m.system
                                .as_ref()
                                .filter(|s| s.client_id.eq_ignore_ascii_case(client_id))
                                .map(|s| {
                                    (
                                        s.client_id.clone(),
                                        s.principal_id.clone(),
                                        m.kind_resource_id(&state.subscription_id),
                                    )
                                })
                        })
                    });
                let (client_id, object_id, mirid) = found.ok_or_else(|| MockError::NotFound {
                    kind: "managed identity",
                    id: client_id.clone(),
                })?;
                let p = Principal {
                    client_id,
                    object_id,
                    mirid: Some(mirid),
                    acr: "2",
                };
                (p, mint::MI_LIFETIME_SECS)
            }
            TokenSubject::ServicePrincipal { client_id } => {
                let sp = state
                    .service_principal(client_id)
                    .ok_or_else(|| MockError::NotFound {
                        kind: "service principal",
                        id: client_id.clone(),
                    })?;
                let acr = if sp.cert.is_some() { "2" } else { "1" };
                let p = Principal {
                    client_id: sp.spec.client_id.clone(),
                    object_id: sp.spec.object_id.clone(),
                    mirid: None,
                    acr,
                };
                (p, mint::SP_LIFETIME_SECS)
            }
        };
        let tenant = state.tenant_id.clone();
        drop(state);
        self.mint(
            &tenant,
            &principal,
            &req.audience,
            req.version,
            req.issued_at.unwrap_or_else(mint::now_secs),
            req.lifetime_secs.unwrap_or(default_lifetime),
        )
    }

    /// The JWKS document AAD publishes for this cloud (verifies every token it issues).
    pub fn jwks(&self) -> serde_json::Value {
        self.inner.signer.jwks(&mint::v2_issuer(&self.tenant_id()))
    }

    /// Issuer of v1 tokens (`https://sts.windows.net/{tid}/`).
    pub fn issuer_v1(&self) -> String {
        mint::v1_issuer(&self.tenant_id())
    }

    /// Issuer of v2 tokens (`https://login.microsoftonline.com/{tid}/v2.0`).
    pub fn issuer_v2(&self) -> String {
        mint::v2_issuer(&self.tenant_id())
    }

    /// Signs a token for a resolved principal.
    pub(crate) fn mint(
        &self,
        tenant_id: &str,
        principal: &Principal,
        audience: &str,
        version: TokenVersion,
        issued_at: u64,
        lifetime: u64,
    ) -> Result<IssuedToken, MockError> {
        let claims = mint::claims_for(tenant_id, principal, audience, version, issued_at, lifetime);
        let access_token = self
            .inner
            .signer
            .sign(&claims, version == TokenVersion::V1)?;
        Ok(IssuedToken {
            access_token,
            not_before: claims.nbf,
            expires_on: claims.exp,
            expires_in: claims.exp.saturating_sub(issued_at),
            claims,
        })
    }

    /// Appends a finished request to the log.
    pub(crate) fn record(&self, r: RecordedRequest) {
        lock(&self.inner.log).push(r);
    }
}

fn machine_index(state: &CloudState, machine: &MachineRef) -> Result<usize, MockError> {
    state
        .machine_index(machine)
        .ok_or_else(|| MockError::NotFound {
            kind: "machine",
            id: machine.to_string(),
        })
}
