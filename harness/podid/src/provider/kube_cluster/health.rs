//! NMI's and MIC's `/healthz`, asked with `curl` from a node's own network (NMI listens on each
//! node's loopback; MIC on its pod's IP), and which MIC pod holds the
//! leader lease (upstream's Endpoints lock; a replica's instance is its pod's host name).

use super::NodeShell;
use crate::provider::cluster::HealthAnswer;
use crate::provider::error::ProviderError;

/// What `curl -w` appends after the body: a newline and the status code.
const STATUS_SUFFIX: &str = "\n%{http_code}";

/// `GET url` from node `node`; no answer is status 0 with the reason as body (so a
/// step can wait for it).
pub async fn healthz(
    shell: &dyn NodeShell,
    node: &str,
    url: &str,
    instance: String,
) -> HealthAnswer {
    let argv = ["curl", "-s", "-m", "2", "-w", STATUS_SUFFIX, url].map(String::from);
    match shell.run(node, &argv).await {
        Ok(out) => {
            let (status, body) = split_status(&out);
            HealthAnswer {
                instance,
                status,
                body,
            }
        }
        Err(e) => HealthAnswer {
            instance,
            status: 0,
            body: crate::provider::error_chain(&e),
        },
    }
}

/// The body and status of `curl -w '\n%{http_code}'` output (status 0 when unreadable).
pub fn split_status(out: &str) -> (u16, String) {
    match out.rsplit_once('\n') {
        Some((body, code)) => (code.trim().parse().unwrap_or(0), body.to_string()),
        None => (out.trim().parse().unwrap_or(0), String::new()),
    }
}

/// The `holderIdentity` of MIC's leader lock (where MIC's flags put it).
pub async fn lease_holder(
    client: &kube::Client,
    mic_flags: &[String],
) -> Result<Option<String>, ProviderError> {
    let lock = podid_local::LeaderLock::from_args(mic_flags);
    lock.holder(client).await.map_err(|e| {
        ProviderError::new(
            format!("reading MIC's leader lock ({})", lock.describe()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curls_status_line_is_split_from_the_body() {
        assert_eq!(split_status("Active\n200"), (200, "Active".into()));
        assert_eq!(split_status("Not Active\n200"), (200, "Not Active".into()));
        assert_eq!(split_status("\n000"), (0, String::new()));
        assert_eq!(split_status("garbage"), (0, String::new()));
    }
}
