//! A full disk, simulated without privileges: the child process runs under `ulimit -f` (the
//! `RLIMIT_FSIZE` limit on the size of any file it writes) with `SIGXFSZ` ignored, so writes past
//! the limit fail with `EFBIG` as they would with `ENOSPC`. Commits that hit the limit must fail
//! with an error naming the file, and nothing acknowledged before or after may be lost or damaged.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pharos_model::storage::Appendable;
use pharos_tsdb::{Db, Options};

use crate::common::*;

const DIR_VAR: &str = "PHAROS_TSDB_FULLDISK_TEST_DIR";
/// The child's file size limit in KiB (bash's unit for `ulimit -f`).
const LIMIT_KIB: u64 = 256;
/// Series per commit.
const SERIES: usize = 200;
/// Failed commits the child waits for before it stops.
const FAILURES: usize = 3;

fn fulldisk_opts() -> Options {
    Options {
        retention: Duration::ZERO,
        fsync_interval: Duration::ZERO,
        ..Options::default()
    }
}

/// Values that compress badly (about 7 bytes each), so that the block written by the final
/// flush is larger than the file size limit too.
fn value(n: i64, k: usize) -> f64 {
    // splitmix64 of (n, k): 52 random mantissa bits in [1, 2).
    let mut z = (n as u64).wrapping_mul(1000).wrapping_add(k as u64);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    f64::from_bits(0x3ff0_0000_0000_0000 | (z >> 12))
}

fn series_labels() -> Vec<pharos_model::Labels> {
    (0..SERIES)
        .map(|i| labels(&[("__name__", "d"), ("i", &i.to_string())]))
        .collect()
}

/// The child: commits until [`FAILURES`] commits failed, printing `ok N` or `failed N: error`,
/// then persists the head (`flushed` or `flush failed: error`).
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    // libtest's "test ... " has no newline yet: start the report on a line of its own.
    println!();
    let db = Db::open(std::path::Path::new(&dir), fulldisk_opts()).unwrap();
    let ls = series_labels();
    let mut failures = 0;
    for n in 0..100_000i64 {
        let mut app = db.appender();
        for (k, l) in ls.iter().enumerate() {
            app.append(None, l, n * 1000, value(n, k)).unwrap();
        }
        match app.commit() {
            Ok(()) => println!("ok {n}"),
            Err(e) => {
                println!("failed {n}: {e}");
                failures += 1;
                if failures == FAILURES {
                    break;
                }
            }
        }
    }
    match db.flush() {
        Ok(()) => println!("flushed"),
        Err(e) => println!("flush failed: {e}"),
    }
    let _ = db.close();
}

#[test]
fn full_disk_fails_commits_cleanly_and_keeps_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {LIMIT_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(exe)
        .args([
            "fulldisk::child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    let mut flush = None;
    for line in BufReader::new(&out.stdout[..]).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ok ") {
            acked.push(n.parse::<i64>().unwrap());
        } else if let Some(rest) = line.strip_prefix("failed ") {
            let (n, msg) = rest.split_once(": ").unwrap();
            failed.push((n.parse::<i64>().unwrap(), msg.to_string()));
        } else if line == "flushed" || line.starts_with("flush failed") {
            flush = Some(line);
        }
    }
    assert!(out.status.success(), "child failed: {:?}", out.status);
    assert_eq!(failed.len(), FAILURES, "acked {}: {failed:?}", acked.len());
    for (n, msg) in &failed {
        assert!(
            msg.contains("writing to WAL segment") && msg.contains("File too large"),
            "commit {n}: {msg}"
        );
    }
    // The block does not fit either: the flush fails, saying what it could not write.
    let flush = flush.expect("child did not report the flush");
    eprintln!("{} commits acknowledged, {failed:?}, {flush}", acked.len());
    assert!(
        flush.starts_with("flush failed") && flush.contains("File too large"),
        "{flush}"
    );

    // Reopened without the limit: every acknowledged commit is there with its values, no failed
    // one, nothing quarantined, no half-written block left.
    let db = Db::open(dir.path(), fulldisk_opts()).unwrap();
    assert_eq!(db.stats().quarantined_blocks_total, 0);
    let all = query_all(&db);
    assert_eq!(all.len(), SERIES);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let want: Vec<i64> = acked.iter().map(|n| n * 1000).collect();
    for (labels, samples) in &all {
        let got: Vec<i64> = samples.iter().map(|s| s.0).collect();
        assert_eq!(got, want, "{labels}");
        let k: usize = labels
            .split("i=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        let bad: Vec<_> = samples
            .iter()
            .filter(|s| f64::from_bits(s.1) != value(s.0 / 1000, k))
            .map(|s| (s.0, f64::from_bits(s.1), value(s.0 / 1000, k)))
            .take(5)
            .collect();
        assert!(bad.is_empty(), "{labels}: wrong values {bad:?}");
    }
}
