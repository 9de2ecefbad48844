//! The exact `go` invocation for each component: flags, tags and version stamping.

use std::path::Path;

use crate::component::Component;
use crate::pins;

/// What the `go` command of a recipe produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecipeOutput {
    /// `go build` writes the binaries into the entry's `bin/`.
    Binaries,
    /// `go mod download -json` prints the module directory the CRD manifest is copied from.
    ModuleDir,
    /// `go mod download -json` prints the module directory the entry links to, so its sources
    /// (too large to copy, for Kubernetes) are used in place.
    ModuleLink,
}

/// One component's build: the `go` arguments, run inside its wrapper module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recipe {
    /// Arguments after `go`.
    pub args: Vec<String>,
    /// How to collect the result.
    pub output: RecipeOutput,
}

/// Packages `go build` -ldflags values for Kubernetes version reporting live in.
const KUBE_VERSION_PACKAGES: [&str; 2] = [
    "k8s.io/component-base/version",
    "k8s.io/client-go/pkg/version",
];

const AAD_POD_IDENTITY_VERSION_PACKAGE: &str = "github.com/Azure/aad-pod-identity/version";

const COREDNS_VERSION_PACKAGE: &str = "github.com/coredns/coredns/coremain";

/// The node binaries a kind node image needs from `k8s.io/kubernetes`.
const KUBE_NODE_PACKAGES: [&str; 6] = [
    "k8s.io/kubernetes/cmd/kubeadm",
    "k8s.io/kubernetes/cmd/kubelet",
    "k8s.io/kubernetes/cmd/kubectl",
    "k8s.io/kubernetes/cmd/kube-proxy",
    "k8s.io/kubernetes/cmd/kube-scheduler",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
];

/// The recipe for `component`, writing binaries into `bin_dir`.
pub(crate) fn recipe(component: Component, bin_dir: &Path) -> Recipe {
    let bin = |name: &str| bin_dir.join(name).display().to_string();
    // A trailing slash makes `go build -o` treat it as a directory for several mains.
    let bin_dir_slash = format!("{}/", bin_dir.display());
    let download = |output: RecipeOutput| Recipe {
        args: vec![
            "mod".into(),
            "download".into(),
            "-json".into(),
            format!("{}@{}", component.module(), component.version()),
        ],
        output,
    };
    let build = |tags: Option<&str>, ldflags: String, out: String, packages: &[&str]| {
        let mut args: Vec<String> = ["build", "-mod=readonly", "-p", "2", "-trimpath"]
            .map(String::from)
            .to_vec();
        if let Some(tags) = tags {
            args.extend(["-tags".to_string(), tags.to_string()]);
        }
        args.extend(["-ldflags".to_string(), ldflags, "-o".to_string(), out]);
        args.extend(packages.iter().map(|p| p.to_string()));
        Recipe {
            args,
            output: RecipeOutput::Binaries,
        }
    };
    match component {
        Component::Etcd => build(
            None,
            "-s -w".to_string(),
            bin("etcd"),
            &["go.etcd.io/etcd/server/v3"],
        ),
        Component::KubeApiserver => build(
            Some("selinux,notest"),
            kube_ldflags(pins::KUBERNETES_VERSION),
            bin("kube-apiserver"),
            &["k8s.io/kubernetes/cmd/kube-apiserver"],
        ),
        Component::AadPodIdentity => build(
            Some("netgo,osusergo"),
            aad_pod_identity_ldflags(),
            bin_dir_slash,
            &[
                "github.com/Azure/aad-pod-identity/cmd/nmi",
                "github.com/Azure/aad-pod-identity/cmd/mic",
            ],
        ),
        Component::AadPodIdentityCrds => download(RecipeOutput::ModuleDir),
        Component::KubeNode => build(
            Some("selinux,notest"),
            kube_ldflags(pins::KUBERNETES_VERSION),
            bin_dir_slash,
            &KUBE_NODE_PACKAGES,
        ),
        // kind's own version is a constant in its source; upstream stamps the commit only into
        // pre-releases, so there is nothing to stamp.
        Component::Kind => build(
            None,
            "-s -w".to_string(),
            bin("kind"),
            &["sigs.k8s.io/kind"],
        ),
        Component::Coredns => build(
            None,
            coredns_ldflags(),
            bin("coredns"),
            &["github.com/coredns/coredns"],
        ),
        Component::KindSource | Component::KubernetesSource | Component::AadPodIdentitySource => {
            download(RecipeOutput::ModuleLink)
        }
    }
}

/// `-ldflags` for kube-apiserver: strip symbols and stamp the release into both version packages,
/// so `/version` reports the real release instead of `v0.0.0-master`.
pub(crate) fn kube_ldflags(version: &str) -> String {
    let (major, minor) = major_minor(version);
    let mut flags = vec!["-s".to_string(), "-w".to_string()];
    for package in KUBE_VERSION_PACKAGES {
        for (var, value) in [
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", pins::BUILD_DATE),
        ] {
            flags.push(format!("-X {package}.{var}={value}"));
        }
    }
    flags.join(" ")
}

/// `-ldflags` for NMI and MIC: strip symbols and stamp version, commit and date like upstream.
fn aad_pod_identity_ldflags() -> String {
    let p = AAD_POD_IDENTITY_VERSION_PACKAGE;
    let v = pins::AAD_POD_IDENTITY_VERSION;
    [
        "-s -w".to_string(),
        format!("-X {p}.NMIVersion={v}"),
        format!("-X {p}.MICVersion={v}"),
        format!("-X {p}.GitCommit={}", pins::AAD_POD_IDENTITY_COMMIT),
        format!("-X {p}.BuildDate={}", pins::BUILD_DATE),
    ]
    .join(" ")
}

/// `-ldflags` for CoreDNS: strip symbols and stamp the commit, as upstream's release build does.
fn coredns_ldflags() -> String {
    format!(
        "-s -w -X {COREDNS_VERSION_PACKAGE}.GitCommit={}",
        pins::COREDNS_COMMIT
    )
}

/// `("1", "36")` from `v1.36.3`.
fn major_minor(version: &str) -> (&str, &str) {
    let mut parts = version.trim_start_matches('v').split('.');
    let major = parts.next().unwrap_or("");
    let minor = parts.next().unwrap_or("");
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_apiserver_is_stamped_with_its_release_in_both_packages() {
        let flags = kube_ldflags("v1.36.3");
        for package in KUBE_VERSION_PACKAGES {
            assert!(flags.contains(&format!("-X {package}.gitVersion=v1.36.3")));
            assert!(flags.contains(&format!("-X {package}.gitMajor=1 ")));
            assert!(flags.contains(&format!("-X {package}.gitMinor=36 ")));
            assert!(flags.contains(&format!("-X {package}.gitTreeState=clean")));
        }
    }

    #[test]
    fn builds_are_readonly_parallel_and_trimmed() {
        let bin = Path::new("/out/bin");
        for component in [
            Component::Etcd,
            Component::KubeApiserver,
            Component::AadPodIdentity,
            Component::KubeNode,
            Component::Kind,
            Component::Coredns,
        ] {
            let r = recipe(component, bin);
            assert_eq!(r.output, RecipeOutput::Binaries);
            assert_eq!(
                &r.args[..5],
                ["build", "-mod=readonly", "-p", "2", "-trimpath"]
            );
        }
        let etcd = recipe(Component::Etcd, bin).args;
        assert!(
            etcd.windows(2).any(|w| w == ["-o", "/out/bin/etcd"]),
            "{etcd:?}"
        );
        let aadpi = recipe(Component::AadPodIdentity, bin).args;
        assert!(
            aadpi.windows(2).any(|w| w == ["-o", "/out/bin/"]),
            "{aadpi:?}"
        );
        assert!(aadpi.iter().any(|a| a.contains("NMIVersion=v1.8.17")));
    }

    #[test]
    fn crds_come_from_module_download() {
        let r = recipe(Component::AadPodIdentityCrds, Path::new("/out/bin"));
        assert_eq!(r.output, RecipeOutput::ModuleDir);
        assert_eq!(
            r.args,
            [
                "mod",
                "download",
                "-json",
                "github.com/Azure/aad-pod-identity@v1.8.17"
            ]
        );
    }

    #[test]
    fn node_binaries_build_together_stamped_like_kube_apiserver() {
        let r = recipe(Component::KubeNode, Path::new("/out/bin"));
        assert!(
            r.args.windows(2).any(|w| w == ["-o", "/out/bin/"]),
            "{:?}",
            r.args
        );
        assert!(r.args.windows(2).any(|w| w == ["-tags", "selinux,notest"]));
        assert!(
            r.args
                .windows(2)
                .any(|w| w[0] == "-ldflags" && w[1] == kube_ldflags("v1.36.3"))
        );
        assert_eq!(&r.args[r.args.len() - 6..], KUBE_NODE_PACKAGES);
    }

    #[test]
    fn kind_and_coredns_build_their_module_roots() {
        let kind = recipe(Component::Kind, Path::new("/out/bin")).args;
        assert_eq!(kind.last().map(String::as_str), Some("sigs.k8s.io/kind"));
        assert!(kind.windows(2).any(|w| w == ["-o", "/out/bin/kind"]));
        let coredns = recipe(Component::Coredns, Path::new("/out/bin")).args;
        assert_eq!(
            coredns.last().map(String::as_str),
            Some("github.com/coredns/coredns")
        );
        assert!(
            coredns
                .iter()
                .any(|a| a.contains(&format!("coremain.GitCommit={}", pins::COREDNS_COMMIT)))
        );
    }

    #[test]
    fn sources_are_linked_from_module_download() {
        for (component, module) in [
            (Component::KindSource, "sigs.k8s.io/kind@v0.33.0"),
            (Component::KubernetesSource, "k8s.io/kubernetes@v1.36.3"),
            (
                Component::AadPodIdentitySource,
                "github.com/Azure/aad-pod-identity@v1.8.17",
            ),
        ] {
            let r = recipe(component, Path::new("/out/bin"));
            assert_eq!(r.output, RecipeOutput::ModuleLink);
            assert_eq!(r.args, ["mod", "download", "-json", module]);
        }
    }
}
