//! `netdev`: per-interface counters from `/proc/net/dev` as
//! `node_network_{receive,transmit}_<field>_total{device}`.
//!
//! node_exporter 1.5 reads the same counters over rtnetlink, which also yields
//! `receive_nohandler`; here that one comes from
//! `/sys/class/net/<device>/statistics/rx_nohandler` when the file exists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{bad, parse, read};
use crate::{Collector, Options, Result};

/// The 16 columns of `/proc/net/dev`, in order.
const FIELDS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// The `netdev` collector.
#[derive(Debug)]
pub struct Netdev {
    path: PathBuf,
    class_net: PathBuf,
}

impl Netdev {
    /// Reads `<procfs>/net/dev` and `<sysfs>/class/net/*/statistics/rx_nohandler`.
    pub fn new(opts: &Options) -> Self {
        Self {
            path: opts.procfs.join("net/dev"),
            class_net: opts.sysfs.join("class/net"),
        }
    }
}

impl Collector for Netdev {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(&self.path)?;
        let mut families: BTreeMap<&str, MetricFamily> = BTreeMap::new();
        let family = |field: &str| -> MetricFamily {
            MetricFamily::new(
                format!("node_network_{field}_total"),
                format!("Network device statistic {field}."),
                MetricType::Counter,
            )
        };
        // The first two lines are column headers.
        for (i, line) in text.lines().enumerate().skip(2) {
            let Some((device, counters)) = line.split_once(':') else {
                continue;
            };
            let device = device.trim();
            let values: Vec<u64> = counters
                .split_ascii_whitespace()
                .map(|v| parse(&self.path, i + 1, v))
                .collect::<Result<_>>()?;
            if values.len() != FIELDS.len() {
                return Err(bad(
                    &self.path,
                    i + 1,
                    format!("want {} counters, got {}", FIELDS.len(), values.len()),
                ));
            }
            for (field, v) in FIELDS.iter().zip(values) {
                families
                    .entry(field)
                    .or_insert_with(|| family(field))
                    .push(&[("device", device)], v as f64);
            }
            let nohandler = self.class_net.join(device).join("statistics/rx_nohandler");
            if let Ok(text) = read(&nohandler)
                && let Ok(v) = text.trim().parse::<u64>()
            {
                families
                    .entry("receive_nohandler")
                    .or_insert_with(|| family("receive_nohandler"))
                    .push(&[("device", device)], v as f64);
            }
        }
        out.extend(families.into_values());
        Ok(())
    }
}
