//! `pharos query`: the same samples queried from a data directory, from a running Pharos and
//! from a real Prometheus print the same table.

use std::path::Path;
use std::process::Command;

use pharos_model::storage::Appendable;
use pharos_model::{Labels, Sample};

use crate::differential::Prometheus;
use crate::harness::{Pharos, free_port};

/// 1,700,000,000 s = 2023-11-14T22:13:20Z.
const T: i64 = 1_700_000_000_000;

fn samples() -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    for (job, inst, slope) in [
        ("api", "a:1", 1.0),
        ("api", "b:1", 2.5),
        ("web", "c:1", 0.25),
    ] {
        let l = Labels::from_pairs(&[
            ("__name__", "requests_total"),
            ("job", job),
            ("instance", inst),
        ]);
        let s = (0..=40)
            .map(|k| Sample {
                t: T + k * 15_000,
                v: 100.0 + slope * (k * 15) as f64,
            })
            .collect();
        out.push((l, s));
    }
    out
}

fn fill_dir(dir: &Path) {
    let db = pharos_tsdb::Db::open(dir, pharos_tsdb::Options::default()).unwrap();
    let mut app = db.appender();
    for (l, s) in samples() {
        for x in s {
            app.append(None, &l, x.t, x.v).unwrap();
        }
    }
    app.commit().unwrap();
    db.close().unwrap();
}

/// Runs `pharos query <args>`; returns stdout, or stderr on failure.
fn pharos_query(args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_pharos"))
        .arg("query")
        .arg("--log.level=warn")
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

const INSTANT: &str = "\
SERIES       VALUE  TIME
{job=\"api\"}    3.5  2023-11-14T22:23:20.000Z
{job=\"web\"}   0.25  2023-11-14T22:23:20.000Z
(2 series)
";

const RANGE: &str = "\
SERIES                                     VALUE  TIME
requests_total{instance=\"b:1\", job=\"api\"}    850  2023-11-14T22:18:20.000Z
\x20                                           1600  2023-11-14T22:23:20.000Z
(1 series, 2 points)
";

const SCALAR: &str = "\
SCALAR  VALUE  TIME
          1.5  2023-11-14T22:13:20.000Z
";

/// The three cases, as (args, expected stdout).
fn cases() -> Vec<(Vec<&'static str>, &'static str)> {
    vec![
        (
            vec![
                "--time=2023-11-14T22:23:20Z",
                "sort_desc(sum by (job) (rate(requests_total[5m])))",
            ],
            INSTANT,
        ),
        (
            vec![
                "--start=1700000300",
                "--end=1700000600",
                "--step=5m",
                "requests_total{instance=\"b:1\"}",
            ],
            RANGE,
        ),
        (vec!["--time=1700000000", "1 + 0.5"], SCALAR),
    ]
}

#[track_caller]
fn check_all(target: &[&str]) {
    for (args, want) in cases() {
        let mut all = target.to_vec();
        all.extend(&args);
        let got = pharos_query(&all).unwrap_or_else(|e| panic!("pharos query {all:?}: {e}"));
        assert_eq!(got, want, "pharos query {all:?}");
    }
}

#[test]
fn query_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fill_dir(&data);
    let d = format!("--storage.tsdb.path={}", data.display());
    check_all(&[&d]);
    let err = pharos_query(&[&d, "sum("]).unwrap_err();
    assert!(
        err.contains("1:5: parse error: unclosed left parenthesis"),
        "{err}"
    );
    let missing = format!("--storage.tsdb.path={}", dir.path().join("nope").display());
    let err = pharos_query(&[&missing, "up"]).unwrap_err();
    assert!(err.contains("no data directory at"), "{err}");
}

#[test]
fn query_a_pharos_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fill_dir(&data);
    let config = dir.path().join("pharos.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let p = Pharos::start(
        free_port(),
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            "--exporter.listen-address=off",
        ],
        &dir.path().join("pharos.log"),
    );
    let server = format!("--server=http://{}", p.web);
    check_all(&[&server]);
    let err = pharos_query(&[&server, "rate(requests_total)"]).unwrap_err();
    assert!(err.contains("bad_data"), "{err}");
}

#[test]
fn query_a_prometheus_server() {
    let prom = Prometheus::start();
    let data = samples();
    let batch: Vec<(&Labels, &[Sample])> = data.iter().map(|(l, s)| (l, s.as_slice())).collect();
    prom.remote_write(&batch);
    check_all(&[&format!("--server=http://{}", prom.addr)]);
    let err = pharos_query(&["--server=http://127.0.0.1:1", "up"]).unwrap_err();
    assert!(err.contains("cannot reach"), "{err}");
}
