//! `netclass`: per-interface properties from `/sys/class/net/<device>/` as node_exporter 1.5
//! reports them (`node_network_up`, `node_network_info`, `node_network_mtu_bytes`,
//! `node_network_speed_bytes`, `node_network_carrier_changes_total`, ...).
//!
//! The kernel refuses some reads depending on the device's state (`carrier` and `speed` of a down
//! interface fail with `EINVAL`); like node_exporter, a property that cannot be read or parsed is
//! left out for that device only.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags, open, openat};

use pharos_model::expfmt::{MetricFamily, MetricType};

use crate::{Collector, Error, Options, Result};

/// Numeric properties: (sysfs file, metric suffix, is a counter).
const PROPERTIES: &[(&str, &str, bool)] = &[
    ("addr_assign_type", "address_assign_type", false),
    ("carrier", "carrier", false),
    ("carrier_changes", "carrier_changes_total", true),
    ("carrier_up_count", "carrier_up_changes_total", true),
    ("carrier_down_count", "carrier_down_changes_total", true),
    ("dev_id", "device_id", false),
    ("dormant", "dormant", false),
    ("flags", "flags", false),
    ("ifindex", "iface_id", false),
    ("iflink", "iface_link", false),
    ("link_mode", "iface_link_mode", false),
    ("mtu", "mtu_bytes", false),
    ("name_assign_type", "name_assign_type", false),
    ("netdev_group", "net_dev_group", false),
    ("speed", "speed_bytes", false),
    ("tx_queue_len", "transmit_queue_length", false),
    ("type", "protocol_type", false),
];

/// The `netclass` collector.
#[derive(Debug)]
pub struct Netclass {
    dir: PathBuf,
}

impl Netclass {
    /// Reads the devices under `<sysfs>/class/net`.
    pub fn new(opts: &Options) -> Self {
        Self {
            dir: opts.sysfs.join("class/net"),
        }
    }
}

/// The trimmed content of the attribute `file` of the device directory `dir`, or `None` when it
/// cannot be read. Opened relative to the directory's descriptor: about 25 attributes per device
/// are read on every scrape, and this spares the kernel a path walk through `class/net/<dev>`
/// (a symbolic link) for each.
fn read_attr(dir: &OwnedFd, file: &str, buf: &mut [u8]) -> Option<String> {
    let fd = openat(dir, file, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf[..len]).trim().to_string())
}

/// Parses a sysfs integer: decimal, or hexadecimal with a `0x` prefix (`flags`, `dev_id`).
fn parse_int(text: &str) -> Option<i64> {
    match text.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

impl Collector for Netclass {
    fn name(&self) -> &'static str {
        "netclass"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| Error::Read {
            path: self.dir.clone(),
            source,
        })?;
        let mut devices: Vec<(String, OwnedFd)> = entries
            .flatten()
            .filter_map(|e| {
                // Plain files such as `bonding_masters` fail to open as directories: skipped.
                let fd = open(
                    e.path(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()?;
                Some((e.file_name().to_str()?.to_string(), fd))
            })
            .collect();
        devices.sort_by(|a, b| a.0.cmp(&b.0));
        // Attributes are short (ifalias, the longest, is at most 256 bytes).
        let mut buf = vec![0u8; 4096];

        let mut up = MetricFamily::new(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
            MetricType::Gauge,
        );
        let mut info = MetricFamily::new(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            MetricType::Gauge,
        );
        let mut families: BTreeMap<&str, MetricFamily> = BTreeMap::new();
        for (device, dir) in &devices {
            let mut text = |file: &str| read_attr(dir, file, &mut buf).unwrap_or_default();
            let operstate = text("operstate");
            let (address, broadcast) = (text("address"), text("broadcast"));
            let (duplex, ifalias) = (text("duplex"), text("ifalias"));
            up.push(
                &[("device", device)],
                if operstate == "up" { 1.0 } else { 0.0 },
            );
            info.push(
                &[
                    ("address", &address),
                    ("broadcast", &broadcast),
                    ("device", device),
                    ("duplex", &duplex),
                    ("ifalias", &ifalias),
                    ("operstate", &operstate),
                ],
                1.0,
            );
            for &(file, suffix, counter) in PROPERTIES {
                let Some(mut value) = read_attr(dir, file, &mut buf)
                    .as_deref()
                    .and_then(parse_int)
                else {
                    continue;
                };
                if file == "speed" {
                    // Mbit/s to bytes/s; an unknown speed (-1) stays negative, as in node_exporter.
                    value = value.saturating_mul(1000 * 1000 / 8);
                }
                families
                    .entry(suffix)
                    .or_insert_with(|| {
                        MetricFamily::new(
                            format!("node_network_{suffix}"),
                            format!("Network device property: {suffix}"),
                            if counter {
                                MetricType::Counter
                            } else {
                                MetricType::Gauge
                            },
                        )
                    })
                    .push(&[("device", device)], value as f64);
            }
        }
        out.push(up);
        out.push(info);
        out.extend(families.into_values());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_int() {
        #[track_caller]
        fn check(input: &str, want: Option<i64>) {
            assert_eq!(super::parse_int(input), want, "{input:?}");
        }
        check("1500", Some(1500));
        check("-1", Some(-1));
        check("0x1003", Some(4099));
        check("0x0", Some(0));
        check("", None);
        check("up", None);
        check("0xzz", None);
    }
}
