//! What a user chooses about an existing-cluster run: which cluster, which cloud, which
//! images, whether podid may install NMI/MIC. Flags come on top of the `PODID_*` variables.

use std::path::PathBuf;

/// Environment variable naming the kubeconfig context (`--context`).
pub const CONTEXT_VAR: &str = "PODID_CONTEXT";
/// Environment variable choosing the cloud side (`--cloud`).
pub const CLOUD_VAR: &str = "PODID_CLOUD";
/// Environment variable naming the workload image (`--workload-image`).
pub const WORKLOAD_IMAGE_VAR: &str = "PODID_WORKLOAD_IMAGE";
/// Environment variable saying whether podid may install NMI/MIC (`--install`).
pub const INSTALL_VAR: &str = "PODID_INSTALL";
/// Environment variable naming an Azure mapping file (`--azure-mapping`).
pub const AZURE_MAPPING_VAR: &str = "PODID_AZURE_MAPPING";
/// Environment variable naming the Azure region for created resources (`--azure-location`).
pub const AZURE_LOCATION_VAR: &str = "PODID_AZURE_LOCATION";

/// Where the cloud side lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CloudChoice {
    /// Real Azure through ARM (the default: an existing cluster is usually AKS).
    #[default]
    Azure,
    /// podid's mock cloud, installed into the cluster (nodes that are not Azure machines).
    Mock,
}

impl CloudChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Azure => "azure",
            Self::Mock => "mock",
        }
    }

    /// `PODID_CLOUD`, or the default.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(CLOUD_VAR) {
            Ok(v) if !v.trim().is_empty() => match v.trim() {
                "azure" => Ok(Self::Azure),
                "mock" => Ok(Self::Mock),
                other => Err(format!(
                    "{CLOUD_VAR}={other} is not a cloud; valid: azure, mock"
                )),
            },
            _ => Ok(Self::default()),
        }
    }
}

/// Whether podid installs NMI/MIC into a cluster that runs none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InstallPolicy {
    /// Install (and afterwards remove) them when the cluster runs none.
    #[default]
    Auto,
    /// Only test what the cluster runs; fail when it runs none.
    Never,
}

/// Options of the existing provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExistingOptions {
    /// Kubeconfig file (else `KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cloud: CloudChoice,
    /// The image workload pods (and, with the mock cloud, the mock and node agents) run.
    pub workload_image: Option<String>,
    pub nmi_image: Option<String>,
    pub mic_image: Option<String>,
    pub install: InstallPolicy,
    pub azure_mapping: Option<PathBuf>,
    pub azure_location: Option<String>,
}

impl ExistingOptions {
    /// Options from the `PODID_*` variables (flags are applied on top by the CLI).
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let install = match var(INSTALL_VAR).as_deref() {
            None | Some("auto") => InstallPolicy::Auto,
            Some("never") => InstallPolicy::Never,
            Some(other) => {
                return Err(format!(
                    "{INSTALL_VAR}={other} is not an install policy; valid: auto, never"
                ));
            }
        };
        Ok(Self {
            kubeconfig: None,
            context: var(CONTEXT_VAR),
            cloud: CloudChoice::from_env()?,
            workload_image: var(WORKLOAD_IMAGE_VAR),
            nmi_image: var(crate::provider::kind::NMI_IMAGE_VAR),
            mic_image: var(crate::provider::kind::MIC_IMAGE_VAR),
            install,
            azure_mapping: var(AZURE_MAPPING_VAR).map(PathBuf::from),
            azure_location: var(AZURE_LOCATION_VAR),
        })
    }
}
