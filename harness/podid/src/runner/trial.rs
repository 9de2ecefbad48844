//! One trial from start to end: skipped with its reason, or its cloud declared, let through
//! the gate, set up, its steps run in order (those after a failure skipped, those of other
//! modes not applicable), diagnostics saved on failure, everything it created removed, and
//! the components recovered if it stopped any. Events reach the reporter as they happen.

use std::time::{Duration, Instant, SystemTime};

use podid_reports::{Failure, Outcome, Reporter, ScenarioReport};
use podid_scenario::NmiMode;

use super::error::StepError;
use super::scenario_run::ScenarioRun;
use super::sharing::{MANY_PODS, pod_count};
use super::{Environment, PlannedTrial, report, steps};
use crate::instance::{ProviderFacts, ScenarioInstance};
use crate::provider::ConfigureReport;

/// How long a trial that created many pods waits for MIC to remove their AzureAssignedIdentities.
const MIC_CLEANUP: Duration = Duration::from_secs(90);

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

/// What the provider contributes to every scenario instance.
pub(super) fn provider_facts(env: &Environment) -> ProviderFacts {
    let cloud = &env.provider.cloud;
    let cluster = &env.provider.cluster;
    ProviderFacts {
        run_id: env.run_id.clone(),
        tenant_id: cloud.tenant_id(),
        subscription_id: cloud.subscription_id(),
        nodes: cluster.nodes().to_vec(),
        mic_namespace: cluster.mic_namespace(),
        cluster_identity: cluster.cluster_identity(),
    }
}

/// Runs one planned trial to completion; never panics on a scenario's behalf, never leaves
/// its objects behind.
///
/// The order: the scenario's cloud is declared first (NMI/MIC flags may name its values and
/// are rendered with them), then the trial waits at the gate for its configuration, then it
/// sets up, runs its steps, saves diagnostics on failure, cleans up, and, when a step stopped
/// or restarted a component, brings every component back.
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
    let trial = &planned.trial;
    let scenario = trial.scenario();
    let push = |report: &mut ScenarioReport, step: podid_reports::StepReport| {
        reporter.step_finished(&report.name, &step);
        if step.status != Outcome::Passed && report.status == Outcome::Passed {
            report.status = step.status;
        }
        report.steps.push(step);
    };
    // A trial's time runs from when it may start (through the gate, its NMI/MIC configured):
    // the time it queued behind other trials is theirs.
    let finish = |mut report: ScenarioReport, from: Instant| {
        report.duration = from.elapsed();
        reporter.scenario_finished(&report);
        report
    };

    let inst = ScenarioInstance::new(scenario, trial.mode, provider_facts(env), |account| {
        env.provider.cloud.account_url(account)
    });
    let mut run = ScenarioRun::new(env, scenario, inst, !planned.exclusive);
    if let Err(e) = run.declare_cloud().await {
        let step = report::errored(
            0,
            "declare the scenario's cloud".into(),
            "setup",
            started.elapsed(),
            "the scenario's identities, principals and storage in the cloud",
            &e,
            None,
        );
        push(&mut report, step);
        return finish(report, started);
    }
    let config = match trial.flags_need_rendering() {
        false => planned.config.clone(),
        true => match trial.rendered_config(&run.inst) {
            Ok(config) => config,
            Err((flag, e)) => {
                let step = report::errored(
                    0,
                    "render the NMI/MIC flags".into(),
                    "configure",
                    started.elapsed(),
                    "every flag's references resolved",
                    &StepError::reference(format!("flag `{flag}`"))(e),
                    None,
                );
                push(&mut report, step);
                return finish(report, started);
            }
        },
    };

    let entered = env
        .gate
        .enter(env.provider.cluster.as_ref(), &config, planned.exclusive)
        .await;
    let mut guard = match entered {
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
            return finish(report, started);
        }
    };

    run.begin();
    let running = Instant::now();
    tracing::debug!(trial = %planned.name, waited_ms = started.elapsed().as_millis() as u64, "trial starts");
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
        if !trial.applies(&step.value) {
            // Not applicable in this mode: reported, but no outcome of the trial's.
            let step_report = report::not_applicable(i + 1, &step.value, trial.mode);
            reporter.step_finished(&report.name, &step_report);
            report.steps.push(step_report);
            continue;
        }
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
    let mut problems = run.cleanup().await;
    if trial.mode == NmiMode::Standard && pod_count(trial) > MANY_PODS {
        problems.extend(run.await_mic_cleanup(run.env.scaled(MIC_CLEANUP)).await);
    }
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
    if run.needs_recover {
        let index = report.steps.len() + 1;
        let recover_started = Instant::now();
        let step = match env.provider.cluster.recover(&config).await {
            Ok(recovered) => {
                let failures = nmi_cleanup_failures(&recovered);
                (!failures.is_empty()).then(|| {
                    report::phase(
                        index,
                        "NMI stopped to recover the components cleans up",
                        "recover",
                        Outcome::Failed,
                        failures,
                    )
                })
            }
            Err(e) => Some(report::errored(
                index,
                "bring every component back".into(),
                "recover",
                recover_started.elapsed(),
                "NMI, MIC and the API server running as configured",
                &StepError::Provider(e),
                None,
            )),
        };
        if let Some(step) = step {
            guard.invalidate();
            push(&mut report, step);
        }
    }
    drop(guard);
    tracing::debug!(trial = %planned.name, ran_ms = running.elapsed().as_millis() as u64, "trial ends");
    finish(report, running)
}
