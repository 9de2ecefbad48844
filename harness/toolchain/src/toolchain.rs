//! The result types: where each binary is, which versions they are, and per-artifact status.

use std::path::PathBuf;

use crate::component::Artifact;

/// Paths of everything the harness runs, ready to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// etcd server binary.
    pub etcd: PathBuf,
    /// kube-apiserver binary.
    pub kube_apiserver: PathBuf,
    /// NMI binary (the system under test).
    pub nmi: PathBuf,
    /// MIC binary.
    pub mic: PathBuf,
    /// aad-pod-identity CRD manifest (multi-document YAML) to apply to the API server.
    pub crds: PathBuf,
    /// Versions of the above, for reports.
    pub versions: ComponentVersions,
}

/// Which version each binary is: the pinned release, or what an override's `--version` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentVersions {
    /// e.g. `v3.6.13`.
    pub etcd: String,
    /// e.g. `v1.36.3`.
    pub kube_apiserver: String,
    /// e.g. `v1.8.17`.
    pub nmi: String,
    /// e.g. `v1.8.17`.
    pub mic: String,
    /// aad-pod-identity release the CRDs come from.
    pub crds: String,
    /// `go env GOVERSION` of the Go that built (or would build) the components, if Go is present.
    pub go: Option<String>,
}

/// The state of one artifact, for `podid toolchain --status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    /// Which artifact.
    pub artifact: Artifact,
    /// Pinned version it is built at.
    pub version: &'static str,
    /// Cached, missing or overridden.
    pub state: ArtifactState,
}

/// Whether an artifact is ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactState {
    /// Built and verified against its manifest.
    Cached {
        /// The artifact in the cache.
        path: PathBuf,
    },
    /// Would be built by `ensure`.
    Missing {
        /// Why the cache has no usable copy (not built yet, modified, other Go version…).
        reason: String,
    },
    /// A user-supplied binary replaces the build.
    Overridden {
        /// The binary.
        path: PathBuf,
        /// Why it cannot be executed, if it cannot.
        problem: Option<String>,
    },
}
