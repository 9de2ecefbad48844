//! JSON form of the model, for tools that post-process a run (dashboards, flake trackers).

use serde::Serialize;

use crate::model::{Counts, RunReport};

/// The report plus its counts, so readers need not recount.
#[derive(Serialize)]
struct JsonReport<'a> {
    counts: Counts,
    #[serde(flatten)]
    report: &'a RunReport,
}

/// Renders the redacted run as pretty JSON; it deserialises back into a [`RunReport`].
pub fn render_json(report: &RunReport) -> String {
    let redacted = report.redacted();
    let document = JsonReport {
        counts: redacted.counts(),
        report: &redacted,
    };
    // The model has only string keys and finite numbers, which serde_json always accepts.
    serde_json::to_string_pretty(&document).expect("run report serialises to JSON")
}
