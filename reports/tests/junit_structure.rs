//! The JUnit output is well-formed XML with the structure CI systems rely on.

mod common;

use common::sample_report;
use podid_reports::render_junit;
use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

fn parsed() -> Report {
    let xml = render_junit(&sample_report()).expect("renders");
    Report::deserialize_from_str(&xml)
        .unwrap_or_else(|err| panic!("invalid JUnit XML: {err}\n{xml}"))
}

#[test]
fn one_suite_per_mode_with_counts_where_skips_are_not_passes() {
    let report = parsed();
    let suites: Vec<(&str, usize, usize, usize, usize)> = report
        .test_suites
        .iter()
        .map(|suite| {
            (
                suite.name.as_str(),
                suite.tests,
                suite.failures,
                suite.errors,
                suite.skipped,
            )
        })
        .collect();
    assert_eq!(
        suites,
        vec![
            ("podid.local.managed", 1, 0, 0, 0),
            ("podid.local.standard", 3, 1, 1, 1),
        ]
    );
    assert_eq!(report.tests, 4);
    assert_eq!(report.failures, 1);
    assert_eq!(report.errors, 1);
}

#[test]
fn failed_case_carries_first_failure_as_message_and_steps_as_text() {
    let report = parsed();
    let case = report.test_suites[1]
        .test_cases
        .iter()
        .find(|case| case.name.as_str() == "unbound pod is denied")
        .expect("failed scenario is a test case");
    assert_eq!(case.classname.as_deref(), Some("nmi.unbound_pod"));
    assert_eq!(case.time.map(|time| time.as_millis()), Some(3_456));
    match &case.status {
        TestCaseStatus::NonSuccess {
            kind,
            message,
            description,
            ..
        } => {
            assert_eq!(*kind, NonSuccessKind::Failure);
            assert_eq!(
                message.as_deref(),
                Some(
                    "step 2 (token app (client_id=00000000-0000-0000-0000-000000000001)): status: expected 403, got 200"
                )
            );
            let text = description.as_deref().expect("failure text");
            assert!(text.contains("expected: 403"), "{text}");
            assert!(text.contains("imds requests"), "{text}");
            assert!(text.contains("Bearer [REDACTED]"), "{text}");
            assert!(text.contains("client_secret=[REDACTED]&resource"), "{text}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let attachment = case
        .properties
        .iter()
        .find(|property| property.name.as_str() == "attachment.nmi log")
        .expect("attachment property");
    assert_eq!(
        attachment.value.as_str(),
        "target/podid/artifacts/run-42/unbound_pod/nmi.log"
    );
    let timeline = case.system_out.as_deref().expect("step timeline");
    assert_eq!(timeline.lines().count(), 3, "{timeline}");
}

#[test]
fn errored_and_skipped_cases_keep_their_reason() {
    let report = parsed();
    let cases = &report.test_suites[1].test_cases;
    match &cases[1].status {
        TestCaseStatus::NonSuccess { kind, message, .. } => {
            assert_eq!(*kind, NonSuccessKind::Error);
            assert_eq!(
                message.as_deref(),
                Some(
                    "step 1 (wait for pod ready): timed out after 30s waiting for pod default/blob-reader…"
                )
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match &cases[2].status {
        TestCaseStatus::Skipped { message, .. } => assert_eq!(
            message.as_deref(),
            Some("requires real-network, which provider local does not offer")
        ),
        other => panic!("expected a skip, got {other:?}"),
    }
}
