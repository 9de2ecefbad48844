//! Runs scenarios against a provider. A run is planned ([`plan`]), then each planned trial runs
//! ([`trial::run_trial`]): set up what the scenario declares, perform its steps ([`steps`]),
//! check expectations, save diagnostics on failure and remove what it created. Progress goes
//! to a [`podid_reports::Reporter`] as it happens.

mod error;
mod gate;
pub mod plan;
mod report;
pub mod requirements;
mod scenario_run;
mod steps;
mod trial;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use podid_scenario::{NmiMode, Scenario, ScenarioFile};

pub use error::StepError;
pub use gate::ConfigGate;
pub use plan::{Plan, PlannedTrial};
pub use requirements::Requirement;
pub use trial::{run_trial, skipped_report};

use crate::provider::{IdentityConfig, Provider};

/// One scenario in one NMI mode: the unit that passes or fails.
#[derive(Debug, Clone)]
pub struct Trial {
    pub file: Arc<ScenarioFile>,
    pub mode: NmiMode,
}

impl Trial {
    /// `<provider>::<mode>::<scenario>`, the name filters match against.
    pub fn name(&self, provider: &str) -> String {
        format!(
            "{provider}::{}::{}",
            self.mode.as_str(),
            self.file.scenario.name.value
        )
    }

    pub fn scenario(&self) -> &Scenario {
        &self.file.scenario
    }

    /// How NMI and MIC must run for this trial.
    pub fn identity_config(&self) -> IdentityConfig {
        let values = |flags: &[podid_scenario::Template]| {
            flags.iter().map(|f| f.value.clone()).collect::<Vec<_>>()
        };
        IdentityConfig {
            mode: self.mode,
            nmi_flags: values(&self.scenario().nmi.flags),
            mic_flags: match self.mode {
                NmiMode::Standard => values(&self.scenario().mic.flags),
                NmiMode::Managed => Vec::new(),
            },
            mic_replicas: match self.mode {
                NmiMode::Standard => self.scenario().mic.replica_count(),
                NmiMode::Managed => 0,
            },
        }
    }

    /// Whether a step counts cloud requests, which is only meaningful while no other trial
    /// talks to the cloud.
    pub fn counts_requests(&self) -> bool {
        self.scenario()
            .steps
            .iter()
            .any(|s| s.value.counts_requests())
    }
}

/// Every scenario × mode of a set of files, in file order.
pub fn trials(files: &[ScenarioFile]) -> Vec<Trial> {
    files
        .iter()
        .flat_map(|f| {
            let file = Arc::new(f.clone());
            f.scenario.modes.iter().map(move |m| Trial {
                file: file.clone(),
                mode: m.value,
            })
        })
        .collect()
}

/// A provider plus what the runner keeps across trials.
pub struct Environment {
    pub provider: Provider,
    pub run_id: String,
    /// Where failure diagnostics go (`target/podid/runs/<run>/artifacts`).
    pub artifacts_dir: PathBuf,
    pub gate: ConfigGate,
    /// Deadline of one token/blob attempt (probe included).
    pub step_timeout: Duration,
}

impl Environment {
    pub fn new(provider: Provider, run_id: String, artifacts_dir: PathBuf) -> Self {
        Self {
            provider,
            run_id,
            artifacts_dir,
            gate: ConfigGate::default(),
            step_timeout: Duration::from_secs(150),
        }
    }

    /// Plans `trials` for this environment's provider.
    pub fn plan(&self, trials: Vec<Trial>) -> Plan {
        Plan::new(trials, self.provider.name(), &self.provider.capabilities())
    }
}
