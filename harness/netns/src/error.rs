//! The error type of every namespace operation.

use std::io;

/// What went wrong, with the namespace (or name) it happened to.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A system call or file operation failed.
    #[error("{action} (network namespace {namespace}): {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The namespace it was done for.
        namespace: String,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A netlink request failed.
    #[error("{action} (network namespace {namespace}): {source}")]
    Netlink {
        /// What was being done.
        action: String,
        /// The namespace it was done in.
        namespace: String,
        /// The underlying failure.
        #[source]
        source: rtnetlink::Error,
    },
    /// A name that the kernel or podid would refuse.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// An interface that was expected to exist does not.
    #[error("no interface {interface} in network namespace {namespace}")]
    NoSuchInterface {
        /// The interface looked for.
        interface: String,
        /// The namespace it was looked for in.
        namespace: String,
    },
}

impl NetnsError {
    /// Wraps an I/O failure with what was being done and where.
    pub(crate) fn io(action: impl Into<String>, namespace: &str, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            namespace: namespace.to_string(),
            source,
        }
    }

    /// Wraps a netlink failure with what was being done and where.
    pub(crate) fn netlink(
        action: impl Into<String>,
        namespace: &str,
        source: rtnetlink::Error,
    ) -> Self {
        Self::Netlink {
            action: action.into(),
            namespace: namespace.to_string(),
            source,
        }
    }
}
