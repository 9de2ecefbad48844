//! Measures what a contributor waits for: starting the local environment (toolchain check,
//! control plane, mock cloud), starting NMI, running the committed scenarios, and tearing down.
//!
//! ```sh
//! cargo build -p podid --bins
//! cargo run -p podid --example startup_benchmark -- 5     # five rounds (default 3)
//! ```
//!
//! Needs root, like the suite; `PODID_PROVIDER` picks the provider. Prints one line per round
//! and the median of each phase.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use podid::lifecycle;
use podid::provider::kind::KindOptions;
use podid::provider::{IdentityConfig, ProbeCommand, ProviderKind};
use podid::runner;
use podid::session::{self, SessionOptions};
use podid_reports::{Outcome, Reporter};
use podid_scenario::NmiMode;
use podid_toolchain::{NoopObserver, ToolchainConfig};

/// The benchmark prints its own table.
struct Quiet;
impl Reporter for Quiet {}

struct Round {
    toolchain: Duration,
    environment: Duration,
    nmi: Duration,
    scenarios: Duration,
    slowest: (String, Duration),
    teardown: Duration,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

async fn round(workspace: &Path, probe: &Path, provider: ProviderKind) -> Result<Round, String> {
    let files =
        podid_scenario::discover(&[workspace.join("scenarios")]).map_err(|p| p.one_line())?;
    let (loaded, invalid) = podid_scenario::load_all(&files);
    if !invalid.is_empty() {
        return Err("invalid scenario files; run `podid validate`".into());
    }
    let started = Instant::now();
    let (env, figures) = lifecycle::start(
        provider,
        SessionOptions {
            output_dir: session::default_output_dir(workspace),
            probe: ProbeCommand::binary(probe.to_path_buf()),
            toolchain: ToolchainConfig::from_env(),
            kind: KindOptions::from_env(),
            existing: podid::provider::existing::ExistingOptions::from_env()?,
        },
        &NoopObserver,
    )
    .await
    .map_err(|e| e.to_string())?;
    let environment = started.elapsed() - figures.toolchain;

    let nmi_started = Instant::now();
    let managed = IdentityConfig {
        mode: NmiMode::Managed,
        nmi_flags: Vec::new(),
        mic_flags: Vec::new(),
        mic_replicas: 0,
    };
    env.provider
        .cluster
        .configure(&managed)
        .await
        .map_err(|e| e.to_string())?;
    let nmi = nmi_started.elapsed();

    let scenarios_started = Instant::now();
    let plan = env.plan(runner::trials(&loaded));
    let reports = lifecycle::run(&env, &plan, 1, &Quiet).await;
    let scenarios = scenarios_started.elapsed();
    let mut slowest = (String::new(), Duration::ZERO);
    for report in &reports {
        if report.status != Outcome::Passed {
            env.provider.shutdown().await;
            return Err(format!("scenario {} did not pass", report.name));
        }
        if report.duration > slowest.1 {
            slowest = (report.name.clone(), report.duration);
        }
    }

    let teardown_started = Instant::now();
    lifecycle::finish(&env, chrono::Utc::now(), started.elapsed(), reports).await;
    Ok(Round {
        toolchain: figures.toolchain,
        environment,
        nmi,
        scenarios,
        slowest,
        teardown: teardown_started.elapsed(),
    })
}

fn main() -> Result<(), String> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|n| {
            n.parse()
                .map_err(|_| format!("`{n}` is not a number of rounds"))
        })
        .transpose()?
        .unwrap_or(3);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let probe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|d| d.join("podid-probe")))
        .unwrap_or_else(|| PathBuf::from("podid-probe"));
    let provider = ProviderKind::choose(None).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    println!(
        "round  toolchain  cluster+cloud  nmi     scenarios  slowest scenario                    teardown"
    );
    for i in 1..=rounds {
        let r = runtime.block_on(round(&workspace, &probe, provider))?;
        println!(
            "{i:>5}  {:>9}  {:>13}  {:>6}  {:>9}  {:<28} {:>6}  {:>8}",
            secs(r.toolchain),
            secs(r.environment),
            secs(r.nmi),
            secs(r.scenarios),
            r.slowest.0,
            secs(r.slowest.1),
            secs(r.teardown)
        );
        results.push(r);
    }
    println!(
        "median {:>9}  {:>13}  {:>6}  {:>9}  {:<35}  {:>8}",
        secs(median(results.iter().map(|r| r.toolchain).collect())),
        secs(median(results.iter().map(|r| r.environment).collect())),
        secs(median(results.iter().map(|r| r.nmi).collect())),
        secs(median(results.iter().map(|r| r.scenarios).collect())),
        "",
        secs(median(results.iter().map(|r| r.teardown).collect())),
    );
    Ok(())
}
