//! JUnit XML, the format CI systems (Jenkins, GitLab, Azure DevOps) ingest for test results.
//!
//! One `testsuite` per NMI mode, one `testcase` per scenario; the first failure is the
//! `message`, every failed step's expected/actual is the text, and the step timeline goes to
//! `system-out`.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::error::ReportError;
use crate::failure_text::{failed_steps_block, scenario_one_liner};
use crate::human_duration::format_duration;
use crate::model::{Outcome, RunReport, ScenarioReport};

/// Renders the run as JUnit XML, after redaction.
pub fn render_junit(report: &RunReport) -> Result<String, ReportError> {
    let report = report.redacted();
    let mut junit = Report::new("podid");
    junit
        .set_timestamp(report.started_at)
        .set_time(report.duration);

    for mode in modes_in_order(&report) {
        let scenarios: Vec<&ScenarioReport> = report
            .scenarios
            .iter()
            .filter(|scenario| scenario.mode == mode)
            .collect();
        let mut suite = TestSuite::new(format!("podid.{}.{mode}", report.provider));
        suite
            .set_timestamp(report.started_at)
            .set_time(
                scenarios
                    .iter()
                    .map(|scenario| scenario.duration)
                    .sum::<Duration>(),
            )
            .add_property(Property::new("run_id", report.run_id.as_str()))
            .add_property(Property::new("provider", report.provider.as_str()))
            .add_property(Property::new("mode", mode.as_str()));
        for (name, version) in &report.environment {
            suite.add_property(Property::new(name.as_str(), version.as_str()));
        }
        suite.add_test_cases(scenarios.into_iter().map(test_case));
        junit.add_test_suite(suite);
    }

    junit.to_string().map_err(|source| ReportError::Junit {
        run_id: report.run_id.clone(),
        source,
    })
}

/// Modes in the order their first scenario appears, so suites follow the run.
fn modes_in_order(report: &RunReport) -> Vec<String> {
    let mut modes: Vec<String> = Vec::new();
    for scenario in &report.scenarios {
        if !modes.contains(&scenario.mode) {
            modes.push(scenario.mode.clone());
        }
    }
    modes
}

fn test_case(scenario: &ScenarioReport) -> TestCase {
    let mut case = TestCase::new(scenario.name.as_str(), status(scenario));
    case.set_classname(classname(&scenario.file))
        .set_time(scenario.duration)
        .add_property(Property::new("file", scenario.file.as_str()))
        .add_property(Property::new("mode", scenario.mode.as_str()));
    if !scenario.tags.is_empty() {
        case.add_property(Property::new("tags", scenario.tags.join(",")));
    }
    for attachment in &scenario.attachments {
        case.add_property(Property::new(
            format!("attachment.{}", attachment.name),
            attachment.path.to_string_lossy(),
        ));
    }
    if !scenario.steps.is_empty() {
        case.set_system_out(step_timeline(scenario));
    }
    case
}

fn status(scenario: &ScenarioReport) -> TestCaseStatus {
    match scenario.status {
        Outcome::Passed => TestCaseStatus::success(),
        Outcome::Skipped => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(scenario.skip_reason.as_deref().unwrap_or("skipped"));
            status
        }
        Outcome::Failed | Outcome::Errored => {
            let (kind, ty) = if scenario.status == Outcome::Failed {
                (NonSuccessKind::Failure, "assertion")
            } else {
                (NonSuccessKind::Error, "harness-error")
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_type(ty);
            if let Some(message) = scenario_one_liner(scenario) {
                status.set_message(message);
            }
            let description = failed_steps_block(scenario);
            if !description.is_empty() {
                status.set_description(description);
            }
            status
        }
    }
}

/// `nmi/denied.yaml` → `nmi.denied`: a dotted name that Jenkins groups like a package path.
fn classname(file: &str) -> String {
    let without_extension = file
        .strip_suffix(".yaml")
        .or_else(|| file.strip_suffix(".yml"))
        .unwrap_or(file);
    without_extension.replace(['/', '\\'], ".")
}

/// One line per step: index, outcome, duration, kind, name.
fn step_timeline(scenario: &ScenarioReport) -> String {
    let mut text = String::new();
    for step in &scenario.steps {
        let _ = writeln!(
            text,
            "{:>3} {:<8} {:>7} {:<10} {}",
            step.index,
            step.status.as_str(),
            format_duration(step.duration),
            step.kind,
            step.name
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classname_drops_extension_and_dots_the_path() {
        assert_eq!(classname("nmi/denied.yaml"), "nmi.denied");
        assert_eq!(classname("blob.yml"), "blob");
        assert_eq!(classname("plain"), "plain");
    }
}
