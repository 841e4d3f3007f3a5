//! The collector's error type.

/// What can go wrong configuring or running the collector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The YAML could not be parsed into the config types (the message carries line and column).
    #[error("parsing scrape config: {0}")]
    Yaml(String),
    /// The config parsed but is not valid (duplicate job, timeout above interval, bad regex, ...).
    #[error("invalid scrape config: {0}")]
    InvalidConfig(String),
    /// [`crate::ScrapeManager::apply`] was called outside a tokio runtime.
    #[error("the scrape manager must be used inside a tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    HttpClient(String),
    /// A file could not be read (secret, file_sd target file).
    #[error("{context}: {source}")]
    Io {
        /// What could not be done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A remote-write request body is not snappy-compressed protobuf `WriteRequest`.
    #[error("decoding remote write request: {0}")]
    Decode(String),
    /// The storage refused a remote-write request.
    #[error("{0}")]
    Storage(#[from] pharos_model::storage::Error),
}

/// Result alias of the collector.
pub type Result<T> = std::result::Result<T, Error>;
