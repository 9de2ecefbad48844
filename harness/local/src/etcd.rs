//! etcd as a throw-away single member on loopback (`--unsafe-no-fsync`, free client and peer ports).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::LocalError;
use crate::process::{ChildProcess, log_tail};

/// etcd's command line for a single member with data in `data_dir`.
pub fn etcd_args(data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=podid".into(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=podid={peer}"),
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ]
}

/// Polls `GET /health` until etcd says `"health":"true"`, or fails with the log tail.
pub async fn wait_etcd_healthy(
    process: &mut ChildProcess,
    client_port: u16,
    timeout: Duration,
) -> Result<(), LocalError> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| LocalError::io("building an HTTP client", std::io::Error::other(e)))?;
    let url = format!("http://127.0.0.1:{client_port}/health");
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < timeout {
        if let Some(status) = process.exited() {
            last = format!("exited with {status}");
            break;
        }
        match http.get(&url).send().await {
            Ok(resp) => {
                let body = resp.text().await.unwrap_or_default();
                if body.contains("\"health\":\"true\"") {
                    return Ok(());
                }
                last = format!("/health answered {body}");
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(LocalError::NotReady {
        component: "etcd".into(),
        waited_secs: start.elapsed().as_secs(),
        reason: last,
        log: process.log().to_path_buf(),
        log_tail: log_tail(process.log(), 30),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_flags_use_the_given_ports_and_skip_fsync() {
        let args = etcd_args(Path::new("/w/etcd"), 40001, 40002);
        assert!(args.contains(&"--data-dir=/w/etcd".to_string()));
        assert!(args.contains(&"--listen-client-urls=http://127.0.0.1:40001".to_string()));
        assert!(args.contains(&"--initial-cluster=podid=http://127.0.0.1:40002".to_string()));
        assert!(args.contains(&"--unsafe-no-fsync=true".to_string()));
        assert!(
            args.iter()
                .all(|a| !a.contains("2379") && !a.contains("2380"))
        );
    }
}
