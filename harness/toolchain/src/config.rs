//! Where the toolchain cache lives and which binaries the user supplies instead of building.

use std::path::PathBuf;

use crate::component::Artifact;

/// Environment variable naming the toolchain cache directory.
pub const CACHE_DIR_VAR: &str = "PODID_CACHE_DIR";

/// Settings for [`crate::ensure`] and [`crate::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolchainConfig {
    /// Root of the cache: built components, Go module and build caches, logs and the lock file.
    pub cache_dir: PathBuf,
    /// Prebuilt binaries to use as-is instead of building them.
    pub overrides: Overrides,
}

/// Prebuilt binaries that replace the pinned builds; this is how a contributor tests a patched NMI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// From `PODID_ETCD`.
    pub etcd: Option<PathBuf>,
    /// From `PODID_KUBE_APISERVER`.
    pub kube_apiserver: Option<PathBuf>,
    /// From `PODID_NMI`.
    pub nmi: Option<PathBuf>,
    /// From `PODID_MIC`.
    pub mic: Option<PathBuf>,
}

/// Environment variable naming the aad-pod-identity module directory (upstream's manifests and
/// CRDs) instead of the cache's copy.
pub const AAD_POD_IDENTITY_DIR_VAR: &str = "PODID_AAD_POD_IDENTITY_DIR";

impl ToolchainConfig {
    /// Where the pinned aad-pod-identity module is: `PODID_AAD_POD_IDENTITY_DIR`, else the
    /// cache's Go module copy (the toolchain downloads it to build NMI and MIC).
    pub fn aad_pod_identity_module_dir(&self) -> PathBuf {
        std::env::var_os(AAD_POD_IDENTITY_DIR_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                self.cache_dir.join("gomod/github.com/!azure").join(format!(
                    "aad-pod-identity@{}",
                    crate::AAD_POD_IDENTITY_VERSION
                ))
            })
    }

    /// Reads `PODID_CACHE_DIR` (default `~/.cache/podid/toolchain`) and the `PODID_*` overrides.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var_os(name).map(PathBuf::from))
    }

    /// Builds the config from any variable lookup; lets tests avoid touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<PathBuf>) -> Self {
        let non_empty = |name: &str| lookup(name).filter(|p| !p.as_os_str().is_empty());
        let cache_dir = non_empty(CACHE_DIR_VAR).unwrap_or_else(default_cache_dir);
        let overrides = Overrides {
            etcd: non_empty("PODID_ETCD"),
            kube_apiserver: non_empty("PODID_KUBE_APISERVER"),
            nmi: non_empty("PODID_NMI"),
            mic: non_empty("PODID_MIC"),
        };
        ToolchainConfig {
            cache_dir,
            overrides,
        }
    }
}

impl Overrides {
    /// The override for `artifact`, if one is set.
    pub fn get(&self, artifact: Artifact) -> Option<&PathBuf> {
        match artifact {
            Artifact::Etcd => self.etcd.as_ref(),
            Artifact::KubeApiserver => self.kube_apiserver.as_ref(),
            Artifact::Nmi => self.nmi.as_ref(),
            Artifact::Mic => self.mic.as_ref(),
            _ => None,
        }
    }
}

/// `~/.cache/podid/toolchain` (XDG cache dir when set), or a relative fallback without a home.
fn default_cache_dir() -> PathBuf {
    directories::BaseDirs::new()
        .map(|dirs| dirs.cache_dir().join("podid").join("toolchain"))
        .unwrap_or_else(|| PathBuf::from(".podid-cache").join("toolchain"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> ToolchainConfig {
        let vars: HashMap<String, PathBuf> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect();
        ToolchainConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn overrides_come_from_podid_variables() {
        let cfg = config(&[
            ("PODID_CACHE_DIR", "/c"),
            ("PODID_NMI", "/opt/nmi"),
            ("PODID_ETCD", "/opt/etcd"),
        ]);
        assert_eq!(cfg.cache_dir, PathBuf::from("/c"));
        assert_eq!(
            cfg.overrides.get(Artifact::Nmi),
            Some(&PathBuf::from("/opt/nmi"))
        );
        assert_eq!(
            cfg.overrides.get(Artifact::Etcd),
            Some(&PathBuf::from("/opt/etcd"))
        );
        assert_eq!(cfg.overrides.get(Artifact::Mic), None);
        assert_eq!(cfg.overrides.get(Artifact::KubeApiserver), None);
    }

    #[test]
    fn empty_variables_are_ignored_and_cache_defaults_under_podid() {
        let cfg = config(&[("PODID_CACHE_DIR", ""), ("PODID_MIC", "")]);
        assert!(
            cfg.cache_dir.ends_with("podid/toolchain"),
            "{:?}",
            cfg.cache_dir
        );
        assert_eq!(cfg.overrides, Overrides::default());
    }
}
