//! The one error type of the provider seam: which action failed, and why underneath.

use std::error::Error;

/// A provider action that failed. `action` names what was being done and with which object
/// ("creating pod ns/app"); the cause, when there is one, is kept as the error source.
#[derive(Debug, thiserror::Error)]
#[error("{action}")]
pub struct ProviderError {
    pub action: String,
    #[source]
    pub source: Option<Box<dyn Error + Send + Sync>>,
}

impl ProviderError {
    /// `action` failed because of `source`.
    pub fn new(action: impl Into<String>, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self {
            action: action.into(),
            source: Some(source.into()),
        }
    }

    /// `action` failed, and the action's text says it all.
    pub fn plain(action: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            source: None,
        }
    }
}

/// An error and all its sources on one line, as reports show them (the mock cloud's helper).
pub use podid_mocks::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_the_action_then_each_cause() {
        let io = std::io::Error::other("connection refused");
        let err = ProviderError::new("creating pod ns/app", io);
        assert_eq!(error_chain(&err), "creating pod ns/app: connection refused");
        assert_eq!(
            error_chain(&ProviderError::plain("no such node")),
            "no such node"
        );
    }
}
