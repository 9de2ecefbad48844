//! A trial's environment held open for a person (`podid up`): the scenario's cloud and cluster
//! set up as for its first step, kept until told to go, then removed as after any trial.

use std::future::Future;

use super::scenario_run::ScenarioRun;
use super::{Environment, PlannedTrial};
use crate::instance::ScenarioInstance;
use crate::provider::PodHandle;

/// What a held trial offers: its namespace and its pods by declared name.
#[derive(Debug, Clone)]
pub struct HeldTrial {
    pub namespace: String,
    pub pods: Vec<(String, PodHandle)>,
}

/// Sets up `planned` (cloud, NMI/MIC configuration, objects and pods, without running its
/// steps), calls `ready`, waits for `until`, then cleans up. Returns what could not be set up
/// or cleaned up.
pub async fn hold_trial(
    env: &Environment,
    planned: &PlannedTrial,
    ready: impl FnOnce(&HeldTrial),
    until: impl Future<Output = ()>,
) -> Result<(), Vec<String>> {
    if let Some(why) = &planned.skip {
        return Err(vec![why.clone()]);
    }
    let trial = &planned.trial;
    let scenario = trial.scenario();
    let inst = ScenarioInstance::new(
        scenario,
        trial.mode,
        super::trial::provider_facts(env),
        |account| env.provider.cloud.account_url(account),
    );
    let mut run = ScenarioRun::new(env, scenario, inst, false);
    run.declare_cloud()
        .await
        .map_err(|e| vec![e.report_text()])?;
    let config = match trial.flags_need_rendering() {
        false => planned.config.clone(),
        true => trial
            .rendered_config(&run.inst)
            .map_err(|(flag, e)| vec![format!("flag `{flag}`: {e}")])?,
    };
    let (guard, _) = env
        .gate
        .enter(env.provider.cluster.as_ref(), &config, true)
        .await
        .map_err(|e| vec![crate::provider::error_chain(&e)])?;
    run.begin();
    let mut problems = Vec::new();
    match run.setup().await {
        Ok(()) => {
            let mut pods: Vec<(String, PodHandle)> = run
                .inst
                .pods
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            pods.sort_by(|a, b| a.0.cmp(&b.0));
            ready(&HeldTrial {
                namespace: run.inst.namespace.clone(),
                pods,
            });
            until.await;
        }
        Err(e) => problems.push(e.report_text()),
    }
    problems.extend(run.cleanup().await);
    drop(guard);
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems),
    }
}
