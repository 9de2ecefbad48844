//! What podid builds: build units (components) and the files they produce (artifacts).

use std::fmt;
use std::time::Duration;

use crate::pins::{self, WrapperModule};

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
}

impl Component {
    /// Every component, in the order a cold build starts them (longest first).
    pub const ALL: [Component; 4] = [
        Component::KubeApiserver,
        Component::AadPodIdentity,
        Component::Etcd,
        Component::AadPodIdentityCrds,
    ];

    /// Short name used for cache directories and log files.
    pub fn slug(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::AadPodIdentity => "aad-pod-identity",
            Component::AadPodIdentityCrds => "aad-pod-identity-crds",
        }
    }

    /// The pinned upstream version.
    pub fn version(self) -> &'static str {
        match self {
            Component::Etcd => pins::ETCD_VERSION,
            Component::KubeApiserver => pins::KUBERNETES_VERSION,
            Component::AadPodIdentity | Component::AadPodIdentityCrds => {
                pins::AAD_POD_IDENTITY_VERSION
            }
        }
    }

    /// The wrapper Go module the component is built in.
    pub fn wrapper(self) -> WrapperModule {
        match self {
            Component::Etcd => pins::ETCD_WRAPPER,
            Component::KubeApiserver => pins::KUBE_APISERVER_WRAPPER,
            Component::AadPodIdentity | Component::AadPodIdentityCrds => {
                pins::AAD_POD_IDENTITY_WRAPPER
            }
        }
    }

    /// The Go module (at [`Component::version`]) the component comes from.
    pub fn module(self) -> &'static str {
        match self {
            Component::Etcd => "go.etcd.io/etcd/server/v3",
            Component::KubeApiserver => "k8s.io/kubernetes",
            Component::AadPodIdentity | Component::AadPodIdentityCrds => {
                "github.com/Azure/aad-pod-identity"
            }
        }
    }

    /// Whether the output depends on the Go toolchain (compiled code) and so is keyed by it.
    pub fn depends_on_go_version(self) -> bool {
        self != Component::AadPodIdentityCrds
    }

    /// The artifacts the component produces.
    pub fn artifacts(self) -> &'static [Artifact] {
        match self {
            Component::Etcd => &[Artifact::Etcd],
            Component::KubeApiserver => &[Artifact::KubeApiserver],
            Component::AadPodIdentity => &[Artifact::Nmi, Artifact::Mic],
            Component::AadPodIdentityCrds => &[Artifact::Crds],
        }
    }

    /// Rough cold build time on a busy two-core machine (measured), shown while building.
    pub fn estimate(self) -> Duration {
        match self {
            Component::Etcd => Duration::from_secs(80),
            Component::KubeApiserver => Duration::from_secs(8 * 60),
            Component::AadPodIdentity => Duration::from_secs(150),
            Component::AadPodIdentityCrds => Duration::from_secs(10),
        }
    }
}

impl Artifact {
    /// Every artifact the harness needs.
    pub const ALL: [Artifact; 5] = [
        Artifact::Etcd,
        Artifact::KubeApiserver,
        Artifact::Nmi,
        Artifact::Mic,
        Artifact::Crds,
    ];

    /// The component that builds this artifact.
    pub fn component(self) -> Component {
        match self {
            Artifact::Etcd => Component::Etcd,
            Artifact::KubeApiserver => Component::KubeApiserver,
            Artifact::Nmi | Artifact::Mic => Component::AadPodIdentity,
            Artifact::Crds => Component::AadPodIdentityCrds,
        }
    }

    /// Path of the artifact relative to its component's cache directory.
    pub fn relative_path(self) -> &'static str {
        match self {
            Artifact::Etcd => "bin/etcd",
            Artifact::KubeApiserver => "bin/kube-apiserver",
            Artifact::Nmi => "bin/nmi",
            Artifact::Mic => "bin/mic",
            Artifact::Crds => "crds/crd.yaml",
        }
    }

    /// Environment variable that points podid at a prebuilt binary instead, if supported.
    pub fn override_var(self) -> Option<&'static str> {
        match self {
            Artifact::Etcd => Some("PODID_ETCD"),
            Artifact::KubeApiserver => Some("PODID_KUBE_APISERVER"),
            Artifact::Nmi => Some("PODID_NMI"),
            Artifact::Mic => Some("PODID_MIC"),
            Artifact::Crds => None,
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
            Artifact::Crds => None,
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
        };
        f.write_str(name)
    }
}
