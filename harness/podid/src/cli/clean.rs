//! `podid clean`: remove what killed runs left behind.

use std::process::ExitCode;

pub fn run() -> ExitCode {
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
