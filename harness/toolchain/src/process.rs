//! Running child processes: builds streamed line by line into a log, and short probes with a timeout.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs `cmd`, appending stdout and stderr to `log` and passing each line to `on_line`.
/// Returns the exit status and the captured stdout.
pub(crate) fn run_streamed(
    mut cmd: Command,
    log: &Mutex<File>,
    on_line: &(dyn Fn(String) + Sync),
) -> std::io::Result<(ExitStatus, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let pump = |stream: &mut dyn Read, keep: bool| -> String {
        let mut kept = String::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut file) = log.lock() {
                let _ = writeln!(file, "{line}");
            }
            if keep {
                kept.push_str(&line);
                kept.push('\n');
            }
            on_line(line);
        }
        kept
    };
    let captured = std::thread::scope(|scope| {
        let mut stderr = stderr;
        let err_thread = scope.spawn(move || pump(&mut stderr, false));
        let mut stdout = stdout;
        let out = pump(&mut stdout, true);
        let _ = err_thread.join();
        out
    });
    let status = child.wait()?;
    Ok((status, captured))
}

/// What a short-lived probe printed.
#[derive(Debug, Clone)]
pub(crate) struct ProbeOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// stdout followed by stderr.
    pub text: String,
}

/// Runs `program args…` and kills it if it has not exited within `timeout`.
pub(crate) fn run_probe(
    program: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Result<ProbeOutput, String> {
    let mut child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child
            .try_wait()
            .map_err(|e| format!("waiting for it failed: {e}"))?
        {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{} {}` did not exit within {}s",
                    program.display(),
                    args.join(" "),
                    timeout.as_secs()
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut text = String::from_utf8_lossy(&out_thread.join().unwrap_or_default()).into_owned();
    text.push_str(&String::from_utf8_lossy(
        &err_thread.join().unwrap_or_default(),
    ));
    Ok(ProbeOutput { status, text })
}

/// The last `lines` lines of a file, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_run_logs_both_streams_and_captures_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("log");
        let log = Mutex::new(File::create(&log_path).unwrap());
        let seen = Mutex::new(Vec::new());
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo out1; echo err1 >&2; echo out2; exit 3"]);
        let (status, stdout) =
            run_streamed(cmd, &log, &|line| seen.lock().unwrap().push(line)).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(stdout, "out1\nout2\n");
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, ["err1", "out1", "out2"]);
        let logged = std::fs::read_to_string(&log_path).unwrap();
        assert!(
            logged.contains("err1") && logged.contains("out2"),
            "{logged}"
        );
    }

    #[test]
    fn probe_times_out_on_a_hanging_program() {
        let start = Instant::now();
        let err = run_probe(
            Path::new("/bin/sleep"),
            &["30"],
            &[],
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(err.contains("did not exit within"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&file, 2), "c\nd");
        assert_eq!(tail(&file, 10), "a\nb\nc\nd");
    }
}
