//! The crate's error type. Every variant says what was being done and on which object, so a
//! failure reads as a sentence without its backtrace.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while rendering, applying or watching NMI, MIC and workload pods.
#[derive(Debug, thiserror::Error)]
pub enum InclusterError {
    /// Reading or writing a file failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, naming the file.
        action: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// A manifest file is not the YAML it should be.
    #[error("parsing {}: {message}", path.display())]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// Upstream's manifest does not have the shape rendering relies on (a workload or key is
    /// missing), or the request contradicts it. Rendering refuses rather than guessing.
    #[error("rendering {what}: {problem}")]
    Render {
        /// The object or part being rendered.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, naming the object.
        action: String,
        /// The underlying failure.
        #[source]
        source: Box<kube::Error>,
    },
    /// Something did not reach the wanted state in time; `detail` is what it looked like
    /// (pod phases, container statuses, events, log lines).
    #[error("{what} not done after {:.1}s: {detail}", waited.as_secs_f64())]
    NotReady {
        /// What was awaited, naming the object.
        what: String,
        /// How long was waited.
        waited: Duration,
        /// The last state seen and its diagnostics.
        detail: String,
    },
    /// A command run in a container could not be run to its end.
    #[error("exec {command:?} in {pod}: {problem}")]
    Exec {
        /// `namespace/name` of the pod (and container, when given).
        pod: String,
        /// The command line.
        command: Vec<String>,
        /// What went wrong.
        problem: String,
    },
}

impl InclusterError {
    /// A failed Kubernetes call, with what was being done.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source: Box::new(source),
        }
    }

    /// A failed file operation, with what was being done.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }

    /// A manifest that cannot be rendered as asked.
    pub fn render(what: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Render {
            what: what.into(),
            problem: problem.into(),
        }
    }

    /// Whether this is the API server saying the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Kube { source, .. } if is_not_found(source))
    }
}

/// Whether a kube error is the API server's 404.
pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
