//! Running a command in a pod's container over the API server's exec stream, the way a test
//! acts "from inside" a workload pod (its network identity is what NMI checks). Output is
//! collected whole; the exit code comes from the status the API server sends when the
//! command ends.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Client;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::InclusterError;

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// From opening the stream to the exit status.
    pub took: Duration,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// Runs `command` in container `container` (or the pod's only one) of pod
/// `namespace/pod`, waiting at most `timeout` for it to end. A command that ran and exited
/// non-zero is an [`ExecOutput`], not an error; an error means it could not be run or did not
/// finish (the message then carries the output so far).
pub async fn exec(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutput, InclusterError> {
    let started = Instant::now();
    let target = match container {
        Some(c) => format!("{namespace}/{pod} (container {c})"),
        None => format!("{namespace}/{pod}"),
    };
    let fail = |problem: String| InclusterError::Exec {
        pod: target.clone(),
        command: command.to_vec(),
        problem,
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let mut attached = tokio::time::timeout(timeout, api.exec(pod, command.to_vec(), &params))
        .await
        .map_err(|_| fail(format!("no exec stream after {timeout:?}")))?
        .map_err(|e| fail(format!("opening the exec stream: {e}")))?;
    let stdout = attached.stdout();
    let stderr = attached.stderr();
    let status = attached.take_status();

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let collected = tokio::time::timeout(timeout.saturating_sub(started.elapsed()), async {
        let (read_out, read_err, status) =
            tokio::join!(drain(stdout, &mut out), drain(stderr, &mut err), async {
                match status {
                    Some(s) => s.await,
                    None => None,
                }
            });
        (read_out, read_err, status)
    })
    .await;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let (read_out, read_err, status) = match collected {
        Ok(parts) => parts,
        Err(_) => {
            attached.abort();
            return Err(fail(format!(
                "did not finish within {timeout:?}; stdout so far: {:?}; stderr so far: {:?}",
                text(&out),
                text(&err)
            )));
        }
    };
    read_out.map_err(|e| fail(format!("reading stdout: {e}")))?;
    read_err.map_err(|e| fail(format!("reading stderr: {e}")))?;
    if let Err(e) = attached.join().await {
        tracing::debug!("exec stream of {target} ended with {e}");
    }
    let status = status.ok_or_else(|| {
        fail(format!(
            "the stream closed without an exit status; stdout: {:?}; stderr: {:?}",
            text(&out),
            text(&err)
        ))
    })?;
    let exit_code = exit_code(&status).map_err(|problem| {
        fail(format!(
            "{problem}; stdout: {:?}; stderr: {:?}",
            text(&out),
            text(&err)
        ))
    })?;
    let output = ExecOutput {
        exit_code,
        stdout: text(&out),
        stderr: text(&err),
        took: started.elapsed(),
    };
    tracing::debug!(
        exit_code,
        took_ms = output.took.as_millis() as u64,
        "exec {command:?} in {target}"
    );
    Ok(output)
}

async fn drain(reader: Option<impl AsyncRead + Unpin>, into: &mut Vec<u8>) -> std::io::Result<()> {
    match reader {
        Some(mut reader) => reader.read_to_end(into).await.map(|_| ()),
        None => Ok(()),
    }
}

/// The exit code in the status the API server sends on the exec stream's status channel:
/// `Success` is 0; `Failure` with reason `NonZeroExitCode` carries the code in a cause with
/// reason `ExitCode`. Any other failure (the command could not be started, the container is
/// gone) is returned as its message.
pub fn exit_code(status: &Status) -> Result<i32, String> {
    match status.status.as_deref() {
        Some("Success") => Ok(0),
        _ if status.reason.as_deref() == Some("NonZeroExitCode") => status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse::<i32>().ok())
            .ok_or_else(|| {
                format!(
                    "a non-zero exit without a readable code: {}",
                    status.message.as_deref().unwrap_or("")
                )
            }),
        _ => Err(format!(
            "the command failed to run: {} {}",
            status.reason.as_deref().unwrap_or(""),
            status.message.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(value: serde_json::Value) -> Status {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn success_is_zero() {
        assert_eq!(exit_code(&status(json!({"status": "Success"}))), Ok(0));
    }

    #[test]
    fn a_non_zero_exit_carries_its_code_in_a_cause() {
        let s = status(json!({
            "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }));
        assert_eq!(exit_code(&s), Ok(3));
    }

    #[test]
    fn other_failures_are_errors_with_the_servers_message() {
        let s = status(json!({
            "status": "Failure",
            "message": "exec: \"nope\": executable file not found in $PATH",
            "reason": "InternalError"
        }));
        assert_eq!(
            exit_code(&s).unwrap_err(),
            "the command failed to run: InternalError exec: \"nope\": executable file not found in $PATH"
        );
        let unreadable = status(json!({"status": "Failure", "reason": "NonZeroExitCode"}));
        assert!(exit_code(&unreadable).is_err());
    }
}
