//! What NMI and MIC run as when podid installs them into a cluster: upstream's manifests with podid's images, the
//! same tuning flags the local provider passes (so a scenario means the same on both), the
//! scenario's own flags last, and the mock cloud's names, CA and MIC principal.

use podid_incluster::{
    CloudAccess, IdentityDeployment, ImagePullPolicy, MicCredentials, Mode, WorkloadRef,
};
use podid_scenario::NmiMode;

use crate::provider::cluster::IdentityConfig;

/// Namespace NMI, MIC and their Secret and ConfigMap live in: upstream's standard-mode
/// namespace, which is also what the local provider gives MIC (`MIC_POD_NAMESPACE`).
pub const IDENTITY_NAMESPACE: &str = "default";

/// Everything about the deployment that does not change between trials.
#[derive(Debug, Clone)]
pub struct DeploymentBase {
    pub nmi_image: String,
    pub mic_image: String,
    pub cloud: CloudAccess,
    pub image_pull_policy: ImagePullPolicy,
}

/// The flags podid adds before the scenario's: NMI's standard-mode retries and a long iptables
/// resync, MIC's sync intervals (see the local provider's NMI and MIC modules for why).
fn tuning_flags(config: &IdentityConfig) -> (Vec<String>, Vec<String>) {
    let mut nmi = vec!["--ipt-update-interval-sec=3600".to_string()];
    if config.mode == NmiMode::Standard {
        for (flag, value) in podid_local::STANDARD_RETRIES {
            let overridden = config
                .nmi_flags
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
            if !overridden {
                nmi.push(format!("{flag}={value}"));
            }
        }
    }
    let mic = vec![
        format!("--syncRetryDuration={}", podid_local::MIC_SYNC_RETRY),
        format!(
            "--identity-assignment-reconcile-interval={}",
            podid_local::MIC_RECONCILE_INTERVAL
        ),
        format!("--clientQps={}", podid_local::MIC_CLIENT_QPS),
    ];
    (nmi, mic)
}

/// The deployment request for `config`.
pub fn identity_deployment(base: &DeploymentBase, config: &IdentityConfig) -> IdentityDeployment {
    let (mut nmi_flags, mut mic_flags) = tuning_flags(config);
    nmi_flags.extend(config.nmi_flags.iter().cloned());
    mic_flags.extend(config.mic_flags.iter().cloned());
    IdentityDeployment {
        mode: match config.mode {
            NmiMode::Managed => Mode::Managed,
            NmiMode::Standard => Mode::Standard,
        },
        namespace: IDENTITY_NAMESPACE.to_string(),
        nmi_image: base.nmi_image.clone(),
        mic_image: base.mic_image.clone(),
        nmi_flags,
        mic_flags,
        mic_replicas: (config.mode == NmiMode::Standard)
            .then(|| u32::from(config.mic_replicas.max(1))),
        cloud: base.cloud.clone(),
        image_pull_policy: base.image_pull_policy,
        install_crds: true,
    }
}

/// MIC's credentials for the mock cloud's MIC principal, with the cluster identity MIC must
/// never remove from a node.
pub fn mic_credentials(
    tenant_id: &str,
    subscription_id: &str,
    resource_group: &str,
    client_id: &str,
    secret: &str,
    cluster_identity_client_id: &str,
) -> MicCredentials {
    MicCredentials {
        cloud: "AzurePublicCloud".into(),
        tenant_id: tenant_id.into(),
        subscription_id: subscription_id.into(),
        resource_group: resource_group.into(),
        client_id: client_id.into(),
        client_secret: secret.into(),
        vm_type: "vmss".into(),
        user_assigned_identity_id: Some(cluster_identity_client_id.into()),
    }
}

/// The workloads a rendered deployment runs (NMI, and MIC in standard mode).
pub fn workloads(rendered: &podid_incluster::RenderedDeployment) -> Vec<WorkloadRef> {
    std::iter::once(rendered.nmi.clone())
        .chain(rendered.mic.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> DeploymentBase {
        DeploymentBase {
            nmi_image: "nmi:x".into(),
            mic_image: "mic:x".into(),
            cloud: CloudAccess::default(),
            image_pull_policy: ImagePullPolicy::Never,
        }
    }

    #[test]
    fn scenario_flags_come_after_podids_and_may_override_retries() {
        let config = IdentityConfig {
            mode: NmiMode::Standard,
            nmi_flags: vec!["--retry-attempts-for-created=7".into()],
            mic_flags: vec!["--foo".into()],
            mic_replicas: 1,
        };
        let d = identity_deployment(&base(), &config);
        assert_eq!(d.mode, Mode::Standard);
        assert_eq!(
            d.nmi_flags.last().map(String::as_str),
            Some("--retry-attempts-for-created=7")
        );
        assert_eq!(
            d.nmi_flags
                .iter()
                .filter(|f| f.starts_with("--retry-attempts-for-created"))
                .count(),
            1
        );
        assert!(
            d.nmi_flags
                .iter()
                .any(|f| f.starts_with("--retry-attempts-for-assigned"))
        );
        assert_eq!(d.mic_flags.last().map(String::as_str), Some("--foo"));
        assert_eq!(d.mic_replicas, Some(1));
        let two = identity_deployment(
            &base(),
            &IdentityConfig {
                mic_replicas: 2,
                ..config
            },
        );
        assert_eq!(two.mic_replicas, Some(2));
    }

    #[test]
    fn managed_mode_has_no_standard_retries() {
        let config = IdentityConfig {
            mode: NmiMode::Managed,
            nmi_flags: Vec::new(),
            mic_flags: Vec::new(),
            mic_replicas: 0,
        };
        let d = identity_deployment(&base(), &config);
        assert_eq!(d.mode, Mode::Managed);
        assert!(!d.nmi_flags.iter().any(|f| f.contains("retry-attempts")));
        assert_eq!(d.mic_replicas, None);
    }
}
