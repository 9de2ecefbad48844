//! A loopback listener that carries each connection to a pod's port through the API server
//! (`pods/portforward`): how podid reaches the mock cloud's control port inside a cluster
//! whose pod network it cannot route to.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::provider::error::ProviderError;

/// A forward that lasts until it is dropped.
pub struct PortForward {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl PortForward {
    /// Listens on 127.0.0.1 (a free port) and forwards each connection to `port` of pod
    /// `namespace/pod`.
    pub async fn start(
        client: &kube::Client,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<Self, ProviderError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| ProviderError::new("binding a loopback port to forward from", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| ProviderError::new("reading the forward's local address", e))?;
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let pod = pod.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let api = api.clone();
                let pod = pod.clone();
                tokio::spawn(async move {
                    let mut forwarder = match api.portforward(&pod, &[port]).await {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!("port-forward to {pod}:{port}: {e}");
                            return;
                        }
                    };
                    let Some(mut upstream) = forwarder.take_stream(port) else {
                        return;
                    };
                    if let Err(e) = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await
                    {
                        tracing::debug!("port-forward to {pod}:{port} ended: {e}");
                    }
                    drop(upstream);
                    let _ = forwarder.join().await;
                });
            }
        });
        Ok(Self { local, task })
    }

    /// The loopback address that reaches the pod's port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}
