//! `loadavg`: `node_load1`, `node_load5` and `node_load15` from `/proc/loadavg`.

use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{bad, parse, read, single};
use crate::{Collector, Options, Result};

/// The `loadavg` collector.
#[derive(Debug)]
pub struct Loadavg {
    path: PathBuf,
}

impl Loadavg {
    /// Reads `<procfs>/loadavg`.
    pub fn new(opts: &Options) -> Self {
        Self {
            path: opts.procfs.join("loadavg"),
        }
    }
}

impl Collector for Loadavg {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(&self.path)?;
        let fields: Vec<&str> = text.split_ascii_whitespace().take(3).collect();
        if fields.len() < 3 {
            return Err(bad(&self.path, 1, "fewer than 3 fields"));
        }
        for (field, (name, help)) in fields.iter().zip([
            ("node_load1", "1m load average."),
            ("node_load5", "5m load average."),
            ("node_load15", "15m load average."),
        ]) {
            let v: f64 = parse(&self.path, 1, field)?;
            out.push(single(name, help, MetricType::Gauge, v));
        }
        Ok(())
    }
}
