//! Errors of the mock cloud's library API (not the HTTP errors it serves to clients).

use std::net::SocketAddr;

/// Why a mock-cloud operation failed, with the object it was working on.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The spec is internally inconsistent or clashes with objects already present.
    #[error("invalid cloud spec: {what}")]
    InvalidSpec {
        /// Human-readable description naming the offending object.
        what: String,
    },
    /// An object with the same identifier is already part of the cloud.
    #[error("duplicate {kind} '{id}': already present in the mock cloud")]
    Duplicate {
        /// Kind of object (identity, service principal, …).
        kind: &'static str,
        /// Its identifier.
        id: String,
    },
    /// A machine, identity or other object referenced by the caller does not exist.
    #[error("unknown {kind} '{id}'")]
    NotFound {
        /// Kind of object.
        kind: &'static str,
        /// The identifier that was looked up.
        id: String,
    },
    /// Generating the run's CA, server certificate or token-signing key failed.
    #[error("generating {what} failed: {source}")]
    KeyGeneration {
        /// Which key or certificate.
        what: &'static str,
        /// Underlying rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// A certificate or key given in the spec could not be used.
    #[error("certificate of service principal '{client_id}' is unusable: {reason}")]
    BadCertificate {
        /// The service principal's client id.
        client_id: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Generating a service principal's certificate credential failed.
    #[error("generating {what} of a service-principal credential failed: {reason}")]
    Credential {
        /// Which part (key, certificate, PKCS#12 bundle).
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Building the TLS server configuration failed.
    #[error("building TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// Signing or encoding a token failed.
    #[error("signing a token failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    /// A listener handed to `serve` could not be used.
    #[error("using listener {addr:?} for {endpoint} failed: {source}")]
    Listener {
        /// Endpoint being served.
        endpoint: String,
        /// Its address, if it could be read.
        addr: Option<SocketAddr>,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file (such as the CA bundle) failed.
    #[error("writing {path} failed: {source}")]
    Write {
        /// Destination path.
        path: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// An error and all its causes on one line, `: `-joined (`creating pod x: connection refused`;
/// reqwest's own message hides the OS error), a cause its parent already ends with left out.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
