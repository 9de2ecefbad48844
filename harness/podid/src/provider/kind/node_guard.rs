//! Per-node work the kind provider does inside node containers: the metadata redirect and guard,
//! the fail-closed proof that each node's metadata address is the mock, and the check that NMI
//! took its own iptables chain away when it stopped.

use std::net::SocketAddr;
use std::time::Duration;

use podid_mocks::{MockCloud, Service};

use super::cloud_network::{imds_check_command, node_rules_script, remove_rules_script};
use crate::provider::error::ProviderError;

/// NMI's nat chain (upstream `pkg/nmi/iptables`), jumped to from PREROUTING.
pub const NMI_CHAIN: &str = "aad-metadata";

/// Runs commands as root inside a node (a container for kind).
#[async_trait::async_trait]
pub trait NodeShell: Send + Sync {
    /// Runs `argv` in node container `node`; returns its stdout, or an error (carrying the
    /// output) when it could not run or exited non-zero.
    async fn run(&self, node: &str, argv: &[String]) -> Result<String, ProviderError>;
}

fn sh(script: String) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script]
}

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

/// Takes the rules of [`install_rules`] out of `node` (for a cluster kept after the run).
pub async fn remove_rules(shell: &dyn NodeShell, node: &str) -> Result<(), ProviderError> {
    shell
        .run(node, &sh(remove_rules_script()))
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

/// Whether NMI's chain or its PREROUTING jump is still in `node`'s nat table, in either
/// iptables backend (NMI's image may use another one than the node's tools).
pub async fn nmi_chain_present(shell: &dyn NodeShell, node: &str) -> Result<bool, ProviderError> {
    let dump = "iptables-nft-save -t nat 2>/dev/null; iptables-legacy-save -t nat 2>/dev/null; \
                command -v iptables-nft-save >/dev/null || command -v iptables-legacy-save >/dev/null";
    let out = shell
        .run(node, &sh(dump.to_string()))
        .await
        .map_err(|e| ProviderError::new(format!("reading the nat table of node {node}"), e))?;
    Ok(chain_in_dump(&out))
}

/// Whether an `iptables-save` dump declares NMI's chain or jumps to it.
pub fn chain_in_dump(dump: &str) -> bool {
    dump.lines()
        .any(|l| l.starts_with(&format!(":{NMI_CHAIN} ")) || l.contains(&format!("-j {NMI_CHAIN}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmi_chain_is_found_by_declaration_or_jump() {
        assert!(chain_in_dump("*nat\n:aad-metadata - [0:0]\nCOMMIT\n"));
        assert!(chain_in_dump("-A PREROUTING -j aad-metadata\n"));
        assert!(!chain_in_dump(
            "*nat\n:PODID-IMDS - [0:0]\n-A OUTPUT -j PODID-IMDS\n"
        ));
    }
}
