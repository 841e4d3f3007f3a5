//! `pressure`: pressure stall information from `/proc/pressure/{cpu,io,memory}`.
//!
//! The `total=` counters (microseconds) of the `some` lines become `*_waiting_seconds_total`
//! and those of the `full` lines `*_stalled_seconds_total`; like node_exporter 1.5 the cpu
//! `full` line is not exported.

use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{bad, parse, read, single};
use crate::{Collector, Options, Result};

/// (resource, `some` metric and help, `full` metric and help)
type Resource = (
    &'static str,
    (&'static str, &'static str),
    Option<(&'static str, &'static str)>,
);

const RESOURCES: [Resource; 3] = [
    (
        "cpu",
        (
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
        ),
        None,
    ),
    (
        "io",
        (
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
        ),
        Some((
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
        )),
    ),
    (
        "memory",
        (
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
        ),
        Some((
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
        )),
    ),
];

/// The `pressure` collector.
#[derive(Debug)]
pub struct Pressure {
    dir: PathBuf,
}

impl Pressure {
    /// Reads `<procfs>/pressure/*`.
    pub fn new(opts: &Options) -> Self {
        Self {
            dir: opts.procfs.join("pressure"),
        }
    }
}

impl Collector for Pressure {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        for (resource, some, full) in RESOURCES {
            let path = self.dir.join(resource);
            let text = read(&path)?;
            for (i, line) in text.lines().enumerate() {
                let mut fields = line.split_ascii_whitespace();
                let target = match fields.next() {
                    Some("some") => Some(some),
                    Some("full") => full,
                    _ => continue,
                };
                let Some((name, help)) = target else {
                    continue;
                };
                let total = fields
                    .find_map(|f| f.strip_prefix("total="))
                    .ok_or_else(|| bad(&path, i + 1, "no total= field"))?;
                let micros: u64 = parse(&path, i + 1, total)?;
                // Divided twice, as node_exporter does, so values match to the last digit.
                let seconds = micros as f64 / 1000.0 / 1000.0;
                out.push(single(name, help, MetricType::Counter, seconds));
            }
        }
        Ok(())
    }
}
