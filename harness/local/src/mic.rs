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
    /// `--leader-election-duration`, when replicas compete for the lease (see
    /// [`MIC_REPLICATED_LEASE`]).
    pub lease_duration: Option<&'a str>,
}

/// The namespace MIC runs in (`MIC_POD_NAMESPACE`): where it writes AzureAssignedIdentities
/// and its type-upgrade ConfigMap, and where NMI looks for MIC's own pods.
pub const MIC_POD_NAMESPACE: &str = "default";

/// How often MIC runs a full sync when no event triggers one (upstream default 3600 s, upstream
/// e2e 30 s); pod and binding events trigger a sync at once anyway.
pub const MIC_SYNC_RETRY: &str = "15s";
/// How often MIC re-adds Assigned identities missing from their VM or scale set (default 3m).
pub const MIC_RECONCILE_INTERVAL: &str = "30s";

/// MIC's own rate limit on Kubernetes API calls (`--clientQps`, QPS and burst; upstream default
/// 5). Trials share one MIC, and at 5 calls a second its AzureAssignedIdentity writes for dozens
/// of pods queue for seconds ("client-side throttling") while NMI waits for them; the sync logic
/// itself is unchanged.
pub const MIC_CLIENT_QPS: &str = "50";

/// MIC's leader lease when two replicas run. Upstream's 15 s default makes a follower wait 15 to
/// 22 s after the leader dies; with 5 s it takes over in 6 to 8 s (measured). The leader must
/// renew within half the lease (2.5 s), which a kube-apiserver restart here (about 1 s without
/// the API) stays under; a longer outage makes it exit, as upstream's does. One replica keeps
/// the default: restarted with its own instance name it takes its lease back at once, and it
/// rides out longer API outages.
pub const MIC_REPLICATED_LEASE: &str = "5s";

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
        format!("--clientQps={MIC_CLIENT_QPS}"),
    ];
    if let Some(lease) = flags.lease_duration {
        args.push(format!("--leader-election-duration={lease}"));
    }
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
    /// `userAssignedIdentityID`: the cluster identity's client ID, which MIC never removes from
    /// a node (AKS's `<cluster>-agentpool` identity).
    pub cluster_identity_client_id: Option<&'a str>,
}

impl MicCloudConfig<'_> {
    /// The azure.json text (`vmType` is informational: MIC decides per node from providerID).
    pub fn render(&self) -> String {
        let mut value = serde_json::json!({
            "cloud": "AzurePublicCloud",
            "tenantId": self.tenant_id,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "aadClientId": self.client_id,
            "aadClientSecret": self.client_secret,
            "vmType": "vmss",
        });
        if let Some(client_id) = self.cluster_identity_client_id {
            value["userAssignedIdentityID"] = client_id.into();
        }
        serde_json::to_string_pretty(&value).expect("static shape serialises")
    }
}

/// The annotation of MIC's Endpoints lock that holds the leader record.
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// Where MIC keeps its leader-election lock: Endpoints `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderLock {
    pub namespace: String,
    pub name: String,
}

impl LeaderLock {
    /// MIC's defaults, unless `args` set `--leader-election-namespace`/`--leader-election-name`.
    pub fn from_args(args: &[String]) -> Self {
        Self {
            namespace: go_flag_value(args, "leader-election-namespace")
                .unwrap_or_else(|| "default".into()),
            name: go_flag_value(args, "leader-election-name")
                .unwrap_or_else(|| "aad-pod-identity-mic".into()),
        }
    }

    /// What the lock is, for messages: `Endpoints <namespace>/<name>`.
    pub fn describe(&self) -> String {
        format!("Endpoints {}/{}", self.namespace, self.name)
    }

    /// The instance holding the lock now, read from the API server; `None` when nobody does.
    pub async fn holder(&self, client: &kube::Client) -> Result<Option<String>, kube::Error> {
        let endpoints: kube::Api<k8s_openapi::api::core::v1::Endpoints> =
            kube::Api::namespaced(client.clone(), &self.namespace);
        let found = endpoints.get_opt(&self.name).await?;
        Ok(found
            .and_then(|e| e.metadata.annotations)
            .and_then(|a| a.get(LEADER_ANNOTATION).cloned())
            .and_then(|record| lease_holder(&record)))
    }
}

/// The `holderIdentity` of a leader record (the annotation's JSON); `None` when unreadable or
/// empty (a released lease).
pub fn lease_holder(record: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(record).ok()?;
    let holder = value.get("holderIdentity")?.as_str()?;
    (!holder.is_empty()).then(|| holder.to_string())
}

/// The last value Go's `flag` package would take for `name` from `args` (`-name=v`,
/// `--name=v`, `-name v`, `--name v`).
pub fn go_flag_value(args: &[String], name: &str) -> Option<String> {
    let mut found = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        match flag.split_once('=') {
            Some((n, value)) if n == name => found = Some(value.to_string()),
            None if flag == name => found = iter.next().cloned(),
            _ => {}
        }
    }
    found
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
            lease_duration: None,
        };
        let args = mic_args(&flags, &["--syncRetryDuration=5s".into()]);
        assert_eq!(args[0], "--kubeconfig=/w/admin.kubeconfig");
        assert!(args.contains(&"--leader-election-instance=podid-abc123".to_string()));
        assert!(args.contains(&"--http-probe-port=4000".to_string()));
        assert!(args.contains(&"--prometheus-port=4001".to_string()));
        assert_eq!(args.last().unwrap(), "--syncRetryDuration=5s");
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--leader-election-duration"))
        );
        let replicated = mic_args(
            &MicFlags {
                lease_duration: Some(MIC_REPLICATED_LEASE),
                ..flags
            },
            &["--leader-election-duration=9s".into()],
        );
        let leases: Vec<&String> = replicated
            .iter()
            .filter(|a| a.starts_with("--leader-election-duration"))
            .collect();
        assert_eq!(
            leases,
            [
                "--leader-election-duration=5s",
                "--leader-election-duration=9s"
            ],
            "a scenario's own lease comes last and wins"
        );
    }

    #[test]
    fn the_lock_follows_mics_flags_in_every_go_spelling() {
        assert_eq!(
            LeaderLock::from_args(&[]),
            LeaderLock {
                namespace: "default".into(),
                name: "aad-pod-identity-mic".into()
            }
        );
        let args: Vec<String> = [
            "--leader-election-namespace=a",
            "-leader-election-name",
            "lock",
            "-leader-election-namespace=b",
            "--leader-election-instance=x",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            LeaderLock::from_args(&args),
            LeaderLock {
                namespace: "b".into(),
                name: "lock".into()
            }
        );
        assert_eq!(
            go_flag_value(&args, "leader-election-instance").as_deref(),
            Some("x")
        );
        assert_eq!(go_flag_value(&args, "leader-election"), None);
    }

    #[test]
    fn the_holder_is_read_from_the_leader_record() {
        let record = r#"{"holderIdentity":"podid-abc123-1","leaseDurationSeconds":5,"acquireTime":"2026-01-01T00:00:00Z","renewTime":"2026-01-01T00:00:03Z","leaderTransitions":1}"#;
        assert_eq!(lease_holder(record).as_deref(), Some("podid-abc123-1"));
        assert_eq!(lease_holder(r#"{"holderIdentity":""}"#), None);
        assert_eq!(lease_holder("not json"), None);
    }

    #[test]
    fn cloud_config_names_the_public_cloud_and_the_principal() {
        let text = MicCloudConfig {
            tenant_id: "t",
            subscription_id: "s",
            resource_group: "rg",
            client_id: "c",
            client_secret: "x",
            cluster_identity_client_id: None,
        }
        .render();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v.get("userAssignedIdentityID").is_none());
        assert_eq!(v["cloud"], "AzurePublicCloud");
        assert_eq!(v["aadClientId"], "c");
        assert_eq!(v["aadClientSecret"], "x");
        assert_eq!(v["resourceGroup"], "rg");
        assert_eq!(v["vmType"], "vmss");
        let with_cluster_identity = MicCloudConfig {
            tenant_id: "t",
            subscription_id: "s",
            resource_group: "rg",
            client_id: "c",
            client_secret: "x",
            cluster_identity_client_id: Some("agentpool-client"),
        }
        .render();
        let v: serde_json::Value = serde_json::from_str(&with_cluster_identity).unwrap();
        assert_eq!(v["userAssignedIdentityID"], "agentpool-client");
    }
}
