//! What a user can choose about a kind run: keep the cluster, bring their own images.

/// Environment variable naming an NMI image to test instead of the one built from the pinned
/// release (it must already be in the local image store or pullable by the nodes).
pub const NMI_IMAGE_VAR: &str = "PODID_NMI_IMAGE";
/// Environment variable naming a MIC image, as [`NMI_IMAGE_VAR`].
pub const MIC_IMAGE_VAR: &str = "PODID_MIC_IMAGE";
/// Environment variable naming a kind node image to use instead of the locally built one.
pub const NODE_IMAGE_VAR: &str = "PODID_KIND_NODE_IMAGE";

/// Options of the kind provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindOptions {
    /// Leave the cluster running after the run (to look around with the printed kubeconfig).
    pub keep: bool,
    pub nmi_image: Option<String>,
    pub mic_image: Option<String>,
    pub node_image: Option<String>,
}

impl KindOptions {
    /// Options from the `PODID_*` variables (flags are applied on top by the CLI).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            keep: false,
            nmi_image: var(NMI_IMAGE_VAR),
            mic_image: var(MIC_IMAGE_VAR),
            node_image: var(NODE_IMAGE_VAR),
        }
    }
}
