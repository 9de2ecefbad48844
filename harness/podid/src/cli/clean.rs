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
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            println!("dead runs cleaned:   {}", list(&report.dead_runs));
            println!("processes killed:    {}", list(&report.killed));
            println!("namespaces removed:  {}", list(&report.namespaces));
            println!("live runs left alone: {}", list(&report.live_runs));
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(format!("cleaning leftovers: {e}")),
    }
}
