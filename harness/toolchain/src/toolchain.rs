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

/// The extra inputs of a kind cluster and its node image, from [`crate::ensure_kind`]. The node
/// image also needs [`Toolchain::kube_apiserver`] and [`Toolchain::etcd`]. The module
/// directories are shared with the Go module cache: copy files out before changing them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindToolchain {
    /// `kubeadm` binary.
    pub kubeadm: PathBuf,
    /// `kubelet` binary.
    pub kubelet: PathBuf,
    /// `kubectl` binary.
    pub kubectl: PathBuf,
    /// `kube-proxy` binary.
    pub kube_proxy: PathBuf,
    /// `kube-scheduler` binary.
    pub kube_scheduler: PathBuf,
    /// `kube-controller-manager` binary.
    pub kube_controller_manager: PathBuf,
    /// `kind` CLI.
    pub kind: PathBuf,
    /// `coredns` binary.
    pub coredns: PathBuf,
    /// The `sigs.k8s.io/kind` module directory; its `images/base/files` holds the node's
    /// entrypoint, systemd units and containerd config.
    pub kind_module_dir: PathBuf,
    /// The `k8s.io/kubernetes` module directory.
    pub kubernetes_module_dir: PathBuf,
    /// `build/pause/linux/pause.c` inside [`KindToolchain::kubernetes_module_dir`], the pause
    /// container's source.
    pub pause_source: PathBuf,
    /// The `github.com/Azure/aad-pod-identity` module directory, whose `deploy/infra` holds
    /// upstream's deployment manifests.
    pub aad_pod_identity_module_dir: PathBuf,
    /// Versions of the above, for reports.
    pub versions: KindVersions,
}

/// The pinned releases a [`KindToolchain`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindVersions {
    /// Release of the node binaries and the Kubernetes module, e.g. `v1.36.3`.
    pub kubernetes: String,
    /// Release of the kind CLI and module, e.g. `v0.33.0`.
    pub kind: String,
    /// e.g. `v1.14.2`.
    pub coredns: String,
    /// Release of the aad-pod-identity module, e.g. `v1.8.17`.
    pub aad_pod_identity: String,
    /// `go env GOVERSION` of the Go that built (or would build) the binaries, if Go is present.
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
