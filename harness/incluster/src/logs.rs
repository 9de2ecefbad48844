//! Saving NMI's and MIC's logs for a failure report: every pod of the given workloads, each
//! container's current log and, when it restarted, the previous one, since a point in time.
//! Best effort: a log that cannot be read is listed, not fatal, so one missing pod does not
//! lose the others.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, LogParams};

use crate::deployment::WorkloadRef;
use crate::error::InclusterError;
use crate::rollout::list_pods;

/// What [`collect_logs`] wrote and what it could not read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsReport {
    pub files: Vec<PathBuf>,
    /// One line per log that could not be read.
    pub failures: Vec<String>,
}

/// The file name for a container's log: `<pod>_<container>.log`, `.previous.log` for the
/// container before its last restart.
pub fn log_file_name(pod: &str, container: &str, previous: bool) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let suffix = if previous { ".previous.log" } else { ".log" };
    format!("{}_{}{suffix}", clean(pod), clean(container))
}

/// Writes the logs of every pod of `workloads` (since `since`, when given) into `dir`,
/// creating it.
pub async fn collect_logs(
    client: &Client,
    workloads: &[WorkloadRef],
    since: Option<Timestamp>,
    dir: &Path,
) -> Result<LogsReport, InclusterError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| InclusterError::io(format!("creating {}", dir.display()), e))?;
    let mut report = LogsReport::default();
    for workload in workloads {
        let pods = match list_pods(client, workload).await {
            Ok(pods) => pods,
            Err(e) => {
                report.failures.push(e.to_string());
                continue;
            }
        };
        for pod in &pods {
            save_pod_logs(client, pod, since, dir, &mut report).await?;
        }
    }
    tracing::debug!(
        files = report.files.len(),
        failures = report.failures.len(),
        "saved logs in {}",
        dir.display()
    );
    Ok(report)
}

async fn save_pod_logs(
    client: &Client,
    pod: &Pod,
    since: Option<Timestamp>,
    dir: &Path,
    report: &mut LogsReport,
) -> Result<(), InclusterError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    for (container, previous) in crate::pod_status::container_logs(pod) {
        let params = LogParams {
            container: Some(container.clone()),
            previous,
            since_time: since,
            timestamps: true,
            ..LogParams::default()
        };
        let label = if previous { "previous " } else { "" };
        match api.logs(&name, &params).await {
            Ok(text) => {
                let path = dir.join(log_file_name(&name, &container, previous));
                std::fs::write(&path, text)
                    .map_err(|e| InclusterError::io(format!("writing {}", path.display()), e))?;
                report.files.push(path);
            }
            Err(e) => report.failures.push(format!(
                "{label}log of {namespace}/{name} container {container}: {e}"
            )),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_tell_previous_logs_apart() {
        assert_eq!(
            log_file_name("nmi-x7k2p", "nmi", false),
            "nmi-x7k2p_nmi.log"
        );
        assert_eq!(
            log_file_name("mic-5d/../x", "mic", true),
            "mic-5d_.._x_mic.previous.log"
        );
    }
}
