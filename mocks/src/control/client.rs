//! `RemoteMockCloud`: drives a `MockCloud` in another process (a pod, through a port-forward)
//! with the same method names and argument types as the in-process handle, async.

use std::time::Duration;

use base64::Engine;
use podid_wait::{Check, Poll};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::error::ControlError;
use super::wire::{
    BlobAnswer, BlobQuery, Changed, CloudInfo, Failure, FaultAdded, FaultBody, IdentityBody,
    IdentityOnMachine, MachineBody, MachineQuery, NextSeq, Recreate, path,
};
use crate::behaviour::{ArmBehaviour, ImdsBehaviour};
use crate::error::error_chain;
use crate::fault::{FaultId, FaultRule};
use crate::record::{RecordedRequest, RequestFilter};
use crate::spec::{
    CloudSpec, MachineRef, RoleAssignment, SystemAssignedIdentity, UserAssignedIdentity,
};
use crate::token::mint;

/// How long one control call may take; every call is a quick change of in-memory state.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one health probe may take while connecting (a port-forward may accept and stall).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often `connect` probes the health endpoint.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// How much of an unexpected body goes into an error.
const BODY_EXCERPT: usize = 200;

/// A mock cloud served elsewhere, driven through its control API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RemoteMockCloud {
    http: reqwest::Client,
    base: Url,
    info: CloudInfo,
}

type Result<T> = std::result::Result<T, ControlError>;

impl RemoteMockCloud {
    /// Waits up to `timeout` for the control API at `base_url` (`http://HOST:PORT`) to answer
    /// its health check, then reads the cloud's tenant, subscription and CA.
    pub async fn connect(base_url: Url, timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(ControlError::Client)?;
        let health = join(&base_url, path::HEALTHZ);
        let probe = || async {
            match http.get(health.clone()).timeout(PROBE_TIMEOUT).send().await {
                Ok(resp) if resp.status().is_success() => Check::Done(()),
                Ok(resp) => Check::Pending(format!("HTTP {}", resp.status().as_u16())),
                Err(e) => Check::Pending(error_chain(&e)),
            }
        };
        podid_wait::until(Poll::every(PROBE_INTERVAL, timeout), probe)
            .await
            .map_err(|wait| ControlError::NotReady {
                url: base_url.to_string(),
                wait,
            })?;
        let info = call::<CloudInfo>(
            &http,
            &base_url,
            Method::GET,
            path::INFO,
            None::<&()>,
            None::<&()>,
        )
        .await?;
        Ok(Self {
            http,
            base: base_url,
            info,
        })
    }

    /// The control API's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Tenant GUID (read when connecting; it never changes).
    pub fn tenant_id(&self) -> String {
        self.info.tenant_id.clone()
    }

    /// Subscription GUID (read when connecting; it never changes).
    pub fn subscription_id(&self) -> String {
        self.info.subscription_id.clone()
    }

    /// PEM of the run's CA (read when connecting; it never changes).
    pub fn ca_pem(&self) -> &str {
        &self.info.ca_pem
    }

    /// Issuer of v1 tokens (`https://sts.windows.net/{tid}/`).
    pub fn issuer_v1(&self) -> String {
        mint::v1_issuer(&self.info.tenant_id)
    }

    /// Issuer of v2 tokens (`https://login.microsoftonline.com/{tid}/v2.0`).
    pub fn issuer_v2(&self) -> String {
        mint::v2_issuer(&self.info.tenant_id)
    }

    /// Whether the control API answers its health check now.
    pub async fn healthz(&self) -> Result<()> {
        let call_name = format!("GET {}", join(&self.base, path::HEALTHZ));
        let resp = self
            .http
            .get(join(&self.base, path::HEALTHZ))
            .send()
            .await
            .map_err(|source| ControlError::Transport {
                call: call_name.clone(),
                source,
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(ControlError::Unexpected {
                call: call_name,
                status: resp.status().as_u16(),
                detail: "the health check failed".to_string(),
            })
        }
    }

    /// Tenant, subscription, CA, JWKS and next sequence number, read now.
    pub async fn info(&self) -> Result<CloudInfo> {
        self.get(path::INFO, None::<&()>).await
    }

    /// Adds the objects of `spec` atomically; duplicates of existing objects are an error.
    pub async fn apply(&self, spec: &CloudSpec) -> Result<()> {
        self.post(path::APPLY, spec).await
    }

    /// All recorded requests, in arrival order.
    pub async fn requests(&self) -> Result<Vec<RecordedRequest>> {
        self.requests_matching(&RequestFilter::default()).await
    }

    /// Recorded requests with `seq >= since_seq`, in arrival order.
    pub async fn requests_since(&self, since_seq: u64) -> Result<Vec<RecordedRequest>> {
        self.requests_matching(&RequestFilter {
            since_seq: Some(since_seq),
            ..RequestFilter::default()
        })
        .await
    }

    /// Recorded requests passing `filter`, in arrival order.
    pub async fn requests_matching(&self, filter: &RequestFilter) -> Result<Vec<RecordedRequest>> {
        self.get(path::REQUESTS, Some(filter)).await
    }

    /// Sequence number the next request will get (use as `since_seq` for "from now on").
    pub async fn next_seq(&self) -> Result<u64> {
        let answer: NextSeq = self.get(path::NEXT_SEQ, None::<&()>).await?;
        Ok(answer.next_seq)
    }

    /// Installs a fault rule (its `duration`, if any, counts from now) and returns its id.
    pub async fn add_fault(&self, rule: FaultRule) -> Result<FaultId> {
        let answer: FaultAdded = self.post(path::FAULTS_ADD, &rule).await?;
        Ok(answer.id)
    }

    /// Removes one fault rule; returns whether it was still installed.
    pub async fn remove_fault(&self, id: FaultId) -> Result<bool> {
        let answer: Changed = self.post(path::FAULTS_REMOVE, &FaultBody { id }).await?;
        Ok(answer.changed)
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) -> Result<()> {
        self.post(path::FAULTS_CLEAR, &()).await
    }

    /// Sets how every IMDS of the cloud behaves from the next request on.
    pub async fn set_imds_behaviour(&self, behaviour: ImdsBehaviour) -> Result<()> {
        self.put(path::IMDS_BEHAVIOUR, &behaviour).await
    }

    /// The IMDS behaviour in force.
    pub async fn imds_behaviour(&self) -> Result<ImdsBehaviour> {
        self.get(path::IMDS_BEHAVIOUR, None::<&()>).await
    }

    /// Sets how ARM behaves from the next request on.
    pub async fn set_arm_behaviour(&self, behaviour: ArmBehaviour) -> Result<()> {
        self.put(path::ARM_BEHAVIOUR, &behaviour).await
    }

    /// The ARM behaviour in force.
    pub async fn arm_behaviour(&self) -> Result<ArmBehaviour> {
        self.get(path::ARM_BEHAVIOUR, None::<&()>).await
    }

    /// Assigns user identity `identity_resource_id` to a machine (what ARM PATCH does).
    pub async fn assign_identity(
        &self,
        machine: &MachineRef,
        identity_resource_id: &str,
    ) -> Result<()> {
        self.post(path::ASSIGN, &identity_on(machine, identity_resource_id))
            .await
    }

    /// Removes a user identity from a machine; returns whether it was assigned.
    pub async fn unassign_identity(
        &self,
        machine: &MachineRef,
        identity_resource_id: &str,
    ) -> Result<bool> {
        let answer: Changed = self
            .post(path::UNASSIGN, &identity_on(machine, identity_resource_id))
            .await?;
        Ok(answer.changed)
    }

    /// Resource ids of the user identities currently assigned to a machine.
    pub async fn assigned_identities(&self, machine: &MachineRef) -> Result<Vec<String>> {
        self.get(path::USER_ASSIGNED, Some(&machine_query(machine)))
            .await
    }

    /// Enables the system-assigned identity of a machine and returns it.
    pub async fn enable_system_assigned(
        &self,
        machine: &MachineRef,
    ) -> Result<SystemAssignedIdentity> {
        self.post(path::SYSTEM_ASSIGNED_ENABLE, &machine_body(machine))
            .await
    }

    /// Disables the system-assigned identity of a machine.
    pub async fn disable_system_assigned(&self, machine: &MachineRef) -> Result<()> {
        self.post(path::SYSTEM_ASSIGNED_DISABLE, &machine_body(machine))
            .await
    }

    /// The system-assigned identity of a machine, if enabled.
    pub async fn system_assigned(
        &self,
        machine: &MachineRef,
    ) -> Result<Option<SystemAssignedIdentity>> {
        self.get(path::SYSTEM_ASSIGNED, Some(&machine_query(machine)))
            .await
    }

    /// Deletes a user-assigned identity.
    pub async fn delete_identity(&self, identity_resource_id: &str) -> Result<()> {
        let body = IdentityBody {
            identity_resource_id: identity_resource_id.to_string(),
        };
        self.post(path::IDENTITY_DELETE, &body).await
    }

    /// Deletes a user-assigned identity and creates one with the same name and resource id but
    /// new client and principal ids (generated when `None`).
    pub async fn recreate_identity(
        &self,
        identity_resource_id: &str,
        client_id: Option<String>,
        principal_id: Option<String>,
    ) -> Result<UserAssignedIdentity> {
        let body = Recreate {
            identity_resource_id: identity_resource_id.to_string(),
            client_id,
            principal_id,
        };
        self.post(path::IDENTITY_RECREATE, &body).await
    }

    /// Adds a role assignment; returns `false` when the same one already exists.
    pub async fn add_role_assignment(&self, assignment: &RoleAssignment) -> Result<bool> {
        let answer: Changed = self.post(path::ROLE_ADD, assignment).await?;
        Ok(answer.changed)
    }

    /// Removes a role assignment; returns whether it existed.
    pub async fn remove_role_assignment(&self, assignment: &RoleAssignment) -> Result<bool> {
        let answer: Changed = self.post(path::ROLE_REMOVE, assignment).await?;
        Ok(answer.changed)
    }

    /// The JWKS document AAD publishes for this cloud.
    pub async fn jwks(&self) -> Result<serde_json::Value> {
        self.get(path::JWKS, None::<&()>).await
    }

    /// Current content of a blob, for assertions.
    pub async fn blob_content(
        &self,
        account: &str,
        container: &str,
        blob: &str,
    ) -> Result<Option<Vec<u8>>> {
        let query = BlobQuery {
            account: account.to_string(),
            container: container.to_string(),
            blob: blob.to_string(),
        };
        let answer: BlobAnswer = self.get(path::BLOB, Some(&query)).await?;
        answer
            .content_base64
            .map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| ControlError::Unexpected {
                        call: format!("GET {}", join(&self.base, path::BLOB)),
                        status: 200,
                        detail: format!("the blob content is not Base64: {e}"),
                    })
            })
            .transpose()
    }

    async fn get<T: DeserializeOwned>(
        &self,
        route: &str,
        query: Option<&impl Serialize>,
    ) -> Result<T> {
        call(
            &self.http,
            &self.base,
            Method::GET,
            route,
            query,
            None::<&()>,
        )
        .await
    }

    async fn post<T: DeserializeOwned>(&self, route: &str, body: &impl Serialize) -> Result<T> {
        call(
            &self.http,
            &self.base,
            Method::POST,
            route,
            None::<&()>,
            Some(body),
        )
        .await
    }

    async fn put<T: DeserializeOwned>(&self, route: &str, body: &impl Serialize) -> Result<T> {
        call(
            &self.http,
            &self.base,
            Method::PUT,
            route,
            None::<&()>,
            Some(body),
        )
        .await
    }
}

/// One control call: the answer's JSON on success, the mock's refusal as `Refused`.
async fn call<T: DeserializeOwned>(
    http: &reqwest::Client,
    base: &Url,
    method: Method,
    route: &str,
    query: Option<&impl Serialize>,
    body: Option<&impl Serialize>,
) -> Result<T> {
    let url = join(base, route);
    let call_name = format!("{method} {url}");
    let mut req = http.request(method, url);
    if let Some(query) = query {
        req = req.query(query);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let transport = |source| ControlError::Transport {
        call: call_name.clone(),
        source,
    };
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(transport)?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&bytes).map_err(|e| ControlError::Unexpected {
            call: call_name.clone(),
            status,
            detail: format!("{e} in {}", excerpt(&bytes)),
        });
    }
    match serde_json::from_slice::<Failure>(&bytes) {
        Ok(failure) => Err(ControlError::Refused {
            status,
            kind: failure.kind,
            message: failure.message,
        }),
        Err(_) => Err(ControlError::Unexpected {
            call: call_name,
            status,
            detail: excerpt(&bytes),
        }),
    }
}

/// `base` with its path replaced by `route`.
fn join(base: &Url, route: &str) -> Url {
    let mut url = base.clone();
    url.set_path(route);
    url.set_query(None);
    url
}

fn identity_on(machine: &MachineRef, identity_resource_id: &str) -> IdentityOnMachine {
    IdentityOnMachine {
        machine: machine.clone(),
        identity_resource_id: identity_resource_id.to_string(),
    }
}

fn machine_body(machine: &MachineRef) -> MachineBody {
    MachineBody {
        machine: machine.clone(),
    }
}

fn machine_query(machine: &MachineRef) -> MachineQuery {
    MachineQuery {
        machine: machine.to_string(),
    }
}

/// The start of a body, lossily decoded, for error messages.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}
