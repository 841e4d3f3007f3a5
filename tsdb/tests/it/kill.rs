//! Durability against `kill -9`: a child process (this test binary re-run with an environment
//! variable) commits samples and reports each commit; the parent kills it with SIGKILL mid-stream
//! and checks that every reported commit is in the database.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pharos_model::storage::Appendable;
use pharos_tsdb::{Db, Options};

use crate::common::*;

const DIR_VAR: &str = "PHAROS_TSDB_KILL_TEST_DIR";
/// Commits the parent waits for before killing.
const WANT: u64 = 2000;

/// The child's body; does nothing in a normal test run.
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    // Default options: fsync batched every second, so durability comes from write() alone.
    let db = Db::open(
        std::path::Path::new(&dir),
        Options {
            retention: Duration::ZERO,
            ..Options::default()
        },
    )
    .unwrap();
    let a = labels(&[("__name__", "k"), ("s", "a")]);
    let b = labels(&[("__name__", "k"), ("s", "b")]);
    for i in 0..1_000_000u64 {
        let mut app = db.appender();
        app.append(None, &a, i as i64, i as f64).unwrap();
        app.append(None, &b, i as i64, -(i as f64)).unwrap();
        app.commit().unwrap();
        println!("committed {}", i + 1);
    }
}

#[test]
fn sigkill_after_commit_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "kill::child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut committed = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            committed = n.parse::<u64>().unwrap();
            if committed >= WANT {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(committed >= WANT, "child stopped after {committed} commits");

    let db = Db::open(dir.path(), opts(1 << 20)).unwrap();
    let all = query_all(&db);
    assert_eq!(all.len(), 2);
    for (labels, samples) in &all {
        let n = samples.len() as u64;
        assert!(
            n >= committed,
            "{labels}: {n} samples, {committed} commits reported"
        );
        assert!(
            samples.iter().enumerate().all(|(i, s)| s.0 == i as i64),
            "{labels}: gap"
        );
    }
    assert_eq!(all[0].1.len(), all[1].1.len(), "a commit is all or nothing");
}

const BLOCKS_DIR_VAR: &str = "PHAROS_TSDB_KILL_BLOCKS_TEST_DIR";

/// Small blocks: one block range every 100 commits (samples 100 ms apart).
fn block_opts() -> Options {
    Options {
        retention: Duration::ZERO,
        block_range: Duration::from_secs(10),
        wal_segment_size: 64 << 10,
        ..Options::default()
    }
}

/// The child of [`sigkill_with_persisted_blocks_loses_nothing`]: commits, and cuts blocks
/// (and compacts them) every 150 commits, reporting both.
#[test]
fn child_process_with_blocks() {
    let Ok(dir) = std::env::var(BLOCKS_DIR_VAR) else {
        return;
    };
    let db = Db::open(std::path::Path::new(&dir), block_opts()).unwrap();
    let a = labels(&[("__name__", "k"), ("s", "a")]);
    let b = labels(&[("__name__", "k"), ("s", "b")]);
    for i in 0..1_000_000u64 {
        let mut app = db.appender();
        app.append(None, &a, i as i64 * 100, i as f64).unwrap();
        app.append(None, &b, i as i64 * 100, -(i as f64)).unwrap();
        app.commit().unwrap();
        println!("committed {}", i + 1);
        if i % 150 == 149 {
            db.compact().unwrap();
            println!("blocks {}", db.blocks().len());
        }
    }
}

#[test]
fn sigkill_with_persisted_blocks_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "kill::child_process_with_blocks",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(BLOCKS_DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (mut committed, mut blocks) = (0u64, 0usize);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            committed = n.parse().unwrap();
        } else if let Some(n) = line.strip_prefix("blocks ") {
            blocks = n.parse().unwrap();
        }
        // Past several block cuts and compactions, killed at an arbitrary commit after them.
        if committed >= 3000 && blocks >= 3 && committed % 150 != 0 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        blocks >= 3,
        "child stopped after {committed} commits, {blocks} blocks"
    );

    let db = Db::open(dir.path(), block_opts()).unwrap();
    assert!(!db.blocks().is_empty(), "no persisted block after reopen");
    assert_eq!(db.stats().quarantined_blocks_total, 0);
    let all = query_all(&db);
    assert_eq!(all.len(), 2);
    for (labels, samples) in &all {
        let n = samples.len() as u64;
        assert!(
            n >= committed,
            "{labels}: {n} samples, {committed} commits reported"
        );
        assert!(
            samples
                .iter()
                .enumerate()
                .all(|(i, s)| s.0 == i as i64 * 100 && f64::from_bits(s.1).abs() == i as f64),
            "{labels}: gap, duplicate or wrong value"
        );
    }
    assert_eq!(all[0].1.len(), all[1].1.len(), "a commit is all or nothing");
}
