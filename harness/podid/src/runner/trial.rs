//! One trial from start to end: skipped with its reason, or let through the gate, set up, its
//! steps run in order (those after a failure skipped), diagnostics saved on failure, and
//! everything it created removed. Events reach the reporter as they happen.

use std::time::{Duration, Instant, SystemTime};

use podid_reports::{Failure, Outcome, Reporter, ScenarioReport};

use super::error::StepError;
use super::scenario_run::ScenarioRun;
use super::{Environment, PlannedTrial, report, steps};
use crate::instance::ScenarioInstance;
use crate::provider::ConfigureReport;

fn empty_report(planned: &PlannedTrial) -> ScenarioReport {
    let trial = &planned.trial;
    let scenario = trial.scenario();
    ScenarioReport {
        name: scenario.name.value.clone(),
        file: trial.file.path.display().to_string(),
        mode: trial.mode.as_str().to_string(),
        tags: scenario.tags.iter().map(|t| t.value.clone()).collect(),
        status: Outcome::Passed,
        duration: Duration::ZERO,
        steps: Vec::new(),
        attachments: Vec::new(),
        skip_reason: None,
    }
}

/// Failures for each NMI that, stopped to reconfigure, left its iptables chain behind.
fn nmi_cleanup_failures(configured: &ConfigureReport) -> Vec<Failure> {
    configured
        .nmi_stops
        .iter()
        .filter(|s| !s.removed_own_chain)
        .map(|s| Failure {
            expectation: "nmi.stop".into(),
            expected: format!(
                "NMI on {} removes its aad-metadata chain when stopped",
                s.node
            ),
            actual: "the chain was still there after NMI stopped".into(),
            message: format!("NMI on {} did not remove its iptables chain", s.node),
        })
        .collect()
}

/// The report of a trial its provider cannot run: skipped, with the reason.
pub fn skipped_report(planned: &PlannedTrial, reporter: &dyn Reporter) -> ScenarioReport {
    let mut report = empty_report(planned);
    report.status = Outcome::Skipped;
    report.skip_reason = planned.skip.clone();
    reporter.scenario_finished(&report);
    report
}

/// Runs one planned trial to completion; never panics on a scenario's behalf, never leaves
/// its objects behind.
pub async fn run_trial(
    env: &Environment,
    planned: &PlannedTrial,
    reporter: &dyn Reporter,
) -> ScenarioReport {
    if planned.skip.is_some() {
        return skipped_report(planned, reporter);
    }
    let mut report = empty_report(planned);
    reporter.scenario_started(&planned.name);
    let started = Instant::now();
    let wall = SystemTime::now();
    let scenario = planned.trial.scenario();
    let push = |report: &mut ScenarioReport, step: podid_reports::StepReport| {
        reporter.step_finished(&report.name, &step);
        if step.status != Outcome::Passed && report.status == Outcome::Passed {
            report.status = step.status;
        }
        report.steps.push(step);
    };

    let entered = env
        .gate
        .enter(
            env.provider.cluster.as_ref(),
            &planned.config,
            planned.exclusive,
        )
        .await;
    let _guard = match entered {
        Ok((guard, configured)) => {
            let failures = configured
                .as_ref()
                .map(nmi_cleanup_failures)
                .unwrap_or_default();
            if !failures.is_empty() {
                let step = report::phase(
                    0,
                    "NMI stopped for the new configuration cleans up",
                    "configure",
                    Outcome::Failed,
                    failures,
                );
                push(&mut report, step);
            }
            guard
        }
        Err(e) => {
            let step = report::errored(
                0,
                "configure NMI and MIC".into(),
                "configure",
                started.elapsed(),
                "NMI and MIC running as the trial needs",
                &StepError::Provider(e),
                None,
            );
            push(&mut report, step);
            report.duration = started.elapsed();
            reporter.scenario_finished(&report);
            return report;
        }
    };

    let cloud = &env.provider.cloud;
    let inst = ScenarioInstance::new(
        scenario,
        planned.trial.mode,
        &env.run_id,
        &cloud.tenant_id(),
        &cloud.subscription_id(),
        env.provider.cluster.nodes(),
        |account| cloud.account_url(account),
    );
    let mut run = ScenarioRun::new(env, scenario, inst);
    let setup_started = Instant::now();
    if report.status == Outcome::Passed {
        if let Err(e) = run.setup().await {
            let step = report::errored(
                0,
                "set up the scenario".into(),
                "setup",
                setup_started.elapsed(),
                "the scenario's cloud and cluster objects in place",
                &e,
                None,
            );
            push(&mut report, step);
        }
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        let step_report = if report.status == Outcome::Passed {
            steps::run_step(&mut run, i + 1, &step.value).await
        } else {
            report::skipped(i + 1, &step.value)
        };
        push(&mut report, step_report);
    }
    if report.status != Outcome::Passed {
        report.attachments = run.save_diagnostics(wall, &report.steps).await;
    }
    let problems = run.cleanup().await;
    if !problems.is_empty() {
        let failures = problems
            .into_iter()
            .map(|p| Failure {
                expectation: "cleanup".into(),
                expected: "every object removed".into(),
                actual: p.clone(),
                message: p,
            })
            .collect();
        let index = report.steps.len() + 1;
        let step = report::phase(index, "cleanup", "cleanup", Outcome::Errored, failures);
        push(&mut report, step);
    }
    report.duration = started.elapsed();
    reporter.scenario_finished(&report);
    report
}
