//! Per-node work the kind provider does inside node containers: the metadata redirect and guard,
//! and the fail-closed proof that each node's metadata address is the mock.

use std::net::SocketAddr;
use std::time::Duration;

use podid_mocks::{MockCloud, Service};

use super::cloud_network::{imds_check_command, node_rules_script, remove_redirect_script};
use crate::provider::error::ProviderError;
use crate::provider::kube_cluster::{NodeShell, sh};

/// Installs the redirect of 169.254.169.254:80 to `imds` (or only the guard when the node has
/// no IMDS of its own, like the control plane) in `node`.
pub async fn install_rules(
    shell: &dyn NodeShell,
    node: &str,
    imds: Option<SocketAddr>,
) -> Result<(), ProviderError> {
    let script = match imds {
        Some(addr) => node_rules_script(addr),
        // A redirect to a closed port: every metadata call from this node is refused.
        None => node_rules_script(SocketAddr::from(([127, 0, 0, 1], 9))),
    };
    shell.run(node, &sh(script)).await.map(|_| ()).map_err(|e| {
        ProviderError::new(
            format!("installing the metadata redirect in node {node}"),
            e,
        )
    })
}

/// Takes the redirect of [`install_rules`] out of `node` and keeps its guard (for a cluster
/// kept after the run, whose mock IMDS ends with the run).
pub async fn remove_redirect(shell: &dyn NodeShell, node: &str) -> Result<(), ProviderError> {
    shell
        .run(node, &sh(remove_redirect_script()))
        .await
        .map(|_| ())
}

/// Fails closed: each node must reach its own mock IMDS at the metadata address. A request
/// carrying a fresh nonce goes out from the node; the mock's log must hold it under that
/// node's label, else the run stops before any scenario.
pub async fn prove_imds_is_mock(
    shell: &dyn NodeShell,
    cloud: &MockCloud,
    nodes: &[(String, String)],
) -> Result<Duration, ProviderError> {
    let started = std::time::Instant::now();
    for (logical, container) in nodes {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let answer = shell.run(container, &imds_check_command(&nonce)).await;
        let seen = cloud
            .requests()
            .into_iter()
            .find(|r| r.service == Service::Imds && r.query.iter().any(|(_, v)| v == &nonce));
        match seen {
            Some(r) if r.label == *logical => {}
            Some(r) => {
                return Err(ProviderError::plain(format!(
                    "node {container} reached the mock IMDS of {} instead of its own ({logical}); refusing to run",
                    r.label
                )));
            }
            None => {
                let answer = match answer {
                    Ok(status) => format!("HTTP status {}", status.trim()),
                    Err(e) => crate::provider::error_chain(&e),
                };
                return Err(ProviderError::plain(format!(
                    "node {container}: 169.254.169.254 did not answer from podid's mock IMDS ({answer}); refusing to run so that nothing reaches a real metadata service"
                )));
            }
        }
    }
    Ok(started.elapsed())
}
