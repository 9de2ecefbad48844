//! `exec` steps: one of the project's SDK clients, or a raw command, run inside a pod with the
//! pod's network, host names and trust store; judged on exit code, output and time.

use std::time::{Duration, Instant};

use podid_scenario::{ExecStep, Step};

use super::{ActionError, Attempt, check_surroundings, render, retried};
use crate::expect;
use crate::provider::{ExecOutput, ExecRequest, ProviderError};
use crate::runner::error::StepError;
use crate::runner::scenario_run::ScenarioRun;

/// How long a command may run when the step sets no `maxLatency`: an SDK's whole retry budget
/// against NMI (azure-identity backs off for about a minute and a half on repeated 5xx).
const DEFAULT_LIMIT: Duration = Duration::from_secs(180);
/// Beyond `maxLatency`, how long a command may still run before it is killed: long enough to
/// show how late it was.
const PAST_LATENCY: Duration = Duration::from_secs(10);

/// The command line: the client's program and the step's arguments, or the raw command.
fn argv(run: &ScenarioRun<'_>, e: &ExecStep) -> Result<Vec<String>, StepError> {
    let resolver = &run.inst;
    let mut argv = match &e.client {
        Some(client) => {
            let cluster = &run.env.provider.cluster;
            let program = cluster.client_program(client.value).ok_or_else(|| {
                ProviderError::plain(format!(
                    "this provider cannot run the {} client",
                    crate::clients::client_name(client.value)
                ))
            })?;
            if let Some(missing) = crate::clients::ClientPrograms::locate().missing(client.value) {
                return Err(ProviderError::plain(missing).into());
            }
            program
        }
        None => Vec::new(),
    };
    for part in e.command.iter().chain(&e.args) {
        argv.push(render(part, resolver, "exec")?);
    }
    Ok(argv)
}

/// What a run showed, for the report: how it ended and what it printed.
fn output_text(out: &ExecOutput, elapsed: Duration) -> String {
    let ended = match (out.timed_out, out.exit_code) {
        (true, _) => "killed at its time limit".to_string(),
        (false, Some(code)) => format!("exit {code}"),
        (false, None) => "killed by a signal".to_string(),
    };
    let mut text = format!("{ended} after {}ms", elapsed.as_millis());
    for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let trimmed = stream.trim_end();
        if !trimmed.is_empty() {
            text.push_str(&format!("\n{name}:\n{trimmed}"));
        }
    }
    text
}

/// An `exec` step, retried while its expectations fail and its `within` lasts.
pub(super) async fn exec(
    run: &ScenarioRun<'_>,
    step: &Step,
    e: &ExecStep,
) -> Result<Attempt, ActionError> {
    let pod = run.pod(&e.pod)?.clone();
    let mut env = Vec::new();
    for (k, v) in &e.env {
        env.push((k.clone(), render(v, &run.inst, "env")?));
    }
    let timeout = step
        .expect
        .as_ref()
        .and_then(|x| x.max_latency)
        .map_or(DEFAULT_LIMIT, |d| d.0 + PAST_LATENCY);
    let request = ExecRequest {
        argv: argv(run, e)?,
        env,
        timeout,
    };
    retried(step, || async {
        let cursor = run.env.provider.request_cursor();
        let started = Instant::now();
        let out = run
            .env
            .provider
            .cluster
            .exec(&pod, &request)
            .await
            .map_err(StepError::from)?;
        let elapsed = started.elapsed();
        let output = Some(output_text(&out, elapsed));
        let Some(expected) = &step.expect else {
            return Ok(Attempt {
                failures: Vec::new(),
                output,
            });
        };
        let mut failures = expect::check_exec(expected, &out, elapsed, &run.inst);
        failures.extend(check_surroundings(run, expected, cursor).await?);
        Ok(Attempt { failures, output })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_says_how_the_command_ended() {
        let out = ExecOutput {
            exit_code: Some(1),
            stdout: "{\"ok\":false}\n".into(),
            stderr: String::new(),
            timed_out: false,
        };
        assert_eq!(
            output_text(&out, Duration::from_millis(1500)),
            "exit 1 after 1500ms\nstdout:\n{\"ok\":false}"
        );
    }
}
