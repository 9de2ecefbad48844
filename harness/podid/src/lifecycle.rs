//! The one run lifecycle every entry point uses (`podid run`, the e2e suite, the benchmark):
//! start the chosen provider → plan → run with live events → finish with a report that names
//! the provider.

use std::time::Duration;

use futures::StreamExt;
use podid_reports::{Reporter, RunReport, ScenarioReport};
use podid_toolchain::BuildObserver;

use crate::provider::{ProviderKind, ShutdownReport};
use crate::runner::{self, Environment, Plan};
use crate::session::{self, SessionError, SessionOptions, StartupFigures};

/// Starts `kind` with `options`: the one place a provider name becomes a running provider.
pub async fn start(
    kind: ProviderKind,
    options: SessionOptions,
    observer: &(dyn BuildObserver + Send + Sync),
) -> Result<(Environment, StartupFigures), SessionError> {
    match kind {
        ProviderKind::Local => session::start_local(options, observer).await,
        ProviderKind::Kind => session::start_kind(options, observer).await,
        ProviderKind::Existing => session::start_existing(options, observer).await,
    }
}

/// Runs every trial of `plan`, at most `jobs` at once (the gate still keeps apart trials
/// that need another NMI configuration or count cloud requests). Reports come back in the
/// order trials finished.
pub async fn run(
    env: &Environment,
    plan: &Plan,
    jobs: usize,
    reporter: &dyn Reporter,
) -> Vec<ScenarioReport> {
    futures::stream::iter(
        plan.trials
            .iter()
            .map(|planned| runner::run_trial(env, planned, reporter)),
    )
    .buffer_unordered(jobs.max(1))
    .collect()
    .await
}

/// Shuts the provider down and assembles the run's report.
pub async fn finish(
    env: &Environment,
    started_at: chrono::DateTime<chrono::Utc>,
    duration: Duration,
    scenarios: Vec<ScenarioReport>,
) -> (RunReport, ShutdownReport) {
    let mut environment = env.provider.cluster.environment();
    environment.extend(env.provider.cloud.environment());
    let shutdown = env.provider.shutdown().await;
    let report = RunReport {
        run_id: env.run_id.clone(),
        provider: env.provider.name().to_string(),
        started_at,
        duration,
        environment,
        scenarios,
    };
    (report, shutdown)
}
