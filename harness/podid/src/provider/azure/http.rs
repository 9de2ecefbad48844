//! The one HTTPS client of the Azure cloud side: rustls with the system's roots plus an
//! optional extra CA, and optional host overrides (`*.blob.core.windows.net` → an address) so
//! tests and private endpoints reach Azure's names at an address of their choosing.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("the extra CA is not a PEM certificate: {0}")]
    BadCa(String),
    #[error("building the HTTPS client: {0}")]
    Build(String),
}

/// Resolves overridden host names to fixed addresses and everything else through the system.
#[derive(Debug, Clone)]
struct OverridingResolver {
    /// `(host or "*.suffix", address)`, lower-case.
    overrides: Vec<(String, IpAddr)>,
}

impl OverridingResolver {
    fn lookup(&self, host: &str) -> Option<IpAddr> {
        let host = host.to_ascii_lowercase();
        self.overrides.iter().find_map(|(pattern, ip)| {
            let hit = match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
                None => host == *pattern,
            };
            hit.then_some(*ip)
        })
    }
}

impl Resolve for OverridingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let fixed = self.lookup(name.as_str());
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Addrs = match fixed {
                Some(ip) => Box::new(std::iter::once(SocketAddr::new(ip, 0))),
                None => {
                    let found: Vec<SocketAddr> =
                        tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                    Box::new(found.into_iter())
                }
            };
            Ok(addrs)
        })
    }
}

/// The client: `extra_ca_pem` is trusted besides the system's roots; `overrides` pin host
/// names (or `*.suffix` patterns) to addresses.
pub fn client(
    extra_ca_pem: Option<&str>,
    overrides: &[(String, IpAddr)],
) -> Result<reqwest::Client, HttpSetupError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("podid/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| HttpSetupError::BadCa(e.to_string()))?;
        if certs.is_empty() {
            return Err(HttpSetupError::BadCa("no certificate in it".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    if !overrides.is_empty() {
        builder = builder.dns_resolver(OverridingResolver {
            overrides: overrides
                .iter()
                .map(|(p, ip)| (p.to_ascii_lowercase(), *ip))
                .collect(),
        });
    }
    builder
        .build()
        .map_err(|e| HttpSetupError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_labels() {
        let r = OverridingResolver {
            overrides: vec![
                ("*.blob.core.windows.net".into(), [127, 0, 0, 2].into()),
                ("management.azure.com".into(), [127, 0, 0, 3].into()),
            ],
        };
        assert_eq!(
            r.lookup("Acct.Blob.Core.Windows.Net"),
            Some([127, 0, 0, 2].into())
        );
        assert_eq!(r.lookup("blob.core.windows.net"), None);
        assert_eq!(r.lookup("xblob.core.windows.net"), None);
        assert_eq!(
            r.lookup("management.azure.com"),
            Some([127, 0, 0, 3].into())
        );
        assert_eq!(r.lookup("evil-management.azure.com"), None);
    }
}
