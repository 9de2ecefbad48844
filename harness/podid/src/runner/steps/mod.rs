//! Performing one step and judging it. Each kind of action has its module; this one names
//! steps, dispatches, and runs the expectations every step may carry.
//!
//! Two shapes of step: a *repeatable* action (`token`, `blob`, `health`) only reads, so with
//! `within` the action and its checks are retried together; any other action changes
//! something, so it runs once and only its checks are retried.

mod answers;
mod cloud;
mod component;
mod exec;
mod names;
mod objects;
mod probe;
mod state;

use std::future::Future;
use std::time::{Duration, Instant};

use podid_reports::{Failure, StepReport};
use podid_scenario::reference::{self, Resolve};
use podid_scenario::{Action, Expect, Located, RequestExpect, Step, Template};
use podid_wait::{Check, Poll};

use super::attribution::Attribution;
use super::error::StepError;
use super::report;
use super::scenario_run::ScenarioRun;
use super::sharing;
use crate::expect;

pub use names::step_name;

/// Poll interval of `within` retries and `wait` steps.
const POLL: Duration = Duration::from_millis(200);

fn render(t: &Template, resolver: &dyn Resolve, what: &str) -> Result<String, StepError> {
    reference::render(t, resolver).map_err(StepError::reference(what))
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

/// What one attempt of a step showed: its failed expectations and its output.
struct Attempt {
    failures: Vec<Failure>,
    output: Option<String>,
}

/// Runs `attempt` until it shows no failure, an error, or the step's `within` has passed;
/// returns the last attempt.
async fn retried<F, Fut>(step: &Step, mut attempt: F) -> Result<Attempt, ActionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt, ActionError>>,
{
    let within = step.within.map(|w| w.0).unwrap_or(Duration::ZERO);
    let outcome = podid_wait::until(Poll::every(POLL, within), || {
        let next = attempt();
        async move {
            match next.await {
                Ok(a) if a.failures.is_empty() => Check::Done(a),
                Ok(a) => Check::Pending(Ok(a)),
                Err(e) => Check::Failed(Err(e)),
            }
        }
    })
    .await;
    match outcome {
        Ok(attempt) => Ok(attempt),
        Err(end) => end.into_state(),
    }
}

/// The failed `requests` expectations over what the cloud received since `cursor` (the step)
/// and since the trial began. An expectation that can be attributed (see
/// [`crate::runner::sharing::unattributable`]) counts only the trial's own requests, whether
/// or not the trial shares the cluster: what MIC still does for an earlier trial is not this
/// one's.
fn judge_requests(
    run: &ScenarioRun<'_>,
    expected: &[Located<RequestExpect>],
    cursor: Option<u64>,
) -> Vec<Failure> {
    if expected.is_empty() {
        return Vec::new();
    }
    let (requests, trial_requests) = run.requests_since(cursor);
    let attribution = Attribution::of(&run.inst);
    let own = (
        attribution.filter(requests.clone()),
        attribution.filter(trial_requests.clone()),
    );
    expected
        .iter()
        .flat_map(|r| {
            let (step, trial) = match sharing::unattributable(&r.value, run.scenario) {
                None => (&own.0, &own.1),
                Some(_) => (&requests, &trial_requests),
            };
            expect::check_requests(std::slice::from_ref(r), step, trial, &run.inst)
        })
        .collect()
}

/// The expectations on what the cloud received since `cursor` and on what the cluster and
/// the cloud hold now (objects, node identities, iptables).
async fn check_surroundings(
    run: &ScenarioRun<'_>,
    expect: &Expect,
    cursor: Option<u64>,
) -> Result<Vec<Failure>, StepError> {
    let mut failures = judge_requests(run, &expect.requests, cursor);
    failures.extend(state::check(run, expect).await?);
    Ok(failures)
}

/// Runs a step and judges it, with its own faults in place while it runs.
pub async fn run_step(run: &mut ScenarioRun<'_>, index: usize, step: &Step) -> StepReport {
    let started = Instant::now();
    let cloud = run.env.provider.cloud.as_ref();
    let result = match super::faults::add_all(cloud, &step.faults, &run.inst).await {
        Err(e) => Err(ActionError::from(e)),
        Ok(faults) => {
            let result = perform(run, step).await;
            let problems = super::faults::remove_all(run.env.provider.cloud.as_ref(), faults).await;
            match (result, problems.is_empty()) {
                (Ok(a), false) => Err(ActionError {
                    error: StepError::from(crate::provider::ProviderError::plain(format!(
                        "taking the step's faults out: {}",
                        problems.join("; ")
                    ))),
                    output: a.output,
                }),
                (result, _) => result,
            }
        }
    };
    match result {
        Ok(a) => report::judged(index, step, started.elapsed(), a.failures, a.output),
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
async fn perform(run: &mut ScenarioRun<'_>, step: &Step) -> Result<Attempt, ActionError> {
    let action = step.action().ok_or(StepError::NoAction)?;
    match action {
        Action::Token(t) => probe::token(run, step, t).await,
        Action::Blob(b) => probe::blob(run, step, b).await,
        Action::Health(target) => component::health(run, step, target).await,
        Action::Exec(e) => exec::exec(run, step, e).await,
        _ => {
            let cursor = run.env.provider.request_cursor();
            let started = Instant::now();
            let acted = act(run, action).await?;
            let Some(expect) = &step.expect else {
                return Ok(acted);
            };
            let mut failures = acted.failures;
            failures.extend(expect::check_latency(expect, started.elapsed()));
            if !failures.is_empty() {
                return Ok(Attempt {
                    failures,
                    output: acted.output,
                });
            }
            let run = &*run;
            let checked = retried(step, || async {
                Ok(Attempt {
                    failures: check_surroundings(run, expect, cursor).await?,
                    output: None,
                })
            })
            .await?;
            Ok(Attempt {
                failures: checked.failures,
                output: acted.output,
            })
        }
    }
}

/// Performs an action that changes something (so it runs once); a `wait` that timed out
/// shows as failures.
async fn act(run: &mut ScenarioRun<'_>, action: Action<'_>) -> Result<Attempt, StepError> {
    let mut failures = Vec::new();
    let output = match action {
        Action::Apply(cluster) => {
            run.apply_cluster(cluster).await?;
            None
        }
        Action::Delete(r) => {
            objects::delete(run, r).await?;
            None
        }
        Action::Patch(p) => {
            objects::patch(run, p).await?;
            None
        }
        Action::Wait(w) => {
            failures = objects::wait(run, w).await?;
            None
        }
        Action::Sleep(d) => {
            tokio::time::sleep(d.0).await;
            None
        }
        Action::Cloud(c) => cloud::change(run, c).await?,
        Action::Lifecycle(a, target) => {
            component::lifecycle(run, a, target).await?;
            None
        }
        Action::Token(_) | Action::Blob(_) | Action::Health(_) | Action::Exec(_) => {
            return Err(StepError::NoAction);
        }
    };
    Ok(Attempt { failures, output })
}
