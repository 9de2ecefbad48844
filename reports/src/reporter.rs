//! Live progress while a run is going, kept apart from the runner so the CLI can pick how to
//! show it (plain lines, progress bars) without the runner knowing.

use crate::model::{RunReport, ScenarioReport, StepReport};

/// Receives run events as they happen. Scenarios may run concurrently, so events of different
/// scenarios can interleave; every method has a no-op default.
pub trait Reporter: Send + Sync {
    /// A scenario began.
    fn scenario_started(&self, _scenario: &str) {}

    /// A step of `scenario` ended.
    fn step_finished(&self, _scenario: &str, _step: &StepReport) {}

    /// A scenario ended (or was skipped without starting).
    fn scenario_finished(&self, _scenario: &ScenarioReport) {}

    /// The whole run ended; the report is final.
    fn run_finished(&self, _report: &RunReport) {}
}
