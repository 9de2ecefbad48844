//! Why a step (or a trial's set-up) could not do what it says; failed expectations are not
//! errors but [`podid_reports::Failure`]s.

use std::time::Duration;

use podid_scenario::reference::RenderError;

use crate::provider::{ProviderError, error_chain};

/// What went wrong while performing a step's action or setting a trial up.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("the step has no single action")]
    NoAction,
    #[error("pod `{0}` does not exist (not created yet, or deleted by an earlier step)")]
    UnknownPod(String),
    #[error("storage account `{0}` is not declared")]
    UnknownAccount(String),
    #[error("the provider has no node `{0}`")]
    UnknownNode(String),
    #[error("identity `{0}` is not declared")]
    UnknownIdentity(String),
    #[error("`{0}` is neither a declared identity nor a service principal")]
    UnknownPrincipal(String),
    #[error("the provider has no cluster identity (identity `cluster`)")]
    NoClusterIdentity,
    #[error("no instance of {0} answered on /healthz")]
    NoHealthAnswers(String),
    #[error("cannot resolve {what}")]
    Reference {
        what: String,
        #[source]
        source: RenderError,
    },
    /// The request the step is about was never answered (transport error, probe failure):
    /// whatever the step expects, there is nothing to judge.
    #[error("the request could not be made: {0}")]
    NoRequest(String),
    #[error("the probe in pod `{pod}` did not finish within {}s", limit.as_secs())]
    ProbeTimeout { pod: String, limit: Duration },
    #[error("{0} does not exist")]
    MissingObject(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl StepError {
    /// The error with its causes on one line, as reports show it.
    pub fn report_text(&self) -> String {
        error_chain(self)
    }

    pub(crate) fn reference(what: impl Into<String>) -> impl FnOnce(RenderError) -> Self {
        let what = what.into();
        move |source| Self::Reference { what, source }
    }
}
