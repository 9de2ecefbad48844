//! Serving one endpoint on a caller-bound listener: accept loop, optional TLS, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::context::ServerCtx;
use crate::core::CloudCore;
use crate::error::MockError;
use crate::observe::Disconnect;
use crate::record::Service;
use crate::routes::router_for;
use crate::spec::MachineRef;

/// Which service a listener serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// AAD token service and discovery (HTTPS).
    Aad,
    /// Azure Resource Manager (HTTPS).
    Arm,
    /// Blob storage, all accounts (HTTPS).
    Blob,
    /// IMDS for one machine (plain HTTP), recorded under `label`.
    Imds {
        /// The VM or scale-set instance this IMDS speaks for.
        machine: MachineRef,
        /// Label in the request log (e.g. the node name).
        label: String,
    },
}

impl Endpoint {
    /// The service behind the endpoint.
    pub fn service(&self) -> Service {
        match self {
            Self::Aad => Service::Aad,
            Self::Arm => Service::Arm,
            Self::Blob => Service::Blob,
            Self::Imds { .. } => Service::Imds,
        }
    }

    /// Whether the endpoint speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Self::Imds { .. })
    }
}

/// A running server; dropping it stops the server.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    tls: bool,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Address the server accepts on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR` or `http://ADDR`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// Stops accepting, closes open connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts serving `endpoint` on `listener` (already bound by the caller; never binds itself).
pub(crate) async fn serve(
    core: Arc<CloudCore>,
    endpoint: Endpoint,
    listener: std::net::TcpListener,
) -> Result<ServerHandle, MockError> {
    let name = match &endpoint {
        Endpoint::Imds { label, .. } => format!("imds[{label}]"),
        other => other.service().as_str().to_string(),
    };
    let io_err = |addr: Option<SocketAddr>, source| MockError::Listener {
        endpoint: name.clone(),
        addr,
        source,
    };
    let addr = listener.local_addr().map_err(|e| io_err(None, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| io_err(Some(addr), e))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| io_err(Some(addr), e))?;
    let (label, machine) = match &endpoint {
        Endpoint::Imds { machine, label } => {
            if core.with_state(|s| s.machine_index(machine).is_none()) {
                return Err(MockError::NotFound {
                    kind: "machine",
                    id: machine.to_string(),
                });
            }
            (label.clone(), Some(machine.clone()))
        }
        other => (other.service().as_str().to_string(), None),
    };
    let tls = endpoint
        .is_tls()
        .then(|| TlsAcceptor::from(core.tls().server_config()));
    let ctx = Arc::new(ServerCtx {
        core,
        service: endpoint.service(),
        label,
        machine,
        local_addr: addr,
    });
    let router = router_for(ctx);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(accept_loop(listener, router, tls.clone(), cancel.clone()));
    tracing::info!(endpoint = %name, %addr, "mock server listening");
    Ok(ServerHandle {
        addr,
        tls: tls.is_some(),
        cancel,
        task: Some(task),
    })
}

/// Accepts connections until cancelled, then aborts the open ones.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    cancel: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(serve_connection(stream, peer, router.clone(), tls.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

/// Why a connection was closed without an answer: a `disconnect` fault rule matched. Returned
/// as the service's error, on which hyper drops the connection (HTTP/1.1) or resets the stream
/// (HTTP/2) without writing a response.
#[derive(Debug)]
struct ClosedByFault;

impl std::fmt::Display for ClosedByFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by a disconnect fault rule")
    }
}

impl std::error::Error for ClosedByFault {}

/// The router never fails; this lets `map_result` widen its error type.
impl From<std::convert::Infallible> for ClosedByFault {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// Serves one connection (HTTP/1.1 or h2, TLS if configured), tagging requests with the peer.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    tls: Option<TlsAcceptor>,
) {
    let svc = router
        .map_request(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        })
        .map_result(|result| match result {
            Ok(resp) if resp.extensions().get::<Disconnect>().is_some() => Err(ClosedByFault),
            Ok(resp) => Ok(resp),
            Err(never) => match never {},
        });
    let svc = TowerToHyperService::new(svc);
    let builder = auto::Builder::new(TokioExecutor::new());
    let result = match tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(s) => builder.serve_connection(TokioIo::new(s), svc).await,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
        },
        None => builder.serve_connection(TokioIo::new(stream), svc).await,
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with error");
    }
}
