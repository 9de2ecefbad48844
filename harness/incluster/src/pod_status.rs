//! Reading a pod's status: is it ready, has it been up long enough to trust, can it still
//! become ready, and a one-paragraph description for error messages. Pure functions, shared
//! by the rollout and workload waits.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Waiting reasons the kubelet will not get past by retrying: the image is not on the node and
/// may not be pulled, or its name is invalid.
const PERMANENT_WAITING_REASONS: &[&str] = &["ErrImageNeverPull", "InvalidImageName"];

/// `namespace/name` of a pod.
/// The container logs a pod has: `(container, previous)` for each container's current log and,
/// when it restarted, the log of the container before (listed first, since it usually says
/// why).
pub fn container_logs(pod: &Pod) -> Vec<(String, bool)> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut logs = Vec::new();
    for status in statuses {
        if status.restart_count > 0 {
            logs.push((status.name.clone(), true));
        }
        logs.push((status.name.clone(), false));
    }
    logs
}

pub fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The pod's phase, or `Unknown`.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown")
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[])
}

/// Whether every container has been running, without a restart since, for at least
/// `stable_for` at `now`. A container that dies right after starting (NMI exits on a fatal
/// start-up check) can look ready for a moment; this keeps that moment from counting.
pub fn stable_since(pod: &Pod, stable_for: SignedDuration, now: Timestamp) -> bool {
    let statuses = container_statuses(pod);
    !statuses.is_empty()
        && statuses.iter().all(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
                .is_some_and(|started| now.duration_since(started.0) >= stable_for)
        })
}

/// Why the pod can never become ready, if a container is stuck for a reason retrying will not
/// fix, or the pod has ended.
pub fn permanent_failure(pod: &Pod) -> Option<String> {
    if matches!(phase(pod), "Failed" | "Succeeded") {
        return Some(format!(
            "pod {} has ended: {}",
            pod_name(pod),
            describe(pod)
        ));
    }
    container_statuses(pod).iter().find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        PERMANENT_WAITING_REASONS.contains(&reason).then(|| {
            format!(
                "container {} of {} is stuck: {reason}: {}",
                c.name,
                pod_name(pod),
                waiting.message.as_deref().unwrap_or("")
            )
        })
    })
}

/// One line per container: state, restarts and the last termination, after the pod's phase,
/// node and unmet conditions.
pub fn describe(pod: &Pod) -> String {
    let mut out = format!("{} phase {}", pod_name(pod), phase(pod));
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        out.push_str(&format!(" on {node}"));
    }
    if is_terminating(pod) {
        out.push_str(", terminating");
    }
    let unmet: Vec<String> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.status != "True")
        .map(|c| {
            let why = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            if why.is_empty() {
                c.type_.clone()
            } else {
                format!("{} ({why})", c.type_)
            }
        })
        .collect();
    if !unmet.is_empty() {
        out.push_str(&format!("; not {}", unmet.join(", ")));
    }
    for c in container_statuses(pod) {
        out.push_str(&format!("\n  container {}: ", c.name));
        let state = c.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            out.push_str(&format!(
                "waiting {} {}",
                w.reason.as_deref().unwrap_or(""),
                w.message.as_deref().unwrap_or("")
            ));
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            out.push_str(&format!(
                "terminated exit {} {}",
                t.exit_code,
                t.reason.as_deref().unwrap_or("")
            ));
        } else if state.and_then(|s| s.running.as_ref()).is_some() {
            out.push_str(if c.ready {
                "running, ready"
            } else {
                "running, not ready"
            });
        } else {
            out.push_str("no state yet");
        }
        out.push_str(&format!(", restarts {}", c.restart_count));
        if let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
            out.push_str(&format!(
                "; last exit {} {} {}",
                t.exit_code,
                t.reason.as_deref().unwrap_or(""),
                t.message.as_deref().unwrap_or("").trim()
            ));
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A pod from its JSON form (tests build statuses the way the API server reports them).
    pub(crate) fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a valid pod")
    }

    fn running_pod(started: &str, ready: bool) -> Pod {
        pod(json!({
            "metadata": {"name": "nmi-abc", "namespace": "ns"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "nmi"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                "containerStatuses": [{
                    "name": "nmi", "ready": ready, "restartCount": 0, "image": "i", "imageID": "",
                    "state": {"running": {"startedAt": started}}
                }]
            }
        }))
    }

    #[test]
    fn a_container_counts_as_stable_only_after_the_settle_time() {
        let p = running_pod("2030-01-01T00:00:00Z", true);
        assert!(is_ready(&p));
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let two = SignedDuration::from_secs(2);
        assert!(!stable_since(&p, two, at("2030-01-01T00:00:01Z")));
        assert!(stable_since(&p, two, at("2030-01-01T00:00:02Z")));
    }

    #[test]
    fn image_never_pull_is_permanent_crash_loops_are_not() {
        let stuck = |reason: &str| {
            pod(json!({
                "metadata": {"name": "p", "namespace": "ns"},
                "status": {"phase": "Pending", "containerStatuses": [{
                    "name": "nmi", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                    "state": {"waiting": {"reason": reason, "message": "details"}}
                }]}
            }))
        };
        assert_eq!(
            permanent_failure(&stuck("ErrImageNeverPull")).unwrap(),
            "container nmi of ns/p is stuck: ErrImageNeverPull: details"
        );
        assert_eq!(permanent_failure(&stuck("CrashLoopBackOff")), None);
    }

    #[test]
    fn descriptions_show_conditions_states_and_last_exit() {
        let p = pod(json!({
            "metadata": {"name": "mic-1", "namespace": "ns"},
            "spec": {"nodeName": "node-2", "containers": [{"name": "mic"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [{
                    "name": "mic", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                    "lastState": {"terminated": {"exitCode": 255, "reason": "Error"}}
                }]
            }
        }));
        insta::assert_snapshot!(describe(&p), @r"
        ns/mic-1 phase Running on node-2; not Ready (ContainersNotReady)
          container mic: waiting CrashLoopBackOff back-off 40s, restarts 3; last exit 255 Error
        ");
    }

    #[test]
    fn container_logs_list_the_previous_log_first_when_a_container_restarted() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [
                {"name": "nmi", "restartCount": 2, "ready": true, "image": "i", "imageID": ""},
                {"name": "side", "restartCount": 0, "ready": true, "image": "i", "imageID": ""}
            ]}
        }))
        .unwrap();
        assert_eq!(
            container_logs(&pod),
            vec![
                ("nmi".to_string(), true),
                ("nmi".to_string(), false),
                ("side".to_string(), false)
            ]
        );
        assert!(container_logs(&Pod::default()).is_empty());
    }
}
