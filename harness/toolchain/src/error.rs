//! Errors from preparing the toolchain, each naming what was being done and with which file.

use std::path::PathBuf;

use crate::component::{Artifact, Component};

/// Why the toolchain could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    /// Building is impossible on this machine (no Go, Go too old, no module proxy).
    #[error(
        "cannot build {components}:\n{}\n{hint}",
        .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
    )]
    Preflight {
        /// The components that would have been built, e.g. "etcd v3.6.13, kube-apiserver v1.36.3".
        components: String,
        /// Everything that is missing, one line each.
        problems: Vec<String>,
        /// How to fix it, including the override variables.
        hint: String,
    },

    /// A user-supplied binary cannot be used.
    #[error("{var}={} cannot be used as the {artifact} binary: {reason}", .path.display())]
    InvalidOverride {
        /// The environment variable (or flag) that named it.
        var: &'static str,
        /// The binary.
        path: PathBuf,
        /// Which artifact it was meant to replace.
        artifact: Artifact,
        /// What is wrong with it.
        reason: String,
    },

    /// A build command failed or produced a wrong binary.
    #[error(
        "building {component} failed: {reason}\nfull log: {}\n--- last lines of the log ---\n{tail}",
        .log.display()
    )]
    BuildFailed {
        /// What was being built.
        component: Component,
        /// What went wrong.
        reason: String,
        /// The complete build log.
        log: PathBuf,
        /// The end of the build log.
        tail: String,
    },

    /// A file-system operation on the cache failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. "creating cache directory".
        action: String,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Required system packages are missing and could not be installed.
    #[error("missing system packages {}: {reason}", .packages.join(", "))]
    SystemPackages {
        /// Debian package names.
        packages: Vec<String>,
        /// Why they were not installed, and how to install them.
        reason: String,
    },
}

impl ToolchainError {
    /// Wraps an I/O error with what was being done to which path.
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ToolchainError {
        let action = action.into();
        let path = path.into();
        move |source| ToolchainError::Io {
            action,
            path,
            source,
        }
    }
}
