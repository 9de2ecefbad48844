//! Which providers exist, by the name users type (`--provider`, `PODID_PROVIDER`): parsed in
//! this one place so every entry point accepts and refuses the same names.

use std::fmt;

use super::capability::Capabilities;

/// Environment variable that picks the provider when `--provider` is not given.
pub const PROVIDER_VAR: &str = "PODID_PROVIDER";

/// A provider podid can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// etcd, kube-apiserver, NMI and MIC as local processes; nodes and pods as network
    /// namespaces; the mock cloud in-process.
    Local,
    /// A kind cluster (real kubelet, containerd, CNI) running NMI and MIC from upstream's
    /// manifests; the mock cloud in-process, served on the cluster's own container network.
    Kind,
    /// Any cluster given by kubeconfig: real AKS with real Azure, or any cluster with the mock
    /// cloud installed into it.
    Existing,
}

/// A provider name that is not one of [`ProviderKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{given}`; valid providers: {}", ProviderKind::names().join(", "))]
pub struct UnknownProvider {
    pub given: String,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::Local,
        ProviderKind::Kind,
        ProviderKind::Existing,
    ];
    /// What runs when nothing is chosen.
    pub const DEFAULT: ProviderKind = ProviderKind::Local;

    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Kind => "kind",
            Self::Existing => "existing",
        }
    }

    /// What the provider can do, known without starting it (so `podid list` can plan); the
    /// existing provider's depends on its cloud (`PODID_CLOUD`, see [`Self::capabilities_with`]).
    pub fn capabilities(self) -> Capabilities {
        let cloud = super::existing::CloudChoice::from_env().unwrap_or_default();
        self.capabilities_with(cloud)
    }

    /// What the provider can do with `cloud` (only the existing provider has a choice).
    pub fn capabilities_with(self, cloud: super::existing::CloudChoice) -> Capabilities {
        match self {
            Self::Existing => super::existing::capabilities(cloud),
            Self::Local => {
                super::local::cluster_capabilities().union(&super::mock_cloud::capabilities())
            }
            Self::Kind => {
                super::kind::cluster_capabilities().union(&super::mock_cloud::capabilities())
            }
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }

    pub fn parse(name: &str) -> Result<Self, UnknownProvider> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| UnknownProvider {
                given: name.to_string(),
            })
    }

    /// The provider `flag` names, else `PODID_PROVIDER`, else the default.
    pub fn choose(flag: Option<&str>) -> Result<Self, UnknownProvider> {
        match flag {
            Some(name) => Self::parse(name),
            None => match std::env::var(PROVIDER_VAR) {
                Ok(name) if !name.trim().is_empty() => Self::parse(&name),
                _ => Ok(Self::DEFAULT),
            },
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_list_the_valid_ones() {
        assert_eq!(ProviderKind::parse("local"), Ok(ProviderKind::Local));
        let err = ProviderKind::parse("nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown provider `nope`; valid providers: local, kind, existing"
        );
        assert_eq!(ProviderKind::choose(Some("local")), Ok(ProviderKind::Local));
        assert_eq!(ProviderKind::choose(Some("kind")), Ok(ProviderKind::Kind));
    }
}
