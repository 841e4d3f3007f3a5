//! Node collectors: one module per node_exporter collector, each reading files under the roots
//! given in [`Options`](crate::Options).
//!
//! Every collector keeps node_exporter 1.5's metric names, label names, units (seconds, bytes)
//! and HELP texts. Build one by name with [`build`]; [`NAMES`] lists them all.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use pharos_model::expfmt::{MetricFamily, MetricType};

use crate::{Collector, Error, Options, Result};

pub mod cpu;
pub mod diskstats;
pub mod filefd;
pub mod filesystem;
pub mod loadavg;
pub mod meminfo;
pub mod netclass;
pub mod netdev;
pub mod os;
pub mod pressure;
pub mod sockstat;
pub mod stat;
pub mod time;
pub mod uname;
pub mod vmstat;

/// Names of the node collectors, as node_exporter names them.
pub const NAMES: &[&str] = &[
    "cpu",
    "diskstats",
    "filefd",
    "filesystem",
    "loadavg",
    "meminfo",
    "netclass",
    "netdev",
    "os",
    "pressure",
    "sockstat",
    "stat",
    "time",
    "uname",
    "vmstat",
];

/// Whether node_exporter enables the collector `name` by default (all of ours are).
pub fn enabled_by_default(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Builds the node collector called `name`, or `None` for an unknown name.
pub fn build(name: &str, opts: &Options) -> Option<Box<dyn Collector>> {
    Some(match name {
        "cpu" => Box::new(cpu::Cpu::new(opts)),
        "diskstats" => Box::new(diskstats::Diskstats::new(opts)),
        "filefd" => Box::new(filefd::Filefd::new(opts)),
        "filesystem" => Box::new(filesystem::Filesystem::new(opts)),
        "loadavg" => Box::new(loadavg::Loadavg::new(opts)),
        "meminfo" => Box::new(meminfo::Meminfo::new(opts)),
        "netclass" => Box::new(netclass::Netclass::new(opts)),
        "netdev" => Box::new(netdev::Netdev::new(opts)),
        "os" => Box::new(os::Os::new(opts)),
        "pressure" => Box::new(pressure::Pressure::new(opts)),
        "sockstat" => Box::new(sockstat::Sockstat::new(opts)),
        "stat" => Box::new(stat::Stat::new(opts)),
        "time" => Box::new(time::Time::new(opts)),
        "uname" => Box::new(uname::Uname::new(opts)),
        "vmstat" => Box::new(vmstat::Vmstat::new(opts)),
        _ => return None,
    })
}

/// Reads a whole file as text.
pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses one field of line `line` (1-based) of `path`.
pub(crate) fn parse<T: FromStr>(path: &Path, line: usize, field: &str) -> Result<T> {
    field.parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        line,
        msg: format!("invalid number {field:?}"),
    })
}

/// A parse error at `line` of `path`.
pub(crate) fn bad(path: &Path, line: usize, msg: impl Into<String>) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

/// A family with a single unlabelled sample.
pub(crate) fn single(name: &str, help: &str, kind: MetricType, value: f64) -> MetricFamily {
    let mut f = MetricFamily::new(name, help, kind);
    f.push(&[], value);
    f
}

/// `root` joined with an absolute-looking path such as `"etc/os-release"`.
pub(crate) fn under(root: &Path, rel: &str) -> PathBuf {
    root.join(rel.trim_start_matches('/'))
}
