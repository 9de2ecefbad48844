//! `podid image build`: the workload image an existing cluster's pods run: the probe, and the
//! podid binary that serves the in-cluster mock cloud and the node agents. Built locally with
//! Docker (as the kind provider builds it), then loaded into a kind cluster or pushed.

use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the workload image (`podid/workload:<content hash>` unless `--tag` names another).
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Also tag it as this reference (e.g. `myregistry.azurecr.io/podid-workload:v1`).
    #[arg(long, value_name = "REF")]
    pub tag: Option<String>,
    /// Push the tagged reference (`docker push`; log in to the registry first).
    #[arg(long, requires = "tag")]
    pub push: bool,
    /// Load the image into the nodes of this kind cluster (`kind load docker-image`).
    #[arg(long, value_name = "NAME")]
    pub kind_cluster: Option<String>,
    #[command(flatten)]
    pub binaries: super::binaries::BinaryOverrides,
}

pub fn run(command: ImageCommand) -> ExitCode {
    match command {
        ImageCommand::Build(args) => match super::tokio_runtime().block_on(build(args)) {
            Ok(reference) => {
                println!("{reference}");
                ExitCode::SUCCESS
            }
            Err(e) => super::fail(e),
        },
    }
}

async fn docker(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running `docker {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`docker {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn build(args: BuildArgs) -> Result<String, String> {
    let docker_api = podid_kind::Docker::connect().await.map_err(|e| {
        format!("connecting to the Docker daemon (the image is built with it): {e}")
    })?;
    let probe = super::run::probe_command();
    let cache = args.binaries.config().cache_dir.join("kind");
    let image = podid::provider::kind::images::ensure_workload_image(
        &docker_api,
        &probe,
        &cache,
        &podid::provider::kind::KindProgress,
    )
    .await
    .map_err(|e| podid::provider::error_chain(&e))?;
    let mut reference = image.tag.clone();
    if let Some(tag) = &args.tag {
        docker(&["tag", &image.tag, tag]).await?;
        reference = tag.clone();
    }
    if args.push {
        docker(&["push", &reference]).await?;
    }
    if let Some(cluster) = &args.kind_cluster {
        let config = args.binaries.config();
        let kind = podid_toolchain::ensure_kind(&config, &podid_toolchain::LogObserver)
            .map_err(|e| format!("building kind: {e}"))?;
        let out = tokio::process::Command::new(&kind.kind)
            .args(["load", "docker-image", &reference, "--name", cluster])
            .output()
            .await
            .map_err(|e| format!("running kind: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`kind load docker-image {reference} --name {cluster}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(reference)
}
