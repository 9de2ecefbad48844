//! `mock-azure`: run the mock Azure cloud (AAD, ARM, Blob, per-machine IMDS) from a config file.

use clap::{Parser, Subcommand};
use miette::Result;
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
    /// Serve the cloud described by a config file until Ctrl-C.
    Serve(Box<ServeArgs>),
    /// Print an example config file (YAML).
    ExampleConfig,
}

const EXAMPLE: &str = include_str!("../../examples/cloud.yaml");

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::ExampleConfig => {
            print!("{EXAMPLE}");
            Ok(())
        }
    }
}
