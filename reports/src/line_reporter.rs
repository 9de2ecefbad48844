//! A plain-text [`Reporter`]: one line per scenario, and the failure details only for scenarios
//! that did not pass.

use std::io::Write;
use std::sync::Mutex;

use crate::failure_text::{failed_steps_block, scenario_one_liner};
use crate::human_duration::format_duration;
use crate::model::{Outcome, RunReport, ScenarioReport, StepReport};
use crate::redaction::redact;
use crate::reporter::Reporter;

/// Writes `✔ name (1.2s)` / `✘ name (3.4s)` lines, with indented failure details, to a stream.
pub struct LineReporter<W> {
    out: Mutex<W>,
    verbose: bool,
}

impl<W: Write + Send> LineReporter<W> {
    /// Reports to `out`, quiet on success.
    pub fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
            verbose: false,
        }
    }

    /// Also prints scenario starts and every finished step, for following a run live.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Returns the stream, for callers (and tests) that report into a buffer.
    pub fn into_inner(self) -> W {
        self.out
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `text` in one call so lines of concurrent scenarios do not interleave mid-line.
    /// Progress output is best effort: a closed stream must not stop the run.
    fn emit(&self, text: &str) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = out.write_all(redact(text).as_bytes());
        let _ = out.flush();
    }
}

impl LineReporter<std::io::Stderr> {
    /// Reports to standard error, leaving standard output to machine-readable output.
    pub fn stderr() -> Self {
        Self::new(std::io::stderr())
    }
}

impl<W: Write + Send> Reporter for LineReporter<W> {
    fn scenario_started(&self, scenario: &str) {
        if self.verbose {
            self.emit(&format!("▶ {scenario}\n"));
        }
    }

    fn step_finished(&self, scenario: &str, step: &StepReport) {
        if self.verbose {
            self.emit(&format!(
                "  {} {scenario}: step {} {} ({})\n",
                mark(step.status),
                step.index,
                step.name,
                format_duration(step.duration)
            ));
        }
    }

    fn scenario_finished(&self, scenario: &ScenarioReport) {
        self.emit(&scenario_lines(scenario));
    }

    fn run_finished(&self, report: &RunReport) {
        let counts = report.counts();
        self.emit(&format!(
            "{} passed, {} failed, {} errored, {} skipped in {}\n",
            counts.passed,
            counts.failed,
            counts.errored,
            counts.skipped,
            format_duration(report.duration)
        ));
    }
}

/// The headline of a finished scenario and, when it did not pass, its indented details.
fn scenario_lines(scenario: &ScenarioReport) -> String {
    let duration = format_duration(scenario.duration);
    match scenario.status {
        Outcome::Passed => format!("✔ {} ({duration})\n", scenario.name),
        Outcome::Skipped => format!(
            "↷ {} (skipped: {})\n",
            scenario.name,
            scenario.skip_reason.as_deref().unwrap_or("no reason given")
        ),
        Outcome::Failed | Outcome::Errored => {
            let label = if scenario.status == Outcome::Errored {
                " [harness error]"
            } else {
                ""
            };
            let mut text = format!("✘ {} ({duration}){label}\n", scenario.name);
            let block = failed_steps_block(scenario);
            let details = if block.is_empty() {
                scenario_one_liner(scenario).unwrap_or_default() + "\n"
            } else {
                block
            };
            for line in details.lines() {
                text.push_str("    ");
                text.push_str(line);
                text.push('\n');
            }
            for attachment in &scenario.attachments {
                text.push_str(&format!(
                    "    {}: {}\n",
                    attachment.name,
                    attachment.path.display()
                ));
            }
            text
        }
    }
}

fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "✔",
        Outcome::Failed | Outcome::Errored => "✘",
        Outcome::Skipped => "↷",
    }
}
