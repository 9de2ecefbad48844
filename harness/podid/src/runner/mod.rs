//! Runs scenarios against a provider. A run is planned ([`plan`]), then each planned trial runs
//! ([`trial::run_trial`]): set up what the scenario declares, perform its steps ([`steps`]),
//! check expectations, save diagnostics on failure and remove what it created. Progress goes
//! to a [`podid_reports::Reporter`] as it happens.

mod attribution;
mod error;
mod faults;
mod gate;
mod hold;
pub mod plan;
mod pods;
mod report;
pub mod requirements;
mod scenario_run;
pub mod sharing;
mod steps;
mod trial;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use podid_scenario::reference::{self, RenderError, Resolve};
use podid_scenario::{Located, NmiMode, Scenario, ScenarioFile, Step};

pub use error::StepError;
pub use gate::ConfigGate;
pub use hold::{HeldTrial, hold_trial};
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

    /// How NMI and MIC must run for this trial, with the flags as written (what the plan
    /// groups trials by).
    pub fn identity_config(&self) -> IdentityConfig {
        let values = |flags: &[podid_scenario::Template]| {
            flags.iter().map(|f| f.value.clone()).collect::<Vec<_>>()
        };
        self.config_with(
            values(&self.scenario().nmi.flags),
            values(&self.scenario().mic.flags),
        )
    }

    /// Whether the flags hold `${...}` references, so the trial needs its own configuration,
    /// known only once its cloud is declared.
    pub fn flags_need_rendering(&self) -> bool {
        let scenario = self.scenario();
        scenario
            .nmi
            .flags
            .iter()
            .chain(&scenario.mic.flags)
            .any(|f| f.value.contains("${"))
    }

    /// How NMI and MIC must run, with the flags' references resolved by `resolver`.
    pub fn rendered_config(
        &self,
        resolver: &dyn Resolve,
    ) -> Result<IdentityConfig, (String, RenderError)> {
        let render = |flags: &[podid_scenario::Template]| {
            flags
                .iter()
                .map(|f| reference::render(f, resolver).map_err(|e| (f.value.clone(), e)))
                .collect::<Result<Vec<_>, _>>()
        };
        let scenario = self.scenario();
        Ok(self.config_with(render(&scenario.nmi.flags)?, render(&scenario.mic.flags)?))
    }

    fn config_with(&self, nmi_flags: Vec<String>, mic_flags: Vec<String>) -> IdentityConfig {
        IdentityConfig {
            mode: self.mode,
            nmi_flags,
            mic_flags: match self.mode {
                NmiMode::Standard => mic_flags,
                NmiMode::Managed => Vec::new(),
            },
            mic_replicas: match self.mode {
                NmiMode::Standard => self.scenario().mic.replica_count(),
                NmiMode::Managed => 0,
            },
        }
    }

    /// Whether `step` runs in this trial's mode (a step may name the modes it applies to).
    pub fn applies(&self, step: &Step) -> bool {
        step.modes.is_empty() || step.modes.iter().any(|m| m.value == self.mode)
    }

    /// The steps that run in this trial's mode, with their 1-based index in the scenario.
    pub fn steps(&self) -> impl Iterator<Item = (usize, &Located<Step>)> {
        self.scenario()
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| self.applies(&s.value))
            .map(|(i, s)| (i + 1, s))
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
    /// What every wait is multiplied by: a real cloud assigns identities in tens of seconds.
    pub timeout_scale: u32,
}

impl Environment {
    pub fn new(provider: Provider, run_id: String, artifacts_dir: PathBuf) -> Self {
        let timeout_scale = provider.cluster.timeout_scale().max(1);
        Self {
            provider,
            run_id,
            artifacts_dir,
            gate: ConfigGate::default(),
            step_timeout: Duration::from_secs(150) * timeout_scale,
            timeout_scale,
        }
    }

    /// `timeout` as this environment's provider needs it.
    pub fn scaled(&self, timeout: Duration) -> Duration {
        timeout * self.timeout_scale
    }

    /// Plans `trials` for this environment's provider.
    pub fn plan(&self, trials: Vec<Trial>) -> Plan {
        Plan::new(trials, self.provider.name(), &self.provider.capabilities())
    }
}
