//! End-to-end suite: every scenario in `scenarios/` × each of its NMI modes, as one trial each,
//! against the provider `PODID_PROVIDER` names (default `local`: real etcd, kube-apiserver,
//! NMI and MIC; mock Azure).
//!
//! `cargo test --test e2e`, `-- <filter>`, `-- --list`, `-- --exact <name>` work as usual. The
//! provider starts once, lazily, at the first trial that runs. Missing prerequisites (root,
//! network namespaces, Go to build the toolchain) fail every trial with the reason. A trial
//! whose needs the provider lacks is ignored with the reason printed and reported as skipped.
//! An unfiltered run fails unless every declared trial was accounted for. `PODID_SKIP_E2E=1`
//! marks every trial ignored on machines that cannot run them (CI refuses it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};
use podid::lifecycle;
use podid::provider::kind::KindOptions;
use podid::provider::{ProbeCommand, ProviderKind};
use podid::runner::{self, Environment, Plan, PlannedTrial};
use podid::session::{self, SKIP_E2E_VAR, SessionOptions};
use podid_reports::{Outcome, Reporter, ScenarioReport};
use podid_toolchain::{LogObserver, ToolchainConfig};

fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Progress in an e2e run is libtest's own line per trial.
struct Quiet;
impl Reporter for Quiet {}

/// The environment all trials share, started by the first trial that needs it.
///
/// Everything that starts processes runs as a task on `runtime`'s worker threads: children die
/// with the thread that spawned them, and the test harness's own threads come and go.
struct Shared {
    provider: ProviderKind,
    runtime: tokio::runtime::Runtime,
    env: tokio::sync::OnceCell<Result<Environment, String>>,
    reports: Mutex<Vec<ScenarioReport>>,
    started_at: chrono::DateTime<chrono::Utc>,
    started: std::time::Instant,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get().expect("initialised in main")
}

fn record(report: ScenarioReport) {
    shared()
        .reports
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(report);
}

async fn start_environment() -> Result<Environment, String> {
    let options = SessionOptions {
        output_dir: session::default_output_dir(&workspace()),
        probe: ProbeCommand::binary(PathBuf::from(env!("CARGO_BIN_EXE_podid-probe"))),
        toolchain: ToolchainConfig::from_env(),
        kind: KindOptions::from_env(),
        existing: podid::provider::existing::ExistingOptions::from_env()?,
    };
    let kind = shared().provider;
    let started = std::time::Instant::now();
    let (env, figures) = tokio::spawn(lifecycle::start(kind, options, &LogObserver))
        .await
        .map_err(|e| format!("the start-up task failed: {e}"))?
        .map_err(|e| format!("provider `{kind}` could not start: {e}"))?;
    eprintln!(
        "e2e: provider `{kind}` ready in {:.1}s (toolchain {:.1}s, provider {:.1}s), run {}",
        started.elapsed().as_secs_f64(),
        figures.toolchain.as_secs_f64(),
        figures.provider.as_secs_f64(),
        env.run_id
    );
    if let Some(kind) = &figures.kind {
        eprintln!("e2e: kind start-up: {kind}");
    }
    Ok(env)
}

/// Runs one planned trial on the shared environment (starting it first if needed).
fn run(planned: PlannedTrial) -> Result<ScenarioReport, String> {
    let shared = shared();
    shared.runtime.block_on(async move {
        let env = shared
            .env
            .get_or_init(start_environment)
            .await
            .as_ref()
            .map_err(|e| e.clone())?;
        tokio::spawn(async move { runner::run_trial(env, &planned, &Quiet).await })
            .await
            .map_err(|e| format!("the trial task failed: {e}"))
    })
}

/// Ctrl-C at any time (even while the provider starts): tear down this process's runs from
/// their state files, then exit as SIGINT would.
fn register_interrupt_cleanup() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            eprintln!("e2e: interrupted; removing this run's processes and namespaces");
            // Twice: a trial still running may record a pod between the two passes.
            for _ in 0..2 {
                for e in rt.block_on(session::clean_own_runs()) {
                    eprintln!("e2e: cleanup after interrupt failed: {e}");
                }
            }
            std::process::exit(130);
        }
    });
}

/// What libtest prints for a trial that did not pass: each failed step with expected and
/// actual, its output, and where the diagnostics are.
fn failure_text(report: &ScenarioReport) -> String {
    let mut text = String::new();
    for step in &report.steps {
        if step.status == Outcome::Passed || step.status == Outcome::Skipped {
            continue;
        }
        text.push_str(&format!(
            "step {} `{}` {:?}\n",
            step.index, step.name, step.status
        ));
        for f in &step.failures {
            text.push_str(&format!(
                "  {}: {}\n    expected: {}\n    actual:   {}\n",
                f.expectation, f.message, f.expected, f.actual
            ));
        }
        for line in step.output.iter().flat_map(|o| o.lines()) {
            text.push_str(&format!("    | {line}\n"));
        }
    }
    if !report.attachments.is_empty() {
        text.push_str("diagnostics:\n");
        for a in &report.attachments {
            text.push_str(&format!("  {}: {}\n", a.name, a.path.display()));
        }
    }
    podid_reports::redact(&text)
}

fn as_test(planned: PlannedTrial, skip_all: bool) -> Trial {
    let tags = planned
        .trial
        .scenario()
        .tags
        .iter()
        .map(|t| t.value.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let name = planned.name.clone();
    let ignored = skip_all || planned.skip.is_some();
    if let Some(reason) = planned.skip.clone() {
        // Run anyway (`--include-ignored`): the provider still cannot run it.
        return Trial::test(name, move || {
            Err(Failed::from(format!("skipped: {reason}")))
        })
        .with_kind(tags)
        .with_ignored_flag(true);
    }
    Trial::test(name, move || {
        let report = run(planned).map_err(Failed::from)?;
        let passed = report.status == Outcome::Passed;
        let text = failure_text(&report);
        record(report);
        if passed {
            Ok(())
        } else {
            Err(Failed::from(text))
        }
    })
    .with_kind(tags)
    .with_ignored_flag(ignored)
}

/// Trials run at once unless `--test-threads` says otherwise: like `podid run --jobs`, more
/// than the cores, since trials mostly wait on NMI and MIC.
const DEFAULT_TRIALS_AT_ONCE: usize = 4;

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        args.test_threads.get_or_insert(DEFAULT_TRIALS_AT_ONCE);
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PODID_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,podid_toolchain=info,kube_client::client::builder=off",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let provider = match ProviderKind::choose(None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("e2e: {e}");
            return ExitCode::from(2);
        }
    };
    let shared = Shared {
        provider,
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("the async runtime starts"),
        env: tokio::sync::OnceCell::new(),
        reports: Mutex::new(Vec::new()),
        started_at: chrono::Utc::now(),
        started: std::time::Instant::now(),
    };
    if SHARED.set(shared).is_err() {
        unreachable!("main runs once");
    }

    let files = podid_scenario::discover(&[workspace().join("scenarios")]).unwrap_or_default();
    let (mut loaded, invalid) = podid_scenario::load_all(&files);
    // Reports name files relative to the repository, as a contributor sees them.
    for file in &mut loaded {
        if let Ok(relative) = file.path.strip_prefix(workspace()) {
            file.path = relative.to_path_buf();
        }
    }
    let skip_all = std::env::var(SKIP_E2E_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
    if skip_all {
        eprintln!("e2e: {SKIP_E2E_VAR} is set: end-to-end trials are not run on this machine");
    }

    let mut tests = Vec::new();
    if files.is_empty() || !invalid.is_empty() {
        let problems: Vec<String> = invalid
            .iter()
            .flat_map(|f| f.problems.iter().map(|p| p.one_line()))
            .collect();
        tests.push(Trial::test("scenario_files_are_valid", move || {
            if problems.is_empty() {
                Err(Failed::from("no scenario files found in scenarios/"))
            } else {
                Err(Failed::from(problems.join("\n")))
            }
        }));
    }
    let declared = runner::trials(&loaded);
    let declared_count = declared.len();
    let plan = Plan::new(declared, provider.name(), &provider.capabilities());
    for planned in &plan.trials {
        if let (Some(reason), false, false) = (&planned.skip, skip_all, args.list) {
            eprintln!("e2e: {} is skipped: {reason}", planned.name);
            record(runner::skipped_report(planned, &Quiet));
        }
    }
    tests.extend(plan.trials.into_iter().map(|p| as_test(p, skip_all)));

    if !skip_all && !args.list {
        register_interrupt_cleanup();
    }
    let unfiltered = args.filter.is_none()
        && args.skip.is_empty()
        && !args.ignored
        && !args.include_ignored
        && !args.list;
    let mut conclusion = libtest_mimic::run(&args, tests);

    let accounted = finish();
    if unfiltered && !skip_all && accounted != declared_count {
        eprintln!(
            "e2e: {accounted} of {declared_count} declared trials (scenarios × modes) were run or skipped with a reason; every declared trial must be accounted for"
        );
        conclusion.num_failed += 1;
    }
    conclusion.exit_code()
}

/// Tears the environment down and writes the reports of the trials accounted for; returns
/// how many that is.
fn finish() -> usize {
    let shared = shared();
    let scenarios = std::mem::take(&mut *shared.reports.lock().unwrap_or_else(|p| p.into_inner()));
    let count = scenarios.len();
    if scenarios.is_empty() {
        return 0;
    }
    let run = match shared.env.get() {
        Some(Ok(env)) => {
            let (run, shutdown) = shared.runtime.block_on(lifecycle::finish(
                env,
                shared.started_at,
                shared.started.elapsed(),
                scenarios,
            ));
            if !shutdown.errors.is_empty() {
                eprintln!("e2e: teardown problems: {}", shutdown.errors.join("; "));
            }
            run
        }
        // Every trial was skipped (or the provider never started): report them all the same.
        _ => podid_reports::RunReport {
            run_id: "not-started".into(),
            provider: shared.provider.name().into(),
            started_at: shared.started_at,
            duration: shared.started.elapsed(),
            environment: Vec::new(),
            scenarios,
        },
    };
    let dir = session::default_output_dir(&workspace()).join("reports-e2e");
    match podid_reports::write_all(&run, &dir) {
        Ok(_) => eprintln!("e2e: reports in {}", dir.display()),
        Err(e) => eprintln!("e2e: writing reports: {e}"),
    }
    count
}
