//! Waiting until NMI's DaemonSet and MIC's Deployment run the template just applied, and
//! restarting them on purpose. "Rolled out" means the controller has seen the current
//! generation, every replica is updated and ready, and no pod of an older template is left
//! (an old NMI still terminating holds the node's ports and iptables chain).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use podid_wait::{Check, Poll};
use serde_json::json;

use crate::deployment::{WorkloadKind, WorkloadRef};
use crate::error::InclusterError;
use crate::pod_status;

/// The pod-template annotation [`restart`] changes to make the controller replace the pods.
pub const RESTARTED_AT_ANNOTATION: &str = "podid.io/restarted-at";

/// What one look at a workload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Done,
    /// Not yet; what is missing.
    Pending(String),
    /// It cannot finish (a pod stuck for good); why.
    Failed(String),
}

/// Whether a DaemonSet's status says its current template runs, updated and ready, on every
/// node it should: `updatedNumberScheduled == desiredNumberScheduled == numberReady ==
/// numberAvailable`, for the generation last written. No node to run on counts as not done.
pub fn daemonset_rollout(ds: &DaemonSet) -> Rollout {
    let generation = ds.metadata.generation.unwrap_or(0);
    let Some(status) = &ds.status else {
        return Rollout::Pending("no status yet".into());
    };
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Rollout::Pending(format!(
            "controller has seen generation {observed} of {generation}"
        ));
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let ready = status.number_ready;
    let available = status.number_available.unwrap_or(0);
    if desired == 0 {
        return Rollout::Pending("no node to run on (0 desired)".into());
    }
    if updated == desired && ready == desired && available == desired {
        Rollout::Done
    } else {
        Rollout::Pending(format!(
            "{updated} updated, {ready} ready, {available} available of {desired}"
        ))
    }
}

/// Whether a Deployment's status says its current template runs on all replicas with no
/// older replica left: `updatedReplicas == replicas (status) == readyReplicas ==
/// availableReplicas == spec.replicas`, for the generation last written.
pub fn deployment_rollout(deployment: &Deployment) -> Rollout {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = &deployment.status else {
        return Rollout::Pending("no status yet".into());
    };
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Rollout::Pending(format!(
            "controller has seen generation {observed} of {generation}"
        ));
    }
    let total = status.replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if [total, updated, ready, available]
        .iter()
        .all(|n| *n == wanted)
    {
        Rollout::Done
    } else {
        Rollout::Pending(format!(
            "{updated} updated, {ready} ready, {available} available, {total} in all, of {wanted}"
        ))
    }
}

/// Whether the workload's pods agree with its status: exactly `expected` of them, none
/// terminating, each ready and stable for `stable_for` at `now`.
pub fn pods_rollout(
    pods: &[Pod],
    expected: i32,
    stable_for: SignedDuration,
    now: Timestamp,
) -> Rollout {
    if let Some(failure) = pods.iter().find_map(pod_status::permanent_failure) {
        return Rollout::Failed(failure);
    }
    let terminating: Vec<String> = pods
        .iter()
        .filter(|p| pod_status::is_terminating(p))
        .map(pod_status::pod_name)
        .collect();
    if !terminating.is_empty() {
        return Rollout::Pending(format!("old pods terminating: {}", terminating.join(", ")));
    }
    if pods.len() != expected.max(0) as usize {
        return Rollout::Pending(format!("{} pods, {expected} expected", pods.len()));
    }
    let unsettled: Vec<String> = pods
        .iter()
        .filter(|p| !pod_status::is_ready(p) || !pod_status::stable_since(p, stable_for, now))
        .map(pod_status::pod_name)
        .collect();
    if unsettled.is_empty() {
        Rollout::Done
    } else {
        Rollout::Pending(format!(
            "not ready (or just started): {}",
            unsettled.join(", ")
        ))
    }
}

/// How [`wait_rolled_out`] waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutOptions {
    pub timeout: Duration,
    pub interval: Duration,
    /// How long every container must have been running before the rollout counts.
    pub stable_for: Duration,
    /// Log lines of each not-ready pod to put in a timeout error.
    pub log_lines: i64,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(180),
            interval: Duration::from_millis(500),
            stable_for: Duration::from_secs(2),
            log_lines: 20,
        }
    }
}

/// Waits until every workload is rolled out; returns how long that took. On timeout the
/// error describes each pod that is not ready: phase, container states, recent events and
/// the last log lines (of the previous container too when it restarted).
pub async fn wait_rolled_out(
    client: &Client,
    workloads: &[WorkloadRef],
    options: &RolloutOptions,
) -> Result<Duration, InclusterError> {
    let started = Instant::now();
    let stable_for = SignedDuration::try_from(options.stable_for).unwrap_or(SignedDuration::ZERO);
    let poll = Poll::every(options.interval, options.timeout);
    let outcome = podid_wait::until(poll, || async {
        let mut pending = Vec::new();
        for workload in workloads {
            match look(client, workload, stable_for).await {
                Rollout::Done => {}
                Rollout::Pending(why) => pending.push(format!("{workload}: {why}")),
                Rollout::Failed(why) => return Check::Failed(format!("{workload}: {why}")),
            }
        }
        if pending.is_empty() {
            Check::Done(())
        } else {
            Check::Pending(pending.join("; "))
        }
    })
    .await;
    match outcome {
        Ok(()) => {
            let took = started.elapsed();
            tracing::info!(
                took_ms = took.as_millis() as u64,
                "rolled out: {}",
                workloads
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(took)
        }
        Err(e) => {
            let mut detail = e.clone().into_state();
            for workload in workloads {
                detail.push_str(&unready_pods_report(client, workload, options.log_lines).await);
            }
            Err(InclusterError::NotReady {
                what: "rollout".into(),
                waited: e.waited(),
                detail,
            })
        }
    }
}

/// One look at a workload and its pods.
async fn look(client: &Client, workload: &WorkloadRef, stable_for: SignedDuration) -> Rollout {
    let expected = match workload.kind {
        WorkloadKind::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), &workload.namespace);
            match api.get_opt(&workload.name).await {
                Ok(Some(ds)) => match daemonset_rollout(&ds) {
                    Rollout::Done => ds.status.map_or(0, |s| s.desired_number_scheduled),
                    other => return other,
                },
                Ok(None) => return Rollout::Pending("does not exist".into()),
                Err(e) => return Rollout::Pending(format!("reading it: {e}")),
            }
        }
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &workload.namespace);
            match api.get_opt(&workload.name).await {
                Ok(Some(d)) => match deployment_rollout(&d) {
                    Rollout::Done => d.spec.and_then(|s| s.replicas).unwrap_or(1),
                    other => return other,
                },
                Ok(None) => return Rollout::Pending("does not exist".into()),
                Err(e) => return Rollout::Pending(format!("reading it: {e}")),
            }
        }
    };
    match list_pods(client, workload).await {
        Ok(pods) => pods_rollout(&pods, expected, stable_for, Timestamp::now()),
        Err(e) => Rollout::Pending(e.to_string()),
    }
}

/// The pods of `workload`, by its selector.
pub async fn list_pods(
    client: &Client,
    workload: &WorkloadRef,
) -> Result<Vec<Pod>, InclusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &workload.namespace);
    api.list(&ListParams::default().labels(&workload.label_selector()))
        .await
        .map(|list| list.items)
        .map_err(|e| InclusterError::kube(format!("listing the pods of {workload}"), e))
}

/// A report on each pod of `workload` that is not ready.
async fn unready_pods_report(client: &Client, workload: &WorkloadRef, log_lines: i64) -> String {
    let pods = match list_pods(client, workload).await {
        Ok(pods) => pods,
        Err(e) => return format!("\n{e}"),
    };
    let mut out = String::new();
    for pod in pods.iter().filter(|p| !pod_status::is_ready(p)) {
        out.push('\n');
        out.push_str(&pod_report(client, pod, log_lines).await);
    }
    out
}

/// A pod's description, its recent events and the last `log_lines` of each container's log
/// (and of the previous container, when one restarted): everything needed to see why it is
/// not ready, gathered best-effort.
pub async fn pod_report(client: &Client, pod: &Pod, log_lines: i64) -> String {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut out = pod_status::describe(pod);
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let selector = format!("involvedObject.name={name}");
    match events.list(&ListParams::default().fields(&selector)).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|e| {
                e.last_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .or(e.event_time.as_ref().map(|t| t.0))
            });
            for event in items.iter().rev().take(8).rev() {
                out.push_str(&format!(
                    "\n  event {} {}: {}",
                    event.type_.as_deref().unwrap_or(""),
                    event.reason.as_deref().unwrap_or(""),
                    event.message.as_deref().unwrap_or("").trim()
                ));
            }
        }
        Err(e) => out.push_str(&format!("\n  (events unavailable: {e})")),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    for (container, previous) in crate::pod_status::container_logs(pod) {
        let params = LogParams {
            container: Some(container.clone()),
            previous,
            tail_lines: Some(log_lines),
            ..LogParams::default()
        };
        let label = if previous { "previous " } else { "" };
        match pods.logs(&name, &params).await {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => {
                out.push_str(&format!("\n  --- {label}log of {container} ---"));
                for line in text.lines() {
                    out.push_str("\n  | ");
                    out.push_str(line);
                }
            }
            Err(e) => out.push_str(&format!("\n  ({label}log of {container} unavailable: {e})")),
        }
    }
    out
}

/// Makes the controller replace the workload's pods with identical ones, by stamping the pod
/// template with the current time (the same thing `kubectl rollout restart` does). For when
/// nothing in the rendering changed but fresh NMI or MIC processes are wanted; follow with
/// [`wait_rolled_out`].
pub async fn restart(client: &Client, workload: &WorkloadRef) -> Result<(), InclusterError> {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        RESTARTED_AT_ANNOTATION: Timestamp::now().to_string()
    }}}}});
    let params = PatchParams::default();
    let action = format!("restarting {workload}");
    match workload.kind {
        WorkloadKind::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), &workload.namespace);
            api.patch(&workload.name, &params, &Patch::Merge(&patch))
                .await
                .map_err(|e| InclusterError::kube(action, e))?;
        }
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &workload.namespace);
            api.patch(&workload.name, &params, &Patch::Merge(&patch))
                .await
                .map_err(|e| InclusterError::kube(action, e))?;
        }
    }
    tracing::info!("restarted {workload}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_status::tests::pod;
    use serde_json::json;

    fn ds(generation: i64, status: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "nmi", "generation": generation},
            "status": status
        }))
        .unwrap()
    }

    fn ds_status(observed: i64, desired: i32, updated: i32, ready: i32) -> serde_json::Value {
        json!({
            "observedGeneration": observed, "desiredNumberScheduled": desired,
            "updatedNumberScheduled": updated, "numberReady": ready, "numberAvailable": ready,
            "currentNumberScheduled": desired, "numberMisscheduled": 0
        })
    }

    #[test]
    fn a_daemonset_is_rolled_out_when_all_nodes_run_the_current_template() {
        assert_eq!(
            daemonset_rollout(&ds(2, ds_status(2, 3, 3, 3))),
            Rollout::Done
        );
        assert_eq!(
            daemonset_rollout(&ds(3, ds_status(2, 3, 3, 3))),
            Rollout::Pending("controller has seen generation 2 of 3".into())
        );
        assert_eq!(
            daemonset_rollout(&ds(2, ds_status(2, 3, 2, 3))),
            Rollout::Pending("2 updated, 3 ready, 3 available of 3".into())
        );
        assert_eq!(
            daemonset_rollout(&ds(2, ds_status(2, 0, 0, 0))),
            Rollout::Pending("no node to run on (0 desired)".into())
        );
    }

    fn deployment(generation: i64, replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "mic", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn a_deployment_is_rolled_out_when_no_old_replica_is_left() {
        let status = |total: i32, updated: i32, ready: i32| {
            json!({"observedGeneration": 4, "replicas": total, "updatedReplicas": updated,
                   "readyReplicas": ready, "availableReplicas": ready})
        };
        assert_eq!(
            deployment_rollout(&deployment(4, 2, status(2, 2, 2))),
            Rollout::Done
        );
        assert_eq!(
            deployment_rollout(&deployment(4, 2, status(3, 2, 2))),
            Rollout::Pending("2 updated, 2 ready, 2 available, 3 in all, of 2".into())
        );
        assert!(matches!(
            deployment_rollout(&deployment(5, 2, status(2, 2, 2))),
            Rollout::Pending(_)
        ));
    }

    fn ready_pod(name: &str, terminating: bool) -> Pod {
        let mut metadata = json!({"name": name, "namespace": "ns"});
        if terminating {
            metadata["deletionTimestamp"] = json!("2030-01-01T00:00:00Z");
        }
        pod(json!({
            "metadata": metadata,
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{
                    "name": "c", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                    "state": {"running": {"startedAt": "2030-01-01T00:00:00Z"}}
                }]
            }
        }))
    }

    #[test]
    fn pods_must_match_the_count_be_ready_and_leave_no_old_one_behind() {
        let now: Timestamp = "2030-01-01T00:01:00Z".parse().unwrap();
        let settle = SignedDuration::from_secs(2);
        let fresh = [ready_pod("a", false), ready_pod("b", false)];
        assert_eq!(pods_rollout(&fresh, 2, settle, now), Rollout::Done);
        assert_eq!(
            pods_rollout(&fresh, 3, settle, now),
            Rollout::Pending("2 pods, 3 expected".into())
        );
        let with_old = [ready_pod("a", false), ready_pod("old", true)];
        assert_eq!(
            pods_rollout(&with_old, 1, settle, now),
            Rollout::Pending("old pods terminating: ns/old".into())
        );
        let early: Timestamp = "2030-01-01T00:00:01Z".parse().unwrap();
        assert_eq!(
            pods_rollout(&fresh, 2, settle, early),
            Rollout::Pending("not ready (or just started): ns/a, ns/b".into())
        );
    }
}
