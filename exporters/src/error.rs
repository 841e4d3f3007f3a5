//! The crate's error type.

use std::path::PathBuf;

/// What a collector could not do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not in the expected format.
    #[error("cannot parse {path} line {line}: {msg}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when the problem is not tied to a line).
        line: usize,
        /// What was wrong.
        msg: String,
    },
    /// The data source exists but offers nothing to report (e.g. no CPU lines).
    #[error("no data in {path}: {msg}")]
    NoData {
        /// The file or directory.
        path: PathBuf,
        /// Why nothing was found.
        msg: String,
    },
    /// Some metrics could not be read; the rest of the collector's output is still served.
    #[error("{failed} metric reads failed, the first: {first}")]
    Partial {
        /// How many reads failed.
        failed: usize,
        /// The first failure.
        first: Box<Error>,
    },
}

impl Error {
    /// True if the error is a file that does not exist (logged at debug level only).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
