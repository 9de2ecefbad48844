//! Planning a run: which trials run and which are skipped (and why), which must have the
//! cluster to themselves, and an order that restarts NMI once per configuration.

use super::Trial;
use super::requirements::{Requirement, requirements, skip_reason};
use crate::provider::{Capabilities, IdentityConfig};

/// One trial as the run will treat it.
#[derive(Debug, Clone)]
pub struct PlannedTrial {
    pub trial: Trial,
    /// `<provider>::<mode>::<scenario>`.
    pub name: String,
    pub requirements: Vec<Requirement>,
    /// Why it will not run on this provider; `None` when it runs.
    pub skip: Option<String>,
    /// Whether no other trial may run beside it (it counts cloud requests).
    pub exclusive: bool,
    /// How NMI and MIC must run for it.
    pub config: IdentityConfig,
}

/// The trials of a run, in the order they start.
#[derive(Debug, Clone)]
pub struct Plan {
    pub provider: String,
    pub trials: Vec<PlannedTrial>,
}

impl Plan {
    /// Plans `trials` for a provider named `provider` with `capabilities`. Trials that need the
    /// same NMI/MIC configuration are put next to each other (stable otherwise).
    pub fn new(trials: Vec<Trial>, provider: &str, capabilities: &Capabilities) -> Self {
        let mut planned: Vec<PlannedTrial> = trials
            .into_iter()
            .map(|trial| {
                let requirements = requirements(&trial);
                PlannedTrial {
                    name: trial.name(provider),
                    skip: skip_reason(&requirements, capabilities, provider),
                    exclusive: trial.counts_requests(),
                    config: trial.identity_config(),
                    requirements,
                    trial,
                }
            })
            .collect();
        planned.sort_by(|a, b| a.config.cmp(&b.config));
        Self {
            provider: provider.to_string(),
            trials: planned,
        }
    }

    /// How many trials will run (not skipped).
    pub fn runnable(&self) -> usize {
        self.trials.iter().filter(|t| t.skip.is_none()).count()
    }
}
