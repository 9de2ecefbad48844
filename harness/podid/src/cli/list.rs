//! `podid list`: the scenarios with tags and modes, or, with `--provider`, every trial and
//! whether that provider would run it or skip it (and why).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use podid::provider::ProviderKind;
use podid::runner::Plan;

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
    /// List trials as this provider would plan them: runnable, or skipped with the reason.
    #[arg(long)]
    pub provider: Option<String>,
    /// With `--provider existing`: plan for this cloud (`azure`, the default, or `mock`; also
    /// PODID_CLOUD).
    #[arg(long, value_enum)]
    pub cloud: Option<podid::provider::existing::CloudChoice>,
}

pub fn run(args: ListArgs) -> ExitCode {
    if let Some(name) = &args.provider {
        return list_plan(&args, name);
    }
    let (loaded, failed) = match super::load_scenarios(&args.paths) {
        Ok(x) => x,
        Err(code) => return code,
    };
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

fn list_plan(args: &ListArgs, name: &str) -> ExitCode {
    let provider = match ProviderKind::parse(name) {
        Ok(p) => p,
        Err(e) => return super::fail(e),
    };
    let loaded = match super::load_valid_scenarios(&args.paths) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let trials =
        super::run::select_trials(&loaded, provider, args.filter.as_deref(), &args.tags, None);
    let cloud = match args.cloud {
        Some(cloud) => cloud,
        None => match podid::provider::existing::CloudChoice::from_env() {
            Ok(cloud) => cloud,
            Err(e) => return super::fail(e),
        },
    };
    let plan = Plan::new(trials, provider.name(), &provider.capabilities_with(cloud));
    for planned in &plan.trials {
        match &planned.skip {
            None => match &planned.exclusive_reason {
                None => println!("run   {}", planned.name),
                Some(why) => println!("run   {}  (alone: {why})", planned.name),
            },
            Some(reason) => println!("skip  {}  ({reason})", planned.name),
        }
    }
    eprintln!(
        "podid: {} of {} trial(s) would run on `{provider}`",
        plan.runnable(),
        plan.trials.len()
    );
    ExitCode::SUCCESS
}
