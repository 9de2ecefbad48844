//! Serving the control API: an axum router over one `MockCloud`, on a listener the caller bound
//! (loopback; in a pod it is reached through a port-forward).

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::wire::{
    BlobAnswer, BlobQuery, Changed, CloudInfo, Failure, FaultAdded, FaultBody, IdentityBody,
    IdentityOnMachine, MachineBody, MachineQuery, NextSeq, Recreate, path,
};
use crate::behaviour::{ArmBehaviour, ImdsBehaviour};
use crate::cloud::MockCloud;
use crate::error::MockError;
use crate::fault::FaultRule;
use crate::record::{RecordedRequest, RequestFilter};
use crate::spec::{
    CloudSpec, MachineRef, RoleAssignment, SystemAssignedIdentity, UserAssignedIdentity,
};

/// A running control server; dropping it stops the server.
#[derive(Debug)]
pub struct ControlServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Address the server accepts on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL `RemoteMockCloud::connect` takes.
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).expect("a socket address is a host")
    }

    /// Stops accepting, lets requests in flight finish and waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts serving the control API of `cloud` on `listener` (already bound by the caller; never
/// binds itself). The API has no authentication: bind it to loopback only.
pub async fn serve(
    cloud: MockCloud,
    listener: std::net::TcpListener,
) -> Result<ControlServer, MockError> {
    let io_err = |addr: Option<SocketAddr>, source| MockError::Listener {
        endpoint: "control".to_string(),
        addr,
        source,
    };
    let addr = listener.local_addr().map_err(|e| io_err(None, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| io_err(Some(addr), e))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| io_err(Some(addr), e))?;
    let cancel = CancellationToken::new();
    let shutdown = cancel.clone().cancelled_owned();
    let app = router(cloud);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "control server stopped");
        }
    });
    tracing::info!(%addr, "mock control API listening");
    Ok(ControlServer {
        addr,
        cancel,
        task: Some(task),
    })
}

/// The control API's routes over `cloud`.
pub fn router(cloud: MockCloud) -> Router {
    Router::new()
        .route(path::HEALTHZ, get(|| async { "ok" }))
        .route(path::INFO, get(info))
        .route(path::APPLY, post(apply))
        .route(path::REQUESTS, get(requests))
        .route(path::NEXT_SEQ, get(next_seq))
        .route(path::FAULTS_ADD, post(add_fault))
        .route(path::FAULTS_REMOVE, post(remove_fault))
        .route(path::FAULTS_CLEAR, post(clear_faults))
        .route(
            path::IMDS_BEHAVIOUR,
            get(imds_behaviour).put(set_imds_behaviour),
        )
        .route(
            path::ARM_BEHAVIOUR,
            get(arm_behaviour).put(set_arm_behaviour),
        )
        .route(path::USER_ASSIGNED, get(assigned_identities))
        .route(path::ASSIGN, post(assign_identity))
        .route(path::UNASSIGN, post(unassign_identity))
        .route(path::SYSTEM_ASSIGNED, get(system_assigned))
        .route(path::SYSTEM_ASSIGNED_ENABLE, post(enable_system_assigned))
        .route(path::SYSTEM_ASSIGNED_DISABLE, post(disable_system_assigned))
        .route(path::IDENTITY_DELETE, post(delete_identity))
        .route(path::IDENTITY_RECREATE, post(recreate_identity))
        .route(path::ROLE_ADD, post(add_role_assignment))
        .route(path::ROLE_REMOVE, post(remove_role_assignment))
        .route(path::JWKS, get(jwks))
        .route(path::BLOB, get(blob_content))
        .fallback(|| async {
            Refusal(Failure {
                kind: super::wire::FailureKind::NotFound,
                message: "no such control API route".to_string(),
            })
        })
        .with_state(cloud)
}

/// An error answer: the failure's status and its JSON.
struct Refusal(Failure);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

impl From<MockError> for Refusal {
    fn from(e: MockError) -> Self {
        Self(Failure::from(&e))
    }
}

impl From<JsonRejection> for Refusal {
    fn from(e: JsonRejection) -> Self {
        Self(Failure::bad_request(e.body_text()))
    }
}

impl From<QueryRejection> for Refusal {
    fn from(e: QueryRejection) -> Self {
        Self(Failure::bad_request(e.body_text()))
    }
}

type Answer<T> = Result<Json<T>, Refusal>;
type Body<T> = Result<Json<T>, JsonRejection>;
type Params<T> = Result<Query<T>, QueryRejection>;

/// The machine a read names, or a bad-request refusal.
fn machine(query: Params<MachineQuery>) -> Result<MachineRef, Refusal> {
    let Query(q) = query?;
    q.machine
        .parse()
        .map_err(|e: String| Refusal(Failure::bad_request(e)))
}

async fn info(State(cloud): State<MockCloud>) -> Json<CloudInfo> {
    Json(CloudInfo {
        tenant_id: cloud.tenant_id(),
        subscription_id: cloud.subscription_id(),
        ca_pem: cloud.tls().ca_pem().to_string(),
        jwks: cloud.jwks(),
        next_seq: cloud.next_seq(),
    })
}

async fn apply(State(cloud): State<MockCloud>, body: Body<CloudSpec>) -> Answer<()> {
    let Json(spec) = body?;
    cloud.apply(&spec)?;
    Ok(Json(()))
}

async fn requests(
    State(cloud): State<MockCloud>,
    filter: Params<RequestFilter>,
) -> Answer<Vec<RecordedRequest>> {
    let Query(filter) = filter?;
    Ok(Json(cloud.requests_matching(&filter)))
}

async fn next_seq(State(cloud): State<MockCloud>) -> Json<NextSeq> {
    Json(NextSeq {
        next_seq: cloud.next_seq(),
    })
}

async fn add_fault(State(cloud): State<MockCloud>, body: Body<FaultRule>) -> Answer<FaultAdded> {
    let Json(rule) = body?;
    Ok(Json(FaultAdded {
        id: cloud.add_fault(rule),
    }))
}

async fn remove_fault(State(cloud): State<MockCloud>, body: Body<FaultBody>) -> Answer<Changed> {
    let Json(FaultBody { id }) = body?;
    Ok(Json(Changed {
        changed: cloud.remove_fault(id),
    }))
}

async fn clear_faults(State(cloud): State<MockCloud>) -> Json<()> {
    cloud.clear_faults();
    Json(())
}

async fn imds_behaviour(State(cloud): State<MockCloud>) -> Json<ImdsBehaviour> {
    Json(cloud.imds_behaviour())
}

async fn set_imds_behaviour(
    State(cloud): State<MockCloud>,
    body: Body<ImdsBehaviour>,
) -> Answer<()> {
    let Json(behaviour) = body?;
    cloud.set_imds_behaviour(behaviour);
    Ok(Json(()))
}

async fn arm_behaviour(State(cloud): State<MockCloud>) -> Json<ArmBehaviour> {
    Json(cloud.arm_behaviour())
}

async fn set_arm_behaviour(State(cloud): State<MockCloud>, body: Body<ArmBehaviour>) -> Answer<()> {
    let Json(behaviour) = body?;
    cloud.set_arm_behaviour(behaviour);
    Ok(Json(()))
}

async fn assigned_identities(
    State(cloud): State<MockCloud>,
    query: Params<MachineQuery>,
) -> Answer<Vec<String>> {
    Ok(Json(cloud.assigned_identities(&machine(query)?)?))
}

async fn assign_identity(
    State(cloud): State<MockCloud>,
    body: Body<IdentityOnMachine>,
) -> Answer<()> {
    let Json(b) = body?;
    cloud.assign_identity(&b.machine, &b.identity_resource_id)?;
    Ok(Json(()))
}

async fn unassign_identity(
    State(cloud): State<MockCloud>,
    body: Body<IdentityOnMachine>,
) -> Answer<Changed> {
    let Json(b) = body?;
    let changed = cloud.unassign_identity(&b.machine, &b.identity_resource_id)?;
    Ok(Json(Changed { changed }))
}

async fn system_assigned(
    State(cloud): State<MockCloud>,
    query: Params<MachineQuery>,
) -> Answer<Option<SystemAssignedIdentity>> {
    Ok(Json(cloud.system_assigned(&machine(query)?)?))
}

async fn enable_system_assigned(
    State(cloud): State<MockCloud>,
    body: Body<MachineBody>,
) -> Answer<SystemAssignedIdentity> {
    let Json(b) = body?;
    Ok(Json(cloud.enable_system_assigned(&b.machine)?))
}

async fn disable_system_assigned(
    State(cloud): State<MockCloud>,
    body: Body<MachineBody>,
) -> Answer<()> {
    let Json(b) = body?;
    cloud.disable_system_assigned(&b.machine)?;
    Ok(Json(()))
}

async fn delete_identity(State(cloud): State<MockCloud>, body: Body<IdentityBody>) -> Answer<()> {
    let Json(b) = body?;
    cloud.delete_identity(&b.identity_resource_id)?;
    Ok(Json(()))
}

async fn recreate_identity(
    State(cloud): State<MockCloud>,
    body: Body<Recreate>,
) -> Answer<UserAssignedIdentity> {
    let Json(b) = body?;
    Ok(Json(cloud.recreate_identity(
        &b.identity_resource_id,
        b.client_id,
        b.principal_id,
    )?))
}

async fn add_role_assignment(
    State(cloud): State<MockCloud>,
    body: Body<RoleAssignment>,
) -> Answer<Changed> {
    let Json(assignment) = body?;
    let changed = cloud.add_role_assignment(&assignment)?;
    Ok(Json(Changed { changed }))
}

async fn remove_role_assignment(
    State(cloud): State<MockCloud>,
    body: Body<RoleAssignment>,
) -> Answer<Changed> {
    let Json(assignment) = body?;
    Ok(Json(Changed {
        changed: cloud.remove_role_assignment(&assignment),
    }))
}

async fn jwks(State(cloud): State<MockCloud>) -> Json<serde_json::Value> {
    Json(cloud.jwks())
}

async fn blob_content(
    State(cloud): State<MockCloud>,
    query: Params<BlobQuery>,
) -> Answer<BlobAnswer> {
    let Query(q) = query?;
    let content = cloud.blob_content(&q.account, &q.container, &q.blob);
    Ok(Json(BlobAnswer {
        content_base64: content.map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
    }))
}
