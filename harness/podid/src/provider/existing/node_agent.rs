//! podid's hands on each node of an existing cluster: a hostNetwork DaemonSet (NET_ADMIN,
//! NET_RAW) running the workload image, which podid `exec`s into to read a node's iptables and
//! ask NMI's and MIC's `/healthz`. With the mock cloud it also redirects the node's
//! 169.254.169.254 to that node's mock IMDS (`podid mock redirect-imds`), refusing on a node
//! where a real metadata service answers.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use crate::provider::error::ProviderError;
use crate::provider::kube_cluster::NodeShell;

/// Name of the DaemonSet and its container.
pub const NODE_AGENT: &str = "podid-node-agent";
/// The file the redirect writes once the node's metadata address reaches the mock.
const READY_FILE: &str = "/tmp/podid-redirect-ready";
/// How long one command on a node may take.
const NODE_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the agent on each node does besides giving podid a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRole {
    /// Only a shell (a real cloud: the node's metadata address stays as it is).
    Shell,
    /// Redirects the node's metadata address to the mock IMDS of that node
    /// (`node name → pod address:port`), proving it with the nonce.
    RedirectImds {
        targets: BTreeMap<String, String>,
        proof: String,
    },
}

/// The agent DaemonSet, pinned to `nodes` (the Kubernetes node names scenarios use).
pub fn daemon_set(
    namespace: &str,
    image: &str,
    pull_policy: &str,
    nodes: &[String],
    role: &AgentRole,
) -> Value {
    let labels = json!({ "app": NODE_AGENT, "app.kubernetes.io/managed-by": "podid" });
    let (command, readiness) = match role {
        AgentRole::Shell => (
            vec!["sleep".to_string(), "infinity".to_string()],
            Value::Null,
        ),
        AgentRole::RedirectImds { targets, proof } => (
            vec![
                "sh".to_string(),
                "-c".to_string(),
                redirect_script(targets, proof),
            ],
            json!({ "exec": { "command": ["test", "-f", READY_FILE] }, "periodSeconds": 1 }),
        ),
    };
    let mut container = json!({
        "name": NODE_AGENT,
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": command,
        "env": [{ "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }],
        "securityContext": {
            "runAsUser": 0,
            "capabilities": { "add": ["NET_ADMIN", "NET_RAW"] }
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    if !readiness.is_null() {
        container["readinessProbe"] = readiness;
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": NODE_AGENT, "namespace": namespace, "labels": labels },
        "spec": {
            "selector": { "matchLabels": { "app": NODE_AGENT } },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "terminationGracePeriodSeconds": 15,
                    "tolerations": [{ "operator": "Exists" }],
                    "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{ "matchExpressions": [{
                            "key": "kubernetes.io/hostname", "operator": "In", "values": nodes
                        }] }]
                    } } },
                    "containers": [container]
                }
            }
        }
    })
}

/// The agent's command with the mock cloud: pick this node's IMDS, then redirect (the
/// program refuses, exit 3, where a real metadata service answers).
fn redirect_script(targets: &BTreeMap<String, String>, proof: &str) -> String {
    let cases: String = targets
        .iter()
        .map(|(node, to)| format!("  '{node}') TO='{to}' ;;\n"))
        .collect();
    format!(
        "case \"$NODE_NAME\" in\n{cases}  *) echo \"no mock IMDS for node $NODE_NAME\" >&2; exit 2 ;;\nesac\nexec podid mock redirect-imds --node \"$NODE_NAME\" --to \"$TO\" --proof '{proof}'-\"$NODE_NAME\"\n"
    )
}

/// The agent pod on each node, by node name.
pub async fn agent_pods(
    client: &kube::Client,
    namespace: &str,
) -> Result<BTreeMap<String, Pod>, ProviderError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&ListParams::default().labels(&format!("app={NODE_AGENT}")))
        .await
        .map_err(|e| ProviderError::new("listing podid's node agents", e))?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((p.spec.as_ref()?.node_name.clone()?, p)))
        .collect())
}

/// Node commands run by `exec` in the node's agent pod.
pub struct AgentShell {
    pub client: kube::Client,
    pub namespace: String,
    /// Agent pod name by node name.
    pub pods: BTreeMap<String, String>,
}

#[async_trait::async_trait]
impl NodeShell for AgentShell {
    async fn run(&self, node: &str, argv: &[String]) -> Result<String, ProviderError> {
        let what = format!("running `{}` on node {node}", argv.join(" "));
        let pod = self.pods.get(node).ok_or_else(|| {
            ProviderError::plain(format!("{what}: podid has no agent on that node"))
        })?;
        let out = podid_incluster::exec(
            &self.client,
            &self.namespace,
            pod,
            Some(NODE_AGENT),
            argv,
            NODE_COMMAND_TIMEOUT,
        )
        .await
        .map_err(|e| ProviderError::new(what.clone(), e))?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(ProviderError::plain(format!(
                "{what}: exit {}: {}",
                out.exit_code,
                out.stderr.trim()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_redirects_to_its_own_imds_and_unknown_nodes_stop() {
        let targets = BTreeMap::from([
            ("w1".to_string(), "10.0.0.5:8100".to_string()),
            ("w2".to_string(), "10.0.0.5:8101".to_string()),
        ]);
        let script = redirect_script(&targets, "n0nce");
        assert!(script.contains("'w1') TO='10.0.0.5:8100' ;;"));
        assert!(script.contains("'w2') TO='10.0.0.5:8101' ;;"));
        assert!(script.contains("exit 2"));
        assert!(script.contains("--proof 'n0nce'-\"$NODE_NAME\""));
    }

    #[test]
    fn the_agent_runs_on_the_host_network_of_the_chosen_nodes_only() {
        let ds = daemon_set(
            "podid-x",
            "img",
            "IfNotPresent",
            &["w1".into()],
            &AgentRole::Shell,
        );
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(
            pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                [0]["matchExpressions"][0]["values"],
            json!(["w1"])
        );
        assert_eq!(
            pod["containers"][0]["securityContext"]["capabilities"]["add"],
            json!(["NET_ADMIN", "NET_RAW"])
        );
    }
}
