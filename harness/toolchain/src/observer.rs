//! Progress reporting: the toolchain emits events, front ends (CLI, tests, logs) render them.

use std::path::PathBuf;
use std::time::Duration;

use crate::component::{Artifact, Component};

/// Something that happened while preparing the toolchain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildEvent {
    /// A component build began; `estimate` is a rough cold build time on two cores.
    Started {
        /// What is being built.
        component: Component,
        /// Expected duration, for a progress display.
        estimate: Duration,
    },
    /// One line of build output (also written to the component's log file).
    Output {
        /// Whose output.
        component: Component,
        /// The line, without its newline.
        line: String,
    },
    /// A component build completed successfully.
    Finished {
        /// What was built.
        component: Component,
        /// Wall-clock build time.
        duration: Duration,
    },
    /// A complete, verified build was found in the cache.
    Cached {
        /// What was found.
        component: Component,
    },
    /// A user-supplied binary is used instead of a build.
    Overridden {
        /// Which artifact it replaces.
        artifact: Artifact,
        /// The binary.
        path: PathBuf,
        /// First line of its `--version` output.
        version: String,
    },
    /// Another process holds the cache lock (it is probably building); waiting for it.
    WaitingForLock {
        /// The lock file.
        lock: PathBuf,
    },
    /// Missing system packages are being installed with apt-get.
    InstallingPackages {
        /// Debian package names.
        packages: Vec<String>,
    },
    /// One line of apt-get output.
    InstallOutput {
        /// The line, without its newline.
        line: String,
    },
}

/// Receives [`BuildEvent`]s; must be shareable because components may build in parallel.
pub trait BuildObserver: Sync {
    /// Called for every event, from any build thread.
    fn event(&self, ev: BuildEvent);
}

/// Ignores every event; for callers that only want the result.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl BuildObserver for NoopObserver {
    fn event(&self, _ev: BuildEvent) {}
}

/// Forwards events to `tracing`: milestones at info, build output at debug.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogObserver;

impl BuildObserver for LogObserver {
    fn event(&self, ev: BuildEvent) {
        match ev {
            BuildEvent::Started {
                component,
                estimate,
            } => tracing::info!(
                %component,
                estimate_secs = estimate.as_secs(),
                "building (first build only; cached afterwards)"
            ),
            BuildEvent::Output { component, line } => {
                tracing::debug!(component = component.slug(), "{line}")
            }
            BuildEvent::Finished {
                component,
                duration,
            } => tracing::info!(%component, secs = duration.as_secs_f64(), "built"),
            BuildEvent::Cached { component } => tracing::debug!(%component, "cached"),
            BuildEvent::Overridden {
                artifact,
                path,
                version,
            } => tracing::info!(%artifact, path = %path.display(), %version, "using override"),
            BuildEvent::WaitingForLock { lock } => tracing::info!(
                lock = %lock.display(),
                "waiting for another podid process to finish building the toolchain"
            ),
            BuildEvent::InstallingPackages { packages } => {
                tracing::info!(?packages, "installing system packages with apt-get")
            }
            BuildEvent::InstallOutput { line } => tracing::debug!("apt-get: {line}"),
        }
    }
}

/// Records events in memory; lets tests assert what was reported.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct RecordingObserver {
    pub(crate) events: std::sync::Mutex<Vec<BuildEvent>>,
}

#[cfg(test)]
impl BuildObserver for RecordingObserver {
    fn event(&self, ev: BuildEvent) {
        self.events.lock().unwrap().push(ev);
    }
}
