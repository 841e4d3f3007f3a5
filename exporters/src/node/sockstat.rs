//! `sockstat`: socket counts from `/proc/net/sockstat` and `/proc/net/sockstat6`.
//!
//! Each `PROTO: key value ...` pair becomes `node_sockstat_<PROTO>_<key>`; `mem` (in pages)
//! also yields `node_sockstat_<PROTO>_mem_bytes`. `sockets: used N` becomes
//! `node_sockstat_sockets_used`. A missing `sockstat6` (IPv6 disabled) is not an error.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{bad, parse, read, single};
use crate::{Collector, Options, Result};

/// Page size assumed when `/proc/self/smaps` cannot tell (true on x86-64 and most arm64).
const DEFAULT_PAGE_SIZE: u64 = 4096;

/// The `sockstat` collector.
#[derive(Debug)]
pub struct Sockstat {
    v4: PathBuf,
    v6: PathBuf,
    page_size: u64,
}

impl Sockstat {
    /// Reads `<procfs>/net/sockstat{,6}`; the page size comes from `<procfs>/self/smaps`.
    pub fn new(opts: &Options) -> Self {
        let page_size = page_size(&opts.procfs.join("self/smaps")).unwrap_or(DEFAULT_PAGE_SIZE);
        Self::with_page_size(opts, page_size)
    }

    /// Like [`new`](Self::new) with a known page size in bytes.
    pub fn with_page_size(opts: &Options, page_size: u64) -> Self {
        Self {
            v4: opts.procfs.join("net/sockstat"),
            v6: opts.procfs.join("net/sockstat6"),
            page_size,
        }
    }

    fn parse_file(&self, path: &Path, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(path)?;
        for (i, line) in text.lines().enumerate() {
            let Some((proto, rest)) = line.split_once(':') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
            if !fields.len().is_multiple_of(2) {
                return Err(bad(path, i + 1, "odd number of fields"));
            }
            for pair in fields.chunks_exact(2) {
                let (key, value) = (pair[0], pair[1]);
                let v: u64 = parse(path, i + 1, value)?;
                if proto == "sockets" && key == "used" {
                    out.push(single(
                        "node_sockstat_sockets_used",
                        "Number of IPv4 sockets in use.",
                        MetricType::Gauge,
                        v as f64,
                    ));
                    continue;
                }
                out.push(single(
                    &format!("node_sockstat_{proto}_{key}"),
                    &format!("Number of {proto} sockets in state {key}."),
                    MetricType::Gauge,
                    v as f64,
                ));
                if key == "mem" {
                    out.push(single(
                        &format!("node_sockstat_{proto}_mem_bytes"),
                        &format!("Number of {proto} sockets in state mem_bytes."),
                        MetricType::Gauge,
                        v.saturating_mul(self.page_size) as f64,
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The kernel page size from the first `KernelPageSize:` line of an smaps file.
fn page_size(smaps: &Path) -> Option<u64> {
    let file = std::fs::File::open(smaps).ok()?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.ok()?;
        if let Some(rest) = line.strip_prefix("KernelPageSize:") {
            let kb: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            return Some(kb * 1024);
        }
    }
    None
}

impl Collector for Sockstat {
    fn name(&self) -> &'static str {
        "sockstat"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        self.parse_file(&self.v4, out)?;
        match self.parse_file(&self.v6, out) {
            Err(e) if e.is_not_found() => {
                tracing::debug!(error = %e, "IPv6 sockstat unavailable");
                Ok(())
            }
            r => r,
        }
    }
}
