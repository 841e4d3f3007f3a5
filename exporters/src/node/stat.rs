//! `stat`: kernel counters from `/proc/stat` (boot time, context switches, forks, interrupts,
//! running and blocked processes).

use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{parse, read, single};
use crate::{Collector, Options, Result};

/// The `stat` collector.
#[derive(Debug)]
pub struct Stat {
    stat: PathBuf,
}

impl Stat {
    /// Reads `<procfs>/stat`.
    pub fn new(opts: &Options) -> Self {
        Self {
            stat: opts.procfs.join("stat"),
        }
    }
}

/// (key in /proc/stat, metric, help, type)
const FIELDS: [(&str, &str, &str, MetricType); 6] = [
    (
        "intr",
        "node_intr_total",
        "Total number of interrupts serviced.",
        MetricType::Counter,
    ),
    (
        "ctxt",
        "node_context_switches_total",
        "Total number of context switches.",
        MetricType::Counter,
    ),
    (
        "btime",
        "node_boot_time_seconds",
        "Node boot time, in unixtime.",
        MetricType::Gauge,
    ),
    (
        "processes",
        "node_forks_total",
        "Total number of forks.",
        MetricType::Counter,
    ),
    (
        "procs_running",
        "node_procs_running",
        "Number of processes in runnable state.",
        MetricType::Gauge,
    ),
    (
        "procs_blocked",
        "node_procs_blocked",
        "Number of processes blocked waiting for I/O to complete.",
        MetricType::Gauge,
    ),
];

impl Collector for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(&self.stat)?;
        for (i, line) in text.lines().enumerate() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
                continue;
            };
            if let Some((_, name, help, kind)) = FIELDS.iter().find(|f| f.0 == key) {
                // `intr` is followed by per-interrupt counts; its first number is the total.
                let v: u64 = parse(&self.stat, i + 1, value)?;
                out.push(single(name, help, *kind, v as f64));
            }
        }
        Ok(())
    }
}
