//! Commands in local pods: what a container would give them (a clean environment with the
//! cluster's trust store), and running them to completion or their time limit.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::provider::cluster::ExecOutput;

/// The environment of a command in a pod: the machine's `PATH` and `HOME` (the clients run
/// with the machine's interpreters), and the run's CA where Python (`SSL_CERT_FILE`,
/// `REQUESTS_CA_BUNDLE`) and Node.js (`NODE_EXTRA_CA_CERTS`) look for it. Nothing else of the
/// harness's environment leaks in: no proxy, no `AZURE_*` or `MSI_*` override, so the SDKs
/// take the instance metadata path as they do in a pod.
pub fn pod_environment(ca_file: &Path) -> Vec<(String, String)> {
    let ca = ca_file.display().to_string();
    let mut env = vec![
        ("SSL_CERT_FILE".to_string(), ca.clone()),
        ("REQUESTS_CA_BUNDLE".to_string(), ca.clone()),
        ("NODE_EXTRA_CA_CERTS".to_string(), ca),
        ("LANG".to_string(), "C.UTF-8".to_string()),
        // The clients live in the source tree: no bytecode files next to them.
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
    ];
    for inherited in ["PATH", "HOME", "PYENV_ROOT"] {
        if let Ok(value) = std::env::var(inherited) {
            env.push((inherited.to_string(), value));
        }
    }
    env
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes).await;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `command` to its end, or kills it once `timeout` has passed; either way returns what
/// it printed.
pub async fn run(mut command: Command, timeout: Duration) -> std::io::Result<ExecOutput> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (status?, false),
        Err(_) => {
            child.start_kill()?;
            (child.wait().await?, true)
        }
    };
    Ok(ExecOutput {
        exit_code: status.code(),
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_and_exit_code_are_kept() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run(command, Duration::from_secs(10)).await.unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.timed_out);
    }

    #[tokio::test]
    async fn a_command_past_its_time_is_killed_with_what_it_printed() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; exec sleep 30"]);
        let out = run(command, Duration::from_millis(300)).await.unwrap();
        assert!(out.timed_out);
        assert_eq!(out.exit_code, None);
        assert_eq!(out.stdout, "started\n");
    }

    #[test]
    fn the_environment_carries_the_ca_for_python_and_node() {
        let env = pod_environment(Path::new("/run/ca.pem"));
        for key in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"] {
            assert!(
                env.contains(&(key.to_string(), "/run/ca.pem".to_string())),
                "{key}"
            );
        }
        assert!(!env.iter().any(|(k, _)| k.contains("PROXY")));
    }
}
