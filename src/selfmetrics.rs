//! Pharos' own `/metrics`: process metrics (the names every Prometheus client library uses), build
//! info, storage and scrape statistics.

use pharos_model::expfmt::{MetricFamily, MetricType, write_text};

/// Clock ticks per second assumed for /proc/self/stat (USER_HZ is 100 on every Linux platform
/// Pharos targets).
const USER_HZ: f64 = 100.0;

/// A snapshot of the figures the server reports about itself.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Families gathered from the crates (storage, scraping).
    pub families: Vec<MetricFamily>,
}

impl Snapshot {
    /// Adds a single-sample family.
    pub fn single(&mut self, name: &str, help: &str, kind: MetricType, value: f64) {
        let mut f = MetricFamily::new(name, help, kind);
        f.push(&[], value);
        self.families.push(f);
    }

    /// Renders the snapshot plus build and process metrics in the text format.
    pub fn render(mut self, start_time_s: f64) -> String {
        let mut build = MetricFamily::new(
            "pharos_build_info",
            "A metric with a constant '1' value labeled by version and the Rust target it was built for.",
            MetricType::Gauge,
        );
        build.push(
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("arch", std::env::consts::ARCH),
                ("os", std::env::consts::OS),
            ],
            1.0,
        );
        self.families.push(build);
        self.families.extend(process_families(start_time_s));
        let mut out = String::new();
        write_text(&mut out, &self.families);
        out
    }
}

/// `process_*` metrics from /proc/self, as the Prometheus client libraries export them.
pub fn process_families(start_time_s: f64) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    let mut single = |name: &str, help: &str, kind, v: f64| {
        let mut f = MetricFamily::new(name, help, kind);
        f.push(&[], v);
        out.push(f);
    };
    if let Some((utime, stime, vsize, rss_pages)) = read_self_stat() {
        single(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            MetricType::Counter,
            (utime + stime) / USER_HZ,
        );
        single(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            MetricType::Gauge,
            vsize,
        );
        single(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            MetricType::Gauge,
            rss_pages * 4096.0,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        single(
            "process_open_fds",
            "Number of open file descriptors.",
            MetricType::Gauge,
            fds.count() as f64,
        );
    }
    single(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        MetricType::Gauge,
        start_time_s,
    );
    out
}

/// (utime ticks, stime ticks, vsize bytes, rss pages) from /proc/self/stat.
fn read_self_stat() -> Option<(f64, f64, f64, f64)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; the fields after it start past the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, vsize 23, rss 24.
    let get = |field: usize| f.get(field - 3)?.parse::<f64>().ok();
    Some((get(14)?, get(15)?, get(23)?, get(24)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_process_and_build_metrics() {
        let mut s = Snapshot::default();
        s.single("pharos_x", "X.", MetricType::Gauge, 3.0);
        let text = s.render(1.5);
        assert!(text.contains("\npharos_x 3\n"), "{text}");
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_start_time_seconds 1.5\n"), "{text}");
        assert!(text.contains("pharos_build_info{version=\""), "{text}");
    }
}
