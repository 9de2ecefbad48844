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

/// The recipe for `component`, writing binaries into `bin_dir`.
pub(crate) fn recipe(component: Component, bin_dir: &Path) -> Recipe {
    let bin = |name: &str| bin_dir.join(name).display().to_string();
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
            // A trailing slash makes `go build -o` treat it as a directory for several mains.
            format!("{}/", bin_dir.display()),
            &[
                "github.com/Azure/aad-pod-identity/cmd/nmi",
                "github.com/Azure/aad-pod-identity/cmd/mic",
            ],
        ),
        Component::AadPodIdentityCrds => Recipe {
            args: vec![
                "mod".into(),
                "download".into(),
                "-json".into(),
                format!("{}@{}", component.module(), component.version()),
            ],
            output: RecipeOutput::ModuleDir,
        },
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
}
