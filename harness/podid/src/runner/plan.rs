//! Planning a run: which trials run and which are skipped (and why), which must have the
//! cluster to themselves, and an order that restarts NMI once per configuration (as written:
//! flags with `${...}` are rendered per trial, which then gets a configuration of its own).

use super::Trial;
use super::requirements::{Requirement, requirements, skip_reason};
use super::selectors::selectors_of;
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
    /// two shared trials), and shared trials binding the same selectors apart (they take turns,
    /// see [`super::selectors`]); stable otherwise.
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
            trials: spread_selectors(planned),
        }
    }

    /// How many trials will run (not skipped).
    pub fn runnable(&self) -> usize {
        self.trials.iter().filter(|t| t.skip.is_none()).count()
    }
}

/// Reorders each run of shared trials of one configuration so that trials binding the same
/// selectors are as far apart as possible: round robin over the groups of equal selectors.
fn spread_selectors(planned: Vec<PlannedTrial>) -> Vec<PlannedTrial> {
    let mut out = Vec::with_capacity(planned.len());
    let mut run: Vec<PlannedTrial> = Vec::new();
    let flush = |run: &mut Vec<PlannedTrial>, out: &mut Vec<PlannedTrial>| {
        let mut groups: Vec<(Vec<String>, std::collections::VecDeque<PlannedTrial>)> = Vec::new();
        for t in run.drain(..) {
            let key = selectors_of(&t.trial);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push_back(t),
                None => groups.push((key, [t].into())),
            }
        }
        while groups.iter().any(|(_, g)| !g.is_empty()) {
            for (_, g) in groups.iter_mut() {
                out.extend(g.pop_front());
            }
        }
    };
    for t in planned {
        let same_run = run
            .last()
            .is_some_and(|last| last.config == t.config && !t.exclusive);
        if !same_run {
            flush(&mut run, &mut out);
        }
        match t.exclusive {
            true => out.push(t),
            false => run.push(t),
        }
    }
    flush(&mut run, &mut out);
    out
}
