//! `cpu`: per-CPU time from `/proc/stat`.
//!
//! `node_cpu_seconds_total{cpu,mode}` for the modes user, nice, system, idle, iowait, irq,
//! softirq and steal, and `node_cpu_guest_seconds_total{cpu,mode}` for user and nice guest time.
//! The kernel counts in USER_HZ ticks, which is 100 on every Linux architecture's ABI.

use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{parse, read};
use crate::{Collector, Error, Options, Result};

/// Ticks per second of `/proc/stat` (USER_HZ).
pub const USER_HZ: f64 = 100.0;

/// Order of the time columns after `cpuN` in `/proc/stat`.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// The `cpu` collector.
#[derive(Debug)]
pub struct Cpu {
    stat: PathBuf,
}

impl Cpu {
    /// Reads `<procfs>/stat`.
    pub fn new(opts: &Options) -> Self {
        Self {
            stat: opts.procfs.join("stat"),
        }
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(&self.stat)?;
        let mut seconds = MetricFamily::new(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            MetricType::Counter,
        );
        let mut guest = MetricFamily::new(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            MetricType::Counter,
        );
        for (i, line) in text.lines().enumerate() {
            let mut fields = line.split_ascii_whitespace();
            let Some(cpu) = fields
                .next()
                .and_then(|f| f.strip_prefix("cpu"))
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            if !cpu.bytes().all(|b| b.is_ascii_digit()) {
                return Err(super::bad(&self.stat, i + 1, format!("bad cpu id {cpu:?}")));
            }
            let ticks: Vec<u64> = fields
                .map(|f| parse(&self.stat, i + 1, f))
                .collect::<Result<_>>()?;
            for (mode, t) in MODES.iter().zip(&ticks) {
                seconds.push(&[("cpu", cpu), ("mode", mode)], *t as f64 / USER_HZ);
            }
            // guest and guest_nice follow steal (kernels since 2.6.24 and 2.6.33).
            for (mode, t) in ["user", "nice"].iter().zip(ticks.iter().skip(MODES.len())) {
                guest.push(&[("cpu", cpu), ("mode", mode)], *t as f64 / USER_HZ);
            }
        }
        if seconds.samples.is_empty() {
            return Err(Error::NoData {
                path: self.stat.clone(),
                msg: "no cpuN lines".into(),
            });
        }
        out.push(seconds);
        out.push(guest);
        Ok(())
    }
}
