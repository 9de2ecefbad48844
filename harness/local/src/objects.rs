//! The Kubernetes objects the harness writes as "kubelet": Nodes, Pods and their status.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::addressing::NodeAddressing;
use crate::config::{NodeConfig, PodPhase, PodSpec};

/// Name of the single container every podid pod declares.
pub const CONTAINER_NAME: &str = "app";
/// Image named in that container (never pulled: there is no kubelet).
pub const CONTAINER_IMAGE: &str = "podid.local/app:1";

/// A Node object for `node`: providerID, hostname labels and pod CIDR.
pub fn node_object(node: &NodeConfig) -> Value {
    let addressing = NodeAddressing {
        index: node.pod_cidr_index,
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "podid.io/node": "true",
            }
        },
        "spec": {
            "providerID": node.provider_id,
            "podCIDR": addressing.pod_cidr(),
            "podCIDRs": [addressing.pod_cidr()],
        }
    })
}

/// A merge patch for `nodes/status`: Ready, with the node's address.
pub fn node_status_patch(node: &NodeConfig, now: &str) -> Value {
    let addressing = NodeAddressing {
        index: node.pod_cidr_index,
    };
    json!({
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "podid acts as kubelet",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }],
            "addresses": [
                {"type": "InternalIP", "address": addressing.host_ip().to_string()},
                {"type": "Hostname", "address": node.name},
            ],
        }
    })
}

/// A Pod object for `spec`, bound to its node, deleted at once (grace 0), one container.
pub fn pod_object(spec: &PodSpec, owner_uid: &str) -> Value {
    let mut metadata = json!({
        "name": spec.name,
        "namespace": spec.namespace,
        "labels": spec.labels,
        "annotations": spec.annotations,
    });
    if let Some(owner) = &spec.owner {
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1",
            "kind": owner.kind.as_str(),
            "name": owner.name,
            "uid": owner_uid,
            "controller": true,
        }]);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": spec.node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": CONTAINER_NAME, "image": CONTAINER_IMAGE}],
        }
    })
}

/// A merge patch for `pods/status` with pod and host IPs (both list forms): Running and Ready,
/// or Pending with the container still initializing (as while init containers run).
pub fn pod_status_patch(phase: PodPhase, pod_ip: Ipv4Addr, host_ip: Ipv4Addr, now: &str) -> Value {
    let running = phase == PodPhase::Running;
    let status = |up: bool| if up { "True" } else { "False" };
    let condition = |kind: &str, up: bool| json!({"type": kind, "status": status(up), "lastProbeTime": null, "lastTransitionTime": now});
    let state = if running {
        json!({"running": {"startedAt": now}})
    } else {
        json!({"waiting": {"reason": "PodInitializing"}})
    };
    json!({
        "status": {
            "phase": if running { "Running" } else { "Pending" },
            "conditions": [
                condition("PodScheduled", true),
                condition("Initialized", running),
                condition("ContainersReady", running),
                condition("Ready", running),
            ],
            "podIP": pod_ip.to_string(),
            "podIPs": [{"ip": pod_ip.to_string()}],
            "hostIP": host_ip.to_string(),
            "hostIPs": [{"ip": host_ip.to_string()}],
            "startTime": now,
            "containerStatuses": [{
                "name": CONTAINER_NAME,
                "image": CONTAINER_IMAGE,
                "imageID": "",
                "ready": running,
                "started": running,
                "restartCount": 0,
                "state": state,
            }],
        }
    })
}

/// The current time in the RFC 3339 form Kubernetes uses (`2006-01-02T15:04:05Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OwnerKind, PodOwner};

    fn node() -> NodeConfig {
        NodeConfig {
            name: "node-1".into(),
            provider_id: "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/0".into(),
            pod_cidr_index: 1,
            extra_addresses: vec![],
        }
    }

    #[test]
    fn node_carries_provider_id_and_hostname() {
        let n = node_object(&node());
        assert_eq!(n["spec"]["providerID"], node().provider_id);
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "node-1");
        assert_eq!(n["spec"]["podCIDR"], "10.244.1.0/24");
        let s = node_status_patch(&node(), "2024-01-01T00:00:00Z");
        assert_eq!(s["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(s["status"]["addresses"][0]["address"], "10.240.0.1");
    }

    #[test]
    fn pod_is_bound_graceless_and_owned_when_asked() {
        let spec = PodSpec {
            namespace: "demo".into(),
            name: "web".into(),
            node: "node-1".into(),
            labels: [("aadpodidbinding".to_string(), "demo".to_string())].into(),
            owner: Some(PodOwner {
                kind: OwnerKind::ReplicaSet,
                name: "mic-abc".into(),
            }),
            ..PodSpec::default()
        };
        let pod = pod_object(&spec, "uid-1");
        assert_eq!(pod["spec"]["nodeName"], "node-1");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(pod["metadata"]["labels"]["aadpodidbinding"], "demo");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], "mic-abc");

        let daemon = pod_object(
            &PodSpec {
                owner: Some(PodOwner {
                    kind: OwnerKind::DaemonSet,
                    name: "nmi".into(),
                }),
                ..spec.clone()
            },
            "uid-2",
        );
        assert_eq!(
            daemon["metadata"]["ownerReferences"][0]["kind"],
            "DaemonSet"
        );
        assert_eq!(daemon["metadata"]["ownerReferences"][0]["uid"], "uid-2");

        let plain = pod_object(
            &PodSpec {
                owner: None,
                ..spec
            },
            "uid-1",
        );
        assert!(plain["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn pod_status_sets_both_ip_forms_and_running() {
        let s = pod_status_patch(
            PodPhase::Running,
            "10.244.1.2".parse().unwrap(),
            "10.240.0.1".parse().unwrap(),
            "2024-01-01T00:00:00Z",
        );
        assert_eq!(s["status"]["phase"], "Running");
        assert_eq!(s["status"]["podIP"], "10.244.1.2");
        assert_eq!(s["status"]["podIPs"][0]["ip"], "10.244.1.2");
        assert_eq!(s["status"]["hostIPs"][0]["ip"], "10.240.0.1");
        assert_eq!(s["status"]["containerStatuses"][0]["ready"], true);
    }

    #[test]
    fn pending_pods_have_an_ip_but_are_not_ready() {
        let s = pod_status_patch(
            PodPhase::Pending,
            "10.244.1.3".parse().unwrap(),
            "10.240.0.1".parse().unwrap(),
            "2024-01-01T00:00:00Z",
        );
        assert_eq!(s["status"]["phase"], "Pending");
        assert_eq!(s["status"]["podIP"], "10.244.1.3");
        assert_eq!(s["status"]["conditions"][3]["type"], "Ready");
        assert_eq!(s["status"]["conditions"][3]["status"], "False");
        assert_eq!(s["status"]["containerStatuses"][0]["ready"], false);
        assert_eq!(
            s["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
    }

    #[test]
    fn timestamps_are_second_precision_utc() {
        let now = now_rfc3339();
        assert!(now.ends_with('Z') && now.len() == 20, "{now}");
    }
}
