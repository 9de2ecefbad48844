//! Writes every report format into one directory the caller chooses.

use std::path::{Path, PathBuf};

use crate::error::ReportError;
use crate::json::render_json;
use crate::junit::render_junit;
use crate::markdown::render_markdown;
use crate::model::RunReport;

/// File name of the JUnit XML report.
pub const JUNIT_FILE_NAME: &str = "junit.xml";
/// File name of the JSON report.
pub const JSON_FILE_NAME: &str = "report.json";
/// File name of the Markdown summary.
pub const MARKDOWN_FILE_NAME: &str = "summary.md";

/// Renders all formats and writes them under `dir` (created if missing); returns the paths
/// written, JUnit, JSON, Markdown in that order.
pub fn write_all(report: &RunReport, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    // Render everything first so a rendering error leaves no partial set of files behind.
    let rendered = [
        (JUNIT_FILE_NAME, render_junit(report)?),
        (JSON_FILE_NAME, render_json(report)),
        (MARKDOWN_FILE_NAME, render_markdown(report)),
    ];
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::with_capacity(rendered.len());
    for (file_name, contents) in rendered {
        let path = dir.join(file_name);
        std::fs::write(&path, contents).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}
