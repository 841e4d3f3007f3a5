//! The crate's error type.

use std::path::PathBuf;

use pharos_model::storage;

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure, with what was being done (and the path).
    #[error("{context}: {source}")]
    Io {
        /// What could not be done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another `Db` in this one) holds the data directory's lock file.
    #[error("data directory is in use: cannot lock {path}")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Bytes read from disk or memory are not what the format requires.
    #[error("corruption: {0}")]
    Corruption(String),
    /// A WAL record failed its checks at a known place.
    #[error("corrupt WAL record in {path} at offset {offset}: {reason}")]
    WalCorruption {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record's header in the segment.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The database was closed.
    #[error("storage closed")]
    Closed,
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] with a context message.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<Error> for storage::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { context, source } => storage::Error::Io { context, source },
            Error::Locked { path } => storage::Error::Io {
                context: format!("locking {}", path.display()),
                source: std::io::Error::new(std::io::ErrorKind::WouldBlock, "locked"),
            },
            e @ (Error::Corruption(_) | Error::WalCorruption { .. }) => {
                storage::Error::Corruption(e.to_string())
            }
            Error::Closed => storage::Error::Closed,
        }
    }
}
