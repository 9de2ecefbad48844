//! The JSON report reads back into the model, redacted, with counts alongside.

mod common;

use common::sample_report;
use podid_reports::{RunReport, render_json};

#[test]
fn json_reads_back_as_the_redacted_report() {
    let report = sample_report();
    let json = render_json(&report);
    let read_back: RunReport = serde_json::from_str(&json).expect("JSON reads back");
    assert_eq!(read_back, report.redacted());
    assert_ne!(
        read_back, report,
        "the sample holds secrets, so redaction must change it"
    );
}

#[test]
fn json_carries_counts_and_seconds() {
    let value: serde_json::Value =
        serde_json::from_str(&render_json(&sample_report())).expect("JSON");
    assert_eq!(
        value["counts"],
        serde_json::json!({"passed": 1, "failed": 1, "errored": 1, "skipped": 1})
    );
    assert_eq!(value["duration_secs"], serde_json::json!(62.48));
    assert_eq!(
        value["started_at"],
        serde_json::json!("2025-03-04T05:06:07Z")
    );
    assert_eq!(value["scenarios"][1]["status"], serde_json::json!("failed"));
}

#[test]
fn negative_duration_is_rejected_with_a_reason() {
    let mut value: serde_json::Value =
        serde_json::from_str(&render_json(&sample_report())).expect("JSON");
    value["duration_secs"] = serde_json::json!(-1.0);
    let err = serde_json::from_value::<RunReport>(value).expect_err("negative duration");
    assert!(err.to_string().contains("non-negative"), "{err}");
}
