//! Steps on the components themselves: `stop`, `start`, `kill`, `restart` (after which the
//! trial ends by recovering every component) and `health` (every addressed instance's
//! `/healthz`, each answer judged).

use std::time::Instant;

use podid_probe::HttpExchange;
use podid_scenario::{ComponentTarget, LifecycleAction, Step};

use super::answers::{self, Answer};
use super::names::target_name;
use super::{ActionError, Attempt, check_surroundings, retried};
use crate::provider::ComponentRef;
use crate::runner::error::StepError;
use crate::runner::scenario_run::ScenarioRun;

fn component_ref(target: &ComponentTarget) -> ComponentRef {
    ComponentRef {
        component: target.component.value,
        node: target.node.as_ref().map(|n| n.value.clone()),
        replica: target.replica.as_ref().map(|r| r.value),
    }
}

/// A lifecycle step; the trial recovers the components at its end whatever happens here.
pub(super) async fn lifecycle(
    run: &mut ScenarioRun<'_>,
    action: LifecycleAction,
    target: &ComponentTarget,
) -> Result<(), StepError> {
    if let Some(node) = &target.node {
        if run.inst.node(node).is_none() {
            return Err(StepError::UnknownNode(node.value.clone()));
        }
    }
    run.needs_recover = true;
    run.env
        .provider
        .cluster
        .lifecycle(action, &component_ref(target))
        .await?;
    Ok(())
}

/// Reads every addressed instance's health once and judges each answer.
async fn health_once(
    run: &ScenarioRun<'_>,
    step: &Step,
    target: &ComponentTarget,
) -> Result<Attempt, ActionError> {
    let cursor = run.env.provider.request_cursor();
    let started = Instant::now();
    let answers = run
        .env
        .provider
        .cluster
        .health(&component_ref(target))
        .await
        .map_err(StepError::Provider)?;
    let elapsed = started.elapsed();
    if answers.is_empty() {
        return Err(StepError::NoHealthAnswers(target_name(target)).into());
    }
    let output = answers
        .iter()
        .map(|a| format!("{}: {} {}", a.instance, a.status, a.body.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    let Some(expect) = &step.expect else {
        return Ok(Attempt {
            failures: Vec::new(),
            output: Some(output),
        });
    };
    let exchanges: Vec<HttpExchange> = answers
        .iter()
        .map(|a| HttpExchange {
            method: "GET".into(),
            url: format!("{}/healthz", a.instance),
            status: Some(a.status),
            headers: Vec::new(),
            body: a.body.clone(),
            error: None,
            elapsed_ms: 0,
        })
        .collect();
    let labelled: Vec<Answer> = answers
        .iter()
        .zip(&exchanges)
        .map(|(a, x)| Answer {
            label: a.instance.clone(),
            exchange: x,
            elapsed,
        })
        .collect();
    let mut failures = answers::judge(expect, &labelled, None, &run.inst, true).failures;
    failures.extend(check_surroundings(run, expect, cursor).await?);
    Ok(Attempt {
        failures,
        output: Some(output),
    })
}

/// A `health` step, retried with its `within`.
pub(super) async fn health(
    run: &ScenarioRun<'_>,
    step: &Step,
    target: &ComponentTarget,
) -> Result<Attempt, ActionError> {
    retried(step, || health_once(run, step, target)).await
}
