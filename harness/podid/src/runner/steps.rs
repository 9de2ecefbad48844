//! Performing one step and judging it.

use std::time::{Duration, Instant};

use podid_probe::{HttpExchange, ProbeReport};
use podid_reports::{Failure, Outcome, StepReport};
use podid_scenario::reference::{self, Resolve};
use podid_scenario::{Action, BlobOp, Expect, ObjectKind, Step, Template, WaitFor};

use super::{ScenarioRun, pod};
use crate::expect::{self, Observed};
use crate::objects;
use crate::provider::Provider;

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
            _ => format!("wait for {} mock request expectation(s)", w.requests.len()),
        },
        Some(Action::Sleep(d)) => format!("sleep {d}"),
        None => "invalid step".into(),
    }
}

fn render(t: &Template, resolver: &dyn Resolve) -> Result<String, String> {
    reference::render(t, resolver).map_err(|e| e.to_string())
}

fn opt(
    flag: &str,
    value: Option<&Template>,
    resolver: &dyn Resolve,
    args: &mut Vec<String>,
) -> Result<(), String> {
    if let Some(t) = value {
        args.push(flag.to_string());
        args.push(render(t, resolver)?);
    }
    Ok(())
}

fn token_args(
    t: &podid_scenario::TokenStep,
    resolver: &dyn Resolve,
) -> Result<Vec<String>, String> {
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
        args.push(format!("{k}: {}", render(v, resolver)?));
    }
    for (k, v) in &t.query {
        args.push("--query".into());
        args.push(format!("{k}={}", render(v, resolver)?));
    }
    Ok(args)
}

fn blob_args<P: Provider>(
    run: &ScenarioRun<'_, P>,
    b: &podid_scenario::BlobStep,
) -> Result<Vec<String>, String> {
    let resolver = &run.inst;
    let mut args = vec!["blob".to_string()];
    let resource = match &b.resource {
        Some(r) => render(r, resolver)?,
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
        .ok_or_else(|| format!("storage account `{}` is not declared", b.account.value))?;
    args.extend(["--account-url".into(), url]);
    args.extend([
        "--op".into(),
        match b.op {
            BlobOp::Read => "read",
            BlobOp::Write => "write",
            BlobOp::List => "list",
        }
        .into(),
    ]);
    args.extend(["--container".into(), render(&b.container, resolver)?]);
    opt("--blob", b.blob.as_ref(), resolver, &mut args)?;
    opt("--content", b.content.as_ref(), resolver, &mut args)?;
    if let Some(ca) = run.env.provider.ca_file() {
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

fn errored(index: usize, step: &Step, started: Instant, message: String) -> StepReport {
    StepReport {
        index,
        name: step_name(step),
        kind: step.action().map(|a| a.keyword()).unwrap_or("?").into(),
        status: Outcome::Errored,
        duration: started.elapsed(),
        failures: vec![Failure {
            expectation: "action".into(),
            expected: "the action to complete".into(),
            actual: message.clone(),
            message,
        }],
        output: None,
    }
}

/// Runs one probe-based step (token or blob) once; returns its failures and output.
async fn probe_once<P: Provider>(
    run: &ScenarioRun<'_, P>,
    pod_name: &str,
    args: &[String],
    is_blob: bool,
    expect: Option<&Expect>,
) -> Result<(Vec<Failure>, String), String> {
    let pod = pod(run, pod_name)?.clone();
    let cloud = run.env.provider.cloud();
    let first_seq = cloud.next_seq();
    let started = Instant::now();
    let report = tokio::time::timeout(run.env.step_timeout, run.env.provider.run_probe(&pod, args))
        .await
        .map_err(|_| {
            format!(
                "the probe in pod {pod_name} did not finish within {}s",
                run.env.step_timeout.as_secs()
            )
        })?
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let (requests, trial_requests) = run.requests_since(first_seq);
    let (response, missing_reason) = if is_blob {
        let why = report.error.clone().map(|e| match &report.token {
            Some(t) => format!(
                "{e}; token answer: {} {}",
                t.status.map(|s| s.to_string()).unwrap_or_default(),
                t.body.trim()
            ),
            None => e,
        });
        (report.blob.as_ref(), why)
    } else {
        (report.token.as_ref(), report.error.clone())
    };
    let observed = Observed {
        response,
        missing_reason,
        elapsed,
        requests: &requests,
        trial_requests: &trial_requests,
        cloud,
    };
    let failures = match expect {
        Some(e) => expect::check(e, &observed, &run.inst),
        None => Vec::new(),
    };
    Ok((failures, report_text(&report)))
}

/// Runs a step and judges it.
pub async fn run_step<P: Provider>(
    run: &mut ScenarioRun<'_, P>,
    index: usize,
    step: &Step,
) -> StepReport {
    let started = Instant::now();
    let Some(action) = step.action() else {
        return errored(index, step, started, "the step has no single action".into());
    };
    let mut output = None;
    let result: Result<Vec<Failure>, String> = match action {
        Action::Token(_) | Action::Blob(_) => {
            let (pod_name, args, is_blob) = match action {
                Action::Token(t) => (t.pod.value.clone(), token_args(t, &run.inst), false),
                Action::Blob(b) => (b.pod.value.clone(), blob_args(run, b), true),
                _ => unreachable!("matched above"),
            };
            match args {
                Err(e) => Err(e),
                Ok(args) => {
                    let deadline = step.within.map(|w| Instant::now() + w.0);
                    loop {
                        match probe_once(run, &pod_name, &args, is_blob, step.expect.as_ref()).await
                        {
                            Err(e) => break Err(e),
                            Ok((failures, text)) => {
                                output = Some(text);
                                let retry = !failures.is_empty()
                                    && deadline.is_some_and(|d| Instant::now() + POLL < d);
                                if !retry {
                                    break Ok(failures);
                                }
                                tokio::time::sleep(POLL).await;
                            }
                        }
                    }
                }
            }
        }
        Action::Apply(cluster) => run.apply_cluster(cluster).await.map(|_| Vec::new()),
        Action::Delete(r) => delete(run, r).await.map(|_| Vec::new()),
        Action::Patch(p) => patch(run, p).await.map(|_| Vec::new()),
        Action::Wait(w) => wait(run, w).await,
        Action::Sleep(d) => {
            tokio::time::sleep(d.0).await;
            Ok(Vec::new())
        }
    };
    match result {
        Err(e) => {
            let mut r = errored(index, step, started, e);
            r.output = output;
            r
        }
        Ok(failures) => StepReport {
            index,
            name: step_name(step),
            kind: action.keyword().into(),
            status: if failures.is_empty() {
                Outcome::Passed
            } else {
                Outcome::Failed
            },
            duration: started.elapsed(),
            failures,
            output,
        },
    }
}

async fn delete<P: Provider>(
    run: &mut ScenarioRun<'_, P>,
    r: &podid_scenario::ObjectRef,
) -> Result<(), String> {
    let name = render(&r.name, &run.inst)?;
    if r.kind.value == ObjectKind::Pod && run.inst.pods.contains_key(&name) {
        run.delete_pod(&name).await?;
        return Ok(());
    }
    let ns = run
        .inst
        .namespace_for(r.namespace.as_ref().map(|n| n.as_str()));
    let client = run.env.provider.client();
    if !objects::delete(&run.env.kinds, &client, r.kind.value, &ns, &name).await? {
        return Err(format!("{:?} {ns}/{name} does not exist", r.kind.value));
    }
    Ok(())
}

async fn patch<P: Provider>(
    run: &mut ScenarioRun<'_, P>,
    p: &podid_scenario::PatchStep,
) -> Result<(), String> {
    let name = render(&p.name, &run.inst)?;
    let ns = run
        .inst
        .namespace_for(p.namespace.as_ref().map(|n| n.as_str()));
    let body = reference::render_json(&p.patch.value, &run.inst).map_err(|e| e.to_string())?;
    objects::merge_patch(
        &run.env.kinds,
        &run.env.provider.client(),
        p.kind.value,
        &ns,
        &name,
        &body,
    )
    .await
}

async fn wait<P: Provider>(
    run: &mut ScenarioRun<'_, P>,
    w: &podid_scenario::WaitStep,
) -> Result<Vec<Failure>, String> {
    let timeout = w.timeout.map(|t| t.0).unwrap_or(WAIT_DEFAULT);
    let deadline = Instant::now() + timeout;
    let (Some(kind), Some(name)) = (&w.kind, &w.name) else {
        return wait_for_requests(run, w, timeout, deadline).await;
    };
    let kind = kind.value;
    let name = render(name, &run.inst)?;
    let ns = run
        .inst
        .namespace_for(w.namespace.as_ref().map(|n| n.as_str()));
    let client = run.env.provider.client();
    let want = w.condition == WaitFor::Exists;
    loop {
        if objects::exists(&run.env.kinds, &client, kind, &ns, &name).await? == want {
            return Ok(Vec::new());
        }
        if Instant::now() >= deadline {
            return Ok(vec![Failure {
                expectation: "wait".into(),
                expected: format!("{kind:?} {ns}/{name} {:?}", w.condition).to_lowercase(),
                actual: format!("not so after {}s", timeout.as_secs()),
                message: "timed out waiting".into(),
            }]);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the mock cloud has received what `w.requests` describes; on timeout the
/// failures say what was missing at the last look.
async fn wait_for_requests<P: Provider>(
    run: &ScenarioRun<'_, P>,
    w: &podid_scenario::WaitStep,
    timeout: Duration,
    deadline: Instant,
) -> Result<Vec<Failure>, String> {
    let cloud = run.env.provider.cloud();
    let step_seq = cloud.next_seq();
    let started = Instant::now();
    let expect = Expect {
        requests: w.requests.clone(),
        ..Expect::default()
    };
    loop {
        let (requests, trial_requests) = run.requests_since(step_seq);
        let observed = Observed {
            response: None,
            missing_reason: None,
            elapsed: started.elapsed(),
            requests: &requests,
            trial_requests: &trial_requests,
            cloud,
        };
        let failures = expect::check(&expect, &observed, &run.inst);
        if failures.is_empty() {
            return Ok(failures);
        }
        if Instant::now() >= deadline {
            return Ok(failures
                .into_iter()
                .map(|f| Failure {
                    message: format!("after waiting {}s: {}", timeout.as_secs(), f.message),
                    ..f
                })
                .collect());
        }
        tokio::time::sleep(POLL).await;
    }
}
