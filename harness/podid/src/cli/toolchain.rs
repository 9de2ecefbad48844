//! `podid toolchain`: build the pinned components, or show what is cached.

use std::process::ExitCode;

use clap::Args;
use podid_toolchain::ArtifactState;

#[derive(Debug, Args)]
pub struct ToolchainArgs {
    /// Only show what is cached, missing or overridden; build nothing.
    #[arg(long)]
    pub status: bool,
    #[command(flatten)]
    pub binaries: super::binaries::BinaryOverrides,
}

pub fn run(args: ToolchainArgs) -> ExitCode {
    let config = args.binaries.config();
    if args.status {
        println!("cache: {}", config.cache_dir.display());
        for s in podid_toolchain::status(&config) {
            let state = match &s.state {
                ArtifactState::Cached { path } => format!("cached      {}", path.display()),
                ArtifactState::Overridden {
                    path,
                    problem: None,
                } => format!("overridden  {}", path.display()),
                ArtifactState::Overridden {
                    path,
                    problem: Some(p),
                } => format!("overridden  {} (unusable: {p})", path.display()),
                ArtifactState::Missing { reason } => format!("missing     {reason}"),
            };
            println!("{:<16} {state}", format!("{:?}", s.artifact));
        }
        return ExitCode::SUCCESS;
    }
    let observer = super::progress::BuildProgress::new();
    match podid_toolchain::ensure(&config, &observer) {
        Ok(tc) => {
            observer.finish();
            println!(
                "etcd            {}  {}",
                tc.versions.etcd,
                tc.etcd.display()
            );
            println!(
                "kube-apiserver  {}  {}",
                tc.versions.kube_apiserver,
                tc.kube_apiserver.display()
            );
            println!("nmi             {}  {}", tc.versions.nmi, tc.nmi.display());
            println!("mic             {}  {}", tc.versions.mic, tc.mic.display());
            println!(
                "crds            {}  {}",
                tc.versions.crds,
                tc.crds.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            observer.finish();
            super::fail(e)
        }
    }
}
