//! The workload podid runs inside each pod's network namespace: it asks the instance metadata
//! endpoint for a token exactly as Azure SDKs do (so NMI intercepts it), optionally uses the
//! token against Blob storage, and prints one JSON [`ProbeReport`] line for the runner.

pub mod cli;
pub mod report;
pub mod request;

pub use cli::{ProbeArgs, main, main_from};
pub use report::{HttpExchange, ProbeReport};
