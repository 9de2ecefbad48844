//! The images a kind node runs from its containerd store: kube-apiserver, controller-manager,
//! scheduler, kube-proxy, etcd, CoreDNS and pause, each built from a local binary and tagged
//! exactly as kubeadm (and kind's containerd config, for pause) will ask for them.

use std::path::Path;

use super::NodeImageInputs;
use crate::docker::Docker;
use crate::error::{KindError, Result};
use crate::image::{ImageBase, ImageSpec, ensure_image};
use crate::process::Cmd;
use crate::progress::Progress;

/// PATH inside component images: kubeadm's static pods name their binaries without a path,
/// and kube-proxy finds `iptables` in `/usr/sbin`.
pub(crate) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One component image: the content-addressed tag it is built under and the names the node
/// knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentImage {
    /// `podid-kind/component-<name>:<hash>`.
    pub built_tag: String,
    /// Names such as `registry.k8s.io/kube-apiserver:v1.36.3`.
    pub names: Vec<String>,
}

/// The images `kubeadm config images list` names for this Kubernetes version.
pub(crate) async fn kubeadm_images(inputs: &NodeImageInputs) -> Result<Vec<String>> {
    let out = Cmd::new(
        &inputs.kubeadm,
        format!(
            "asking kubeadm which images Kubernetes {} needs",
            inputs.kubernetes_version
        ),
    )
    .args(["config", "images", "list", "--kubernetes-version"])
    .arg(&inputs.kubernetes_version)
    .output()
    .await?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The repository's last path element: `registry.k8s.io/coredns/coredns:v1` → `coredns`.
pub(crate) fn short_name(image: &str) -> &str {
    let without_tag = match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    };
    without_tag.rsplit('/').next().unwrap_or(without_tag)
}

/// Builds every component image; `required` is kubeadm's list, `sandbox` the pause image
/// kind's containerd config names.
pub(crate) async fn build_components(
    docker: &Docker,
    inputs: &NodeImageInputs,
    required: &[String],
    sandbox: &str,
    pause: &Path,
    iptables_base: &str,
    progress: &dyn Progress,
) -> Result<Vec<ComponentImage>> {
    let mut names: Vec<String> = required.to_vec();
    if !names.iter().any(|n| n == sandbox) {
        names.push(sandbox.to_owned());
    }
    let mut images: Vec<ComponentImage> = Vec::new();
    for name in names {
        let short = short_name(&name);
        let spec = spec_for(short, inputs, pause, iptables_base).ok_or_else(|| {
            KindError::invalid(
                "building the node's component images",
                format!(
                    "kubeadm {} asks for {name}, which podid does not know how to build",
                    inputs.kubernetes_version
                ),
            )
        })?;
        let spec = spec.with_content_tag(&format!("podid-kind/component-{short}"))?;
        // Two names may share one image (kubeadm's pause and kind's pause).
        if let Some(existing) = images.iter_mut().find(|i| i.built_tag == spec.tag) {
            existing.names.push(name);
            continue;
        }
        let built = ensure_image(docker, &spec, progress).await?;
        images.push(ComponentImage {
            built_tag: built.tag,
            names: vec![name],
        });
    }
    Ok(images)
}

fn spec_for(
    short: &str,
    inputs: &NodeImageInputs,
    pause: &Path,
    iptables_base: &str,
) -> Option<ImageSpec> {
    let binary_image = |base: ImageBase, name: &str, host: &Path| {
        let path = format!("/usr/local/bin/{name}");
        ImageSpec::new("", base)
            .file(host, path.clone(), 0o755)
            .env("PATH", PATH)
            .entrypoint([path])
    };
    Some(match short {
        "kube-apiserver" => {
            binary_image(ImageBase::Scratch, "kube-apiserver", &inputs.kube_apiserver)
        }
        "kube-controller-manager" => binary_image(
            ImageBase::Scratch,
            "kube-controller-manager",
            &inputs.kube_controller_manager,
        ),
        "kube-scheduler" => {
            binary_image(ImageBase::Scratch, "kube-scheduler", &inputs.kube_scheduler)
        }
        // kube-proxy programs iptables through the iptables binaries.
        "kube-proxy" => binary_image(
            ImageBase::Image(iptables_base.to_owned()),
            "kube-proxy",
            &inputs.kube_proxy,
        ),
        "etcd" => binary_image(ImageBase::Scratch, "etcd", &inputs.etcd),
        "coredns" => ImageSpec::new("", ImageBase::Scratch)
            .file(&inputs.coredns, "/coredns", 0o755)
            .entrypoint(["/coredns"]),
        "pause" => ImageSpec::new("", ImageBase::Scratch)
            .file(pause, "/pause", 0o755)
            .entrypoint(["/pause"]),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_ignore_registry_and_tag() {
        assert_eq!(
            short_name("registry.k8s.io/coredns/coredns:v1.14.2"),
            "coredns"
        );
        assert_eq!(short_name("registry.k8s.io/etcd:3.6.8-0"), "etcd");
        assert_eq!(short_name("localhost:5000/pause"), "pause");
        assert_eq!(short_name("kube-proxy"), "kube-proxy");
    }
}
