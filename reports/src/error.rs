//! Errors from rendering and writing reports.

use std::path::PathBuf;

/// What went wrong while producing a report, and with which file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The JUnit XML serializer refused the report.
    #[error("serializing JUnit XML for run {run_id}")]
    Junit {
        /// Run whose report was being serialised.
        run_id: String,
        /// Serializer error.
        #[source]
        source: quick_junit::SerializeError,
    },
    /// The report directory could not be created.
    #[error("creating report directory {path}")]
    CreateDir {
        /// Directory being created.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A report file could not be written.
    #[error("writing report file {path}")]
    Write {
        /// File being written.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}
