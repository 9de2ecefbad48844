//! kube-apiserver on 127.0.0.1 against the local etcd, with client-certificate admin access.

use std::time::{Duration, Instant};

use crate::LocalError;
use crate::pki::PkiFiles;
use crate::process::{ChildProcess, log_tail};

/// The inputs that vary between runs.
#[derive(Debug, Clone)]
pub struct ApiServerFlags<'a> {
    /// etcd client port on 127.0.0.1.
    pub etcd_port: u16,
    /// HTTPS port on 127.0.0.1.
    pub secure_port: u16,
    /// Certificate files.
    pub pki: &'a PkiFiles,
    /// Directory for anything else the API server writes.
    pub cert_dir: &'a std::path::Path,
}

/// kube-apiserver's command line for a local test control plane (no controllers, no kubelets).
pub fn apiserver_args(flags: &ApiServerFlags<'_>) -> Vec<String> {
    let pki = flags.pki;
    let sa_key = pki.service_account_key.display();
    let sa_pub = pki.service_account_public_key.display();
    vec![
        format!("--etcd-servers=http://127.0.0.1:{}", flags.etcd_port),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", flags.secure_port),
        format!("--cert-dir={}", flags.cert_dir.display()),
        format!("--tls-cert-file={}", pki.serving_cert.display()),
        format!("--tls-private-key-file={}", pki.serving_key.display()),
        format!("--client-ca-file={}", pki.ca_cert.display()),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={sa_pub}"),
        format!("--service-account-signing-key-file={sa_key}"),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--authorization-mode=RBAC".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
        "--endpoint-reconciler-type=none".into(),
        "--enable-priority-and-fairness=false".into(),
        "--max-requests-inflight=0".into(),
        "--max-mutating-requests-inflight=0".into(),
        "--profiling=false".into(),
        "--v=1".into(),
    ]
}

/// Polls `/readyz` until it answers `ok`, then waits for the `default` namespace.
pub async fn wait_apiserver_ready(
    process: &mut ChildProcess,
    client: &kube::Client,
    timeout: Duration,
) -> Result<(), LocalError> {
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    let mut ready = false;
    while start.elapsed() < timeout {
        if let Some(status) = process.exited() {
            last = format!("exited with {status}");
            break;
        }
        let path = if ready {
            "/api/v1/namespaces/default"
        } else {
            "/readyz"
        };
        let request = http::Request::get(path)
            .body(Vec::new())
            .expect("static request");
        match client.request_text(request).await {
            Ok(body) if !ready && body.trim() == "ok" => {
                ready = true;
                continue;
            }
            Ok(body) if ready && body.contains("\"name\":\"default\"") => return Ok(()),
            Ok(body) => {
                last = format!(
                    "{path} answered {}",
                    body.chars().take(200).collect::<String>()
                )
            }
            Err(e) => last = format!("{path}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(LocalError::NotReady {
        component: "kube-apiserver".into(),
        waited_secs: start.elapsed().as_secs(),
        reason: last,
        log: process.log().to_path_buf(),
        log_tail: log_tail(process.log(), 30),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn apiserver_flags_bind_loopback_and_disable_what_needs_controllers() {
        let pki = PkiFiles {
            ca_cert: PathBuf::from("/w/ca.crt"),
            serving_cert: PathBuf::from("/w/serving.crt"),
            serving_key: PathBuf::from("/w/serving.key"),
            service_account_key: PathBuf::from("/w/sa.key"),
            service_account_public_key: PathBuf::from("/w/sa.pub"),
        };
        let args = apiserver_args(&ApiServerFlags {
            etcd_port: 41000,
            secure_port: 41001,
            pki: &pki,
            cert_dir: Path::new("/w"),
        });
        for wanted in [
            "--etcd-servers=http://127.0.0.1:41000",
            "--bind-address=127.0.0.1",
            "--secure-port=41001",
            "--client-ca-file=/w/ca.crt",
            "--service-account-signing-key-file=/w/sa.key",
            "--service-account-key-file=/w/sa.pub",
            "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount",
        ] {
            assert!(args.iter().any(|a| a == wanted), "missing {wanted}");
        }
    }
}
