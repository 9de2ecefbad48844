//! Errors of the control API's client: the mock's own refusals, and failures to reach it.

use super::wire::FailureKind;

/// Why a call through the control API failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The mock cloud refused the call; `message` is the mock's own, worded as the in-process
    /// `MockError` words it.
    #[error("{message}")]
    Refused {
        /// HTTP status of the answer.
        status: u16,
        /// What kind of refusal.
        kind: FailureKind,
        /// The mock's message.
        message: String,
    },
    /// The request did not get an answer (connection refused, reset, timed out).
    #[error("{call}: {source}")]
    Transport {
        /// Method and URL of the call.
        call: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not the control API's (wrong status or body shape: something else
    /// listens there, or the server is of another version).
    #[error("{call}: unexpected answer (HTTP {status}): {detail}")]
    Unexpected {
        /// Method and URL of the call.
        call: String,
        /// HTTP status of the answer.
        status: u16,
        /// What was wrong, with the start of the body.
        detail: String,
    },
    /// The control API did not answer `/v1/healthz` within the time given to `connect`.
    #[error("the mock cloud's control API at {url} is not answering: {wait}")]
    NotReady {
        /// Base URL that was tried.
        url: String,
        /// How long was waited and the last failure seen.
        wait: podid_wait::WaitError<String>,
    },
    /// Building the HTTP client failed.
    #[error("building the control API's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}
