//! remote_write in and out.
//!
//! - [`proto`]: the wire format (protobuf `WriteRequest` + snappy block).
//! - [`Receiver`]: `POST /api/v1/write` bodies appended through an `Appendable`.
//! - [`RemoteWrite`]: the sender. Built with [`RemoteWrite::with_wal`] (as the server does), each
//!   `remote_write` entry reads the storage's WAL through a [`WalSource`] from its saved position
//!   and saves the position the remote end acknowledged ([`wal_feed`]): nothing is lost across
//!   restarts. Built with [`RemoteWrite::new`], [`RemoteWrite::tee`] wraps the storage's
//!   `Appendable` so every committed sample is also queued in memory. Per entry, shards batch the
//!   samples, send them with retries and backoff, and keep `prometheus_remote_storage_*` counters.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn pharos_model::storage::Appendable>) -> pharos_collector::Result<()> {
//! use pharos_collector::remote::{RemoteWrite, RemoteWriteConfig};
//! let rw = RemoteWrite::new();
//! let cfg: Vec<RemoteWriteConfig> = serde_norway::from_str("- url: http://127.0.0.1:9091/api/v1/write\n").unwrap();
//! rw.apply(&Default::default(), &cfg)?;
//! let teed = rw.tee(store); // give this to the scrape manager
//! # let _ = teed;
//! rw.stop().await; // flushes what is queued
//! # Ok(()) }
//! ```

pub mod proto;
mod receiver;
mod sender;
pub mod wal_feed;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use receiver::{Receiver, status_of};
pub use sender::RemoteWrite;
pub use wal_feed::{WalEntry, WalPosition, WalReader, WalSource};

use crate::auth::{Authorization, BasicAuth, HttpClientConfig, TlsConfig};
use crate::config::Duration;
use crate::relabel::RelabelConfig;
use crate::{Error, Result};

fn default_remote_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_true() -> bool {
    true
}

/// One `remote_write` entry, in Prometheus' shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's URL (`http://host:port/api/v1/write`).
    pub url: String,
    /// Name of the queue in metrics and logs (default: a hash of the config).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Timeout of one request (30s).
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: Duration,
    /// Extra HTTP headers of every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Relabeling of series before sending; dropped series are not sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// Send exemplars (accepted; Pharos stores none).
    #[serde(default)]
    pub send_exemplars: bool,
    /// Send native histograms (accepted; Pharos stores none).
    #[serde(default)]
    pub send_native_histograms: bool,
    /// Queue tuning.
    #[serde(default)]
    pub queue_config: QueueConfig,
    /// Metadata sending (accepted; Pharos sends no metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_config: Option<MetadataConfig>,
    /// `basic_auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token: String,
    /// Legacy bearer token file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    /// `tls_config`, see [`crate::tls`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    /// Follow redirects (true).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
}

impl RemoteWriteConfig {
    /// The HTTP client part.
    pub fn http(&self) -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            follow_redirects: self.follow_redirects,
        }
    }

    /// Checks the URL, credentials, relabeling and queue settings.
    pub fn validate(&self) -> Result<()> {
        let what = |e: String| Error::InvalidConfig(format!("remote_write {}: {e}", self.url));
        let url = reqwest::Url::parse(&self.url).map_err(|e| what(format!("invalid url: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(what(format!(
                "url scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        self.http().validate().map_err(|e| what(e.to_string()))?;
        for (i, rc) in self.write_relabel_configs.iter().enumerate() {
            rc.validate()
                .map_err(|e| what(format!("write_relabel_configs[{i}]: {e}")))?;
        }
        for k in self.headers.keys() {
            if k.eq_ignore_ascii_case("authorization")
                || k.eq_ignore_ascii_case("content-type")
                || k.eq_ignore_ascii_case("content-encoding")
                || k.eq_ignore_ascii_case("user-agent")
                || k.to_ascii_lowercase()
                    .starts_with("x-prometheus-remote-write")
            {
                return Err(what(format!("{k} is a reserved header")));
            }
        }
        let q = &self.queue_config;
        if q.max_samples_per_send == 0 || q.capacity == 0 || q.min_shards == 0 {
            return Err(what(
                "queue_config capacity, min_shards and max_samples_per_send must be positive"
                    .into(),
            ));
        }
        if q.max_shards < q.min_shards {
            return Err(what("queue_config max_shards is below min_shards".into()));
        }
        if self.remote_timeout.0.is_zero() {
            return Err(what("remote_timeout must be positive".into()));
        }
        Ok(())
    }

    /// The queue's name: `name`, or the first 6 hex digits of a hash of the config.
    pub fn queue_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let text = format!("{self:?}");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{:06x}", h >> 40)
    }
}

fn default_capacity() -> usize {
    2500
}
fn default_max_shards() -> usize {
    200
}
fn default_min_shards() -> usize {
    1
}
fn default_max_samples_per_send() -> usize {
    500
}
fn default_batch_send_deadline() -> Duration {
    Duration::from_secs(5)
}
fn default_min_backoff() -> Duration {
    Duration(std::time::Duration::from_millis(30))
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(5)
}

/// `queue_config`, with Prometheus 2.42's defaults.
///
/// Pharos runs `min_shards` shards (series are hashed to a shard so each series' samples stay in
/// order) and buffers up to `capacity × max(min_shards, 1) × 4` samples before it drops new ones
/// (counted in `prometheus_remote_storage_samples_dropped_total`); `max_shards` bounds nothing yet
/// because shards are not resized at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Samples buffered per shard (2500).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Upper bound of shards (200).
    #[serde(default = "default_max_shards")]
    pub max_shards: usize,
    /// Shards run (1).
    #[serde(default = "default_min_shards")]
    pub min_shards: usize,
    /// Samples per request (500).
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// Longest a sample waits in a shard's buffer before a partial batch is sent (5s).
    #[serde(default = "default_batch_send_deadline")]
    pub batch_send_deadline: Duration,
    /// First retry delay, doubled on each retry (30ms).
    #[serde(default = "default_min_backoff")]
    pub min_backoff: Duration,
    /// Largest retry delay (5s).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// Retry on HTTP 429 like on 5xx (false, as in Prometheus 2.42).
    #[serde(default)]
    pub retry_on_http_429: bool,
    /// Accepted for compatibility (removed in Prometheus 2.x, ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u64>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            max_shards: default_max_shards(),
            min_shards: default_min_shards(),
            max_samples_per_send: default_max_samples_per_send(),
            batch_send_deadline: default_batch_send_deadline(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            retry_on_http_429: false,
            max_retries: None,
        }
    }
}

/// `metadata_config`: accepted so Prometheus configs load; Pharos sends no metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// Send metadata (true in Prometheus).
    #[serde(default = "default_true")]
    pub send: bool,
    /// How often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_interval: Option<Duration>,
    /// Entries per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_samples_per_send: Option<usize>,
}

/// Validates every entry and checks that queue names are unique.
pub fn validate_all(configs: &[RemoteWriteConfig]) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for c in configs {
        c.validate()?;
        if !names.insert(c.queue_name()) {
            return Err(Error::InvalidConfig(format!(
                "found multiple remote write configs with name {:?}",
                c.queue_name()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_shape_with_defaults() {
        let c: Vec<RemoteWriteConfig> = serde_norway::from_str(
            "- url: http://a:9090/api/v1/write\n  name: a\n  remote_timeout: 10s\n  headers: {X-Scope-OrgID: t1}\n  basic_auth: {username: u, password: p}\n  write_relabel_configs:\n  - {action: drop, source_labels: [__name__], regex: 'go_.*'}\n  queue_config: {max_samples_per_send: 100, retry_on_http_429: true}\n  metadata_config: {send: false}\n- url: http://b/api/v1/write\n",
        )
        .unwrap();
        validate_all(&c).unwrap();
        assert_eq!(c[0].queue_config.max_samples_per_send, 100);
        assert_eq!(c[0].queue_config.capacity, 2500);
        assert_eq!(c[0].queue_config.max_backoff, Duration::from_secs(5));
        assert!(c[0].queue_config.retry_on_http_429);
        assert_eq!(c[1].remote_timeout, Duration::from_secs(30));
        assert_eq!(c[0].queue_name(), "a");
        assert_eq!(c[1].queue_name().len(), 6);
        assert_eq!(c[1].queue_name(), c[1].clone().queue_name());
    }

    #[track_caller]
    fn check_err(yaml: &str, want: &str) {
        let err = match serde_norway::from_str::<Vec<RemoteWriteConfig>>(yaml) {
            Ok(c) => validate_all(&c).unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }

    #[test]
    fn errors() {
        check_err("- url: 'not a url'\n", "invalid url");
        check_err("- url: ftp://a/\n", "is not http or https");
        check_err(
            "- url: http://a/\n  queue_config: {capacity: 0}\n",
            "must be positive",
        );
        check_err("- url: http://a/\n  queue_config: {bogus: 1}\n", "bogus");
        check_err(
            "- url: http://a/\n  headers: {Authorization: x}\n",
            "reserved header",
        );
        check_err(
            "- url: http://a/\n  name: x\n- url: http://b/\n  name: x\n",
            "multiple remote write configs",
        );
        check_err(
            "- url: http://a/\n  basic_auth: {username: u}\n  bearer_token: t\n",
            "at most one",
        );
    }
}
