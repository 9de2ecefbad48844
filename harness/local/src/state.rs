//! A state file per run (`/run/podid/<run>.json`: owner, child pids, namespaces and their kind),
//! and cleaning up after runs whose owner died.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::LocalError;
use crate::process::process_start_time;

/// Directory of the per-run state files.
pub const STATE_DIR: &str = "/run/podid";

/// A process recorded with its start time, so a reused pid is never killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    /// What it is (etcd, kube-apiserver, nmi-<node>, mic-<slot>).
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// `starttime` from `/proc/PID/stat`.
    pub start_time: u64,
}

impl RecordedProcess {
    /// Records a running process; `None` if it is already gone.
    pub fn of(name: &str, pid: u32) -> Option<Self> {
        Some(Self {
            name: name.to_string(),
            pid,
            start_time: process_start_time(pid)?,
        })
    }

    /// Whether this very process (not a reuse of its pid) is still running.
    pub fn is_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

/// What a network namespace stands for: teardown deletes pods before the nodes they hang off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    /// A node: holds NMI, MIC, the metadata address and the node end of each pod's veth.
    Node,
    /// A pod: holds `eth0`, the pod end of its veth.
    Pod,
}

/// A network namespace recorded with its kind, so teardown never guesses it from the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedNamespace {
    /// Its name under `/run/netns`.
    pub name: String,
    /// Node or pod.
    pub kind: NamespaceKind,
}

/// What one run owns, so another invocation can clean up if the owner dies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The run id.
    pub run_id: String,
    /// The harness process that owns the run.
    pub owner: RecordedProcess,
    /// Child processes.
    pub processes: Vec<RecordedProcess>,
    /// Network namespaces.
    pub namespaces: Vec<RecordedNamespace>,
}

impl RunState {
    /// The state file of run `run_id`.
    pub fn path_of(run_id: &str) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{run_id}.json"))
    }

    /// Writes the state file (atomically: temp file, then rename).
    pub fn save(&self) -> Result<(), LocalError> {
        fs::create_dir_all(STATE_DIR)
            .map_err(|e| LocalError::io(format!("creating {STATE_DIR}"), e))?;
        let path = Self::path_of(&self.run_id);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("state serialises");
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| LocalError::io(format!("writing {}", path.display()), e))
    }

    /// Removes the state file of run `run_id` (missing is fine).
    pub fn remove(run_id: &str) {
        let _ = fs::remove_file(Self::path_of(run_id));
    }

    /// Every readable state file. Files that do not parse (e.g. written by an older podid) are
    /// skipped: their namespaces are still swept by the `podid-` prefix.
    pub fn load_all() -> Vec<RunState> {
        let Ok(entries) = fs::read_dir(STATE_DIR) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|path| path.extension().is_some_and(|x| x == "json"))
            .filter_map(|path| {
                let text = fs::read_to_string(&path).ok()?;
                serde_json::from_str(&text)
                    .inspect_err(
                        |e| tracing::warn!(path = %path.display(), "ignoring a state file: {e}"),
                    )
                    .ok()
            })
            .collect()
    }
}

/// What [`clean_leftovers`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Runs whose owner was dead and whose state was cleaned.
    pub dead_runs: Vec<String>,
    /// Processes killed (name and pid).
    pub killed: Vec<String>,
    /// Namespaces (and `/etc/netns` directories) removed.
    pub namespaces: Vec<String>,
    /// Runs left alone because their owner is alive.
    pub live_runs: Vec<String>,
}

/// Cleans up after dead runs: kills their recorded processes, removes `podid-*` namespaces and
/// `/etc/netns/podid-*` directories that no live run owns, and deletes their state files.
pub fn clean_leftovers() -> Result<CleanReport, LocalError> {
    clean_where(|state| !state.owner.is_alive())
}

/// Tears down one run from its state file, even while its owner lives: what a signal handler
/// calls when the async teardown cannot run (Ctrl-C in a test harness).
pub fn clean_run(run_id: &str) -> Result<CleanReport, LocalError> {
    clean_where(|state| state.run_id == run_id)
}

/// Tears down every run this process owns (e.g. on Ctrl-C, including a run still starting).
pub fn clean_own_runs() -> Result<CleanReport, LocalError> {
    let me = std::process::id();
    clean_where(|state| state.owner.pid == me)
}

fn clean_where(doomed: impl Fn(&RunState) -> bool) -> Result<CleanReport, LocalError> {
    let mut report = CleanReport::default();
    for state in RunState::load_all() {
        if !doomed(&state) {
            report.live_runs.push(state.run_id.clone());
            continue;
        }
        for process in &state.processes {
            if process.is_alive() {
                let _ = kill(Pid::from_raw(process.pid as i32), Signal::SIGKILL);
                report
                    .killed
                    .push(format!("{} (pid {})", process.name, process.pid));
            }
        }
        report.dead_runs.push(state.run_id.clone());
    }
    let mut leftovers = podid_netns::list_leftovers();
    leftovers.retain(|name| {
        podid_netns::run_id_of(name).is_none_or(|run| !report.live_runs.iter().any(|r| r == run))
    });
    report.namespaces = leftovers
        .namespaces
        .iter()
        .chain(&leftovers.hosts_dirs)
        .cloned()
        .collect();
    podid_netns::delete_leftovers(&leftovers)?;
    for run in &report.dead_runs {
        RunState::remove(run);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = RecordedProcess::of("test", std::process::id()).unwrap();
        assert!(me.is_alive());
        let reused = RecordedProcess {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn state_round_trips_through_json() {
        let state = RunState {
            run_id: "abc123".into(),
            owner: RecordedProcess {
                name: "podid".into(),
                pid: 1,
                start_time: 2,
            },
            processes: vec![],
            namespaces: vec![
                RecordedNamespace {
                    name: "podid-abc123-node-1".into(),
                    kind: NamespaceKind::Node,
                },
                RecordedNamespace {
                    name: "podid-abc123-pod-1-2".into(),
                    kind: NamespaceKind::Pod,
                },
            ],
        };
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains(r#""kind":"pod""#), "{text}");
        assert_eq!(serde_json::from_str::<RunState>(&text).unwrap(), state);
    }

    #[test]
    fn a_state_file_without_namespace_kinds_does_not_parse() {
        let old = r#"{"run_id":"abc123","owner":{"name":"podid","pid":1,"start_time":2},
            "processes":[],"namespaces":["podid-abc123-node-1"]}"#;
        assert!(serde_json::from_str::<RunState>(old).is_err());
    }
}
