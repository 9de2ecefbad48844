//! Running external programs (docker, kind, debootstrap, tar, gcc) with tokio, capturing their
//! output so a failure can show the lines that explain it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use tokio::io::AsyncWriteExt;

use crate::error::{KindError, Result};

/// How many trailing output lines a failure shows.
const TAIL_LINES: usize = 40;

/// One command to run, with what it is for (used in errors and logs).
#[derive(Debug)]
pub(crate) struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Input>,
    action: String,
}

#[derive(Debug)]
enum Input {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) success: bool,
    pub(crate) status: String,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Captured {
    /// The last lines of stderr then stdout, for error messages.
    pub(crate) fn tail(&self) -> String {
        tail_lines(&format!(
            "{}\n{}",
            self.stderr.trim_end(),
            self.stdout.trim_end()
        ))
    }
}

pub(crate) fn tail_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

impl Cmd {
    /// A command running `program`, done in order to `action` ("importing the node root", …).
    pub(crate) fn new(program: impl AsRef<OsStr>, action: impl Into<String>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            action: action.into(),
        }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Feeds the file at `path` to the command's stdin.
    pub(crate) fn stdin_file(mut self, path: &Path) -> Self {
        self.stdin = Some(Input::File(path.to_owned()));
        self
    }

    /// Feeds `bytes` to the command's stdin.
    pub(crate) fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(Input::Bytes(bytes.into()));
        self
    }

    /// The command line for messages, with long arguments shortened.
    pub(crate) fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| {
                let s = a.to_string_lossy();
                if s.chars().count() > 120 {
                    format!("{}…", s.chars().take(117).collect::<String>())
                } else if s.contains(' ') || s.is_empty() {
                    format!("'{s}'")
                } else {
                    s.into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command to completion; a non-zero exit is reported, not an error.
    pub(crate) async fn capture(self) -> Result<Captured> {
        let shown = self.display();
        let started = Instant::now();
        tracing::debug!(command = %shown, action = %self.action, "running");
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let bytes = match self.stdin {
            None => {
                command.stdin(Stdio::null());
                None
            }
            Some(Input::File(path)) => {
                let file = std::fs::File::open(&path).map_err(KindError::io(
                    format!("{}: opening stdin", self.action),
                    &path,
                ))?;
                command.stdin(Stdio::from(file));
                None
            }
            Some(Input::Bytes(bytes)) => {
                command.stdin(Stdio::piped());
                Some(bytes)
            }
        };
        let mut child = command.spawn().map_err(|e| KindError::Command {
            action: self.action.clone(),
            command: shown.clone(),
            status: format!("could not be started: {e}"),
            output: String::new(),
        })?;
        if let (Some(bytes), Some(mut stdin)) = (bytes, child.stdin.take()) {
            // A command that exits early closes its stdin; its exit status tells the story.
            let _ = stdin.write_all(&bytes).await;
            drop(stdin);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| KindError::Command {
                action: self.action.clone(),
                command: shown.clone(),
                status: format!("could not be waited for: {e}"),
                output: String::new(),
            })?;
        let captured = Captured {
            success: out.status.success(),
            status: match out.status.code() {
                Some(code) => format!("exited with status {code}"),
                None => format!("was killed ({})", out.status),
            },
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        tracing::debug!(
            command = %shown,
            secs = started.elapsed().as_secs_f64(),
            status = %captured.status,
            "finished"
        );
        Ok(captured)
    }

    /// Runs the command and returns its stdout; a non-zero exit is an error showing the output.
    pub(crate) async fn output(self) -> Result<String> {
        let action = self.action.clone();
        let shown = self.display();
        let captured = self.capture().await?;
        if captured.success {
            Ok(captured.stdout)
        } else {
            Err(KindError::Command {
                action,
                command: shown,
                status: captured.status.clone(),
                output: captured.tail(),
            })
        }
    }

    /// Runs the command for its effect.
    pub(crate) async fn run(self) -> Result<()> {
        self.output().await.map(drop)
    }
}
