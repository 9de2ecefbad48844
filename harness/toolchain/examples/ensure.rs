//! Prepares the toolchain in the default cache and prints what happened with timings:
//! `cargo run -p podid-toolchain --example ensure [-- --status | --system-packages | --kind]`.
//! `--kind` prepares only the kind node image inputs ([`podid_toolchain::ensure_kind`]).

use std::time::Instant;

use podid_toolchain::{BuildEvent, BuildObserver, ToolchainConfig};

/// Prints milestones (not build output) with the time since start.
struct PrintingObserver {
    start: Instant,
}

impl BuildObserver for PrintingObserver {
    fn event(&self, ev: BuildEvent) {
        let t = self.start.elapsed().as_secs_f64();
        match ev {
            BuildEvent::Output { .. } | BuildEvent::InstallOutput { .. } => {}
            other => println!("[{t:7.1}s] {other:?}"),
        }
    }
}

fn main() {
    let cfg = ToolchainConfig::from_env();
    let kind = std::env::args().any(|a| a == "--kind");
    if std::env::args().any(|a| a == "--status") {
        let statuses = if kind {
            podid_toolchain::kind_status(&cfg)
        } else {
            podid_toolchain::status(&cfg)
        };
        for status in statuses {
            println!("{} {}: {:?}", status.artifact, status.version, status.state);
        }
        return;
    }
    let observer = PrintingObserver {
        start: Instant::now(),
    };
    if std::env::args().any(|a| a == "--system-packages") {
        if let Err(err) = podid_toolchain::ensure_system_packages(&observer) {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
        println!("iptables and ip are present");
        return;
    }
    if kind {
        match podid_toolchain::ensure_kind(&cfg, &observer) {
            Ok(toolchain) => {
                println!("{toolchain:#?}");
                println!("total {:.1}s", observer.start.elapsed().as_secs_f64());
            }
            Err(err) => {
                eprintln!("error: {err}");
                std::process::exit(1);
            }
        }
        return;
    }
    match podid_toolchain::ensure(&cfg, &observer) {
        Ok(toolchain) => {
            println!("{toolchain:#?}");
            println!("total {:.1}s", observer.start.elapsed().as_secs_f64());
        }
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    }
}
