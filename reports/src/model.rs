//! The data a run produces: what ran, how it ended, and the evidence left behind.
//!
//! The runner fills these types; renderers only read them.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration_serde;

/// One run of the harness over a set of scenarios against one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Identifier shared by every object and artifact of this run.
    pub run_id: String,
    /// Which backend brought up the cluster (for example `local`).
    pub provider: String,
    /// When the run began; serialised as RFC 3339.
    pub started_at: DateTime<Utc>,
    /// Wall-clock time of the whole run.
    #[serde(rename = "duration_secs", with = "duration_serde")]
    pub duration: Duration,
    /// Versions of the components under test (nmi, kube-apiserver, etcd, …), in display order.
    pub environment: Vec<(String, String)>,
    /// Every scenario selected for the run, including skipped ones.
    pub scenarios: Vec<ScenarioReport>,
}

/// How one scenario (or one step) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every expectation held.
    Passed,
    /// An expectation did not hold: the system under test misbehaved.
    Failed,
    /// The harness or its setup broke; nothing was learnt about the system under test.
    Errored,
    /// Not run; the reason is recorded. Never counted as a pass.
    Skipped,
}

/// One scenario file (or one matrix/mode expansion of it) as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Display name, unique within the run.
    pub name: String,
    /// Scenario file the scenario came from, relative to the scenario root.
    pub file: String,
    /// NMI mode the scenario ran in (`managed` or `standard`).
    pub mode: String,
    /// Tags used for selection.
    pub tags: Vec<String>,
    /// Overall outcome.
    pub status: Outcome,
    /// Wall-clock time of the scenario, setup and cleanup included.
    #[serde(rename = "duration_secs", with = "duration_serde")]
    pub duration: Duration,
    /// Steps in the order they ran.
    pub steps: Vec<StepReport>,
    /// Diagnostics collected for this scenario (NMI log, API object dump, mock request log).
    pub attachments: Vec<Attachment>,
    /// Why the scenario did not run, when `status` is `Skipped`.
    pub skip_reason: Option<String>,
}

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based position of the step in its scenario.
    pub index: usize,
    /// Human description, for example `token app (client_id=…)`.
    pub name: String,
    /// Step kind from the scenario format (`apply`, `token`, `blob`, …).
    pub kind: String,
    /// How the step ended.
    pub status: Outcome,
    /// Wall-clock time of the step, polling included.
    #[serde(rename = "duration_secs", with = "duration_serde")]
    pub duration: Duration,
    /// Every expectation that did not hold (empty when the step passed).
    pub failures: Vec<Failure>,
    /// Captured output or error text of the step, if any.
    pub output: Option<String>,
}

/// One expectation that did not hold, with enough context to act on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What was checked, for example `status`, `claims.aud` or `imds requests`.
    pub expectation: String,
    /// The value the scenario asked for.
    pub expected: String,
    /// The value observed.
    pub actual: String,
    /// Explanation in words.
    pub message: String,
}

/// A diagnostic file written for a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// What the file holds, for example `nmi log`.
    pub name: String,
    /// Where the file was written.
    pub path: PathBuf,
}

/// Number of scenarios per outcome, for headlines and exit codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Scenarios whose expectations all held.
    pub passed: usize,
    /// Scenarios with at least one expectation that did not hold.
    pub failed: usize,
    /// Scenarios stopped by a harness or setup error.
    pub errored: usize,
    /// Scenarios not run.
    pub skipped: usize,
}

impl Counts {
    /// Total number of scenarios counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.errored + self.skipped
    }

    /// True when nothing failed or errored; this decides the run's exit status.
    pub fn is_success(&self) -> bool {
        self.failed == 0 && self.errored == 0
    }
}

impl RunReport {
    /// Counts scenarios per outcome.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for scenario in &self.scenarios {
            match scenario.status {
                Outcome::Passed => counts.passed += 1,
                Outcome::Failed => counts.failed += 1,
                Outcome::Errored => counts.errored += 1,
                Outcome::Skipped => counts.skipped += 1,
            }
        }
        counts
    }
}

impl Outcome {
    /// True for outcomes that make the run fail.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Errored)
    }

    /// Lower-case word used in text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Errored => "errored",
            Outcome::Skipped => "skipped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(status: Outcome) -> ScenarioReport {
        ScenarioReport {
            name: format!("{status:?}"),
            file: "f.yaml".into(),
            mode: "standard".into(),
            tags: vec![],
            status,
            duration: Duration::ZERO,
            steps: vec![],
            attachments: vec![],
            skip_reason: None,
        }
    }

    #[test]
    fn counts_each_outcome_separately_and_skips_are_not_passes() {
        let report = RunReport {
            run_id: "r".into(),
            provider: "local".into(),
            started_at: DateTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            environment: vec![],
            scenarios: vec![
                scenario(Outcome::Passed),
                scenario(Outcome::Passed),
                scenario(Outcome::Failed),
                scenario(Outcome::Errored),
                scenario(Outcome::Skipped),
                scenario(Outcome::Skipped),
                scenario(Outcome::Skipped),
            ],
        };
        let counts = report.counts();
        assert_eq!(
            counts,
            Counts {
                passed: 2,
                failed: 1,
                errored: 1,
                skipped: 3
            }
        );
        assert_eq!(counts.total(), 7);
        assert!(!counts.is_success());
    }

    #[test]
    fn only_skips_and_passes_is_success() {
        let counts = Counts {
            passed: 0,
            failed: 0,
            errored: 0,
            skipped: 4,
        };
        assert!(counts.is_success());
        assert!(
            !Counts {
                errored: 1,
                ..counts
            }
            .is_success()
        );
    }
}
