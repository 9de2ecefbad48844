//! `podid list`: what would run, with tags and modes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only scenarios whose name contains this text.
    pub filter: Option<String>,
    /// Only scenarios with this tag (repeatable: any of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Scenario files or directories (default: scenarios/).
    #[arg(long = "scenarios")]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: ListArgs) -> ExitCode {
    let paths = if args.paths.is_empty() {
        super::default_scenarios()
    } else {
        args.paths.clone()
    };
    let files = match podid_scenario::discover(&paths) {
        Ok(f) => f,
        Err(p) => return super::fail(p.one_line()),
    };
    let (loaded, failed) = podid_scenario::load_all(&files);
    for f in &failed {
        eprintln!(
            "podid: {} is invalid (run `podid validate`)",
            f.file.display()
        );
    }
    for file in super::run::select(&loaded, args.filter.as_deref(), &args.tags) {
        let s = &file.scenario;
        let modes: Vec<&str> = s.modes.iter().map(|m| m.value.as_str()).collect();
        let tags: Vec<&str> = s.tags.iter().map(|t| t.as_str()).collect();
        println!(
            "{:<28} modes: {:<17} tags: {:<28} {}",
            s.name.value,
            modes.join(","),
            tags.join(","),
            file.path.display()
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILED)
    }
}
