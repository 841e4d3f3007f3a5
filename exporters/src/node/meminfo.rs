//! `meminfo`: every field of `/proc/meminfo` as `node_memory_<Field>[_bytes]`.
//!
//! Fields in kB become bytes with a `_bytes` suffix; unit-less ones (`HugePages_*`) keep their
//! name. `Active(anon)` becomes `Active_anon`, `Inactive(file)` becomes `Inactive_file`, as in
//! node_exporter.

use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{bad, parse, read, single};
use crate::{Collector, Options, Result};

/// The `meminfo` collector.
#[derive(Debug)]
pub struct Meminfo {
    path: PathBuf,
}

impl Meminfo {
    /// Reads `<procfs>/meminfo`.
    pub fn new(opts: &Options) -> Self {
        Self {
            path: opts.procfs.join("meminfo"),
        }
    }
}

impl Collector for Meminfo {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(&self.path)?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, rest)) = line.split_once(':') else {
                return Err(bad(&self.path, i + 1, "no ':' separator"));
            };
            let mut fields = rest.split_ascii_whitespace();
            let Some(value) = fields.next() else {
                return Err(bad(&self.path, i + 1, "no value"));
            };
            let v: u64 = parse(&self.path, i + 1, value)?;
            // node_exporter turns `Name(x)` into `Name_x`.
            let key = key.trim().replace('(', "_").replace(')', "");
            let (field, v) = match fields.next() {
                Some("kB") => (format!("{key}_bytes"), v as f64 * 1024.0),
                None => (key, v as f64),
                Some(unit) => {
                    return Err(bad(&self.path, i + 1, format!("unknown unit {unit:?}")));
                }
            };
            let help = format!("Memory information field {field}.");
            out.push(single(
                &format!("node_memory_{field}"),
                &help,
                MetricType::Gauge,
                v,
            ));
        }
        Ok(())
    }
}
