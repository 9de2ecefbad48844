//! NMI's command line, and its kubelet-config stand-in.

use std::path::Path;

use crate::config::{NmiConfig, NmiMode};

/// The node-specific inputs of NMI's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmiNodeFlags<'a> {
    /// `--node`.
    pub node: &'a str,
    /// `--kubelet-config` (a real file without the kubenet flag).
    pub kubelet_config: &'a Path,
    /// `--http-probe-port` (serves `/healthz`).
    pub probe_port: u16,
    /// `--prometheus-port`.
    pub metrics_port: u16,
}

/// NMI's standard-mode retries unless the caller sets them: a token request waits up to 3 s for
/// MIC to create the pod's AzureAssignedIdentity and up to 13 s in all for it to be Assigned
/// (upstream defaults: 16, 4 and 5 s, i.e. 80 s before an unbound pod is denied).
pub const STANDARD_RETRIES: [(&str, &str); 3] = [
    ("--retry-attempts-for-created", "3"),
    ("--retry-attempts-for-assigned", "10"),
    ("--find-identity-retry-interval", "1"),
];

/// Flags podid always passes, then mode flags, then `extra_args` (later flags win in pflag).
pub fn nmi_args(
    node: &NmiNodeFlags<'_>,
    mode: NmiMode,
    config: &NmiConfig,
    extra_args: &[String],
) -> Vec<String> {
    let mut args = vec![
        format!("--node={}", node.node),
        format!("--kubelet-config={}", node.kubelet_config.display()),
        format!("--http-probe-port={}", node.probe_port),
        format!("--prometheus-port={}", node.metrics_port),
        "--ipt-update-interval-sec=3600".into(),
    ];
    match mode {
        NmiMode::Managed => {
            args.push("--operation-mode=managed".into());
            args.push("--forceNamespaced".into());
        }
        NmiMode::Standard => {
            args.push("--operation-mode=standard".into());
            for (flag, value) in STANDARD_RETRIES {
                let overridden = config
                    .extra_args
                    .iter()
                    .chain(extra_args)
                    .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
                if !overridden {
                    args.push(format!("{flag}={value}"));
                }
            }
        }
    }
    args.extend(config.extra_args.iter().cloned());
    args.extend(extra_args.iter().cloned());
    args
}

/// Contents of the file given as `--kubelet-config`: NMI only refuses kubenet, so name CNI.
pub fn kubelet_config_contents(node: &str) -> String {
    format!("# kubelet flags of podid node {node}\nKUBELET_FLAGS=--network-plugin=cni\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> NmiNodeFlags<'static> {
        NmiNodeFlags {
            node: "node-1",
            kubelet_config: Path::new("/w/kubelet-node-1"),
            probe_port: 8085,
            metrics_port: 9095,
        }
    }

    #[test]
    fn managed_mode_forces_namespaced_and_skips_standard_retries() {
        let args = nmi_args(&flags(), NmiMode::Managed, &NmiConfig::default(), &[]);
        assert!(args.contains(&"--node=node-1".to_string()));
        assert!(args.contains(&"--operation-mode=managed".to_string()));
        assert!(args.contains(&"--forceNamespaced".to_string()));
        assert!(args.contains(&"--http-probe-port=8085".to_string()));
        assert!(!args.iter().any(|a| a.starts_with("--retry-attempts")));
    }

    #[test]
    fn standard_mode_retries_fast_unless_overridden() {
        let config = NmiConfig::default();
        let args = nmi_args(
            &flags(),
            NmiMode::Standard,
            &config,
            &["--retry-attempts-for-created=16".into()],
        );
        assert!(args.contains(&"--operation-mode=standard".to_string()));
        assert!(args.contains(&"--retry-attempts-for-assigned=10".to_string()));
        assert!(args.contains(&"--find-identity-retry-interval=1".to_string()));
        assert!(!args.contains(&"--retry-attempts-for-created=3".to_string()));
        assert_eq!(args.last().unwrap(), "--retry-attempts-for-created=16");
    }

    #[test]
    fn config_args_come_before_call_args() {
        let config = NmiConfig {
            extra_args: vec!["--metadata-header-required=false".into()],
            ..NmiConfig::default()
        };
        let args = nmi_args(
            &flags(),
            NmiMode::Managed,
            &config,
            &["--block-instance-metadata".into()],
        );
        let n = args.len();
        assert_eq!(args[n - 2], "--metadata-header-required=false");
        assert_eq!(args[n - 1], "--block-instance-metadata");
    }

    #[test]
    fn kubelet_config_never_names_kubenet() {
        assert!(!kubelet_config_contents("n").contains("--network-plugin=kubenet"));
    }
}
