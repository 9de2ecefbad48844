//! A TCP forwarder from inside a node namespace to the API server on the root namespace's loopback,
//! so NMI can use `https://127.0.0.1:<port>` from its node.

use std::net::{Ipv4Addr, SocketAddr};

use podid_netns::NetNamespace;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::LocalError;

/// Accepts on 127.0.0.1:`port` inside a namespace and pipes each connection to 127.0.0.1:`port`
/// of the root namespace. Stops when dropped.
#[derive(Debug)]
pub struct LoopbackForwarder {
    task: JoinHandle<()>,
}

impl LoopbackForwarder {
    /// Starts forwarding `port` from `namespace` (its loopback must be up). Needs a tokio runtime.
    pub fn start(namespace: &NetNamespace, port: u16) -> Result<Self, LocalError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let bind_err = |e| {
            LocalError::io(
                format!(
                    "binding the API forwarder at {addr} in {}",
                    namespace.name()
                ),
                e,
            )
        };
        let listener = namespace.bind_tcp(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(listener).map_err(bind_err)?;
        let ns_name = namespace.name().to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let ns_name = ns_name.clone();
                tokio::spawn(async move {
                    // Runtime threads never change namespace, so this connects in the root one.
                    match TcpStream::connect(addr).await {
                        Ok(mut outbound) => {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                        // Refused while the API server restarts (a scenario may restart it); the
                        // clients' own logs show what it cost them.
                        Err(e) => {
                            tracing::debug!(namespace = %ns_name, %addr, "API forwarder: {e}")
                        }
                    }
                });
            }
        });
        Ok(Self { task })
    }
}

impl Drop for LoopbackForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
