//! `pharos-exporters`: a node exporter compatible with Prometheus' node_exporter 1.5.
//!
//! Each [`Collector`] reads files under configurable roots ([`Options::procfs`],
//! [`Options::sysfs`], [`Options::rootfs`]) and appends [`MetricFamily`] values named exactly as
//! node_exporter names them (`node_cpu_seconds_total{cpu,mode}`, `node_memory_MemTotal_bytes`, ...),
//! so existing dashboards and alert rules keep working. The [`Exporter`] runs the enabled
//! collectors, adds `node_scrape_collector_duration_seconds` and `node_scrape_collector_success`
//! for each, and renders the Prometheus text format; [`router`] serves it over HTTP.
//!
//! Layout: [`node`] holds one module per node collector; [`pod`] holds the `container` collector,
//! which reports cAdvisor's `container_*` metrics per cgroup (cgroups v1, v2 or hybrid) with the
//! kubelet's `namespace`, `pod`, `container`, `id`, `image` and `name` labels.
//!
//! ```no_run
//! use pharos_exporters::{Exporter, Options};
//! let mut opts = Options::default();
//! opts.collectors.insert("filesystem".into(), false); // like --no-collector.filesystem
//! let exporter = Exporter::new(opts);
//! let text = exporter.render();
//! assert!(text.contains("node_load1"));
//! ```

mod error;
mod exporter;
mod http;
pub mod node;
pub mod pod;

pub use error::{Error, Result};
pub use exporter::{Collector, Exporter, Options};
pub use http::router;
pub use pharos_model::expfmt::MetricFamily;
