//! `podid clean`: remove what killed runs left behind.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Clean this cluster instead (what killed `--provider existing` runs left: everything
    /// labelled `app.kubernetes.io/managed-by=podid`). Do not use it while a run uses the
    /// cluster.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// With `--kubeconfig`: the context (default: its current one).
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    pub context: Option<String>,
}

pub fn run(args: CleanArgs) -> ExitCode {
    if let Some(kubeconfig) = &args.kubeconfig {
        return clean_cluster(kubeconfig, args.context.as_deref());
    }
    if !nix::unistd::geteuid().is_root() {
        return super::fail(
            "`podid clean` needs root (it deletes network namespaces and processes started by root)",
        );
    }
    match podid_local::clean_leftovers() {
        Ok(report) => {
            println!("dead runs cleaned:   {}", list(&report.dead_runs));
            println!("processes killed:    {}", list(&report.killed));
            println!("namespaces removed:  {}", list(&report.namespaces));
            println!("live runs left alone: {}", list(&report.live_runs));
        }
        Err(e) => return super::fail(format!("cleaning leftovers: {e}")),
    }
    match super::tokio_runtime().block_on(clean_kind()) {
        Ok(Some(kind)) => {
            println!("kind clusters removed: {}", list(&kind.clusters));
            println!("containers removed:  {}", list(&kind.containers));
            println!("networks removed:    {}", list(&kind.networks));
            println!("live kind runs left alone: {}", list(&kind.live));
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("kind: no Docker daemon answers, so no kind leftovers to look for");
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(format!("cleaning kind leftovers: {e}")),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// Clusters, node containers and networks of killed kind runs; `None` without a daemon.
async fn clean_kind() -> Result<Option<podid_kind::Leftovers>, podid_kind::KindError> {
    let Ok(docker) = podid_kind::Docker::connect().await else {
        return Ok(None);
    };
    podid_kind::clean_leftovers(&docker, None, podid_kind::CleanScope::Dead)
        .await
        .map(Some)
}

/// Removes podid's leftovers from the cluster of `kubeconfig`.
fn clean_cluster(kubeconfig: &std::path::Path, context: Option<&str>) -> ExitCode {
    use podid::provider::existing::{leftovers, preflight};
    let result = super::tokio_runtime().block_on(async {
        let connected = preflight::connect(Some(kubeconfig), context)
            .await
            .map_err(|e| e.to_string())?;
        leftovers::clean(&connected.client)
            .await
            .map_err(|e| podid::provider::error_chain(&e))
    });
    match result {
        Ok(removed) => {
            println!("cluster objects removed: {}", list(&removed.objects));
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(format!("cleaning the cluster: {e}")),
    }
}
