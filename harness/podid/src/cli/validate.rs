//! `podid validate`: every problem in every file, with file:line:col and a hint.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files or directories (default: scenarios/).
    pub paths: Vec<PathBuf>,
}

pub fn run(args: ValidateArgs) -> ExitCode {
    let (loaded, failed) = match super::load_scenarios(&args.paths) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let colour = std::io::stderr().is_terminal();
    let handler = if colour {
        miette::GraphicalReportHandler::new()
    } else {
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
    };
    let mut count = 0;
    for file in &failed {
        for problem in &file.problems {
            count += 1;
            let mut out = String::new();
            let _ = handler.render_report(&mut out, problem);
            eprintln!("{out}");
        }
    }
    for file in &loaded {
        println!(
            "ok  {}  ({})",
            file.path.display(),
            file.scenario.name.value
        );
    }
    if failed.is_empty() {
        println!("{} scenario file(s) valid", loaded.len());
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{count} problem(s) in {} of {} file(s)",
            failed.len(),
            failed.len() + loaded.len()
        );
        ExitCode::from(super::EXIT_FAILED)
    }
}
