//! `uname`: `node_uname_info` from the files under `/proc/sys/kernel` that mirror `uname(2)`.
//!
//! The machine (hardware architecture) has no procfs file; it comes from `sysinfo` (which calls
//! `uname(2)`), so it describes the host the exporter runs on even with another procfs root.

use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::read;
use crate::{Collector, Options, Result};

/// The `uname` collector.
#[derive(Debug)]
pub struct Uname {
    kernel: PathBuf,
    machine: String,
}

impl Uname {
    /// Reads `<procfs>/sys/kernel/{ostype,hostname,osrelease,version,domainname}`.
    pub fn new(opts: &Options) -> Self {
        Self::with_machine(opts, sysinfo::System::cpu_arch())
    }

    /// Like [`new`](Self::new) with a given `machine` label (for tests and cross-host roots).
    pub fn with_machine(opts: &Options, machine: impl Into<String>) -> Self {
        Self {
            kernel: opts.procfs.join("sys/kernel"),
            machine: machine.into(),
        }
    }
}

impl Collector for Uname {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let field = |name: &str| -> Result<String> {
            Ok(read(&self.kernel.join(name))?
                .trim_end_matches('\n')
                .to_string())
        };
        let sysname = field("ostype")?;
        let nodename = field("hostname")?;
        let release = field("osrelease")?;
        let version = field("version")?;
        let domainname = field("domainname")?;
        let mut f = MetricFamily::new(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            MetricType::Gauge,
        );
        f.push(
            &[
                ("domainname", &domainname),
                ("machine", &self.machine),
                ("nodename", &nodename),
                ("release", &release),
                ("sysname", &sysname),
                ("version", &version),
            ],
            1.0,
        );
        out.push(f);
        Ok(())
    }
}
