//! End-to-end suite: every scenario in `scenarios/` × each of its NMI modes, as one trial each,
//! against the local provider (real etcd, kube-apiserver and NMI; mock Azure).
//!
//! `cargo test --test e2e`, `-- <filter>`, `-- --list`, `-- --exact <name>` work as usual. The
//! cluster starts once, lazily, at the first trial that runs. Missing prerequisites (root,
//! network namespaces, Go to build the toolchain) fail every trial with the reason; set
//! `PODID_SKIP_E2E=1` to mark the trials ignored instead on machines that cannot run them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};
use podid::provider::local::LocalProvider;
use podid::provider::{ProbeCommand, Provider};
use podid::runner::{self, Environment};
use podid::session::{self, LocalSessionOptions, SKIP_E2E_VAR};
use podid_reports::{Outcome, RunReport, ScenarioReport};
use podid_toolchain::{LogObserver, ToolchainConfig};

fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The environment all trials share, started by the first trial that needs it.
///
/// Everything that starts processes runs as a task on `runtime`'s worker threads: children die
/// with the thread that spawned them, and the test harness's own threads come and go.
struct Shared {
    runtime: tokio::runtime::Runtime,
    env: tokio::sync::OnceCell<Result<Environment<LocalProvider>, String>>,
    reports: Mutex<Vec<ScenarioReport>>,
    started_at: chrono::DateTime<chrono::Utc>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| Shared {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("the async runtime starts"),
        env: tokio::sync::OnceCell::new(),
        reports: Mutex::new(Vec::new()),
        started_at: chrono::Utc::now(),
    })
}

async fn start_environment() -> Result<Environment<LocalProvider>, String> {
    let options = LocalSessionOptions {
        output_dir: session::default_output_dir(&workspace()),
        probe: ProbeCommand::binary(PathBuf::from(env!("CARGO_BIN_EXE_podid-probe"))),
        toolchain: ToolchainConfig::from_env(),
    };
    let started = std::time::Instant::now();
    let (env, figures) = tokio::spawn(session::start_local(options, &LogObserver))
        .await
        .map_err(|e| format!("the start-up task failed: {e}"))?
        .map_err(|e| format!("the local environment could not start: {e}"))?;
    eprintln!(
        "e2e: environment ready in {:.1}s (toolchain {:.1}s, cluster and cloud {:.1}s), run {}",
        started.elapsed().as_secs_f64(),
        figures.toolchain.as_secs_f64(),
        figures.provider.as_secs_f64(),
        env.run_id
    );
    Ok(env)
}

/// Runs one trial on the shared environment (starting it first if needed).
fn run(trial: runner::Trial) -> Result<ScenarioReport, String> {
    let shared = shared();
    shared.runtime.block_on(async move {
        let env = shared
            .env
            .get_or_init(start_environment)
            .await
            .as_ref()
            .map_err(|e| e.clone())?;
        tokio::spawn(async move { runner::run_trial(env, &trial).await })
            .await
            .map_err(|e| format!("the trial task failed: {e}"))
    })
}

/// Ctrl-C at any time (even while the cluster starts): tear down this process's runs from their
/// state files, then exit as SIGINT would.
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
                if let Err(e) = podid_local::clean_own_runs() {
                    eprintln!("e2e: cleanup after interrupt failed: {e}");
                }
            }
            std::process::exit(130);
        }
    });
}

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
        if let Some(out) = &step.output {
            for line in out.lines() {
                text.push_str(&format!("    | {line}\n"));
            }
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

fn main() -> ExitCode {
    let args = Arguments::from_args();
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

    let files = podid_scenario::discover(&[workspace().join("scenarios")]).unwrap_or_default();
    let (mut loaded, invalid) = podid_scenario::load_all(&files);
    // Reports name files relative to the repository, as a contributor sees them.
    for file in &mut loaded {
        if let Ok(relative) = file.path.strip_prefix(workspace()) {
            file.path = relative.to_path_buf();
        }
    }
    let skip_reason = std::env::var(SKIP_E2E_VAR)
        .ok()
        .filter(|v| !v.is_empty() && v != "0")
        .map(|_| format!("{SKIP_E2E_VAR} is set: end-to-end trials are not run on this machine"));
    if let Some(reason) = &skip_reason {
        eprintln!("e2e: {reason}");
    }

    let mut trials = Vec::new();
    if files.is_empty() || !invalid.is_empty() {
        let problems: Vec<String> = invalid
            .iter()
            .flat_map(|f| f.problems.iter().map(|p| p.one_line()))
            .collect();
        trials.push(Trial::test("scenario_files_are_valid", move || {
            if problems.is_empty() {
                Err(Failed::from("no scenario files found in scenarios/"))
            } else {
                Err(Failed::from(problems.join("\n")))
            }
        }));
    }
    for trial in runner::trials(&loaded) {
        let name = trial.name("local");
        let tags = trial
            .file
            .scenario
            .tags
            .iter()
            .map(|t| t.value.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let t = Trial::test(name, move || {
            let report = run(trial).map_err(Failed::from)?;
            let passed = report.status == Outcome::Passed;
            let text = failure_text(&report);
            shared()
                .reports
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(report);
            if passed {
                Ok(())
            } else {
                Err(Failed::from(text))
            }
        })
        .with_kind(tags);
        trials.push(if skip_reason.is_some() {
            t.with_ignored_flag(true)
        } else {
            t
        });
    }

    if skip_reason.is_none() && !args.list {
        register_interrupt_cleanup();
    }
    let conclusion = libtest_mimic::run(&args, trials);

    finish();
    conclusion.exit_code()
}

/// Tears the environment down and writes the reports of the trials that ran.
fn finish() {
    let shared = shared();
    let Some(Ok(env)) = shared.env.get() else {
        return;
    };
    let environment = env.provider.environment();
    if let Some(report) = shared.runtime.block_on(env.provider.shutdown()) {
        if !report.errors.is_empty() {
            eprintln!("e2e: teardown problems: {}", report.errors.join("; "));
        }
    }
    let scenarios = std::mem::take(&mut *shared.reports.lock().unwrap_or_else(|p| p.into_inner()));
    let run = RunReport {
        run_id: env.run_id.clone(),
        provider: "local".into(),
        started_at: shared.started_at,
        duration: (chrono::Utc::now() - shared.started_at)
            .to_std()
            .unwrap_or_default(),
        environment,
        scenarios,
    };
    let dir = session::default_output_dir(&workspace()).join("reports-e2e");
    match podid_reports::write_all(&run, &dir) {
        Ok(_) => eprintln!("e2e: reports in {}", dir.display()),
        Err(e) => eprintln!("e2e: writing reports: {e}"),
    }
}
