//! `pharos tsdb import|export|inspect` on real files and data directories, and a server
//! started on an imported directory.

use std::path::Path;
use std::process::Command;

use pharos_model::expfmt::{Entry, Format, Parser};

use crate::harness::{Pharos, enc, free_port};

/// Runs `pharos tsdb <args>`; returns (stdout, stderr), panicking on failure.
fn pharos_tsdb(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pharos"))
        .arg("tsdb")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "pharos tsdb {args:?}: {stderr}");
    (stdout, stderr)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// (series text, t, value bits) of every sample of a text-format body, sorted.
fn samples_of(text: &str, format: Format) -> Vec<(String, i64, u64)> {
    let mut v = Vec::new();
    for e in Parser::new(text, format) {
        if let Entry::Sample {
            name,
            labels,
            value,
            timestamp,
        } = e.unwrap()
        {
            let mut labels: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            labels.sort();
            v.push((
                format!("{name}{{{}}}", labels.join(",")),
                timestamp.unwrap(),
                value.to_bits(),
            ));
        }
    }
    v.sort();
    v
}

/// The value of a series at step `k`.
type ValueAt = Box<dyn Fn(i64) -> f64>;

/// A node-exporter-like file over `hours` hours ending at `end` (15 s steps), lines of each
/// series in reverse time order for a third of them (the importer sorts).
fn realistic_file(end: i64, hours: i64) -> String {
    let steps = hours * 240;
    let start = end - steps * 15_000;
    let mut out = String::from(
        "# HELP node_cpu_seconds_total Seconds the CPUs spent.\n# TYPE node_cpu_seconds_total counter\n",
    );
    let mut series: Vec<(String, ValueAt)> = Vec::new();
    for cpu in 0..4 {
        for (mode, rate) in [("idle", 0.9), ("user", 0.07), ("system", 0.03)] {
            series.push((
                format!("node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}}"),
                Box::new(move |k| ((1000.0 + k as f64 * 15.0 * rate) * 100.0).round() / 100.0),
            ));
        }
    }
    for dev in ["sda", "nvme0n1"] {
        series.push((
            format!("node_disk_written_bytes_total{{device=\"{dev}\"}}"),
            Box::new(|k| (k * 4096 * 37) as f64),
        ));
    }
    series.push((
        "node_memory_MemAvailable_bytes".into(),
        Box::new(|k| (8_000_000_000 - (k % 97) * 4096) as f64),
    ));
    series.push((
        "node_load1{note=\"quote \\\" and \\\\ slash\"}".into(),
        Box::new(|k| ((k % 13) as f64) * 0.01),
    ));
    for (i, (name, f)) in series.iter().enumerate() {
        let ks: Vec<i64> = if i % 3 == 0 {
            (0..steps).rev().collect()
        } else {
            (0..steps).collect()
        };
        for k in ks {
            out.push_str(&format!(
                "{name} {} {}\n",
                pharos_model::expfmt::format_float(f(k)),
                start + k * 15_000
            ));
        }
    }
    out
}

#[test]
fn import_export_round_trip_and_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("in.prom");
    let data = tmp.path().join("data");
    let end = 1_700_000_000_000;
    let text = realistic_file(end, 5);
    std::fs::write(&file, &text).unwrap();
    let data_arg = format!("--storage.tsdb.path={}", data.display());

    let (_, progress) = pharos_tsdb(&["import", file.to_str().unwrap(), &data_arg]);
    assert!(
        progress.contains("parsed 19200 samples of 16 series"),
        "{progress}"
    );
    assert!(
        progress.contains("imported 19200/19200 samples (100%)"),
        "{progress}"
    );

    let (exported, _) = pharos_tsdb(&["export", &data_arg]);
    assert_eq!(
        samples_of(&exported, Format::Text),
        samples_of(&text, Format::Text)
    );

    // A selector and a time range (inclusive ends).
    let (part, _) = pharos_tsdb(&[
        "export",
        &data_arg,
        "--match",
        "node_cpu_seconds_total{mode=\"user\",cpu=~\"0|1\"}",
        "--start",
        &format!("{}", (end - 60_000) / 1000),
        "--end",
        &format!("{}", (end - 15_000) / 1000),
    ]);
    assert_eq!(part.lines().count(), 2 * 4, "{part}");
    assert!(part.lines().all(|l| l.contains("mode=\"user\"")), "{part}");

    let (report, _) = pharos_tsdb(&["inspect", data.to_str().unwrap()]);
    assert!(report.contains("Blocks: "), "{report}");
    assert!(report.contains("19200 samples"), "{report}");
    assert!(
        report.contains("        12 node_cpu_seconds_total"),
        "{report}"
    );
    // Read-only: inspecting twice changes nothing on disk.
    let listing = |d: &Path| {
        let mut v: Vec<_> = walk(d);
        v.sort();
        v
    };
    let before = listing(&data);
    pharos_tsdb(&["inspect", data.to_str().unwrap()]);
    assert_eq!(listing(&data), before);
}

fn walk(d: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push((e.path().display().to_string(), m.len()));
        }
    }
    out
}

#[test]
fn import_openmetrics_then_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("in.om");
    let data = tmp.path().join("data");
    // Recent data, so that the server's retention (measured from the newest sample) keeps it.
    let end = (now_ms() - 600_000) / 1000 * 1000;
    let mut om = String::from("# TYPE backfill_jobs gauge\n");
    for k in (0..720).rev() {
        let t = end - k * 15_000;
        om.push_str(&format!(
            "backfill_jobs{{queue=\"a\"}} {} {}.{:03}\n",
            k % 10,
            t / 1000,
            t % 1000
        ));
    }
    om.push_str("# EOF\n");
    std::fs::write(&file, &om).unwrap();
    let data_arg = format!("--storage.tsdb.path={}", data.display());
    pharos_tsdb(&["import", file.to_str().unwrap(), &data_arg]);
    let (exported, _) = pharos_tsdb(&["export", &data_arg, "--match", "backfill_jobs"]);
    assert_eq!(
        samples_of(&exported, Format::Text),
        samples_of(&om, Format::OpenMetrics)
    );

    let port = free_port();
    let log = tmp.path().join("pharos.log");
    let p = Pharos::start(port, &[&data_arg, "--exporter.listen-address=off"], &log);
    // 3 hours ago = k 720... sample k at end - k*15s has value k % 10.
    for k in [0i64, 7, 243, 719] {
        let t = end - k * 15_000;
        let body = p.api(&format!(
            "/api/v1/query?query={}&time={}.{:03}",
            enc("backfill_jobs{queue=\"a\"}"),
            t / 1000,
            t % 1000
        ));
        let v = &body["data"]["result"][0]["value"][1];
        assert_eq!(v, &serde_json::json!((k % 10).to_string()), "k={k}: {body}");
    }
    let body = p.api(&format!(
        "/api/v1/query?query={}&time={}",
        enc("count_over_time(backfill_jobs[3h])"),
        end / 1000
    ));
    assert_eq!(body["data"]["result"][0]["value"][1], "720", "{body}");
}

#[test]
fn help_and_errors() {
    for args in [
        &["tsdb", "--help"][..],
        &["tsdb", "inspect", "--help"],
        &["tsdb", "import", "--help"],
        &["tsdb", "export", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pharos"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: pharos tsdb"));
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("in.prom");
    std::fs::write(&file, "up 1 1000\n").unwrap();
    let data_arg = format!("--storage.tsdb.path={}", data.display());
    let fails = |args: &[&str], want: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_pharos"))
            .arg("tsdb")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    };
    fails(&["inspect", data.to_str().unwrap()], "no data directory");
    fails(&["export", &data_arg], "no data directory");
    fails(&["export", &data_arg, "--match", "up{"], "--match");
    // A directory in use (locked by an open database) is refused with a hint.
    let db = pharos_tsdb::Db::open(&data, pharos_tsdb::Options::default()).unwrap();
    fails(
        &["import", file.to_str().unwrap(), &data_arg],
        "is a server running on it?",
    );
    db.close().unwrap();
    drop(db);
    pharos_tsdb(&["import", file.to_str().unwrap(), &data_arg]);
    let (out, _) = pharos_tsdb(&["export", &data_arg]);
    assert_eq!(out, "up 1 1000\n");
}
