//! `podid run`: the suite from the command line, with progress and reports.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use podid::lifecycle;
use podid::provider::existing::{CloudChoice, ExistingOptions, InstallPolicy};
use podid::provider::kind::KindOptions;
use podid::provider::{ProbeCommand, ProviderKind};
use podid::runner::{self, Trial};
use podid::session::{self, SessionOptions};
use podid_reports::{LineReporter, Reporter};
use podid_scenario::{NmiMode, ScenarioFile};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Managed,
    Standard,
}

impl ModeArg {
    pub fn mode(self) -> NmiMode {
        match self {
            Self::Managed => NmiMode::Managed,
            Self::Standard => NmiMode::Standard,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only trials whose name (`local::managed::<scenario>`) contains this text.
    pub filter: Option<String>,
    /// Where to run: `local` (default; also from PODID_PROVIDER).
    #[arg(long)]
    pub provider: Option<String>,
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
    /// Trials run at once; trials mostly wait on NMI and MIC, so more than the cores helps.
    /// Trials that cannot be kept apart from others still run alone (`podid list --provider`).
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Print every step, not only failures.
    #[arg(long)]
    pub steps: bool,
    #[command(flatten)]
    pub binaries: super::binaries::BinaryOverrides,
    #[command(flatten)]
    pub kind: KindArgs,
    #[command(flatten)]
    pub existing: ExistingArgs,
}

/// Flags of the existing provider (ignored by others).
#[derive(Debug, Clone, Default, Args)]
pub struct ExistingArgs {
    /// existing: the kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// existing: the kubeconfig context (default: its current one; also PODID_CONTEXT).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// existing: `azure` (real Azure through ARM, the default) or `mock` (podid's mock cloud
    /// installed into the cluster, for clusters outside Azure); also PODID_CLOUD.
    #[arg(long, value_enum)]
    pub cloud: Option<CloudChoice>,
    /// existing: the image workload pods run, holding `podid` (build it with `podid image
    /// build`); also PODID_WORKLOAD_IMAGE.
    #[arg(long, value_name = "IMAGE")]
    pub workload_image: Option<String>,
    /// existing: whether podid installs NMI/MIC into a cluster that runs none (and removes them
    /// afterwards); also PODID_INSTALL.
    #[arg(long, value_enum)]
    pub install: Option<InstallPolicy>,
    /// existing, azure: a file mapping scenario identities and storage accounts to real ones
    /// instead of creating them; also PODID_AZURE_MAPPING.
    #[arg(long, value_name = "FILE")]
    pub azure_mapping: Option<PathBuf>,
    /// existing, azure: the region of the resources podid creates; also PODID_AZURE_LOCATION.
    #[arg(long, value_name = "REGION")]
    pub azure_location: Option<String>,
}

impl ExistingArgs {
    /// The options from the environment with these flags (and the kind flags that name NMI and
    /// MIC images) on top.
    pub fn options(&self, kind: &KindArgs) -> Result<ExistingOptions, String> {
        let mut options = ExistingOptions::from_env()?;
        if self.kubeconfig.is_some() {
            options.kubeconfig.clone_from(&self.kubeconfig);
        }
        if self.context.is_some() {
            options.context.clone_from(&self.context);
        }
        if let Some(cloud) = self.cloud {
            options.cloud = cloud;
        }
        if self.workload_image.is_some() {
            options.workload_image.clone_from(&self.workload_image);
        }
        if let Some(install) = self.install {
            options.install = install;
        }
        if self.azure_mapping.is_some() {
            options.azure_mapping.clone_from(&self.azure_mapping);
        }
        if self.azure_location.is_some() {
            options.azure_location.clone_from(&self.azure_location);
        }
        if kind.nmi_image.is_some() {
            options.nmi_image.clone_from(&kind.nmi_image);
        }
        if kind.mic_image.is_some() {
            options.mic_image.clone_from(&kind.mic_image);
        }
        Ok(options)
    }
}

/// Flags of the kind provider (ignored by others).
#[derive(Debug, Clone, Default, Args)]
pub struct KindArgs {
    /// kind: leave this run's cluster running afterwards, to inspect it.
    #[arg(long)]
    pub keep: bool,
    /// kind, existing: an NMI image to test instead of the pinned one (also PODID_NMI_IMAGE).
    #[arg(long, value_name = "IMAGE")]
    pub nmi_image: Option<String>,
    /// kind, existing: a MIC image (also PODID_MIC_IMAGE).
    #[arg(long, value_name = "IMAGE")]
    pub mic_image: Option<String>,
    /// kind: a node image instead of the locally built one, e.g. a published kindest/node
    /// (also PODID_KIND_NODE_IMAGE).
    #[arg(long, value_name = "IMAGE")]
    pub node_image: Option<String>,
}

impl KindArgs {
    /// The options from the environment with these flags on top.
    pub fn options(&self) -> KindOptions {
        let mut options = KindOptions::from_env();
        options.keep |= self.keep;
        for (flag, slot) in [
            (&self.nmi_image, &mut options.nmi_image),
            (&self.mic_image, &mut options.mic_image),
            (&self.node_image, &mut options.node_image),
        ] {
            if flag.is_some() {
                slot.clone_from(flag);
            }
        }
        options
    }
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

/// The trials of `files` with `tags`, in `mode`, whose name on `provider` contains `filter`.
/// How long each trial took in the last run on `provider`, from its JSON report (empty when
/// there is none): what `Plan::longest_first` orders by.
fn past_durations(report: &std::path::Path, provider: &str) -> HashMap<String, Duration> {
    let Ok(text) = std::fs::read_to_string(report) else {
        return HashMap::new();
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return HashMap::new();
    };
    if json["provider"].as_str() != Some(provider) {
        return HashMap::new();
    }
    let scenarios = json["scenarios"].as_array().into_iter().flatten();
    scenarios
        .filter_map(|s| {
            let key = format!("{}::{}", s["mode"].as_str()?, s["name"].as_str()?);
            let secs = s["duration_secs"].as_f64()?;
            Some((key, Duration::try_from_secs_f64(secs).ok()?))
        })
        .collect()
}

pub fn select_trials(
    files: &[ScenarioFile],
    provider: ProviderKind,
    filter: Option<&str>,
    tags: &[String],
    mode: Option<ModeArg>,
) -> Vec<Trial> {
    let selected: Vec<ScenarioFile> = select(files, None, tags).into_iter().cloned().collect();
    runner::trials(&selected)
        .into_iter()
        .filter(|t| mode.is_none_or(|m| m.mode() == t.mode))
        .filter(|t| filter.is_none_or(|f| t.name(provider.name()).contains(f)))
        .collect()
}

fn workspace_output() -> PathBuf {
    session::default_output_dir(&std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
}

/// The probe: `podid-probe` beside this binary when it was built (a quarter of the size, which
/// matters when it is copied into a workload image), else `podid probe …`, so one binary is all
/// a user needs.
pub fn probe_command() -> ProbeCommand {
    let podid = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("podid"));
    let sibling = podid.with_file_name("podid-probe");
    if sibling.is_file() {
        return ProbeCommand::binary(sibling);
    }
    ProbeCommand {
        program: podid,
        args: vec!["probe".into()],
    }
}

pub fn run(args: RunArgs) -> ExitCode {
    let provider = match ProviderKind::choose(args.provider.as_deref()) {
        Ok(p) => p,
        Err(e) => return super::fail(e),
    };
    let loaded = match super::load_valid_scenarios(&args.paths) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let trials = select_trials(
        &loaded,
        provider,
        args.filter.as_deref(),
        &args.tags,
        args.mode,
    );
    if trials.is_empty() {
        return super::fail("no scenario matches the filters (see `podid list`)");
    }
    let out = args.out.clone().unwrap_or_else(workspace_output);
    let existing = match args.existing.options(&args.kind) {
        Ok(existing) => existing,
        Err(e) => return super::fail(e),
    };
    super::tokio_runtime().block_on(run_trials(args, provider, existing, trials, out))
}

async fn run_trials(
    args: RunArgs,
    provider: ProviderKind,
    existing: ExistingOptions,
    trials: Vec<Trial>,
    out: PathBuf,
) -> ExitCode {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let progress = super::progress::BuildProgress::new();
    eprintln!("podid: starting provider `{provider}`");
    let options = SessionOptions {
        output_dir: out.clone(),
        probe: probe_command(),
        toolchain: args.binaries.config(),
        kind: args.kind.options(),
        existing,
    };
    let (env, figures) = tokio::select! {
        r = lifecycle::start(provider, options, &progress) => match r {
            Ok(x) => x,
            Err(e) => {
                progress.finish();
                return super::fail(e);
            }
        },
        _ = tokio::signal::ctrl_c() => {
            progress.finish();
            eprintln!("podid: interrupted during start-up; removing what was started");
            for e in session::clean_own_runs().await {
                eprintln!("podid: cleanup after interrupt: {e}");
            }
            return ExitCode::from(130);
        }
    };
    progress.finish();
    let mut plan = env.plan(trials);
    plan.longest_first(&past_durations(
        &out.join("reports").join(podid_reports::JSON_FILE_NAME),
        provider.name(),
    ));
    eprintln!(
        "podid: ready in {:.1}s (toolchain {:.1}s, provider {:.1}s); {} trial(s), {} to run, run {}",
        started.elapsed().as_secs_f64(),
        figures.toolchain.as_secs_f64(),
        figures.provider.as_secs_f64(),
        plan.trials.len(),
        plan.runnable(),
        env.run_id
    );
    if let Some(kind) = &figures.kind {
        eprintln!("podid: kind start-up: {kind}");
    }
    if let Some(existing) = &figures.existing {
        eprintln!("podid: existing start-up: {existing}");
    }
    for (what, value) in env
        .provider
        .cluster
        .environment()
        .into_iter()
        .chain(env.provider.cloud.environment())
    {
        eprintln!("podid:   {what}: {value}");
    }
    let reporter = super::progress::RunProgress::new(
        LineReporter::stderr().verbose(args.steps),
        plan.trials.len(),
    );
    let (reports, interrupted) = tokio::select! {
        reports = lifecycle::run(&env, &plan, args.jobs, &reporter) => (reports, false),
        _ = tokio::signal::ctrl_c() => (Vec::new(), true),
    };
    if interrupted {
        eprintln!("podid: interrupted; tearing down");
    }
    let (run, shutdown) = lifecycle::finish(&env, started_at, started.elapsed(), reports).await;
    if !shutdown.errors.is_empty() {
        eprintln!("podid: teardown problems: {}", shutdown.errors.join("; "));
    }
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
