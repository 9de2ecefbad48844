//! `mock-azure`: run the mock Azure cloud (AAD, ARM, Blob, per-machine IMDS) from a config file,
//! or redirect a node's metadata address to its mock IMDS.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use podid_mocks::redirect::{self, RedirectArgs};
use podid_mocks::standalone::{ServeArgs, serve};

/// Mock Azure cloud for podid: AAD, IMDS, ARM and Blob over real HTTP(S).
#[derive(Debug, Parser)]
#[command(name = "mock-azure", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the cloud described by a config file until Ctrl-C or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Redirect this node's 169.254.169.254:80 to its mock IMDS until SIGTERM (hostNetwork pod
    /// with NET_ADMIN; refuses where a metadata service answers).
    RedirectImds(RedirectArgs),
    /// Print an example config file (YAML).
    ExampleConfig,
}

const EXAMPLE: &str = include_str!("../../examples/cloud.yaml");

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => match serve(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(report) => {
                eprintln!("{report:?}");
                ExitCode::FAILURE
            }
        },
        Command::RedirectImds(args) => redirect::run(args).await,
        Command::ExampleConfig => {
            print!("{EXAMPLE}");
            ExitCode::SUCCESS
        }
    }
}
