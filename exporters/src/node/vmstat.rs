//! `vmstat`: `node_vmstat_<field>` from `/proc/vmstat` for node_exporter's default field set
//! (`^(oom_kill|pgpg|pswp|pg.*fault).*`).

use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{parse, read, single};
use crate::{Collector, Options, Result};

/// The `vmstat` collector.
#[derive(Debug)]
pub struct Vmstat {
    path: PathBuf,
}

impl Vmstat {
    /// Reads `<procfs>/vmstat`.
    pub fn new(opts: &Options) -> Self {
        Self {
            path: opts.procfs.join("vmstat"),
        }
    }
}

/// node_exporter's default `--collector.vmstat.fields`: `^(oom_kill|pgpg|pswp|pg.*fault).*`.
pub fn default_field(name: &str) -> bool {
    name.starts_with("oom_kill")
        || name.starts_with("pgpg")
        || name.starts_with("pswp")
        || name
            .strip_prefix("pg")
            .is_some_and(|rest| rest.contains("fault"))
}

impl Collector for Vmstat {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(&self.path)?;
        for (i, line) in text.lines().enumerate() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
                continue;
            };
            if !default_field(name) {
                continue;
            }
            let v: f64 = parse(&self.path, i + 1, value)?;
            out.push(single(
                &format!("node_vmstat_{name}"),
                &format!("/proc/vmstat information field {name}."),
                MetricType::Untyped,
                v,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_fields() {
        #[track_caller]
        fn check(name: &str, want: bool) {
            assert_eq!(super::default_field(name), want, "{name}");
        }
        check("oom_kill", true);
        check("pgpgin", true);
        check("pswpout", true);
        check("pgfault", true);
        check("pgmajfault", true);
        check("pgmajfault_s", true);
        check("nr_free_pages", false);
        check("pgfree", false);
        check("thp_fault_alloc", false);
    }
}
