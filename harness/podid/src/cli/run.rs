//! `podid run`: the suite from the command line, with progress and reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use futures::StreamExt;
use podid::provider::{ProbeCommand, Provider};
use podid::runner::{self, Trial};
use podid::session::{self, LocalSessionOptions};
use podid_reports::{LineReporter, Reporter, RunReport};
use podid_scenario::{NmiMode, ScenarioFile};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProviderKind {
    /// etcd, kube-apiserver and NMI as local processes; nodes and pods as network namespaces.
    Local,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Managed,
    Standard,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only trials whose name (`local::managed::<scenario>`) contains this text.
    pub filter: Option<String>,
    #[arg(long, value_enum, default_value = "local")]
    pub provider: ProviderKind,
    /// Only trials in this NMI mode.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Only scenarios with this tag (repeatable: any of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Scenario files or directories (default: scenarios/).
    #[arg(long = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// Root of generated output: reports, logs, failure diagnostics (default: target/podid).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Scenarios run at once (those that count mock requests always run alone).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Print every step, not only failures.
    #[arg(long)]
    pub steps: bool,
    #[command(flatten)]
    pub binaries: super::binaries::BinaryOverrides,
}

/// Scenarios whose name contains `filter` and that carry any of `tags`.
pub fn select<'a>(
    files: &'a [ScenarioFile],
    filter: Option<&str>,
    tags: &[String],
) -> Vec<&'a ScenarioFile> {
    files
        .iter()
        .filter(|f| filter.is_none_or(|t| f.scenario.name.value.contains(t)))
        .filter(|f| tags.is_empty() || f.scenario.tags.iter().any(|t| tags.contains(&t.value)))
        .collect()
}

fn workspace_output() -> PathBuf {
    session::default_output_dir(&std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
}

/// The probe runs as `podid probe …`, so one binary is all a user needs.
fn probe_command() -> ProbeCommand {
    ProbeCommand {
        program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("podid")),
        args: vec!["probe".into()],
    }
}

pub fn run(args: RunArgs) -> ExitCode {
    let (loaded, failed) = match super::load_scenarios(&args.paths) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if !failed.is_empty() {
        for f in &failed {
            for p in &f.problems {
                eprintln!("{}", p.one_line());
            }
        }
        return super::fail("some scenario files are invalid; fix them first (`podid validate`)");
    }
    let selected: Vec<ScenarioFile> = select(&loaded, None, &args.tags)
        .into_iter()
        .cloned()
        .collect();
    let provider_name = match args.provider {
        ProviderKind::Local => "local",
    };
    let wanted_mode = args.mode.map(|m| match m {
        ModeArg::Managed => NmiMode::Managed,
        ModeArg::Standard => NmiMode::Standard,
    });
    let trials: Vec<Trial> = runner::trials(&selected)
        .into_iter()
        .filter(|t| wanted_mode.is_none_or(|m| m == t.mode))
        .filter(|t| {
            args.filter
                .as_deref()
                .is_none_or(|f| t.name(provider_name).contains(f))
        })
        .collect();
    if trials.is_empty() {
        return super::fail("no scenario matches the filters (see `podid list`)");
    }
    // Scenarios that need the same NMI command line run one after another, so NMI restarts
    // once per distinct configuration rather than back and forth.
    let mut trials = trials;
    trials.sort_by_cached_key(|t| {
        let values = |flags: &[podid_scenario::Located<String>]| -> Vec<String> {
            flags.iter().map(|f| f.value.clone()).collect()
        };
        let scenario = t.scenario();
        (
            t.mode.as_str(),
            values(&scenario.nmi.flags),
            values(&scenario.mic.flags),
        )
    });
    let out = args.out.clone().unwrap_or_else(workspace_output);
    let runtime = super::tokio_runtime();
    runtime.block_on(run_trials(args, trials, out))
}

async fn run_trials(args: RunArgs, trials: Vec<Trial>, out: PathBuf) -> ExitCode {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let progress = super::progress::BuildProgress::new();
    eprintln!("podid: starting the local cluster and the mock cloud");
    let session = session::start_local(
        LocalSessionOptions {
            output_dir: out.clone(),
            probe: probe_command(),
            toolchain: args.binaries.config(),
        },
        &progress,
    );
    let (env, figures) = tokio::select! {
        r = session => match r {
            Ok(x) => x,
            Err(e) => {
                progress.finish();
                return super::fail(e);
            }
        },
        _ = tokio::signal::ctrl_c() => {
            progress.finish();
            eprintln!("podid: interrupted during start-up; removing what was started");
            let _ = podid_local::clean_own_runs();
            return ExitCode::from(130);
        }
    };
    progress.finish();
    eprintln!(
        "podid: ready in {:.1}s (toolchain {:.1}s, cluster and cloud {:.1}s); running {} trial(s), run {}",
        started.elapsed().as_secs_f64(),
        figures.toolchain.as_secs_f64(),
        figures.provider.as_secs_f64(),
        trials.len(),
        env.run_id
    );
    let reporter =
        super::progress::RunProgress::new(LineReporter::stderr().verbose(args.steps), trials.len());
    let mut reports = Vec::new();
    let interrupted = {
        let env_ref = &env;
        let reporter = &reporter;
        let mut stream = futures::stream::iter(trials.iter().map(|trial| async move {
            reporter.scenario_started(&trial.name(env_ref.provider.name()));
            let report = runner::run_trial(env_ref, trial).await;
            for step in &report.steps {
                reporter.step_finished(&report.name, step);
            }
            reporter.scenario_finished(&report);
            report
        }))
        .buffer_unordered(args.jobs.max(1));
        let collect = async {
            while let Some(r) = stream.next().await {
                reports.push(r);
            }
        };
        tokio::select! {
            _ = collect => false,
            _ = tokio::signal::ctrl_c() => true,
        }
    };
    if interrupted {
        eprintln!("podid: interrupted; tearing down");
    }
    let environment = env.provider.environment();
    let teardown = env.provider.shutdown().await;
    if let Some(t) = &teardown {
        if !t.errors.is_empty() {
            eprintln!("podid: teardown problems: {}", t.errors.join("; "));
        }
    }
    let run = RunReport {
        run_id: env.run_id.clone(),
        provider: "local".into(),
        started_at,
        duration: started.elapsed(),
        environment,
        scenarios: reports,
    };
    reporter.run_finished(&run);
    let report_dir = out.join("reports");
    match podid_reports::write_all(&run, &report_dir) {
        Ok(paths) => {
            for p in paths {
                eprintln!("podid: wrote {}", p.display());
            }
        }
        Err(e) => eprintln!("podid: writing reports: {e}"),
    }
    if interrupted {
        return ExitCode::from(130);
    }
    if run.counts().is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILED)
    }
}
