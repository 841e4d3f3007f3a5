//! The admin API of the `pharos` binary end to end: deleting series (blocks and head), the
//! deletion surviving a restart, `clean_tombstones` rewriting the blocks, and snapshots that
//! open as data directories (`pharos tsdb inspect`, `Db::open`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pharos_model::storage::{Appendable, Queryable, SelectHints, collect_samples};
use pharos_model::{Labels, Matcher};

use crate::harness::{Pharos, enc, free_port};

const MIN: i64 = 60_000;
const STEP: i64 = 15_000;

/// A POST with an empty body; returns (status, body).
fn post(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs(&[("__name__", "demo"), ("i", &i.to_string())])
}

/// Samples of both series every 15 s from `from` to `to` (exclusive).
fn append(db: &pharos_tsdb::Db, from: i64, to: i64) {
    let mut app = db.appender();
    for t in (from..to).step_by(STEP as usize) {
        for i in 0..2 {
            app.append(None, &labels(i), t, 1.0).unwrap();
        }
    }
    app.commit().unwrap();
}

/// Samples per series within `[now - 4h, now]`, by the server's `count_over_time`.
fn counts(p: &Pharos, now_s: i64) -> Vec<(String, String)> {
    let v = p.api(&format!(
        "/api/v1/query?query={}&time={now_s}",
        enc("count_over_time(demo[4h])")
    ));
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["i"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn total_blocks_samples(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = e.path().join("meta.json");
        if let Ok(b) = std::fs::read(&meta) {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            n += v["stats"]["numSamples"]
                .as_u64()
                .or(v["stats"]["num_samples"].as_u64())
                .unwrap_or(0);
        }
    }
    n
}

#[test]
fn delete_restart_clean_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Whole 15 s steps, so the query below sees round numbers.
    let now = now - now % STEP;
    let start = now - 3 * 60 * MIN;
    {
        // Two hours in blocks, the last hour in the head.
        let db = pharos_tsdb::Db::open(&data, pharos_tsdb::Options::default()).unwrap();
        append(&db, start, now - 60 * MIN);
        db.flush().unwrap();
        append(&db, now - 60 * MIN, now + 1);
        db.close().unwrap();
    }
    let blocks_before = total_blocks_samples(&data);
    assert!(blocks_before > 0);
    let args = [
        format!("--storage.tsdb.path={}", data.display()),
        "--exporter.listen-address=off".to_string(),
        "--web.enable-admin-api".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.path().join("pharos.log");
    let per_series = (3 * 60 * MIN / STEP + 1).to_string();
    let p = Pharos::start(free_port(), &args, &log);
    let now_s = now / 1000;
    assert_eq!(
        counts(&p, now_s),
        vec![
            ("0".into(), per_series.clone()),
            ("1".into(), per_series.clone())
        ]
    );
    // Two hours of series 0 (from 150 to 30 minutes ago: blocks and head), inclusive.
    let (status, body) = post(
        &p.web,
        &format!(
            "/api/v1/admin/tsdb/delete_series?match[]={}&start={}&end={}",
            enc("demo{i=\"0\"}"),
            (now - 150 * MIN) / 1000,
            (now - 30 * MIN) / 1000
        ),
    );
    assert_eq!((status, body.as_str()), (204, ""));
    let left = (3 * 60 * MIN / STEP + 1 - (120 * MIN / STEP + 1)).to_string();
    let want = vec![("0".into(), left.clone()), ("1".into(), per_series.clone())];
    assert_eq!(counts(&p, now_s), want);

    // The deletion survives a restart.
    assert!(p.signal_and_wait("TERM").success());
    let p = Pharos::start(free_port(), &args, &log);
    assert_eq!(counts(&p, now_s), want);

    // Cleaning rewrites the blocks without the 90 deleted minutes they held.
    let (status, body) = post(&p.web, "/api/v1/admin/tsdb/clean_tombstones");
    assert_eq!((status, body.as_str()), (204, ""));
    assert_eq!(counts(&p, now_s), want);
    let blocks_after = total_blocks_samples(&data);
    assert_eq!(blocks_before - blocks_after, (90 * MIN / STEP) as u64);

    // A snapshot with the head, and one without.
    let mut snaps = Vec::new();
    for q in ["", "?skip_head=true"] {
        let (status, body) = post(&p.web, &format!("/api/v1/admin/tsdb/snapshot{q}"));
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        snaps.push(
            data.join("snapshots")
                .join(v["data"]["name"].as_str().unwrap()),
        );
    }
    assert!(p.signal_and_wait("TERM").success());

    // Restarted after the clean: the head's deletion is still applied.
    let p = Pharos::start(free_port(), &args, &log);
    assert_eq!(counts(&p, now_s), want);
    drop(p);

    for (snap, with_head) in snaps.iter().zip([true, false]) {
        let out = Command::new(env!("CARGO_BIN_EXE_pharos"))
            .args(["tsdb", "inspect"])
            .arg(snap)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(report.contains("Blocks: "), "{report}");
        let db = pharos_tsdb::Db::open(snap, pharos_tsdb::Options::default()).unwrap();
        let q = db.querier(i64::MIN / 2, i64::MAX / 2).unwrap();
        let got: Vec<(Labels, usize)> = q
            .select(&[Matcher::eq("__name__", "demo")], &SelectHints::default())
            .unwrap()
            .map(|mut s| (s.labels, collect_samples(s.samples.as_mut()).len()))
            .collect();
        let full = (3 * 60 * MIN / STEP + 1) as usize;
        let want: Vec<(Labels, usize)> = if with_head {
            vec![(labels(0), left.parse().unwrap()), (labels(1), full)]
        } else {
            // Only what the blocks hold: the first two hours, minus 90 minutes of series 0.
            let in_blocks = (120 * MIN / STEP) as usize;
            vec![
                (labels(0), in_blocks - (90 * MIN / STEP) as usize),
                (labels(1), in_blocks),
            ]
        };
        assert_eq!(got, want, "{}", snap.display());
        db.close().unwrap();
    }
}
