//! Performing one step and judging it.

use std::time::{Duration, Instant};

use podid_probe::{HttpExchange, ProbeReport};
use podid_reports::{Failure, StepReport};
use podid_scenario::reference::{self, Resolve};
use podid_scenario::{Action, BlobOp, Expect, Step, Template, WaitFor};
use podid_wait::{Check, Poll, WaitError};

use super::error::StepError;
use super::report;
use super::scenario_run::ScenarioRun;
use crate::expect::{self, Observed};
use crate::objects;

/// Poll interval of `within` retries and `wait` steps.
const POLL: Duration = Duration::from_millis(200);
/// Default deadline of a `wait` step.
const WAIT_DEFAULT: Duration = Duration::from_secs(30);

/// A readable name for a step (its own `name`, else derived from the action).
pub fn step_name(step: &Step) -> String {
    if let Some(n) = &step.name {
        return n.clone();
    }
    match step.action() {
        Some(Action::Token(t)) => {
            let mut s = format!("token from {}", t.pod.value);
            if let Some(c) = &t.client_id {
                s.push_str(&format!(" (client_id {})", c.value));
            }
            s
        }
        Some(Action::Blob(b)) => format!(
            "blob {:?} {}/{} from {}",
            b.op, b.account.value, b.container.value, b.pod.value
        )
        .to_lowercase(),
        Some(Action::Apply(_)) => "apply objects".into(),
        Some(Action::Delete(r)) => format!("delete {:?} {}", r.kind.value, r.name.value),
        Some(Action::Patch(p)) => format!("patch {:?} {}", p.kind.value, p.name.value),
        Some(Action::Wait(w)) => match (&w.kind, &w.name) {
            (Some(kind), Some(name)) => {
                format!(
                    "wait for {:?} {} ({:?})",
                    kind.value, name.value, w.condition
                )
            }
            _ => format!("wait for {} cloud request expectation(s)", w.requests.len()),
        },
        Some(Action::Sleep(d)) => format!("sleep {d}"),
        Some(Action::Cloud(_)) => "change the cloud".into(),
        Some(Action::Lifecycle(a, t)) => format!("{} {:?}", a.keyword(), t.component.value),
        Some(Action::Health(t)) => format!("health of {:?}", t.component.value),
        None => "invalid step".into(),
    }
}

fn render(t: &Template, resolver: &dyn Resolve, what: &str) -> Result<String, StepError> {
    reference::render(t, resolver).map_err(StepError::reference(what))
}

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

fn token_args(
    t: &podid_scenario::TokenStep,
    resolver: &dyn Resolve,
) -> Result<Vec<String>, StepError> {
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
        args.push("--header".into());
        args.push(format!("{k}: {}", render(v, resolver, "headers")?));
    }
    for (k, v) in &t.query {
        args.push("--query".into());
        args.push(format!("{k}={}", render(v, resolver, "query")?));
    }
    Ok(args)
}

fn blob_args(
    run: &ScenarioRun<'_>,
    b: &podid_scenario::BlobStep,
) -> Result<Vec<String>, StepError> {
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

/// A step's action that failed, with whatever output it produced first.
struct ActionError {
    error: StepError,
    output: Option<String>,
}

impl From<StepError> for ActionError {
    fn from(error: StepError) -> Self {
        Self {
            error,
            output: None,
        }
    }
}

/// What a step's action showed: its failed expectations and its output.
type Judgement = (Vec<Failure>, Option<String>);

/// What one attempt of a probe step showed: its failed expectations and the probe's output.
struct Attempt {
    failures: Vec<Failure>,
    output: String,
}

/// Runs one probe-based step (token or blob) once and judges it. A request that got no answer
/// is an error whatever the step expects.
async fn probe_once(
    run: &ScenarioRun<'_>,
    pod_name: &str,
    args: &[String],
    is_blob: bool,
    expect: Option<&Expect>,
) -> Result<Attempt, ActionError> {
    let pod = run.pod(pod_name)?.clone();
    let cursor = run.env.provider.request_cursor();
    let started = Instant::now();
    let limit = run.env.step_timeout;
    let report = tokio::time::timeout(limit, run.env.provider.cluster.run_probe(&pod, args))
        .await
        .map_err(|_| StepError::ProbeTimeout {
            pod: pod_name.to_string(),
            limit,
        })?
        .map_err(StepError::Provider)?;
    let elapsed = started.elapsed();
    let output = report_text(&report);
    let response = answer(&report, is_blob).map_err(|why| ActionError {
        error: StepError::NoRequest(why),
        output: Some(output.clone()),
    })?;
    let (requests, trial_requests) = run.requests_since(cursor);
    let observed = Observed {
        response: Some(response),
        missing_reason: None,
        elapsed,
        requests: &requests,
        trial_requests: &trial_requests,
        signing_keys: run.signing_keys.as_ref(),
    };
    let failures = match expect {
        Some(e) => expect::check(e, &observed, &run.inst),
        None => Vec::new(),
    };
    Ok(Attempt { failures, output })
}

/// Runs a probe step, retrying while its expectations fail and its `within` lasts.
async fn probe_step(
    run: &ScenarioRun<'_>,
    step: &Step,
    pod_name: &str,
    args: Vec<String>,
    is_blob: bool,
) -> Result<Attempt, ActionError> {
    let within = step.within.map(|w| w.0).unwrap_or(Duration::ZERO);
    let expect = step.expect.as_ref();
    let outcome = podid_wait::until(Poll::every(POLL, within), || async {
        match probe_once(run, pod_name, &args, is_blob, expect).await {
            Ok(attempt) if attempt.failures.is_empty() => Check::Done(attempt),
            Ok(attempt) => Check::Pending(Ok(attempt)),
            Err(e) => Check::Failed(Err(e)),
        }
    })
    .await;
    match outcome {
        Ok(attempt) => Ok(attempt),
        Err(end) => end.into_state(),
    }
}

/// Runs a step and judges it.
pub async fn run_step(run: &mut ScenarioRun<'_>, index: usize, step: &Step) -> StepReport {
    let started = Instant::now();
    let result = perform(run, step).await;
    match result {
        Ok((failures, output)) => report::judged(index, step, started.elapsed(), failures, output),
        Err(failed) => report::errored(
            index,
            step_name(step),
            &report::step_kind(step),
            started.elapsed(),
            "the action to complete",
            &failed.error,
            failed.output,
        ),
    }
}

/// Performs a step's action and judges its expectations.
async fn perform(run: &mut ScenarioRun<'_>, step: &Step) -> Result<Judgement, ActionError> {
    let probed = |a: Attempt| (a.failures, Some(a.output));
    match step.action() {
        None => Err(StepError::NoAction.into()),
        Some(Action::Token(t)) => {
            let args = token_args(t, &run.inst)?;
            Ok(probed(
                probe_step(run, step, &t.pod.value, args, false).await?,
            ))
        }
        Some(Action::Blob(b)) => {
            let args = blob_args(run, b)?;
            Ok(probed(
                probe_step(run, step, &b.pod.value, args, true).await?,
            ))
        }
        Some(Action::Apply(cluster)) => {
            run.apply_cluster(cluster).await?;
            Ok((Vec::new(), None))
        }
        Some(Action::Delete(r)) => {
            delete(run, r).await?;
            Ok((Vec::new(), None))
        }
        Some(Action::Patch(p)) => {
            patch(run, p).await?;
            Ok((Vec::new(), None))
        }
        Some(Action::Wait(w)) => Ok((wait(run, w).await?, None)),
        Some(Action::Sleep(d)) => {
            tokio::time::sleep(d.0).await;
            Ok((Vec::new(), None))
        }
        Some(Action::Cloud(_) | Action::Lifecycle(..) | Action::Health(_)) => {
            Err(StepError::NoAction.into())
        }
    }
}

async fn delete(run: &mut ScenarioRun<'_>, r: &podid_scenario::ObjectRef) -> Result<(), StepError> {
    let name = render(&r.name, &run.inst, "name")?;
    if r.kind.value == podid_scenario::ObjectKind::Pod && run.inst.pods.contains_key(&name) {
        run.delete_pod(&name).await?;
        return Ok(());
    }
    let ns = run
        .inst
        .namespace_for(r.namespace.as_ref().map(|n| n.as_str()));
    let key = objects::key_of(r.kind.value, &ns, &name);
    if !run.env.provider.cluster.objects().delete(&key).await? {
        return Err(StepError::MissingObject(key.to_string()));
    }
    Ok(())
}

async fn patch(run: &mut ScenarioRun<'_>, p: &podid_scenario::PatchStep) -> Result<(), StepError> {
    let name = render(&p.name, &run.inst, "name")?;
    let ns = run
        .inst
        .namespace_for(p.namespace.as_ref().map(|n| n.as_str()));
    let body = reference::render_json(&p.patch.value, &run.inst)
        .map_err(StepError::reference("the patch"))?;
    let key = objects::key_of(p.kind.value, &ns, &name);
    Ok(run
        .env
        .provider
        .cluster
        .objects()
        .merge_patch(&key, &body)
        .await?)
}

async fn wait(
    run: &mut ScenarioRun<'_>,
    w: &podid_scenario::WaitStep,
) -> Result<Vec<Failure>, StepError> {
    let timeout = w.timeout.map(|t| t.0).unwrap_or(WAIT_DEFAULT);
    let (Some(kind), Some(name)) = (&w.kind, &w.name) else {
        return Ok(wait_for_requests(run, w, timeout).await);
    };
    let name = render(name, &run.inst, "name")?;
    let ns = run
        .inst
        .namespace_for(w.namespace.as_ref().map(|n| n.as_str()));
    let key = objects::key_of(kind.value, &ns, &name);
    let want = w.condition == WaitFor::Exists;
    let objects = run.env.provider.cluster.objects();
    let waited = podid_wait::until(Poll::every(POLL, timeout), || async {
        match objects.exists(&key).await {
            Ok(found) if found == want => Check::Done(()),
            Ok(_) => Check::Pending(None),
            Err(e) => Check::Failed(Some(e)),
        }
    })
    .await;
    match waited {
        Ok(()) => Ok(Vec::new()),
        Err(WaitError::Failed { state: Some(e), .. }) => Err(e.into()),
        Err(end) => Ok(vec![Failure {
            expectation: "wait".into(),
            expected: format!("{key} {:?}", w.condition).to_lowercase(),
            actual: format!("not so after {}s", end.waited().as_secs()),
            message: "timed out waiting".into(),
        }]),
    }
}

/// Waits until the cloud has received what `w.requests` describes; on timeout the failures
/// say what was missing at the last look.
async fn wait_for_requests(
    run: &ScenarioRun<'_>,
    w: &podid_scenario::WaitStep,
    timeout: Duration,
) -> Vec<Failure> {
    let cursor = run.env.provider.request_cursor();
    let started = Instant::now();
    let expect = Expect {
        requests: w.requests.clone(),
        ..Expect::default()
    };
    let waited = podid_wait::until(Poll::every(POLL, timeout), || async {
        let (requests, trial_requests) = run.requests_since(cursor);
        let observed = Observed {
            response: None,
            missing_reason: None,
            elapsed: started.elapsed(),
            requests: &requests,
            trial_requests: &trial_requests,
            signing_keys: run.signing_keys.as_ref(),
        };
        let failures = expect::check(&expect, &observed, &run.inst);
        if failures.is_empty() {
            Check::Done(())
        } else {
            Check::Pending(failures)
        }
    })
    .await;
    match waited {
        Ok(()) => Vec::new(),
        Err(end) => {
            let secs = end.waited().as_secs();
            end.into_state()
                .into_iter()
                .map(|f| Failure {
                    message: format!("after waiting {secs}s: {}", f.message),
                    ..f
                })
                .collect()
        }
    }
}
