//! A real Kubernetes cluster as a provider's cluster side, shared by the kind provider (a
//! throw-away cluster podid creates) and the existing provider (any kubeconfig): NMI and MIC
//! from upstream's manifests, workload pods as real pods, steps run through `exec`, and node
//! commands through a [`NodeShell`] (a node container for kind, a hostNetwork pod elsewhere).

pub mod deploy;
pub mod health;
pub mod side;

use std::net::IpAddr;

use podid_mocks::BLOB_HOST_SUFFIX;

use crate::provider::error::ProviderError;

pub use side::{IdentityInstall, KubeClusterParts, KubeClusterSide, Teardown, WorkloadImage};

/// NMI's nat chain (upstream `pkg/nmi/iptables`), jumped to from PREROUTING.
pub const NMI_CHAIN: &str = "aad-metadata";

/// Runs commands as root in a node's own network namespace.
#[async_trait::async_trait]
pub trait NodeShell: Send + Sync {
    /// Runs `argv` on Kubernetes node `node`; returns its stdout, or an error (carrying the
    /// output) when it could not run or exited non-zero.
    async fn run(&self, node: &str, argv: &[String]) -> Result<String, ProviderError>;
}

/// `sh -c script`.
pub fn sh(script: impl Into<String>) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Whether NMI's chain or its PREROUTING jump is still in `node`'s nat table, in either
/// iptables backend (NMI's image may use another one than the node's tools).
pub async fn nmi_chain_present(shell: &dyn NodeShell, node: &str) -> Result<bool, ProviderError> {
    let dump = "iptables-nft-save -t nat 2>/dev/null; iptables-legacy-save -t nat 2>/dev/null; \
                command -v iptables-nft-save >/dev/null || command -v iptables-legacy-save >/dev/null";
    let out = shell
        .run(node, &sh(dump))
        .await
        .map_err(|e| ProviderError::new(format!("reading the nat table of node {node}"), e))?;
    Ok(chain_in_dump(&out))
}

/// Whether an `iptables-save` dump declares NMI's chain or jumps to it.
pub fn chain_in_dump(dump: &str) -> bool {
    dump.lines()
        .any(|l| l.starts_with(&format!(":{NMI_CHAIN} ")) || l.contains(&format!("-j {NMI_CHAIN}")))
}

/// The addresses pods reach the mock cloud's services at under their real host names
/// (`hostAliases`); empty when the cloud is the real one, which DNS finds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceHosts {
    /// AAD and ARM (and any other fixed host name), by address.
    pub services: Vec<(IpAddr, String)>,
    /// Where every storage account's blob host goes.
    pub blob: Option<IpAddr>,
}

impl ServiceHosts {
    /// The host aliases a pod using `storage_accounts` needs.
    pub fn for_pod(&self, storage_accounts: &[String]) -> Vec<(IpAddr, String)> {
        let mut hosts = self.services.clone();
        if let Some(blob) = self.blob {
            hosts.extend(
                storage_accounts
                    .iter()
                    .map(|a| (blob, format!("{a}{BLOB_HOST_SUFFIX}"))),
            );
        }
        hosts
    }
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

    #[test]
    fn pods_get_a_blob_host_per_account_only_with_a_mock_blob() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let hosts = ServiceHosts {
            services: vec![(ip, "login.microsoftonline.com".into())],
            blob: Some(ip),
        };
        assert_eq!(hosts.for_pod(&["acct".into()]).len(), 2);
        assert!(ServiceHosts::default().for_pod(&["acct".into()]).is_empty());
    }
}
