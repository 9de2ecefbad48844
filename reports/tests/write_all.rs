//! `write_all` writes each format where the caller asked and reports where it could not.

mod common;

use common::sample_report;
use podid_reports::{ReportError, render_json, render_junit, render_markdown, write_all};

#[test]
fn writes_each_format_into_a_new_directory() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("target/podid/reports");
    let report = sample_report();
    let written = write_all(&report, &dir).expect("writes");
    assert_eq!(
        written,
        vec![
            dir.join("junit.xml"),
            dir.join("report.json"),
            dir.join("summary.md")
        ]
    );
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("file exists");
    assert_eq!(read("junit.xml"), render_junit(&report).expect("renders"));
    assert_eq!(read("report.json"), render_json(&report));
    assert_eq!(read("summary.md"), render_markdown(&report));
}

#[test]
fn names_the_directory_it_could_not_create() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let blocker = tmp.path().join("not-a-dir");
    std::fs::write(&blocker, "").expect("write file");
    let dir = blocker.join("reports");
    match write_all(&sample_report(), &dir) {
        Err(ReportError::CreateDir { path, .. }) => assert_eq!(path, dir),
        other => panic!("expected CreateDir error, got {other:?}"),
    }
}
