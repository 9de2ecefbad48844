//! `podid up`: one scenario's environment brought up and kept until Ctrl-C, so a person can
//! look at it: the kubeconfig, the pods and how to run commands in them (`podid exec`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use podid::lifecycle;
use podid::provider::{PodShell, ProviderKind};
use podid::runner::{self, HeldTrial};
use podid::session::{self, SessionOptions};
use serde::{Deserialize, Serialize};

use super::run::ModeArg;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The scenario: a file, or the name of one under scenarios/.
    pub scenario: String,
    /// The NMI mode (default: the scenario's first).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Root of generated output (default: target/podid); the environment's description is
    /// written there as `up.json` for `podid exec`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub binaries: super::binaries::BinaryOverrides,
}

/// What `podid exec` needs from a running `podid up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpState {
    pub run_id: String,
    /// The `podid up` process holding the environment: when it is gone, so are the pods.
    pub pid: u32,
    pub scenario: String,
    pub kubeconfig: Option<PathBuf>,
    pub clients_dir: PathBuf,
    pub pods: Vec<UpPod>,
}

/// One pod of a running `podid up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpPod {
    /// The scenario's name for it.
    pub name: String,
    pub namespace: String,
    pub pod: String,
    pub node: String,
    pub ip: String,
    pub shell: Option<PodShell>,
}

/// Where `podid up` describes its environment under `out`.
pub fn state_file(out: &std::path::Path) -> PathBuf {
    out.join("up.json")
}

/// The scenario file `name` stands for: a path, or a scenario of that name in scenarios/.
fn scenario_path(name: &str) -> PathBuf {
    let path = PathBuf::from(name);
    if path.exists() {
        return path;
    }
    PathBuf::from("scenarios").join(format!("{name}.yaml"))
}

pub fn run(args: UpArgs) -> ExitCode {
    let path = scenario_path(&args.scenario);
    if !path.is_file() {
        return super::fail(format!(
            "no scenario `{}` (give a file or a name under scenarios/)",
            args.scenario
        ));
    }
    let loaded = match super::load_valid_scenarios(std::slice::from_ref(&path)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut trials = runner::trials(&loaded);
    if let Some(mode) = args.mode {
        trials.retain(|t| t.mode == mode.mode());
    }
    let Some(trial) = trials.into_iter().next() else {
        return super::fail(format!("{} has no trial in that mode", path.display()));
    };
    let out = args.out.clone().unwrap_or_else(|| {
        session::default_output_dir(&std::env::current_dir().unwrap_or_default())
    });
    super::tokio_runtime().block_on(hold(args, trial, out))
}

fn describe(held: &HeldTrial, env: &runner::Environment, scenario: &str) -> UpState {
    let cluster = &env.provider.cluster;
    UpState {
        run_id: env.run_id.clone(),
        pid: std::process::id(),
        scenario: scenario.to_string(),
        kubeconfig: cluster.kubeconfig(),
        clients_dir: podid::clients::ClientPrograms::locate()
            .root()
            .to_path_buf(),
        pods: held
            .pods
            .iter()
            .map(|(name, h)| UpPod {
                name: name.clone(),
                namespace: h.namespace.clone(),
                pod: h.name.clone(),
                node: h.node.clone(),
                ip: h.ip.to_string(),
                shell: cluster.pod_shell(h),
            })
            .collect(),
    }
}

fn print_state(state: &UpState, file: &std::path::Path) {
    println!("podid: `{}` is up (run {})", state.scenario, state.run_id);
    if let Some(k) = &state.kubeconfig {
        println!(
            "  kubeconfig: {}  (export KUBECONFIG={})",
            k.display(),
            k.display()
        );
    }
    println!("  pods:");
    for p in &state.pods {
        println!(
            "    {:<16} {}/{} on {} at {}",
            p.name, p.namespace, p.pod, p.node, p.ip
        );
    }
    if let Some(p) = state.pods.first() {
        println!("  run commands in a pod (from another terminal, in this directory):");
        println!(
            "    podid exec {} -- podid-probe token --resource https://storage.azure.com/",
            p.name
        );
        println!(
            "    podid exec {} --client python -- token --resource https://storage.azure.com/",
            p.name
        );
    }
    println!(
        "  described in {}; Ctrl-C removes everything",
        file.display()
    );
}

async fn hold(args: UpArgs, trial: runner::Trial, out: PathBuf) -> ExitCode {
    let progress = super::progress::BuildProgress::new();
    let options = SessionOptions {
        output_dir: out.clone(),
        probe: super::run::probe_command(),
        toolchain: args.binaries.config(),
        kind: Default::default(),
        existing: Default::default(),
    };
    let started = tokio::select! {
        r = lifecycle::start(ProviderKind::Local, options, &progress) => r,
        _ = tokio::signal::ctrl_c() => {
            progress.finish();
            for e in session::clean_own_runs().await {
                eprintln!("podid: cleanup after interrupt: {e}");
            }
            return ExitCode::from(130);
        }
    };
    progress.finish();
    let (env, _) = match started {
        Ok(x) => x,
        Err(e) => return super::fail(e),
    };
    let scenario = trial.scenario().name.value.clone();
    let plan = env.plan(vec![trial]);
    let file = state_file(&out);
    let held = runner::hold_trial(
        &env,
        &plan.trials[0],
        |held| {
            let state = describe(held, &env, &scenario);
            match serde_json::to_string_pretty(&state) {
                Ok(text) => {
                    if let Err(e) = std::fs::write(&file, text) {
                        eprintln!("podid: writing {}: {e}", file.display());
                    }
                }
                Err(e) => eprintln!("podid: describing the environment: {e}"),
            }
            print_state(&state, &file);
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("podid: tearing down");
        },
    )
    .await;
    let _ = std::fs::remove_file(&file);
    let shutdown = env.provider.shutdown().await;
    let mut problems = held.err().unwrap_or_default();
    problems.extend(shutdown.errors);
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("podid: {p}");
        }
        ExitCode::from(super::EXIT_FAILED)
    }
}
