//! Reading scenario files: YAML → [`Scenario`] → validated [`ScenarioFile`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::NamedSource;

use crate::located::Position;
use crate::model::Scenario;
use crate::problem::{FileProblems, Problem};
use crate::validate;

/// A scenario that parsed and passed validation, with where it came from.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    pub path: PathBuf,
    pub scenario: Scenario,
}

/// Reads, parses and validates one file.
pub fn load_file(path: &Path) -> Result<ScenarioFile, FileProblems> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(path, &text),
        Err(e) => Err(FileProblems {
            file: path.to_path_buf(),
            problems: vec![
                Problem::new(
                    path,
                    Position::default(),
                    format!("cannot read the file: {e}"),
                )
                .with_help("check the path and its permissions"),
            ],
        }),
    }
}

/// Parses and validates scenario text; `path` is used in messages only.
pub fn load_str(path: &Path, text: &str) -> Result<ScenarioFile, FileProblems> {
    let source = Arc::new(NamedSource::new(
        path.display().to_string(),
        text.to_string(),
    ));
    let fail = |problems: Vec<Problem>| FileProblems {
        file: path.to_path_buf(),
        problems: problems
            .into_iter()
            .map(|p| p.with_source(source.clone()))
            .collect(),
    };
    let scenario = parse(path, text).map_err(|p| fail(vec![p]))?;
    let problems = validate::validate(path, &scenario);
    if problems.is_empty() {
        Ok(ScenarioFile {
            path: path.to_path_buf(),
            scenario,
        })
    } else {
        Err(fail(problems))
    }
}

fn parse(path: &Path, text: &str) -> Result<Scenario, Problem> {
    if text.trim().is_empty() {
        return Err(
            Problem::new(path, Position { line: 1, column: 1 }, "the file is empty")
                .with_help("a scenario needs at least `name` and `steps`; see scenarios/README.md"),
        );
    }
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options::<Scenario>(text, options).map_err(|err| {
        let at = err
            .location()
            .map(|l| Position {
                line: u32::try_from(l.line()).unwrap_or(u32::MAX),
                column: u32::try_from(l.column()).unwrap_or(u32::MAX),
            })
            .unwrap_or(Position { line: 1, column: 1 });
        let message = clean_message(&err.without_snippet().to_string());
        let help = hint_for(&message);
        let problem = Problem::new(path, at, message);
        match help {
            Some(h) => problem.with_help(h),
            None => problem,
        }
    })
}

/// Drops the location suffix the YAML library appends (we print file:line:col ourselves).
fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let trimmed = match first.rfind(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let trimmed = trimmed.trim_end_matches('.');
    match trimmed.strip_prefix("duplicate mapping key: ") {
        Some(rest) => {
            let key = rest
                .split(", set DuplicateKeyPolicy")
                .next()
                .unwrap_or(rest);
            format!("duplicate key `{key}`")
        }
        None => trimmed.to_string(),
    }
}

fn hint_for(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the spelling; every key is listed in scenarios/README.md and scenarios/schema.json".into())
    } else if message.contains("missing field") {
        Some("add the field; scenarios/README.md lists what each section requires".into())
    } else if message.contains("duplicate") {
        Some("names must be unique within a map; rename one of them".into())
    } else if message.contains("unknown variant") {
        Some("use one of the listed values".into())
    } else if message.contains("invalid type") {
        Some("the value has the wrong type for this key; see scenarios/README.md".into())
    } else if message.contains("not a duration") {
        Some("write durations as `500ms`, `5s`, `2m` or `1h30m`".into())
    } else {
        Some("see scenarios/README.md for the format of each key".into())
    }
}

/// Expands paths: files are taken as given, directories yield their `*.yaml`/`*.yml` files
/// (sorted, not recursive).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Problem> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| {
                Problem::new(
                    path,
                    Position::default(),
                    format!("cannot list the directory: {e}"),
                )
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml") | Some("yml")
                        )
                })
                .collect();
            files.sort();
            out.extend(files);
        } else if path.exists() {
            out.push(path.clone());
        } else {
            return Err(
                Problem::new(path, Position::default(), "no such file or directory")
                    .with_help("pass scenario files or directories holding them"),
            );
        }
    }
    Ok(out)
}

/// Loads every file; also reports scenario names used by more than one file.
pub fn load_all(paths: &[PathBuf]) -> (Vec<ScenarioFile>, Vec<FileProblems>) {
    let mut loaded: Vec<ScenarioFile> = Vec::new();
    let mut failed = Vec::new();
    for path in paths {
        match load_file(path) {
            Ok(file) => {
                if let Some(first) = loaded
                    .iter()
                    .find(|f| f.scenario.name.value == file.scenario.name.value)
                {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    let source = Arc::new(NamedSource::new(path.display().to_string(), text));
                    failed.push(FileProblems {
                        file: path.clone(),
                        problems: vec![
                            Problem::new(
                                path,
                                file.scenario.name.at,
                                format!(
                                    "scenario name `{}` is already used by {}",
                                    file.scenario.name.value,
                                    first.path.display()
                                ),
                            )
                            .with_help("scenario names name test trials and must be unique")
                            .with_source(source),
                        ],
                    });
                } else {
                    loaded.push(file);
                }
            }
            Err(problems) => failed.push(problems),
        }
    }
    (loaded, failed)
}
