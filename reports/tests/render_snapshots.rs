//! Snapshots of every renderer for the fixed sample run; each also proves redaction.

mod common;

use common::{assert_no_credentials, sample_report};
use podid_reports::{LineReporter, Reporter, render_json, render_junit, render_markdown};

#[test]
fn junit_xml() {
    let xml = render_junit(&sample_report()).expect("renders");
    assert_no_credentials(&xml);
    insta::assert_snapshot!(xml);
}

#[test]
fn json() {
    let json = render_json(&sample_report());
    assert_no_credentials(&json);
    insta::assert_snapshot!(json);
}

#[test]
fn markdown_summary() {
    let markdown = render_markdown(&sample_report());
    assert_no_credentials(&markdown);
    insta::assert_snapshot!(markdown);
}

#[test]
fn line_reporter_quiet() {
    let report = sample_report();
    let reporter = LineReporter::new(Vec::new());
    for scenario in &report.scenarios {
        reporter.scenario_started(&scenario.name);
        for step in &scenario.steps {
            reporter.step_finished(&scenario.name, step);
        }
        reporter.scenario_finished(scenario);
    }
    reporter.run_finished(&report);
    let text = String::from_utf8(reporter.into_inner()).expect("UTF-8 output");
    assert_no_credentials(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn line_reporter_verbose_shows_starts_and_steps() {
    let report = sample_report();
    let reporter = LineReporter::new(Vec::new()).verbose(true);
    let scenario = &report.scenarios[0];
    reporter.scenario_started(&scenario.name);
    for step in &scenario.steps {
        reporter.step_finished(&scenario.name, step);
    }
    reporter.scenario_finished(scenario);
    let text = String::from_utf8(reporter.into_inner()).expect("UTF-8 output");
    insta::assert_snapshot!(text);
}
