//! `diskstats`: block device I/O counters from `/proc/diskstats` as `node_disk_*{device}`,
//! plus `node_disk_info` with the udev properties of each device.
//!
//! Devices matching node_exporter's default exclusion
//! `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$` (RAM disks, loop devices, floppies and
//! partitions) are skipped. Sectors are 512 bytes and times milliseconds, whatever the device.

use std::collections::HashMap;
use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{parse, read, under};
use crate::{Collector, Options, Result};

/// Bytes per sector in `/proc/diskstats` (fixed by the kernel ABI).
const SECTOR_SIZE: f64 = 512.0;
/// Milliseconds to seconds, multiplied as node_exporter does so values match exactly.
const MS: f64 = 0.001;

/// (metric, help, type, scale) for each counter column after `major minor name`.
const COLUMNS: [(&str, &str, MetricType, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        MetricType::Counter,
        SECTOR_SIZE,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        MetricType::Counter,
        SECTOR_SIZE,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        MetricType::Gauge,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        MetricType::Counter,
        MS,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        MetricType::Counter,
        MS,
    ),
];

/// The `diskstats` collector.
#[derive(Debug)]
pub struct Diskstats {
    path: PathBuf,
    udev: PathBuf,
}

impl Diskstats {
    /// Reads `<procfs>/diskstats` and udev's `<rootfs>/run/udev/data/b<major>:<minor>`.
    pub fn new(opts: &Options) -> Self {
        Self {
            path: opts.procfs.join("diskstats"),
            udev: under(&opts.rootfs, "run/udev/data"),
        }
    }

    /// udev properties (`E:KEY=value` lines) of a block device; empty if unknown.
    fn udev_props(&self, major: &str, minor: &str) -> HashMap<String, String> {
        let Ok(text) = read(&self.udev.join(format!("b{major}:{minor}"))) else {
            return HashMap::new();
        };
        text.lines()
            .filter_map(|l| l.strip_prefix("E:")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// node_exporter's default `--collector.diskstats.device-exclude`:
/// `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`.
pub fn excluded(device: &str) -> bool {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    // `s` is one or more digits and nothing else.
    fn all_digits(s: &str) -> bool {
        !s.is_empty() && digits(s) == s.len()
    }
    for prefix in ["ram", "loop", "fd"] {
        if device.strip_prefix(prefix).is_some_and(all_digits) {
            return true;
        }
    }
    for prefix in ["hd", "sd", "vd", "xvd"] {
        if let Some(rest) = device.strip_prefix(prefix) {
            let mut chars = rest.chars();
            if chars.next().is_some_and(|c| c.is_ascii_lowercase()) && all_digits(chars.as_str()) {
                return true;
            }
        }
    }
    // nvme<digits>n<digits>p<digits>
    let nvme = device
        .strip_prefix("nvme")
        .and_then(|r| r.get(digits(r)..).filter(|_| digits(r) > 0))
        .and_then(|r| r.strip_prefix('n'))
        .and_then(|r| r.get(digits(r)..).filter(|_| digits(r) > 0))
        .and_then(|r| r.strip_prefix('p'));
    nvme.is_some_and(all_digits)
}

impl Collector for Diskstats {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = read(&self.path)?;
        let mut families: Vec<MetricFamily> = COLUMNS
            .iter()
            .map(|(name, help, kind, _)| MetricFamily::new(*name, *help, *kind))
            .collect();
        let mut info = MetricFamily::new(
            "node_disk_info",
            "Info of /sys/block/<block_device>.",
            MetricType::Gauge,
        );
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let [major, minor, device, counters @ ..] = &fields[..] else {
                continue;
            };
            if excluded(device) {
                continue;
            }
            let values: Vec<u64> = counters
                .iter()
                .map(|v| parse(&self.path, i + 1, v))
                .collect::<Result<_>>()?;
            for ((family, column), v) in families.iter_mut().zip(&COLUMNS).zip(values) {
                family.push(&[("device", device)], v as f64 * column.3);
            }
            let props = self.udev_props(major, minor);
            let prop = |k: &str| props.get(k).map(String::as_str).unwrap_or("");
            info.push(
                &[
                    ("device", device),
                    ("major", major),
                    ("minor", minor),
                    ("model", prop("ID_MODEL")),
                    ("path", prop("ID_PATH")),
                    ("revision", prop("ID_REVISION")),
                    ("serial", prop("ID_SERIAL_SHORT")),
                    ("wwn", prop("ID_WWN")),
                ],
                1.0,
            );
        }
        out.extend(families);
        out.push(info);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_exclusion() {
        #[track_caller]
        fn check(device: &str, want: bool) {
            assert_eq!(super::excluded(device), want, "{device}");
        }
        check("ram0", true);
        check("loop12", true);
        check("fd0", true);
        check("sda1", true);
        check("vda15", true);
        check("xvdb2", true);
        check("hdc3", true);
        check("nvme0n1p2", true);
        check("sda", false);
        check("vda", false);
        check("nvme0n1", false);
        check("dm-0", false);
        check("zram0", false);
        check("md127", false);
        check("loop", false);
        check("sdaa1", false);
        check("nvme0n1p", false);
    }
}
