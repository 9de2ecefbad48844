//! Run-report model and its renderers (JUnit XML, JSON, Markdown).
//!
//! The runner fills a [`RunReport`]; the renderers turn it into the files CI reads, and a
//! [`Reporter`] shows progress while the run is going. Every renderer passes free text through
//! [`redact`] first, so tokens and secrets seen during a run never reach a report.

mod duration_serde;
mod error;
mod failure_text;
mod files;
mod human_duration;
mod json;
mod junit;
mod line_reporter;
mod markdown;
mod model;
mod redaction;
mod reporter;

pub use error::ReportError;
pub use files::{JSON_FILE_NAME, JUNIT_FILE_NAME, MARKDOWN_FILE_NAME, write_all};
pub use human_duration::format_duration;
pub use json::render_json;
pub use junit::render_junit;
pub use line_reporter::LineReporter;
pub use markdown::render_markdown;
pub use model::{Attachment, Counts, Failure, Outcome, RunReport, ScenarioReport, StepReport};
pub use redaction::redact;
pub use reporter::Reporter;
