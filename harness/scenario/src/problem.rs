//! Problems found in a scenario file, each pointing at file:line:column with a hint.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

use crate::located::Position;

/// One thing wrong with a scenario file.
#[derive(Debug, Clone)]
pub struct Problem {
    pub file: PathBuf,
    pub at: Position,
    pub message: String,
    pub help: Option<String>,
    source: Option<Arc<NamedSource<String>>>,
}

impl Problem {
    pub fn new(file: &Path, at: Position, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            at,
            message: message.into(),
            help: None,
            source: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Attaches the file text so renderers can show the offending line.
    pub fn with_source(mut self, source: Arc<NamedSource<String>>) -> Self {
        self.source = Some(source);
        self
    }

    /// `file:line:col: message` (and the hint on the next line), the form editors and CI parse.
    pub fn one_line(&self) -> String {
        let mut s = format!("{}:{}: {}", self.file.display(), self.at, self.message);
        if let Some(help) = &self.help {
            s.push_str("\n  hint: ");
            s.push_str(help);
        }
        s
    }

    fn byte_offset(&self) -> Option<usize> {
        let text = self.source.as_ref()?.inner();
        if self.at.line == 0 {
            return None;
        }
        let mut offset = 0usize;
        for (index, line) in text.split_inclusive('\n').enumerate() {
            if index + 1 == self.at.line as usize {
                let col = (self.at.column.max(1) - 1) as usize;
                let within = line
                    .char_indices()
                    .nth(col)
                    .map(|(i, _)| i)
                    .unwrap_or(line.trim_end_matches('\n').len());
                return Some(offset + within);
            }
            offset += line.len();
        }
        Some(text.len())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.at, self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("podid::scenario"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.clone()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_deref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let offset = self.byte_offset()?;
        Some(Box::new(std::iter::once(LabeledSpan::at_offset(
            offset, "here",
        ))))
    }
}

/// Everything wrong with one file (never empty).
#[derive(Debug, Clone)]
pub struct FileProblems {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for FileProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {} problem{}",
            self.file.display(),
            n,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for FileProblems {}

impl Diagnostic for FileProblems {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

/// Renders problems the way `podid validate` prints them, without colours (for logs and tests).
pub fn render_plain(problems: &[Problem]) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .with_links(false);
    let mut out = String::new();
    for p in problems {
        let _ = handler.render_report(&mut out, p);
    }
    out
}
