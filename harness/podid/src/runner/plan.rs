//! Planning a run: which trials run and which are skipped (and why), which must have the
//! cluster to themselves, and an order that restarts NMI once per configuration (as written:
//! flags with `${...}` are rendered per trial, which then gets a configuration of its own).

use std::collections::HashMap;
use std::time::Duration;

use super::Trial;
use super::requirements::{Requirement, requirements, skip_reason};
use super::sharing::exclusive_reason;
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
    /// Whether no other trial may run beside it.
    pub exclusive: bool,
    /// Why it must run alone (see [`super::sharing`]); `None` when it shares the cluster.
    pub exclusive_reason: Option<String>,
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
    /// same NMI/MIC configuration are put next to each other, those that can share the cluster
    /// first (so the cluster is handed to a trial that needs it alone once, not between every
    /// two shared trials); stable otherwise.
    pub fn new(trials: Vec<Trial>, provider: &str, capabilities: &Capabilities) -> Self {
        let mut planned: Vec<PlannedTrial> = trials
            .into_iter()
            .map(|trial| {
                let requirements = requirements(&trial);
                let exclusive_reason = exclusive_reason(&trial);
                PlannedTrial {
                    name: trial.name(provider),
                    skip: skip_reason(&requirements, capabilities, provider),
                    exclusive: exclusive_reason.is_some(),
                    exclusive_reason,
                    config: trial.identity_config(),
                    requirements,
                    trial,
                }
            })
            .collect();
        planned.sort_by(|a, b| (&a.config, a.exclusive).cmp(&(&b.config, b.exclusive)));
        Self {
            provider: provider.to_string(),
            trials: planned,
        }
    }

    /// Starts the longest trials first within each run of trials that share the cluster under
    /// one configuration, by how long each took last time (`past`, keyed `<mode>::<scenario>`;
    /// a trial never timed counts as longest). A long trial started last would otherwise run
    /// alone at the end while the next configuration waits for it.
    pub fn longest_first(&mut self, past: &HashMap<String, Duration>) {
        let took = |t: &PlannedTrial| {
            let key = format!(
                "{}::{}",
                t.trial.mode.as_str(),
                t.trial.scenario().name.value
            );
            past.get(&key).copied().unwrap_or(Duration::MAX)
        };
        let mut start = 0;
        while start < self.trials.len() {
            let first = &self.trials[start];
            let end = start
                + self.trials[start..]
                    .iter()
                    .take_while(|t| !t.exclusive && !first.exclusive && t.config == first.config)
                    .count()
                    .max(1);
            self.trials[start..end].sort_by_key(|t| std::cmp::Reverse(took(t)));
            start = end;
        }
    }

    /// How many trials will run (not skipped).
    pub fn runnable(&self) -> usize {
        self.trials.iter().filter(|t| t.skip.is_none()).count()
    }
}
