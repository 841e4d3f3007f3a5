//! Restart, WAL replay and recovery from torn or corrupt WAL records.

use std::fs;
use std::path::{Path, PathBuf};

use pharos_model::storage::Appendable;
use pharos_tsdb::Db;
use pharos_tsdb::wal::{self, Record};

use crate::common::*;

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            pharos_tsdb::files::parse_segment_name(p.file_name().unwrap().to_str().unwrap())
                .is_some()
        })
        .collect();
    s.sort();
    s
}

/// Three series created in the first commit, then `commits` commits of one sample each
/// (series `i % 3`, time `i`).
fn fill(dir: &Path, segment_size: u64, commits: i64) {
    let db = Db::open(dir, opts(segment_size)).unwrap();
    let ls: Vec<_> = (0..3)
        .map(|i| labels(&[("__name__", "m"), ("s", &i.to_string())]))
        .collect();
    let mut app = db.appender();
    for l in &ls {
        app.append(None, l, -1, 0.0).unwrap();
    }
    app.commit().unwrap();
    for i in 0..commits {
        let mut app = db.appender();
        app.append(None, &ls[(i % 3) as usize], i, i as f64)
            .unwrap();
        app.commit().unwrap();
    }
    // Dropped without close: a crash of the process after the commits returned.
}

/// Sample times per record, by segment, as read back from the files.
fn record_times(path: &Path) -> Vec<(u64, Vec<i64>)> {
    let data = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let offset = (data.len() - rest.len()) as u64;
        let (rec, after) = wal::decode_record(rest).unwrap();
        let times = match rec {
            Record::Samples(s) => s.iter().map(|s| s.t).collect(),
            _ => vec![],
        };
        out.push((offset, times));
        rest = after;
    }
    out
}

fn all_times(db: &Db) -> Vec<i64> {
    let mut t: Vec<i64> = query_all(db)
        .into_iter()
        .flat_map(|(_, s)| s.into_iter().map(|(t, _)| t))
        .collect();
    t.sort();
    t
}

#[test]
fn restart_recovers_committed_samples() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 128 << 20, 500);
    let db = open(dir.path());
    let mut want = vec![-1, -1, -1];
    want.extend(0..500);
    assert_eq!(all_times(&db), want);
    let s = db.stats();
    assert_eq!((s.head_series, s.head_samples), (3, 503));
    assert_eq!(s.replayed_records, 1 + 1 + 500);
    assert_eq!(s.wal_corruptions_total, 0);
    // Appends continue after replay, with refs that do not collide.
    let l = labels(&[("__name__", "new")]);
    append_all(&db, &[(&l, 1000, 1.0)]);
    db.close().unwrap();
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.stats().head_series, 4);
    assert_eq!(db.stats().head_samples, 504);
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 128 << 20, 100);
    let segs = segments(dir.path());
    let last = segs
        .iter()
        .rev()
        .find(|p| fs::metadata(p).unwrap().len() > 0)
        .unwrap()
        .clone();
    let good_len = fs::metadata(&last).unwrap().len();
    let mut data = fs::read(&last).unwrap();
    data.extend_from_slice(b"\x10\x00\x00\x00garbage garbage garbage");
    fs::write(&last, data).unwrap();

    let db = open(dir.path());
    assert_eq!(all_times(&db).len(), 103);
    assert_eq!(db.stats().wal_corruptions_total, 1);
    assert_eq!(
        fs::metadata(&last).unwrap().len(),
        good_len,
        "segment cut back to its last good record"
    );
}

#[test]
fn torn_last_record_loses_only_that_commit() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 128 << 20, 100);
    let last = segments(dir.path())
        .into_iter()
        .rev()
        .find(|p| fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let len = fs::metadata(&last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let db = open(dir.path());
    let times = all_times(&db);
    assert_eq!(times.len(), 102);
    assert_eq!(times.last(), Some(&98));
    assert_eq!(db.stats().wal_corruptions_total, 1);
}

#[test]
fn flipped_byte_keeps_earlier_records_and_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 512, 300);
    let segs = segments(dir.path());
    assert!(segs.len() >= 5, "{} segments", segs.len());
    let victim = &segs[2];
    let records = record_times(victim);
    let (bad_offset, bad_times) = records[records.len() / 2].clone();
    // The sample times that are lost: this record and the rest of its segment.
    let lost: Vec<i64> = records
        .iter()
        .filter(|(o, _)| *o >= bad_offset)
        .flat_map(|(_, t)| t.clone())
        .collect();
    assert!(!bad_times.is_empty());
    let mut data = fs::read(victim).unwrap();
    data[bad_offset as usize + 12] ^= 0x01; // inside the payload
    fs::write(victim, data).unwrap();

    let db = open(dir.path());
    let mut want: Vec<i64> = vec![-1, -1, -1];
    want.extend((0..300).filter(|t| !lost.contains(t)));
    assert_eq!(all_times(&db), want);
    assert!(lost.len() < 300 / 4, "lost {} samples", lost.len());
    assert_eq!(db.stats().wal_corruptions_total, 1);
    assert_eq!(fs::metadata(victim).unwrap().len(), bad_offset);
    drop(db);
    // The cut is persistent: the next start finds a clean WAL with the same content.
    let db = open(dir.path());
    assert_eq!(all_times(&db), want);
    assert_eq!(db.stats().wal_corruptions_total, 0);
}

#[test]
fn whole_segment_of_garbage_does_not_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 512, 100);
    let segs = segments(dir.path());
    fs::write(&segs[1], vec![0xAB; 300]).unwrap();
    let db = open(dir.path());
    let s = db.stats();
    assert_eq!(s.wal_corruptions_total, 1);
    assert!(s.head_samples > 50, "{s:?}");
}

#[test]
fn wal_rotates_at_segment_size() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 1024, 200);
    for p in segments(dir.path()) {
        assert!(fs::metadata(&p).unwrap().len() <= 1024, "{}", p.display());
    }
    let db = open(dir.path());
    let s = db.stats();
    assert!(s.wal_segments > 3, "{s:?}");
    assert_eq!(s.head_samples, 203);
}
