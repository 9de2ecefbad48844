//! Prepares the toolchain in the default cache and prints what happened with timings:
//! `cargo run -p podid-toolchain --example ensure [-- --status | --system-packages]`.

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
    if std::env::args().any(|a| a == "--status") {
        for status in podid_toolchain::status(&cfg) {
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
