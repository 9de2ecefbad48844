//! What podid builds: build units (components) and the files they produce (artifacts).

use std::fmt;
use std::time::Duration;

use crate::pins::{self, WrapperModule};

/// Name of the symlink in a source component's cache entry that points at the module directory.
pub(crate) const MODULE_LINK: &str = "module";

/// One unit of work in the toolchain cache: built by one recipe, cached in one directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// The etcd server.
    Etcd,
    /// kube-apiserver from `k8s.io/kubernetes`.
    KubeApiserver,
    /// NMI and MIC, built together from one module.
    AadPodIdentity,
    /// The aad-pod-identity CRD manifest, copied out of the module.
    AadPodIdentityCrds,
    /// A kind node's Kubernetes binaries, built together from `k8s.io/kubernetes`.
    KubeNode,
    /// The `kind` CLI.
    Kind,
    /// The kind module's source, whose base files a node image is assembled from.
    KindSource,
    /// CoreDNS, the cluster DNS a kind node runs.
    Coredns,
    /// The Kubernetes module's source, for the pause container's `pause.c`.
    KubernetesSource,
    /// The aad-pod-identity module's source, for upstream's deployment manifests.
    AadPodIdentitySource,
}

/// One file the harness uses, produced by a component or supplied as an override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Artifact {
    /// `etcd` binary.
    Etcd,
    /// `kube-apiserver` binary.
    KubeApiserver,
    /// `nmi` binary (the system under test).
    Nmi,
    /// `mic` binary.
    Mic,
    /// `crd.yaml` with the aad-pod-identity CustomResourceDefinitions.
    Crds,
    /// `kubeadm` binary.
    Kubeadm,
    /// `kubelet` binary.
    Kubelet,
    /// `kubectl` binary.
    Kubectl,
    /// `kube-proxy` binary.
    KubeProxy,
    /// `kube-scheduler` binary.
    KubeScheduler,
    /// `kube-controller-manager` binary.
    KubeControllerManager,
    /// `kind` binary.
    Kind,
    /// `coredns` binary.
    Coredns,
    /// kind's node entrypoint script, inside the linked kind module.
    KindEntrypoint,
    /// kind's containerd configuration for nodes, inside the linked kind module.
    KindContainerdConfig,
    /// `pause.c`, inside the linked Kubernetes module.
    PauseSource,
    /// Upstream's standard-mode deployment (NMI, MIC, RBAC, CRDs), inside the linked
    /// aad-pod-identity module.
    StandardManifest,
    /// Upstream's managed-mode deployment (NMI only), inside the linked aad-pod-identity module.
    ManagedManifest,
}

impl Component {
    /// The components [`crate::ensure`] prepares, in the order a cold build starts them
    /// (longest first).
    pub const ALL: [Component; 4] = [
        Component::KubeApiserver,
        Component::AadPodIdentity,
        Component::Etcd,
        Component::AadPodIdentityCrds,
    ];

    /// The optional components [`crate::ensure_kind`] prepares for a kind cluster and its node
    /// image, longest first. Only callers that need kind pay for them.
    pub const KIND: [Component; 6] = [
        Component::KubeNode,
        Component::Coredns,
        Component::Kind,
        Component::KubernetesSource,
        Component::KindSource,
        Component::AadPodIdentitySource,
    ];

    /// Both sets: every component a cache entry can belong to.
    pub fn every() -> impl Iterator<Item = Component> {
        Component::ALL.into_iter().chain(Component::KIND)
    }

    /// Short name used for cache directories and log files.
    pub fn slug(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::AadPodIdentity => "aad-pod-identity",
            Component::AadPodIdentityCrds => "aad-pod-identity-crds",
            Component::KubeNode => "kube-node",
            // Not `kind`: that name is left to the kind provider's own cache directory.
            Component::Kind => "kind-cli",
            Component::KindSource => "kind-source",
            Component::Coredns => "coredns",
            Component::KubernetesSource => "kubernetes-source",
            Component::AadPodIdentitySource => "aad-pod-identity-source",
        }
    }

    /// The pinned upstream version.
    pub fn version(self) -> &'static str {
        match self {
            Component::Etcd => pins::ETCD_VERSION,
            Component::KubeApiserver | Component::KubeNode | Component::KubernetesSource => {
                pins::KUBERNETES_VERSION
            }
            Component::AadPodIdentity
            | Component::AadPodIdentityCrds
            | Component::AadPodIdentitySource => pins::AAD_POD_IDENTITY_VERSION,
            Component::Kind | Component::KindSource => pins::KIND_VERSION,
            Component::Coredns => pins::COREDNS_VERSION,
        }
    }

    /// The wrapper Go module the component is built in.
    pub fn wrapper(self) -> WrapperModule {
        match self {
            Component::Etcd => pins::ETCD_WRAPPER,
            Component::KubeApiserver => pins::KUBE_APISERVER_WRAPPER,
            Component::AadPodIdentity
            | Component::AadPodIdentityCrds
            | Component::AadPodIdentitySource => pins::AAD_POD_IDENTITY_WRAPPER,
            // The node binaries' wrapper also pins the module the pause source is read from.
            Component::KubeNode | Component::KubernetesSource => pins::KUBE_NODE_WRAPPER,
            Component::Kind | Component::KindSource => pins::KIND_WRAPPER,
            Component::Coredns => pins::COREDNS_WRAPPER,
        }
    }

    /// The Go module (at [`Component::version`]) the component comes from.
    pub fn module(self) -> &'static str {
        match self {
            Component::Etcd => "go.etcd.io/etcd/server/v3",
            Component::KubeApiserver | Component::KubeNode | Component::KubernetesSource => {
                "k8s.io/kubernetes"
            }
            Component::AadPodIdentity
            | Component::AadPodIdentityCrds
            | Component::AadPodIdentitySource => "github.com/Azure/aad-pod-identity",
            Component::Kind | Component::KindSource => "sigs.k8s.io/kind",
            Component::Coredns => "github.com/coredns/coredns",
        }
    }

    /// Whether the output depends on the Go toolchain (compiled code) and so is keyed by it.
    pub fn depends_on_go_version(self) -> bool {
        !matches!(
            self,
            Component::AadPodIdentityCrds
                | Component::KindSource
                | Component::KubernetesSource
                | Component::AadPodIdentitySource
        )
    }

    /// The artifacts the component produces.
    pub fn artifacts(self) -> &'static [Artifact] {
        match self {
            Component::Etcd => &[Artifact::Etcd],
            Component::KubeApiserver => &[Artifact::KubeApiserver],
            Component::AadPodIdentity => &[Artifact::Nmi, Artifact::Mic],
            Component::AadPodIdentityCrds => &[Artifact::Crds],
            Component::KubeNode => &[
                Artifact::Kubeadm,
                Artifact::Kubelet,
                Artifact::Kubectl,
                Artifact::KubeProxy,
                Artifact::KubeScheduler,
                Artifact::KubeControllerManager,
            ],
            Component::Kind => &[Artifact::Kind],
            Component::KindSource => &[Artifact::KindEntrypoint, Artifact::KindContainerdConfig],
            Component::Coredns => &[Artifact::Coredns],
            Component::KubernetesSource => &[Artifact::PauseSource],
            Component::AadPodIdentitySource => {
                &[Artifact::StandardManifest, Artifact::ManagedManifest]
            }
        }
    }

    /// Rough cold build time on a busy two-core machine (measured), shown while building.
    pub fn estimate(self) -> Duration {
        match self {
            Component::Etcd => Duration::from_secs(80),
            Component::KubeApiserver => Duration::from_secs(8 * 60),
            Component::AadPodIdentity => Duration::from_secs(150),
            Component::AadPodIdentityCrds => Duration::from_secs(10),
            Component::KubeNode => Duration::from_secs(7 * 60),
            Component::Kind => Duration::from_secs(10),
            Component::KindSource => Duration::from_secs(5),
            Component::Coredns => Duration::from_secs(3 * 60),
            Component::KubernetesSource => Duration::from_secs(30),
            Component::AadPodIdentitySource => Duration::from_secs(10),
        }
    }
}

impl Artifact {
    /// The artifacts [`crate::ensure`] provides: everything the local harness needs.
    pub const ALL: [Artifact; 5] = [
        Artifact::Etcd,
        Artifact::KubeApiserver,
        Artifact::Nmi,
        Artifact::Mic,
        Artifact::Crds,
    ];

    /// The artifacts [`crate::ensure_kind`] provides for a kind cluster and its node image.
    pub const KIND: [Artifact; 13] = [
        Artifact::Kubeadm,
        Artifact::Kubelet,
        Artifact::Kubectl,
        Artifact::KubeProxy,
        Artifact::KubeScheduler,
        Artifact::KubeControllerManager,
        Artifact::Kind,
        Artifact::Coredns,
        Artifact::KindEntrypoint,
        Artifact::KindContainerdConfig,
        Artifact::PauseSource,
        Artifact::StandardManifest,
        Artifact::ManagedManifest,
    ];

    /// The component that builds this artifact.
    pub fn component(self) -> Component {
        match self {
            Artifact::Etcd => Component::Etcd,
            Artifact::KubeApiserver => Component::KubeApiserver,
            Artifact::Nmi | Artifact::Mic => Component::AadPodIdentity,
            Artifact::Crds => Component::AadPodIdentityCrds,
            Artifact::Kubeadm
            | Artifact::Kubelet
            | Artifact::Kubectl
            | Artifact::KubeProxy
            | Artifact::KubeScheduler
            | Artifact::KubeControllerManager => Component::KubeNode,
            Artifact::Kind => Component::Kind,
            Artifact::Coredns => Component::Coredns,
            Artifact::KindEntrypoint | Artifact::KindContainerdConfig => Component::KindSource,
            Artifact::PauseSource => Component::KubernetesSource,
            Artifact::StandardManifest | Artifact::ManagedManifest => {
                Component::AadPodIdentitySource
            }
        }
    }

    /// Path of the artifact relative to its component's cache directory. Source artifacts are
    /// read through the entry's `module` link to the module directory.
    pub fn relative_path(self) -> &'static str {
        match self {
            Artifact::Etcd => "bin/etcd",
            Artifact::KubeApiserver => "bin/kube-apiserver",
            Artifact::Nmi => "bin/nmi",
            Artifact::Mic => "bin/mic",
            Artifact::Crds => "crds/crd.yaml",
            Artifact::Kubeadm => "bin/kubeadm",
            Artifact::Kubelet => "bin/kubelet",
            Artifact::Kubectl => "bin/kubectl",
            Artifact::KubeProxy => "bin/kube-proxy",
            Artifact::KubeScheduler => "bin/kube-scheduler",
            Artifact::KubeControllerManager => "bin/kube-controller-manager",
            Artifact::Kind => "bin/kind",
            Artifact::Coredns => "bin/coredns",
            Artifact::KindEntrypoint => "module/images/base/files/usr/local/bin/entrypoint",
            Artifact::KindContainerdConfig => "module/images/base/files/etc/containerd/config.toml",
            Artifact::PauseSource => "module/build/pause/linux/pause.c",
            Artifact::StandardManifest => "module/deploy/infra/noazurejson/deployment-rbac.yaml",
            Artifact::ManagedManifest => "module/deploy/infra/managed-mode-deployment.yaml",
        }
    }

    /// Environment variable that points podid at a prebuilt binary instead, if supported.
    pub fn override_var(self) -> Option<&'static str> {
        match self {
            Artifact::Etcd => Some("PODID_ETCD"),
            Artifact::KubeApiserver => Some("PODID_KUBE_APISERVER"),
            Artifact::Nmi => Some("PODID_NMI"),
            Artifact::Mic => Some("PODID_MIC"),
            _ => None,
        }
    }

    /// Text `<binary> --version` must contain for a build to count as correct.
    pub fn expected_version_text(self) -> Option<String> {
        match self {
            Artifact::Etcd => Some(format!(
                "etcd Version: {}",
                pins::ETCD_VERSION.trim_start_matches('v')
            )),
            Artifact::KubeApiserver => Some(format!("Kubernetes {}", pins::KUBERNETES_VERSION)),
            Artifact::Nmi => Some(format!("NMI Version: {}", pins::AAD_POD_IDENTITY_VERSION)),
            Artifact::Mic => Some(format!("MIC Version: {}", pins::AAD_POD_IDENTITY_VERSION)),
            Artifact::Kubeadm => Some(format!("GitVersion:\"{}\"", pins::KUBERNETES_VERSION)),
            Artifact::Kubectl => Some(format!("Client Version: {}", pins::KUBERNETES_VERSION)),
            Artifact::Kubelet
            | Artifact::KubeProxy
            | Artifact::KubeScheduler
            | Artifact::KubeControllerManager => {
                Some(format!("Kubernetes {}", pins::KUBERNETES_VERSION))
            }
            Artifact::Kind => Some(format!(
                "kind version {}",
                pins::KIND_VERSION.trim_start_matches('v')
            )),
            Artifact::Coredns => Some(format!(
                "CoreDNS-{}",
                pins::COREDNS_VERSION.trim_start_matches('v')
            )),
            Artifact::Crds
            | Artifact::KindEntrypoint
            | Artifact::KindContainerdConfig
            | Artifact::PauseSource
            | Artifact::StandardManifest
            | Artifact::ManagedManifest => None,
        }
    }

    /// Arguments that make the binary print its version: `--version` except where a
    /// subcommand is the only way (kubeadm and kubectl have no such flag).
    pub fn version_probe_args(self) -> &'static [&'static str] {
        match self {
            Artifact::Kubeadm => &["version"],
            Artifact::Kubectl => &["version", "--client"],
            _ => &["--version"],
        }
    }

    /// Environment `<binary> --version` needs: MIC exits before reading its flags unless it
    /// knows its namespace.
    pub fn version_probe_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Artifact::Mic => &[("MIC_POD_NAMESPACE", "default")],
            _ => &[],
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.slug(), self.version())
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Artifact::Etcd => "etcd",
            Artifact::KubeApiserver => "kube-apiserver",
            Artifact::Nmi => "nmi",
            Artifact::Mic => "mic",
            Artifact::Crds => "aad-pod-identity CRDs",
            Artifact::Kubeadm => "kubeadm",
            Artifact::Kubelet => "kubelet",
            Artifact::Kubectl => "kubectl",
            Artifact::KubeProxy => "kube-proxy",
            Artifact::KubeScheduler => "kube-scheduler",
            Artifact::KubeControllerManager => "kube-controller-manager",
            Artifact::Kind => "kind",
            Artifact::Coredns => "coredns",
            Artifact::KindEntrypoint => "kind node entrypoint",
            Artifact::KindContainerdConfig => "kind containerd config",
            Artifact::PauseSource => "pause.c",
            Artifact::StandardManifest => "aad-pod-identity standard-mode manifest",
            Artifact::ManagedManifest => "aad-pod-identity managed-mode manifest",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_set_is_separate_and_complete() {
        for component in Component::KIND {
            assert!(!Component::ALL.contains(&component), "{component}");
        }
        let mut from_components: Vec<Artifact> = Component::KIND
            .iter()
            .flat_map(|c| c.artifacts().iter().copied())
            .collect();
        from_components.sort();
        let mut listed = Artifact::KIND.to_vec();
        listed.sort();
        assert_eq!(from_components, listed);
        for artifact in Artifact::KIND {
            assert!(
                Component::KIND.contains(&artifact.component()),
                "{artifact}"
            );
            assert_eq!(artifact.override_var(), None, "{artifact}");
        }
        let mut slugs: Vec<&str> = Component::every().map(Component::slug).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), Component::ALL.len() + Component::KIND.len());
    }

    #[test]
    fn sources_are_read_through_the_module_link() {
        assert_eq!(
            Artifact::PauseSource.relative_path(),
            format!("{MODULE_LINK}/{}", pins::PAUSE_SOURCE_IN_MODULE)
        );
        for artifact in [Artifact::KindEntrypoint, Artifact::KindContainerdConfig] {
            assert!(
                artifact
                    .relative_path()
                    .starts_with(&format!("{MODULE_LINK}/images/base/files/")),
                "{artifact}"
            );
        }
        for component in [
            Component::KindSource,
            Component::KubernetesSource,
            Component::AadPodIdentitySource,
        ] {
            assert!(!component.depends_on_go_version(), "{component}");
        }
    }

    #[test]
    fn every_kind_binary_has_a_version_probe() {
        for artifact in Artifact::KIND {
            let binary = artifact.relative_path().starts_with("bin/");
            assert_eq!(
                artifact.expected_version_text().is_some(),
                binary,
                "{artifact}"
            );
        }
        assert_eq!(
            Artifact::Kubectl.version_probe_args(),
            ["version", "--client"]
        );
        assert_eq!(Artifact::Kubelet.version_probe_args(), ["--version"]);
    }
}
