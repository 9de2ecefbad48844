//! Knowing when NMI's informers are watching: the API server counts the watches it serves per
//! resource (`apiserver_longrunning_requests`). NMI reports healthy once its caches are filled,
//! but its watches may still be opening; an object created in that gap reaches NMI late, and in
//! managed mode NMI does not retry, so a bound pod would be denied.

use std::time::{Duration, Instant};

use crate::LocalError;

/// API group of the aad-pod-identity resources.
pub const GROUP: &str = "aadpodidentity.k8s.io";
const POLL: Duration = Duration::from_millis(50);

/// The number of WATCH requests the API server serves for `group`/`resource`, from its
/// Prometheus text (summed over scopes).
pub fn watch_count(metrics: &str, group: &str, resource: &str) -> u64 {
    let group = format!("group=\"{group}\"");
    let resource = format!("resource=\"{resource}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_longrunning_requests{"))
        .filter(|l| l.contains(&group) && l.contains(&resource) && l.contains("verb=\"WATCH\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Waits until the API server serves at least `count` watches of each of `resources`.
pub async fn wait_for_watches(
    client: &kube::Client,
    resources: &[&str],
    count: u64,
    timeout: Duration,
) -> Result<(), LocalError> {
    let started = Instant::now();
    let mut last;
    loop {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| LocalError::Config(format!("building the metrics request: {e}")))?;
        match client.request_text(request).await {
            Ok(metrics) => {
                let counts: Vec<(&str, u64)> = resources
                    .iter()
                    .map(|r| (*r, watch_count(&metrics, GROUP, r)))
                    .collect();
                if counts.iter().all(|(_, n)| *n >= count) {
                    return Ok(());
                }
                last = counts
                    .iter()
                    .map(|(r, n)| format!("{r}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
            }
            Err(e) => last = format!("reading /metrics: {e}"),
        }
        if started.elapsed() > timeout {
            return Err(LocalError::Config(format!(
                "NMI's watches did not open within {}s (want {count} per resource; {last})",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_watches_of_one_resource_across_scopes() {
        let text = r#"# HELP apiserver_longrunning_requests x
apiserver_longrunning_requests{component="apiserver",group="aadpodidentity.k8s.io",resource="azureidentities",scope="cluster",subresource="",verb="WATCH",version="v1"} 2
apiserver_longrunning_requests{component="apiserver",group="aadpodidentity.k8s.io",resource="azureidentities",scope="namespace",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_requests{component="apiserver",group="aadpodidentity.k8s.io",resource="azureidentitybindings",scope="cluster",subresource="",verb="WATCH",version="v1"} 0
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 3
"#;
        assert_eq!(watch_count(text, GROUP, "azureidentities"), 3);
        assert_eq!(watch_count(text, GROUP, "azureidentitybindings"), 0);
        assert_eq!(watch_count(text, GROUP, "azurepodidentityexceptions"), 0);
        assert_eq!(watch_count(text, "", "pods"), 3);
    }
}
