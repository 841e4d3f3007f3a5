//! `pharos-collector`: scraping targets into storage.
//!
//! - [`config`]: the `global` and `scrape_configs` sections in Prometheus' YAML shape (unknown keys
//!   are errors with line numbers), with Prometheus durations.
//! - [`relabel`]: `relabel_configs` / `metric_relabel_configs` (replace, keep, drop, keepequal,
//!   dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase).
//! - [`ScrapeManager`]: one loop per target; each scrape is an HTTP GET (OpenMetrics preferred,
//!   gzip, timeout), parsed with [`pharos_model::expfmt`], labelled with the target's labels,
//!   appended and committed through one [`pharos_model::storage::Appender`] together with the
//!   synthetic series `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//!   `scrape_samples_post_metric_relabeling` and `scrape_series_added`. Vanished series, the series
//!   of a failed scrape and those of a removed target get staleness markers.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn pharos_model::storage::Appendable>) -> pharos_collector::Result<()> {
//! use pharos_collector::{config::Config, ScrapeManager};
//! let cfg = Config::from_yaml("scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['localhost:9100']\n")?;
//! let manager = ScrapeManager::new(store);
//! manager.apply(&cfg.global, &cfg.scrape_configs)?;
//! // ... later, on shutdown: waits for in-flight appends and writes staleness markers.
//! manager.stop().await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod config;
pub mod discovery;
mod error;
mod http1;
mod manager;
pub mod relabel;
pub mod remote;
mod scrape;
mod target;
pub mod tls;
mod workers;

pub use error::{Error, Result};
pub use manager::{ScrapeManager, ScrapeStats};
#[doc(hidden)]
pub use scrape::BenchTarget;
