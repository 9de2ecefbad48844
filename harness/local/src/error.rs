//! The error type of the local provider.

use std::io;
use std::path::PathBuf;

/// What failed while running the local cluster, with the object it failed on.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A file or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, naming the object.
        action: String,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A network-namespace operation failed.
    #[error(transparent)]
    Netns(#[from] podid_netns::NetnsError),
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, naming the object.
        action: String,
        /// The underlying failure.
        #[source]
        source: Box<kube::Error>,
    },
    /// A component did not become ready in time; `log_tail` is the end of its log.
    #[error("{component} not ready after {waited_secs}s: {reason}\n--- last lines of {} ---\n{log_tail}", log.display())]
    NotReady {
        /// The component (e.g. `etcd`, `NMI on node-1`).
        component: String,
        /// How long was waited.
        waited_secs: u64,
        /// What the last check saw.
        reason: String,
        /// The component's log file.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },
    /// A required program is missing.
    #[error("required program {program} not found: {hint}")]
    MissingProgram {
        /// The program.
        program: String,
        /// How to get it.
        hint: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid local cluster configuration: {0}")]
    Config(String),
    /// Certificate generation failed.
    #[error("generating {what}: {source}")]
    Pki {
        /// Which certificate or key.
        what: String,
        /// The underlying failure.
        #[source]
        source: rcgen::Error,
    },
    /// A node's pod range is full.
    #[error("no free pod address left on node {node}")]
    AddressesExhausted {
        /// The node.
        node: String,
    },
    /// Something named does not exist in this cluster.
    #[error("no {kind} named {name} in this cluster")]
    NotFound {
        /// What kind of thing (node, pod).
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A wait for a condition (e.g. NMI's watches opening) ended without it.
    #[error("{what}: {source}")]
    Wait {
        /// What was waited for.
        what: String,
        /// How the wait ended, with what it last saw.
        #[source]
        source: podid_wait::WaitError<String>,
    },
    /// A manifest or state file could not be parsed.
    #[error("parsing {what}: {message}")]
    Parse {
        /// What was parsed.
        what: String,
        /// The parser's message.
        message: String,
    },
}

impl LocalError {
    /// Wraps an I/O failure with what was being done.
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }

    /// Wraps a Kubernetes API failure with what was being done.
    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source: Box::new(source),
        }
    }
}
