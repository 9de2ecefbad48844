//! Child processes of the cluster: spawned with logs to files, stopped with SIGTERM then SIGKILL.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::LocalError;

/// A running child whose stdout and stderr go to a log file.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    log: PathBuf,
    pid: u32,
    child: tokio::process::Child,
}

impl ChildProcess {
    /// Spawns `cmd` as `name`, appending its output to `log`.
    pub fn spawn(
        name: &str,
        mut cmd: tokio::process::Command,
        log: &Path,
    ) -> Result<Self, LocalError> {
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| LocalError::io(format!("creating {}", dir.display()), e))?;
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| LocalError::io(format!("opening log {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| LocalError::io(format!("duplicating log {}", log.display()), e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| LocalError::io(format!("starting {name}"), e))?;
        let pid = child.id().ok_or_else(|| {
            LocalError::io(
                format!("starting {name}"),
                std::io::Error::other("exited at once"),
            )
        })?;
        tracing::debug!(name, pid, log = %log.display(), "started");
        Ok(Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            pid,
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` (ignoring a process that is already gone).
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), signal);
    }

    /// SIGKILL and wait for the exit.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGKILL and reap without a runtime (for `Drop`), waiting at most `limit`.
    pub fn kill_blocking(&mut self, limit: Duration) {
        if self.exited().is_some() {
            return;
        }
        self.signal(Signal::SIGKILL);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match waitpid(Pid::from_raw(self.pid as i32), Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return,
            }
        }
    }
}

/// The last `lines` lines of a log file (empty if unreadable), for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The start time (clock ticks since boot) of process `pid`, to tell it from a reused pid;
/// `None` when there is no such process or it has already exited (a zombie awaiting its parent).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    if parse_state(&stat)? == 'Z' {
        return None;
    }
    parse_start_time(&stat)
}

/// Field 3 (`state`) of a `/proc/PID/stat` line.
pub fn parse_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Field 22 (`starttime`) of a `/proc/PID/stat` line; the command name may contain spaces.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_spaces_in_the_name() {
        let stat = "4242 (kube apiserver) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 12 0 987654 1000 50";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_state(stat), Some('S'));
        assert_eq!(parse_state("7 (x) Z 1 7"), Some('Z'));
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_some());
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("podid-tail-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.log");
        fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&path, 2), "c\nd");
        assert_eq!(log_tail(&path, 10), "a\nb\nc\nd");
        fs::remove_dir_all(&dir).unwrap();
    }
}
