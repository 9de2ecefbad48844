//! What must hold of a rendered NMI for it to start on a node, checked at render time so a
//! broken combination of manifest and flags fails before anything is applied, and a check of
//! the real upstream module the end-to-end suite can call.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use serde_json::Value;

use super::pod_template::PodTemplate;
use super::{NMI_CONTAINER, RenderedDeployment, render_from_module};
use crate::deployment::{
    CloudAccess, IdentityDeployment, ImagePullPolicy, MicCredentials, Mode, WorkloadRef,
};
use crate::error::InclusterError;

/// The text NMI looks for (as a plain substring) in its kubelet config file; finding it makes
/// NMI exit, because kubenet lets a pod spoof another pod's address.
pub const KUBENET_MARKER: &str = "--network-plugin=kubenet";
/// Where NMI reads the kubelet config unless `--kubelet-config` says otherwise.
const DEFAULT_KUBELET_CONFIG: &str = "/etc/default/kubelet";

/// Whether NMI starts given its kubelet config file's contents (`None`: the file is absent).
/// An absent file stops NMI just like a kubenet one; upstream's manifest avoids that by
/// mounting the node's path with `type: FileOrCreate`, which creates an empty file (the
/// directory must exist on the node).
pub fn nmi_accepts_kubelet_config(contents: Option<&str>) -> Result<(), String> {
    match contents {
        None => Err("the kubelet config file is missing; NMI exits when it cannot read it".into()),
        Some(text) if text.contains(KUBENET_MARKER) => Err(format!(
            "the kubelet config names {KUBENET_MARKER}; NMI refuses kubenet unless \
             --allow-network-plugin-kubenet is given"
        )),
        Some(_) => Ok(()),
    }
}

/// The value of the last `--name=value` (or bare `--name`, as `""`) among `args`.
fn last_flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().rev().find_map(|arg| {
        let rest = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))?
            .strip_prefix(name)?;
        match rest {
            "" => Some(""),
            _ => rest.strip_prefix('='),
        }
    })
}

/// NMI serves the pods of the node `--node` names; upstream passes `$(NODE_NAME)`, filled
/// from the downward API. Fails if the flag is gone or its variable does not come from
/// `spec.nodeName`.
pub(super) fn check_nmi_node_flag(
    template: &mut PodTemplate<'_>,
    nmi: &WorkloadRef,
) -> Result<(), InclusterError> {
    let args = template.args(NMI_CONTAINER)?;
    let node = last_flag(&args, "node")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| InclusterError::render(nmi.to_string(), "NMI has no --node flag"))?;
    let Some(var) = node.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) else {
        return Err(InclusterError::render(
            nmi.to_string(),
            format!("--node={node} names one node for every node of the DaemonSet"),
        ));
    };
    let field = template.env_var(NMI_CONTAINER, var)?.and_then(|e| {
        e.pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if field.as_deref() != Some("spec.nodeName") {
        return Err(InclusterError::render(
            nmi.to_string(),
            format!("--node=$({var}) but {var} does not come from spec.nodeName"),
        ));
    }
    Ok(())
}

/// NMI reads its kubelet config file at start and exits if it cannot; the file must be
/// mounted (upstream mounts the node's with `FileOrCreate`) unless the check is switched off.
pub(super) fn check_nmi_kubelet_config(
    template: &mut PodTemplate<'_>,
    nmi: &WorkloadRef,
) -> Result<(), InclusterError> {
    let args = template.args(NMI_CONTAINER)?;
    let allowed = last_flag(&args, "allow-network-plugin-kubenet")
        .is_some_and(|v| matches!(v, "" | "true" | "True" | "TRUE" | "1" | "t" | "T"));
    if allowed {
        return Ok(());
    }
    let path = last_flag(&args, "kubelet-config").unwrap_or(DEFAULT_KUBELET_CONFIG);
    match template.host_path_mounted_at(NMI_CONTAINER, path)? {
        None => Err(InclusterError::render(
            nmi.to_string(),
            format!(
                "NMI reads its kubelet config at {path}, but nothing from the node is mounted there; NMI would exit"
            ),
        )),
        Some((_, kind)) if kind.as_deref() != Some("FileOrCreate") => {
            tracing::warn!(
                "{nmi}: the kubelet config at {path} is mounted with hostPath type {kind:?}; \
                 on a node without the file NMI's pod will not start"
            );
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

/// Renders both modes from the real aad-pod-identity module with a representative request,
/// so an end-to-end suite can fail early (and clearly) when the module is missing or its
/// manifests changed shape. Returns the renderings for further checks.
pub fn verify_module(module_dir: &Path) -> Result<Vec<RenderedDeployment>, InclusterError> {
    if !module_dir.is_dir() {
        return Err(InclusterError::io(
            format!(
                "looking for the aad-pod-identity module at {}",
                module_dir.display()
            ),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    [Mode::Managed, Mode::Standard]
        .into_iter()
        .map(|mode| render_from_module(module_dir, &sample_request(mode)))
        .collect()
}

/// A request exercising every patch: another namespace, flags, host aliases, a CA and MIC
/// credentials.
fn sample_request(mode: Mode) -> IdentityDeployment {
    IdentityDeployment {
        mode,
        namespace: "podid-check".into(),
        nmi_image: "example.invalid/nmi:check".into(),
        mic_image: "example.invalid/mic:check".into(),
        nmi_flags: vec!["--metadata-header-required=false".into()],
        mic_flags: vec!["--syncRetryDuration=30s".into()],
        mic_replicas: None,
        cloud: CloudAccess {
            host_aliases: vec![(
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                vec!["login.microsoftonline.com".into()],
            )],
            ca_bundle_pem: Some("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into()),
            mic_credentials: Some(MicCredentials {
                cloud: "AzurePublicCloud".into(),
                tenant_id: "t".into(),
                subscription_id: "s".into(),
                resource_group: "rg".into(),
                client_id: "c".into(),
                client_secret: "x".into(),
                vm_type: "vmss".into(),
                user_assigned_identity_id: None,
            }),
        },
        image_pull_policy: ImagePullPolicy::Never,
        install_crds: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmi_starts_on_an_empty_or_ordinary_kubelet_config_only() {
        assert!(nmi_accepts_kubelet_config(Some("")).is_ok());
        assert!(
            nmi_accepts_kubelet_config(Some("KUBELET_EXTRA_ARGS=--fail-swap-on=false\n")).is_ok()
        );
        assert!(
            nmi_accepts_kubelet_config(Some("KUBELET_FLAGS=--network-plugin=kubenet --v=2"))
                .unwrap_err()
                .contains("kubenet")
        );
        assert!(nmi_accepts_kubelet_config(None).is_err());
    }

    #[test]
    fn the_last_repetition_of_a_flag_wins() {
        let args: Vec<String> = ["--node=a", "-node=b", "--nodes=c", "--allow", "--x=1"]
            .map(String::from)
            .to_vec();
        assert_eq!(last_flag(&args, "node"), Some("b"));
        assert_eq!(last_flag(&args, "allow"), Some(""));
        assert_eq!(last_flag(&args, "missing"), None);
    }
}
