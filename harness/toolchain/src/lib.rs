//! Builds and caches the system under test and the control plane (etcd, kube-apiserver, NMI, MIC)
//! from pinned Go modules, so a machine with Go but no prebuilt Kubernetes binaries can run podid.
//!
//! [`ensure`] returns the paths of every binary, building what is missing into
//! `~/.cache/podid/toolchain` (or `$PODID_CACHE_DIR`). `PODID_ETCD`, `PODID_KUBE_APISERVER`,
//! `PODID_NMI` and `PODID_MIC` point at prebuilt binaries that are then used as-is.
//!
//! [`ensure_kind`] prepares, only when asked, the extra inputs of a kind cluster: the node's
//! Kubernetes binaries, kind, CoreDNS, and the kind, Kubernetes and aad-pod-identity module
//! sources.

mod builder;
mod cache_layout;
mod cache_lock;
mod component;
mod config;
mod digest;
mod ensure;
mod error;
mod go_tool;
mod manifest;
mod observer;
mod override_check;
mod pins;
mod preflight;
mod process;
mod recipe;
mod system_packages;
mod toolchain;

#[cfg(test)]
mod tests;

pub use component::{Artifact, Component};
pub use config::{AAD_POD_IDENTITY_DIR_VAR, CACHE_DIR_VAR, Overrides, ToolchainConfig};
pub use ensure::JOBS_VAR;
pub use error::ToolchainError;
pub use go_tool::GOPROXY_VAR;
pub use observer::{BuildEvent, BuildObserver, LogObserver, NoopObserver};
pub use pins::{
    AAD_POD_IDENTITY_VERSION, COREDNS_VERSION, ETCD_VERSION, KIND_VERSION, KUBERNETES_VERSION,
};
pub use system_packages::ensure_system_packages;
pub use toolchain::{
    ArtifactState, ComponentStatus, ComponentVersions, KindToolchain, KindVersions, Toolchain,
};

use go_tool::BuildEnvironment;

/// Returns the toolchain, building (once, under a cache lock) whatever is neither cached nor overridden.
pub fn ensure(
    cfg: &ToolchainConfig,
    observer: &dyn BuildObserver,
) -> Result<Toolchain, ToolchainError> {
    ensure::ensure_with(
        cfg,
        &BuildEnvironment::from_process(),
        ensure::jobs_from_env(),
        observer,
    )
}

/// Reports, without building anything, which artifacts are cached, missing or overridden.
pub fn status(cfg: &ToolchainConfig) -> Vec<ComponentStatus> {
    ensure::status_with(cfg, &BuildEnvironment::from_process(), &Artifact::ALL)
}

/// Returns the inputs of a kind cluster and its node image, building (once, under the same cache lock) whatever
/// is not cached. Separate from [`ensure`] so that runs without kind never build them.
pub fn ensure_kind(
    cfg: &ToolchainConfig,
    observer: &dyn BuildObserver,
) -> Result<KindToolchain, ToolchainError> {
    ensure::ensure_kind_with(
        cfg,
        &BuildEnvironment::from_process(),
        ensure::jobs_from_env(),
        observer,
    )
}

/// [`status`] for the artifacts [`ensure_kind`] provides.
pub fn kind_status(cfg: &ToolchainConfig) -> Vec<ComponentStatus> {
    ensure::status_with(cfg, &BuildEnvironment::from_process(), &Artifact::KIND)
}
