//! Errors from building kind images and running kind clusters. Each names what was being done,
//! so a failure deep in an image build still reads as a sentence about the step that broke.

use std::path::PathBuf;
use std::time::Duration;

/// Why a kind image or cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    /// The docker CLI is missing or cannot reach a daemon.
    #[error(
        "no Docker daemon: {detail}\nhint: start dockerd (as root: `dockerd >/var/log/dockerd.log 2>&1 &`) \
         or point DOCKER_HOST at a running daemon"
    )]
    NoDocker {
        /// What the docker CLI said, or why it could not be started.
        detail: String,
    },

    /// A command could not be started or exited unsuccessfully.
    #[error("{action}: `{command}` {status}{}", fmt_output(.output))]
    Command {
        /// What was being done, e.g. "importing the node root as an image".
        action: String,
        /// The command line, shortened for display.
        command: String,
        /// "exited with status 1", "could not be started: …".
        status: String,
        /// The end of the command's stderr and stdout.
        output: String,
    },

    /// A file-system operation failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. "writing the kind config".
        action: String,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An input file (a binary, kind's module directory, a source file) does not exist.
    #[error("missing {what}: {} does not exist", .path.display())]
    MissingInput {
        /// What the file should have been, e.g. "the kubelet binary".
        what: String,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// A file this crate patches at build time no longer looks as expected (kind changed it).
    #[error("cannot patch {}: {what}; the pinned kind release may have changed this file", .path.display())]
    UpstreamChanged {
        /// The file being patched.
        path: PathBuf,
        /// Which anchor was missing.
        what: String,
    },

    /// A privileged test container fails, and so does the replacement for `--privileged`.
    #[error(
        "this host refuses privileged containers and their replacement too:\n  --privileged: {privileged}\n  \
         replacement ({replacement_flags}): {replacement}"
    )]
    NoPrivileges {
        /// How `docker run --privileged` failed.
        privileged: String,
        /// The flags tried instead.
        replacement_flags: String,
        /// How the replacement failed.
        replacement: String,
    },

    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, e.g. "listing nodes".
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },

    /// A wait ran out of time; `last` is what the final look saw.
    #[error("{action}: not done after {:.0}s; last seen: {last}", .waited.as_secs_f64())]
    Timeout {
        /// What was awaited, e.g. "waiting for all nodes to be Ready".
        action: String,
        /// How long it waited.
        waited: Duration,
        /// The state at the final look.
        last: String,
    },

    /// Something was found in a state this crate cannot work with.
    #[error("{action}: {reason}")]
    Invalid {
        /// What was being done.
        action: String,
        /// What was wrong.
        reason: String,
    },
}

fn fmt_output(output: &str) -> String {
    if output.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- output (last lines) ---\n{}", output.trim_end())
    }
}

impl KindError {
    /// Wraps an I/O error with what was being done to which path.
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> KindError {
        let action = action.into();
        let path = path.into();
        move |source| KindError::Io {
            action,
            path,
            source,
        }
    }

    /// Wraps a Kubernetes client error with what was being done.
    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> KindError {
        let action = action.into();
        move |source| KindError::Kube { action, source }
    }

    /// A domain failure: `action` failed because of `reason`.
    pub(crate) fn invalid(action: impl Into<String>, reason: impl Into<String>) -> KindError {
        KindError::Invalid {
            action: action.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = KindError> = std::result::Result<T, E>;
