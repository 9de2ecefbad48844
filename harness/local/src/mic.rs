//! MIC's command line and its cloud configuration file.

use std::path::Path;

/// The run-specific inputs of MIC's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicFlags<'a> {
    /// `--kubeconfig` (MIC ignores `KUBECONFIG`).
    pub kubeconfig: &'a Path,
    /// `--cloudconfig`.
    pub cloud_config: &'a Path,
    /// `--leader-election-instance` (the default, the host name, is shared by every process).
    pub instance: &'a str,
    /// `--http-probe-port` (serves `/healthz`), on the node namespace's loopback.
    pub probe_port: u16,
    /// `--prometheus-port` (default 8888 would be taken on every run).
    pub metrics_port: u16,
}

/// How often MIC runs a full sync when no event triggers one (upstream default 3600 s, upstream
/// e2e 30 s); pod and binding events trigger a sync at once anyway.
pub const MIC_SYNC_RETRY: &str = "15s";
/// How often MIC re-adds Assigned identities missing from their VM or scale set (default 3m).
pub const MIC_RECONCILE_INTERVAL: &str = "30s";

/// Flags podid always passes, then `extra_args` (a later flag wins in Go's `flag`).
pub fn mic_args(flags: &MicFlags<'_>, extra_args: &[String]) -> Vec<String> {
    let mut args = vec![
        format!("--kubeconfig={}", flags.kubeconfig.display()),
        format!("--cloudconfig={}", flags.cloud_config.display()),
        format!("--leader-election-instance={}", flags.instance),
        format!("--http-probe-port={}", flags.probe_port),
        format!("--prometheus-port={}", flags.metrics_port),
        format!("--syncRetryDuration={MIC_SYNC_RETRY}"),
        format!("--identity-assignment-reconcile-interval={MIC_RECONCILE_INTERVAL}"),
    ];
    args.extend(extra_args.iter().cloned());
    args
}

/// What goes into MIC's azure.json: a service principal of the public cloud (whose host names
/// the node namespace resolves to the mock cloud) and the node scale sets' resource group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicCloudConfig<'a> {
    pub tenant_id: &'a str,
    pub subscription_id: &'a str,
    pub resource_group: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

impl MicCloudConfig<'_> {
    /// The azure.json text (`vmType` is informational: MIC decides per node from providerID).
    pub fn render(&self) -> String {
        let value = serde_json::json!({
            "cloud": "AzurePublicCloud",
            "tenantId": self.tenant_id,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "aadClientId": self.client_id,
            "aadClientSecret": self.client_secret,
            "vmType": "vmss",
        });
        serde_json::to_string_pretty(&value).expect("static shape serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podid_flags_come_first_and_extra_args_last() {
        let flags = MicFlags {
            kubeconfig: Path::new("/w/admin.kubeconfig"),
            cloud_config: Path::new("/w/azure.json"),
            instance: "podid-abc123",
            probe_port: 4000,
            metrics_port: 4001,
        };
        let args = mic_args(&flags, &["--syncRetryDuration=5s".into()]);
        assert_eq!(args[0], "--kubeconfig=/w/admin.kubeconfig");
        assert!(args.contains(&"--leader-election-instance=podid-abc123".to_string()));
        assert!(args.contains(&"--http-probe-port=4000".to_string()));
        assert!(args.contains(&"--prometheus-port=4001".to_string()));
        assert_eq!(args.last().unwrap(), "--syncRetryDuration=5s");
    }

    #[test]
    fn cloud_config_names_the_public_cloud_and_the_principal() {
        let text = MicCloudConfig {
            tenant_id: "t",
            subscription_id: "s",
            resource_group: "rg",
            client_id: "c",
            client_secret: "x",
        }
        .render();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["cloud"], "AzurePublicCloud");
        assert_eq!(v["aadClientId"], "c");
        assert_eq!(v["aadClientSecret"], "x");
        assert_eq!(v["resourceGroup"], "rg");
        assert_eq!(v["vmType"], "vmss");
    }
}
