//! `time`: `node_time_seconds` (the system clock) and the clock sources listed in
//! `/sys/devices/system/clocksource/clocksource<N>/{available,current}_clocksource`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{read, single};
use crate::{Collector, Options, Result};

/// The `time` collector.
#[derive(Debug)]
pub struct Time {
    clocksource: PathBuf,
}

impl Time {
    /// Reads the clock sources under `<sysfs>/devices/system/clocksource`.
    pub fn new(opts: &Options) -> Self {
        Self {
            clocksource: opts.sysfs.join("devices/system/clocksource"),
        }
    }
}

impl Collector for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        out.push(single(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            MetricType::Gauge,
            now,
        ));
        let mut available = MetricFamily::new(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        let mut current = MetricFamily::new(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        // Clock sources are optional (containers may hide /sys): no directory, no series.
        if let Ok(dir) = std::fs::read_dir(&self.clocksource) {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(device) = name.to_str().and_then(|n| n.strip_prefix("clocksource")) else {
                    continue;
                };
                if device.is_empty() || !device.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let path = entry.path();
                if let Ok(text) = read(&path.join("available_clocksource")) {
                    for cs in text.split_ascii_whitespace() {
                        available.push(&[("clocksource", cs), ("device", device)], 1.0);
                    }
                }
                if let Ok(text) = read(&path.join("current_clocksource"))
                    && let Some(cs) = text.split_ascii_whitespace().next()
                {
                    current.push(&[("clocksource", cs), ("device", device)], 1.0);
                }
            }
        }
        out.push(available);
        out.push(current);
        Ok(())
    }
}
