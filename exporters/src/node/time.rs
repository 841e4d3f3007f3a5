//! `time`: `node_time_seconds` (the system clock), `node_time_zone_offset_seconds{time_zone}` (the
//! local zone as the process sees it: `$TZ`, else `/etc/localtime`, else UTC, read from the tzdata
//! binary format TZif described in RFC 8536) and the clock sources listed in
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
        let (zone, offset) = local_zone(now as i64);
        let mut tz = MetricFamily::new(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            MetricType::Gauge,
        );
        tz.push(&[("time_zone", &zone)], offset as f64);
        out.push(tz);
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

/// The local time zone's abbreviation and UTC offset in seconds at `now` (Unix seconds): from the
/// zone file `$TZ` names (`Europe/Berlin`, `:Europe/Berlin` or an absolute path), else
/// `/etc/localtime`; `("UTC", 0)` when `$TZ` is empty or no zone file can be read or parsed.
pub fn local_zone(now: i64) -> (String, i64) {
    let utc = || ("UTC".to_string(), 0);
    let path = match std::env::var("TZ") {
        Ok(tz) if tz.is_empty() || tz == "UTC" => return utc(),
        Ok(tz) => {
            let tz = tz.trim_start_matches(':');
            if tz.starts_with('/') {
                PathBuf::from(tz)
            } else {
                PathBuf::from("/usr/share/zoneinfo").join(tz)
            }
        }
        Err(_) => PathBuf::from("/etc/localtime"),
    };
    std::fs::read(&path)
        .ok()
        .and_then(|data| tzif_zone(&data, now))
        .unwrap_or_else(utc)
}

/// Reads the zone in effect at `now` from TZif data: the local time type of the last
/// transition at or before `now`, or the first type when `now` precedes every transition.
/// `None` when the data is not valid TZif.
pub fn tzif_zone(data: &[u8], now: i64) -> Option<(String, i64)> {
    let header = |at: usize| -> Option<[usize; 6]> {
        let h = data.get(at..at + 44)?;
        if &h[..4] != b"TZif" {
            return None;
        }
        let mut counts = [0usize; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            let b = h.get(20 + 4 * i..24 + 4 * i)?;
            *c = u32::from_be_bytes(b.try_into().ok()?) as usize;
        }
        Some(counts)
    };
    // Counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt.
    let v1 = header(0)?;
    let block_len = |c: [usize; 6], time_size: usize| -> usize {
        c[3] * time_size + c[3] + c[4] * 6 + c[5] + c[2] * (time_size + 4) + c[1] + c[0]
    };
    // Version 2 and later repeat the data with 64-bit times after the version 1 block.
    let (counts, start, time_size) = if data.get(4).is_some_and(|v| *v >= b'2') {
        let at = 44 + block_len(v1, 4);
        (header(at)?, at + 44, 8)
    } else {
        (v1, 44, 4)
    };
    let [_, _, _, timecnt, typecnt, charcnt] = counts;
    if typecnt == 0 || data.len() < start + block_len(counts, time_size) {
        return None;
    }
    let time_at = |i: usize| -> i64 {
        let b = &data[start + i * time_size..start + (i + 1) * time_size];
        match b.try_into() {
            Ok(b8) => i64::from_be_bytes(b8),
            Err(_) => b.try_into().map(i32::from_be_bytes).map_or(0, i64::from),
        }
    };
    let indices = start + timecnt * time_size;
    let types = indices + timecnt;
    let chars = types + typecnt * 6;
    let transitions = (0..timecnt).take_while(|&i| time_at(i) <= now).count();
    let ty = match transitions {
        0 => 0,
        n => usize::from(data[indices + n - 1]),
    };
    if ty >= typecnt {
        return None;
    }
    let t = &data[types + ty * 6..types + ty * 6 + 6];
    let offset = i64::from(i32::from_be_bytes([t[0], t[1], t[2], t[3]]));
    let abbr_at = usize::from(t[5]);
    let abbr = data.get(chars + abbr_at..chars + charcnt)?;
    let end = abbr.iter().position(|b| *b == 0).unwrap_or(abbr.len());
    let name = std::str::from_utf8(&abbr[..end]).ok()?.to_string();
    Some((name, offset))
}

#[cfg(test)]
mod tests {
    use super::tzif_zone;

    /// A version 2 TZif file with two types (`STD` +3600, `DST` +7200) and transitions at
    /// t=1000 (to DST) and t=2000 (back to STD).
    fn sample() -> Vec<u8> {
        let header = |time_count: u32| {
            let mut h = b"TZif2".to_vec();
            h.extend([0u8; 15]);
            for c in [0u32, 0, 0, time_count, 2, 8] {
                h.extend(c.to_be_bytes());
            }
            h
        };
        let types = |d: &mut Vec<u8>| {
            d.extend(3600i32.to_be_bytes());
            d.extend([0, 0]);
            d.extend(7200i32.to_be_bytes());
            d.extend([1, 4]);
            d.extend(b"STD\0DST\0");
        };
        let mut d = header(2);
        d.extend(1000i32.to_be_bytes());
        d.extend(2000i32.to_be_bytes());
        d.extend([1, 0]);
        types(&mut d);
        d.extend(header(2));
        d.extend(1000i64.to_be_bytes());
        d.extend(2000i64.to_be_bytes());
        d.extend([1, 0]);
        types(&mut d);
        d.extend(b"\nSTD-1\n");
        d
    }

    #[test]
    fn zone_at() {
        let data = sample();
        #[track_caller]
        fn check(data: &[u8], now: i64, want: Option<(&str, i64)>) {
            let got = tzif_zone(data, now);
            assert_eq!(
                got.as_ref().map(|(n, o)| (n.as_str(), *o)),
                want,
                "at {now}"
            );
        }
        check(&data, 0, Some(("STD", 3600)));
        check(&data, 1000, Some(("DST", 7200)));
        check(&data, 1999, Some(("DST", 7200)));
        check(&data, 5000, Some(("STD", 3600)));
        // Truncated or foreign data: no zone, no panic.
        for len in 0..data.len() - 8 {
            let _ = tzif_zone(&data[..len], 1500);
        }
        check(b"not a zone file", 0, None);
        check(&data[..60], 0, None);
    }
}
