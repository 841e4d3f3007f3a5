//! `filefd`: `node_filefd_allocated` and `node_filefd_maximum` from `/proc/sys/fs/file-nr`.

use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{bad, parse, read, single};
use crate::{Collector, Options, Result};

/// The `filefd` collector.
#[derive(Debug)]
pub struct Filefd {
    path: PathBuf,
}

impl Filefd {
    /// Reads `<procfs>/sys/fs/file-nr`.
    pub fn new(opts: &Options) -> Self {
        Self {
            path: opts.procfs.join("sys/fs/file-nr"),
        }
    }
}

impl Collector for Filefd {
    fn name(&self) -> &'static str {
        "filefd"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(&self.path)?;
        // allocated, allocated-but-unused (always 0 since 2.6), maximum
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        let [allocated, _unused, maximum] = fields[..] else {
            return Err(bad(
                &self.path,
                1,
                format!("want 3 fields, got {}", fields.len()),
            ));
        };
        let allocated: u64 = parse(&self.path, 1, allocated)?;
        let maximum: u64 = parse(&self.path, 1, maximum)?;
        out.push(single(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            MetricType::Gauge,
            allocated as f64,
        ));
        out.push(single(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            MetricType::Gauge,
            maximum as f64,
        ));
        Ok(())
    }
}
