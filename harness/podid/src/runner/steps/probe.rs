//! `token` and `blob` steps: the probe run inside pods, from one pod or from every member of
//! a pod group at once, `concurrent` times per pod, every answer judged.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::future::join_all;
use podid_probe::{HttpExchange, ProbeReport};
use podid_scenario::reference::Resolve;
use podid_scenario::{BlobOp, BlobStep, Expect, Step, Template, TokenStep};

use super::answers::{self, Answer};
use super::{ActionError, Attempt, check_surroundings, render, retried};
use crate::runner::error::StepError;
use crate::runner::scenario_run::ScenarioRun;

fn opt(
    flag: &str,
    value: Option<&Template>,
    resolver: &dyn Resolve,
    args: &mut Vec<String>,
) -> Result<(), StepError> {
    if let Some(t) = value {
        args.push(flag.to_string());
        args.push(render(t, resolver, flag)?);
    }
    Ok(())
}

fn token_args(t: &TokenStep, resolver: &dyn Resolve) -> Result<Vec<String>, StepError> {
    let mut args = vec!["token".to_string()];
    opt("--resource", t.resource.as_ref(), resolver, &mut args)?;
    let id = t.identity();
    opt("--client-id", id.client_id, resolver, &mut args)?;
    opt("--mi-res-id", id.mi_res_id, resolver, &mut args)?;
    opt("--msi-res-id", id.msi_res_id, resolver, &mut args)?;
    opt("--object-id", id.object_id, resolver, &mut args)?;
    opt("--api-version", t.api_version.as_ref(), resolver, &mut args)?;
    opt("--path", t.path.as_ref(), resolver, &mut args)?;
    if !t.metadata_header {
        args.push("--no-metadata-header".into());
    }
    for (k, v) in &t.headers {
        for value in v.values() {
            args.push("--header".into());
            args.push(format!("{k}: {}", render(value, resolver, "headers")?));
        }
    }
    opt("--endpoint", t.endpoint.as_ref(), resolver, &mut args)?;
    for (k, v) in &t.query {
        args.push("--query".into());
        args.push(format!("{k}={}", render(v, resolver, "query")?));
    }
    Ok(args)
}

fn blob_args(run: &ScenarioRun<'_>, b: &BlobStep) -> Result<Vec<String>, StepError> {
    let resolver = &run.inst;
    let mut args = vec!["blob".to_string()];
    let resource = match &b.resource {
        Some(r) => render(r, resolver, "resource")?,
        None => "https://storage.azure.com/".into(),
    };
    args.extend(["--resource".into(), resource]);
    let id = b.identity();
    opt("--client-id", id.client_id, resolver, &mut args)?;
    opt("--mi-res-id", id.mi_res_id, resolver, &mut args)?;
    opt("--msi-res-id", id.msi_res_id, resolver, &mut args)?;
    opt("--object-id", id.object_id, resolver, &mut args)?;
    let url = run
        .inst
        .account_urls
        .get(b.account.as_str())
        .cloned()
        .ok_or_else(|| StepError::UnknownAccount(b.account.value.clone()))?;
    args.extend(["--account-url".into(), url]);
    let op = match b.op {
        BlobOp::Read => "read",
        BlobOp::Write => "write",
        BlobOp::List => "list",
    };
    args.extend(["--op".into(), op.into()]);
    args.extend([
        "--container".into(),
        render(&b.container, resolver, "container")?,
    ]);
    opt("--blob", b.blob.as_ref(), resolver, &mut args)?;
    opt("--content", b.content.as_ref(), resolver, &mut args)?;
    if let Some(ca) = run.env.provider.cluster.ca_file() {
        args.extend(["--ca-file".into(), ca.display().to_string()]);
    }
    Ok(args)
}

fn describe(x: &HttpExchange) -> String {
    let mut s = format!("{} {}", x.method, x.url);
    match x.status {
        Some(status) => s.push_str(&format!(" -> {status} ({}ms)", x.elapsed_ms)),
        None => s.push_str(&format!(
            " -> no response: {}",
            x.error.as_deref().unwrap_or("unknown error")
        )),
    }
    for (k, v) in &x.headers {
        s.push_str(&format!("\n  {k}: {v}"));
    }
    if !x.body.is_empty() {
        s.push_str("\n  body: ");
        s.push_str(&x.body);
    }
    s
}

fn report_text(report: &ProbeReport) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &report.token {
        parts.push(format!("token: {}", describe(t)));
    }
    if let Some(b) = &report.blob {
        parts.push(format!("storage: {}", describe(b)));
    }
    if let Some(e) = &report.error {
        parts.push(format!("probe: {e}"));
    }
    parts.join("\n")
}

/// The answer a step is judged on, or why there is none: the token answer for `token` steps,
/// the storage answer for `blob` steps.
fn answer(report: &ProbeReport, is_blob: bool) -> Result<&HttpExchange, String> {
    let exchange = if is_blob {
        report.blob.as_ref()
    } else {
        report.token.as_ref()
    };
    match exchange {
        Some(x) if x.status.is_some() => Ok(x),
        Some(x) => Err(x.error.clone().unwrap_or_else(|| "no response".into())),
        None => {
            let why = report.error.clone().unwrap_or_else(|| "no response".into());
            Err(match (&report.token, is_blob) {
                (Some(t), true) => format!(
                    "{why}; token answer: {} {}",
                    t.status.map(|s| s.to_string()).unwrap_or_default(),
                    t.body.trim()
                ),
                _ => why,
            })
        }
    }
}

/// One request sent from one pod, and what the probe reported.
struct Sent {
    /// `app`, `app-3`, or `app-3 #1` when a pod sends several at once.
    label: String,
    report: ProbeReport,
    elapsed: Duration,
}

/// Runs the probe with `args` `per_pod` times at once in each of `pods` (all at once).
async fn send(
    run: &ScenarioRun<'_>,
    pods: &[String],
    per_pod: u32,
    args: &[String],
    source: Option<IpAddr>,
) -> Result<Vec<Sent>, StepError> {
    let mut targets = Vec::new();
    for name in pods {
        let pod = run.pod(name)?.clone();
        for i in 0..per_pod {
            let label = match per_pod {
                1 => name.clone(),
                _ => format!("{name} #{i}"),
            };
            targets.push((name.clone(), pod.clone(), label));
        }
    }
    let limit = run.env.step_timeout;
    let cluster = &run.env.provider.cluster;
    let sent = join_all(targets.into_iter().map(|(name, pod, label)| async move {
        let started = Instant::now();
        let probe = async {
            match source {
                Some(source) => cluster.run_probe_from(&pod, source, args).await,
                None => cluster.run_probe(&pod, args).await,
            }
        };
        let report = tokio::time::timeout(limit, probe)
            .await
            .map_err(|_| StepError::ProbeTimeout { pod: name, limit })?
            .map_err(StepError::Provider)?;
        Ok(Sent {
            label,
            report,
            elapsed: started.elapsed(),
        })
    }))
    .await;
    sent.into_iter().collect()
}

/// What several requests showed: a count of answers by status, then the probe output of the
/// first that failed (or of the first, when none did).
fn output(sent: &[Sent], failed: &[&str]) -> String {
    if let [one] = sent {
        return report_text(&one.report);
    }
    let mut by_status: Vec<(String, usize)> = Vec::new();
    for s in sent {
        let status = s
            .report
            .token
            .iter()
            .chain(&s.report.blob)
            .last()
            .and_then(|x| x.status)
            .map_or("no answer".to_string(), |c| c.to_string());
        match by_status.iter_mut().find(|(k, _)| *k == status) {
            Some((_, n)) => *n += 1,
            None => by_status.push((status, 1)),
        }
    }
    let counts = by_status
        .iter()
        .map(|(s, n)| format!("{n} × {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    let shown = sent
        .iter()
        .find(|s| failed.contains(&s.label.as_str()))
        .unwrap_or(&sent[0]);
    format!(
        "{} requests: {counts}\n{}:\n{}",
        sent.len(),
        shown.label,
        report_text(&shown.report)
    )
}

/// Sends the step's requests once and judges every answer, then what the cloud received and
/// what the cluster holds. A request that got no answer is an error whatever the step expects.
async fn probe_once(
    run: &ScenarioRun<'_>,
    pods: &[String],
    per_pod: u32,
    args: &[String],
    source: Option<IpAddr>,
    is_blob: bool,
    expect: Option<&Expect>,
) -> Result<Attempt, ActionError> {
    let cursor = run.env.provider.request_cursor();
    let sent = send(run, pods, per_pod, args, source).await?;
    let mut answered = Vec::new();
    let mut unanswered = Vec::new();
    for s in &sent {
        match answer(&s.report, is_blob) {
            Ok(exchange) => answered.push(Answer {
                label: s.label.clone(),
                exchange,
                elapsed: s.elapsed,
            }),
            Err(why) => unanswered.push((s.label.as_str(), why)),
        }
    }
    if expect.is_some_and(|e| e.answered.as_ref().is_some_and(|a| !a.value)) {
        return Ok(unanswered_expected(run, &sent, &answered, expect, cursor).await?);
    }
    let must_answer = expect
        .and_then(|e| e.answered.as_ref())
        .is_some_and(|a| a.value);
    if must_answer && !unanswered.is_empty() {
        // An explicit `answered: true` makes a missing answer a failed expectation.
        let failed: Vec<&str> = unanswered.iter().map(|(l, _)| *l).collect();
        let failures = unanswered
            .iter()
            .map(|(label, why)| podid_reports::Failure {
                expectation: "answered".into(),
                expected: "an HTTP answer".into(),
                actual: format!("{label}: {why}"),
                message: format!("{label} got no answer"),
            })
            .collect();
        return Ok(Attempt {
            failures,
            output: Some(output(&sent, &failed)),
        });
    }
    if !unanswered.is_empty() {
        let failed: Vec<&str> = unanswered.iter().map(|(l, _)| *l).collect();
        let why = match (sent.len(), unanswered.as_slice()) {
            (1, [(_, why)]) => why.clone(),
            (total, all) => format!(
                "{} of {total} requests got no answer: {}",
                all.len(),
                all.iter()
                    .map(|(l, why)| format!("{l}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        return Err(ActionError {
            error: StepError::NoRequest(why),
            output: Some(output(&sent, &failed)),
        });
    }
    let Some(expect) = expect else {
        return Ok(Attempt {
            failures: Vec::new(),
            output: Some(output(&sent, &[])),
        });
    };
    let judged = answers::judge(
        expect,
        &answered,
        run.signing_keys.as_ref(),
        &run.inst,
        false,
    );
    let failed: Vec<&str> = judged.failed.iter().map(String::as_str).collect();
    let output = output(&sent, &failed);
    let mut failures = judged.failures;
    failures.extend(check_surroundings(run, expect, cursor).await?);
    Ok(Attempt {
        failures,
        output: Some(output),
    })
}

/// Judges a step that must get no answer (`answered: false`): every answer is a failure; the
/// requests the cloud received and what the cluster holds are checked as for any step.
async fn unanswered_expected(
    run: &ScenarioRun<'_>,
    sent: &[Sent],
    answered: &[Answer<'_>],
    expect: Option<&Expect>,
    cursor: Option<u64>,
) -> Result<Attempt, StepError> {
    let labels: Vec<&str> = answered.iter().map(|a| a.label.as_str()).collect();
    let mut failures: Vec<podid_reports::Failure> = answered
        .iter()
        .map(|a| podid_reports::Failure {
            expectation: "answered".into(),
            expected: "no HTTP answer".into(),
            actual: format!(
                "{}: status {}",
                a.label,
                a.exchange.status.unwrap_or_default()
            ),
            message: format!("{} got an answer", a.label),
        })
        .collect();
    if let Some(expect) = expect {
        failures.extend(check_surroundings(run, expect, cursor).await?);
    }
    Ok(Attempt {
        failures,
        output: Some(output(sent, &labels)),
    })
}

/// Runs a probe step, retrying while its expectations fail and its `within` lasts.
async fn probe_step(
    run: &ScenarioRun<'_>,
    step: &Step,
    pod: &str,
    per_pod: u32,
    args: Vec<String>,
    source: Option<IpAddr>,
    is_blob: bool,
) -> Result<Attempt, ActionError> {
    let pods = run.inst.pod_names(pod);
    let expect = step.expect.as_ref();
    retried(step, || {
        probe_once(run, &pods, per_pod, &args, source, is_blob, expect)
    })
    .await
}

/// A `token` step.
pub(super) async fn token(
    run: &ScenarioRun<'_>,
    step: &Step,
    t: &TokenStep,
) -> Result<Attempt, ActionError> {
    let args = token_args(t, &run.inst)?;
    let per_pod = t.concurrent.as_ref().map_or(1, |n| n.value.max(1));
    let source = match &t.source_address {
        None => None,
        Some(a) => {
            let text = render(a, &run.inst, "sourceAddress")?;
            Some(text.parse::<IpAddr>().map_err(|e| {
                StepError::from(crate::provider::ProviderError::plain(format!(
                    "sourceAddress `{text}` is not an IP address: {e}"
                )))
            })?)
        }
    };
    probe_step(run, step, &t.pod.value, per_pod, args, source, false).await
}

/// A `blob` step.
pub(super) async fn blob(
    run: &ScenarioRun<'_>,
    step: &Step,
    b: &BlobStep,
) -> Result<Attempt, ActionError> {
    let args = blob_args(run, b)?;
    probe_step(run, step, &b.pod.value, 1, args, None, true).await
}
