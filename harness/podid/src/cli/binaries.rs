//! `--nmi`, `--kube-apiserver`, `--etcd`, `--mic`: use your own builds instead of the cached ones.

use std::path::PathBuf;

use clap::Args;
use podid_toolchain::ToolchainConfig;

/// Prebuilt binaries to use as they are (the flags win over the `PODID_*` variables).
#[derive(Debug, Clone, Default, Args)]
pub struct BinaryOverrides {
    /// An NMI binary to test instead of the pinned build (also `PODID_NMI`).
    #[arg(long, value_name = "PATH")]
    pub nmi: Option<PathBuf>,
    /// A MIC binary (also `PODID_MIC`).
    #[arg(long, value_name = "PATH")]
    pub mic: Option<PathBuf>,
    /// A kube-apiserver binary (also `PODID_KUBE_APISERVER`).
    #[arg(long, value_name = "PATH")]
    pub kube_apiserver: Option<PathBuf>,
    /// An etcd binary (also `PODID_ETCD`).
    #[arg(long, value_name = "PATH")]
    pub etcd: Option<PathBuf>,
}

impl BinaryOverrides {
    /// The toolchain configuration from the environment, with these flags applied on top.
    pub fn config(&self) -> ToolchainConfig {
        let mut config = ToolchainConfig::from_env();
        let o = &mut config.overrides;
        for (flag, slot) in [
            (&self.nmi, &mut o.nmi),
            (&self.mic, &mut o.mic),
            (&self.kube_apiserver, &mut o.kube_apiserver),
            (&self.etcd, &mut o.etcd),
        ] {
            if let Some(path) = flag {
                *slot = Some(path.clone());
            }
        }
        config
    }
}
