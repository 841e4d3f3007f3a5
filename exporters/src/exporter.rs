//! [`Exporter`]: runs the enabled collectors and renders their output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use pharos_model::expfmt::{MetricFamily, MetricType, write_text};

use crate::{Result, node, pod};

/// Where to read from and which collectors to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Mount point of procfs (`/proc`), like node_exporter's `--path.procfs`.
    pub procfs: PathBuf,
    /// Mount point of sysfs (`/sys`), like `--path.sysfs`.
    pub sysfs: PathBuf,
    /// The host's root file system (`/`), like `--path.rootfs`; `/etc/os-release` is read below
    /// it and its prefix is stripped from reported mount points.
    pub rootfs: PathBuf,
    /// Per-collector switches by name (see [`Exporter::collector_names`]): `true` enables,
    /// `false` disables (`--collector.<name>` / `--no-collector.<name>`). Collectors not listed
    /// use their default (all of them are enabled by default). Unknown names are ignored with a
    /// warning.
    pub collectors: BTreeMap<String, bool>,
    /// The cgroup mount root read by the `container` collector; `None` means
    /// `<sysfs>/fs/cgroup`.
    pub cgroupfs: Option<PathBuf>,
    /// Where the `container` collector finds pod and container names.
    pub metadata: pod::metadata::Source,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
            collectors: BTreeMap::new(),
            cgroupfs: None,
            metadata: pod::metadata::Source::default(),
        }
    }
}

impl Options {
    /// Whether the collector `name` runs with these options.
    pub fn enabled(&self, name: &str) -> bool {
        self.collectors
            .get(name)
            .copied()
            .unwrap_or_else(|| node::enabled_by_default(name) || pod::NAMES.contains(&name))
    }
}

/// A source of metric families, run once per scrape.
pub trait Collector: Send {
    /// The collector's name as node_exporter names it (`cpu`, `meminfo`, ...): the value of the
    /// `collector` label of `node_scrape_collector_*`.
    fn name(&self) -> &'static str;
    /// Appends this scrape's families to `out`. On error the exporter discards whatever this
    /// call appended and reports `node_scrape_collector_success 0`, except for
    /// [`Error::Partial`](crate::Error::Partial), whose output is kept.
    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()>;
}

/// The enabled collectors, run together on every scrape.
pub struct Exporter {
    collectors: Mutex<Vec<Box<dyn Collector>>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// Builds the collectors `opts` enables.
    pub fn new(opts: Options) -> Self {
        for name in opts.collectors.keys() {
            if !Self::collector_names().contains(&name.as_str()) {
                tracing::warn!(collector = %name, "unknown collector name ignored");
            }
        }
        let collectors = Self::collector_names()
            .iter()
            .filter(|name| opts.enabled(name))
            .filter_map(|name| node::build(name, &opts).or_else(|| pod::build(name, &opts)))
            .collect();
        Self::with_collectors(collectors)
    }

    /// An exporter over the given collectors (tests, or collectors built elsewhere).
    pub fn with_collectors(collectors: Vec<Box<dyn Collector>>) -> Self {
        Self {
            collectors: Mutex::new(collectors),
        }
    }

    /// Names of every collector this crate knows, for `--collector.<name>` flags.
    pub fn collector_names() -> &'static [&'static str] {
        static ALL: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
            let mut all: Vec<&'static str> =
                node::NAMES.iter().chain(pod::NAMES).copied().collect();
            all.sort_unstable();
            all
        });
        &ALL
    }

    /// Runs every collector and returns their families sorted by name (samples sorted by labels),
    /// followed by node_exporter's `node_scrape_collector_duration_seconds` and
    /// `node_scrape_collector_success`. A failing collector is logged and reported with success 0;
    /// it never fails the scrape.
    pub fn gather(&self) -> Vec<MetricFamily> {
        let mut guard = match self.collectors.lock() {
            Ok(g) => g,
            // A collector panicked during an earlier scrape: its state is still usable.
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut all = Vec::new();
        let mut duration = MetricFamily::new(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            MetricType::Gauge,
        );
        let mut success = MetricFamily::new(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            MetricType::Gauge,
        );
        for c in guard.iter_mut() {
            let name = c.name();
            let start = Instant::now();
            let mut out = Vec::new();
            let result = c.collect(&mut out);
            let took = start.elapsed().as_secs_f64();
            let ok = match result {
                Ok(()) => {
                    all.append(&mut out);
                    1.0
                }
                Err(e @ crate::Error::Partial { .. }) => {
                    // Logged metric by metric already; keep what was read.
                    tracing::debug!(collector = name, error = %e, "collector partly failed");
                    all.append(&mut out);
                    0.0
                }
                Err(e) if e.is_not_found() => {
                    tracing::debug!(collector = name, error = %e, "collector failed");
                    0.0
                }
                Err(e) => {
                    tracing::warn!(collector = name, error = %e, "collector failed");
                    0.0
                }
            };
            duration.push(&[("collector", name)], took);
            success.push(&[("collector", name)], ok);
        }
        drop(guard);
        all.push(duration);
        all.push(success);
        normalize(all)
    }

    /// [`gather`](Self::gather) rendered in the text format 0.0.4.
    pub fn render(&self) -> String {
        let families = self.gather();
        let mut out = String::with_capacity(64 * 1024);
        write_text(&mut out, &families);
        out
    }
}

/// Merges families of the same name, sorts families by name and samples by labels, as
/// node_exporter's registry does.
pub(crate) fn normalize(families: Vec<MetricFamily>) -> Vec<MetricFamily> {
    let mut by_name: BTreeMap<String, MetricFamily> = BTreeMap::new();
    for f in families {
        match by_name.get_mut(&f.name) {
            Some(existing) => existing.samples.extend(f.samples),
            None => {
                by_name.insert(f.name.clone(), f);
            }
        }
    }
    by_name
        .into_values()
        .filter(|f| !f.samples.is_empty())
        .map(|mut f| {
            f.samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            f
        })
        .collect()
}
