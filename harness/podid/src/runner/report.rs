//! Step reports are built here and only here, so every step, skipped or errored, reads the same.

use std::time::Duration;

use podid_reports::{Failure, Outcome, StepReport};
use podid_scenario::{NmiMode, Step};

use super::error::StepError;
use super::steps::step_name;

/// The `kind` column of a scenario step (`token`, `wait`, …).
pub fn step_kind(step: &Step) -> String {
    step.action().map(|a| a.keyword()).unwrap_or("?").into()
}

/// A step that did not run because an earlier one failed.
pub fn skipped(index: usize, step: &Step) -> StepReport {
    not_run(index, step, "not run: an earlier step failed".into())
}

/// A step written for other NMI modes than the trial's.
pub fn not_applicable(index: usize, step: &Step, mode: NmiMode) -> StepReport {
    not_run(
        index,
        step,
        format!("not applicable in {} mode", mode.as_str()),
    )
}

/// A step reported as skipped, saying why it did not run.
fn not_run(index: usize, step: &Step, why: String) -> StepReport {
    StepReport {
        index,
        name: step_name(step),
        kind: step_kind(step),
        status: Outcome::Skipped,
        duration: Duration::ZERO,
        failures: Vec::new(),
        output: Some(why),
    }
}

/// A step judged on its expectations: passed when none failed.
pub fn judged(
    index: usize,
    step: &Step,
    duration: Duration,
    failures: Vec<Failure>,
    output: Option<String>,
) -> StepReport {
    StepReport {
        index,
        name: step_name(step),
        kind: step_kind(step),
        status: if failures.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Failed
        },
        duration,
        failures,
        output,
    }
}

/// A step, or a phase of the trial outside the steps (`setup`, `configure`, `cleanup`), that
/// could not do its work.
pub fn errored(
    index: usize,
    name: String,
    kind: &str,
    duration: Duration,
    expected: &str,
    error: &StepError,
    output: Option<String>,
) -> StepReport {
    let message = error.report_text();
    StepReport {
        index,
        name,
        kind: kind.into(),
        status: Outcome::Errored,
        duration,
        failures: vec![Failure {
            expectation: kind.into(),
            expected: expected.into(),
            actual: message.clone(),
            message,
        }],
        output,
    }
}

/// A phase outside the steps whose checks failed (NMI not cleaning up, objects left behind).
pub fn phase(
    index: usize,
    name: &str,
    kind: &str,
    status: Outcome,
    failures: Vec<Failure>,
) -> StepReport {
    StepReport {
        index,
        name: name.into(),
        kind: kind.into(),
        status,
        duration: Duration::ZERO,
        failures,
        output: None,
    }
}
