//! Argument parsing and dispatch; each subcommand lives in its own module.

mod binaries;
mod clean;
mod exec;
mod image;
mod list;
mod progress;
mod run;
mod toolchain;
mod up;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for "the checks ran and something failed".
pub const EXIT_FAILED: u8 = 1;
/// Exit code for misuse or a run that could not start.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "podid",
    version,
    about = "Conformance and end-to-end checks for AAD Pod Identity: the real NMI against a mock Azure, driven by YAML scenarios",
    after_help = "Run everything: `podid run`. Check scenario files: `podid validate`. See README.md."
)]
struct Cli {
    /// More log output (repeat for more); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios against a provider and write reports under target/podid/reports.
    Run(run::RunArgs),
    /// Check scenario files without a cluster; exits non-zero on any problem.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of scenario files.
    Schema,
    /// List scenarios with their tags and modes.
    List(list::ListArgs),
    /// Build (or show) the cached toolchain: etcd, kube-apiserver, NMI, MIC.
    Toolchain(toolchain::ToolchainArgs),
    /// Remove what killed runs left: processes, network namespaces, hosts files, kind clusters;
    /// with `--kubeconfig`, podid's objects in that cluster.
    Clean(clean::CleanArgs),
    /// Bring one scenario's environment up (local provider) and keep it until Ctrl-C.
    Up(up::UpArgs),
    /// Run a command in a pod of a running `podid up`.
    Exec(exec::ExecArgs),
    /// The workload podid runs inside pods (see `podid-probe --help`).
    #[command(hide = true)]
    Probe {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Build the workload image pods run on an existing cluster.
    Image {
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// The mock Azure cloud on its own.
    Mock {
        #[command(subcommand)]
        command: MockCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MockCommand {
    /// Serve AAD, ARM, Blob and IMDS on loopback from a cloud description.
    Serve(podid_mocks::standalone::ServeArgs),
    /// On a node outside Azure: send the node's 169.254.169.254 to its mock IMDS until
    /// stopped (refused where a real metadata service answers).
    RedirectImds(podid_mocks::redirect::RedirectArgs),
}

/// Where scenario files are looked for when no path is given.
pub fn default_scenarios() -> Vec<PathBuf> {
    vec![PathBuf::from("scenarios")]
}

/// Finds and loads the scenario files under `paths` (default `scenarios/`): the valid ones and
/// the problems of the others; a path that does not exist is a usage error.
pub fn load_scenarios(
    paths: &[PathBuf],
) -> Result<
    (
        Vec<podid_scenario::ScenarioFile>,
        Vec<podid_scenario::FileProblems>,
    ),
    ExitCode,
> {
    let paths = if paths.is_empty() {
        default_scenarios()
    } else {
        paths.to_vec()
    };
    let files = podid_scenario::discover(&paths).map_err(|p| fail(p.one_line()))?;
    if files.is_empty() {
        return Err(fail(format!(
            "no scenario files (*.yaml) in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(podid_scenario::load_all(&files))
}

/// The scenarios under `paths`, all of them valid; an invalid file is a usage error that
/// lists every problem.
pub fn load_valid_scenarios(
    paths: &[PathBuf],
) -> Result<Vec<podid_scenario::ScenarioFile>, ExitCode> {
    let (loaded, failed) = load_scenarios(paths)?;
    if failed.is_empty() {
        return Ok(loaded);
    }
    for f in &failed {
        for p in &f.problems {
            eprintln!("{}", p.one_line());
        }
    }
    Err(fail(
        "some scenario files are invalid; fix them first (`podid validate`)",
    ))
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,kube_client::client::builder=off",
        1 => "info,kube=warn",
        _ => "debug,hyper=info,kube=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PODID_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "probe") {
        // Inside a pod: no logging setup, one JSON line on stdout.
        podid_probe::main_from(
            std::iter::once("podid probe".into()).chain(argv.into_iter().skip(2)),
        );
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.verbose);
    if matches!(
        cli.command,
        Command::Validate(_) | Command::Schema | Command::List(_) | Command::Clean(_)
    ) {
        die_quietly_on_closed_stdout();
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Schema => {
            print!("{}", podid_scenario::schema_json());
            ExitCode::SUCCESS
        }
        Command::List(args) => list::run(args),
        Command::Run(args) => run::run(args),
        Command::Toolchain(args) => toolchain::run(args),
        Command::Clean(args) => clean::run(args),
        Command::Up(args) => up::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Probe { args } => {
            podid_probe::main_from(std::iter::once("podid probe".into()).chain(args));
            ExitCode::SUCCESS
        }
        Command::Image { command } => image::run(command),
        Command::Mock {
            command: MockCommand::RedirectImds(args),
        } => tokio_runtime().block_on(podid_mocks::redirect::run(args)),
        Command::Mock {
            command: MockCommand::Serve(args),
        } => match tokio_runtime().block_on(podid_mocks::standalone::serve(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(report) => {
                eprintln!("{report:?}");
                ExitCode::from(EXIT_USAGE)
            }
        },
    }
}

/// Commands that only print end like other Unix tools when their reader goes away
/// (`podid list | head`): killed by SIGPIPE, not a panic about a broken pipe. Not for commands
/// that talk to servers, where a peer closing a socket must stay an error.
fn die_quietly_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restores the default disposition before any thread that could rely on the
    // ignored one exists; no handler code runs.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

/// Prints a one-line error and returns the usage exit code.
pub fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("podid: {message}");
    ExitCode::from(EXIT_USAGE)
}
