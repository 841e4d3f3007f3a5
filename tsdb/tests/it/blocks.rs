//! Persisted blocks: cutting the head, reopening, compaction, retention and damaged blocks.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pharos_model::storage::Queryable;
use pharos_model::{Labels, Matcher, STALE_NAN};
use pharos_tsdb::{Db, Options};

use crate::common::*;

const HOUR: i64 = 3_600_000;
const STEP: i64 = 15_000;

fn block_opts() -> Options {
    Options {
        fsync_interval: Duration::ZERO,
        retention: Duration::ZERO,
        ..Options::default()
    }
}

fn series() -> Vec<Labels> {
    vec![
        labels(&[("__name__", "cpu"), ("mode", "idle"), ("instance", "a")]),
        labels(&[("__name__", "cpu"), ("mode", "user"), ("instance", "a")]),
        labels(&[("__name__", "mem"), ("instance", "b")]),
        labels(&[("__name__", "odd"), ("instance", "c")]),
    ]
}

/// Value of series `i` at step `k`: counters, a gauge, and odd floats with NaN and stale markers.
fn value(i: usize, k: i64) -> f64 {
    match i {
        0 => (k * 1517) as f64 / 100.0,
        1 => (k * 3) as f64,
        2 => 1e9 + ((k * 4096) % 65_536) as f64,
        _ if k % 97 == 5 => STALE_NAN,
        _ => (k as f64).sqrt(),
    }
}

/// Appends every series every 15 s in `[from, to)` (scrape jitter of 0-3 ms).
fn fill(db: &Db, from: i64, to: i64) {
    let ls = series();
    let mut t = from;
    while t < to {
        let k = t / STEP;
        let batch: Vec<(&Labels, i64, f64)> = ls
            .iter()
            .enumerate()
            .map(|(i, l)| (l, t + k % 4, value(i, k)))
            .collect();
        append_all(db, &batch);
        t += STEP;
    }
}

fn expected(from: i64, to: i64) -> Vec<(String, Vec<(i64, u64)>)> {
    let mut out: Vec<(Labels, Vec<(i64, u64)>)> = series()
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let mut s = Vec::new();
            let mut t = from;
            while t < to {
                let k = t / STEP;
                s.push((t + k % 4, value(i, k).to_bits()));
                t += STEP;
            }
            (l, s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(l, s)| (l.to_string(), s)).collect()
}

fn block_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("b-"))
        .collect();
    v.sort();
    v
}

#[test]
fn head_is_cut_into_blocks_and_queries_merge_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    fill(&db, 0, 11 * HOUR / 2);
    db.compact().unwrap();
    let st = db.stats();
    // Head spans 5.5h: [0,2h) and [2h,4h) are persisted, as the head keeps at most 1.5 ranges.
    assert_eq!(st.blocks, 2, "{st:?}");
    assert_eq!(st.head_blocks_written_total, 2);
    assert_eq!(st.block_samples, 4 * 2 * 480);
    assert_eq!(st.head_samples, 4 * 360);
    assert!(st.block_bytes > 0);
    let want = expected(0, 11 * HOUR / 2);
    assert_eq!(query_all(&db), want);
    // A range inside one block, one straddling block and head.
    let part = query(
        &db,
        &[Matcher::eq("__name__", "cpu")],
        HOUR,
        4 * HOUR + 30_000,
    );
    assert_eq!(part.len(), 2);
    for (l, s) in &part {
        let w = &want.iter().find(|(wl, _)| wl == l).unwrap().1;
        let w: Vec<_> = w
            .iter()
            .copied()
            .filter(|(t, _)| (HOUR..=4 * HOUR + 30_000).contains(t))
            .collect();
        assert_eq!(s, &w, "{l}");
    }
    // Old samples are now out of bounds.
    let mut app = pharos_model::storage::Appendable::appender(&db);
    assert!(app.append(None, &series()[0], HOUR, 1.0).is_err());
    // Labels come from blocks and head.
    let q = db.querier(0, HOUR).unwrap();
    assert_eq!(
        q.label_values("instance", &[]).unwrap(),
        vec!["a", "b", "c"]
    );
    assert_eq!(
        q.label_names(&[Matcher::eq("__name__", "mem")]).unwrap(),
        vec!["__name__", "instance"]
    );
    drop((q, app));
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), block_opts()).unwrap();
    assert_eq!(db.stats().blocks, 2);
    assert_eq!(
        db.stats().head_samples,
        4 * 360,
        "WAL was truncated: only the head is replayed"
    );
    assert_eq!(query_all(&db), want);
}

#[test]
fn compaction_merges_adjacent_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    fill(&db, 0, 13 * HOUR);
    let wal_before = db.stats().wal_bytes;
    db.flush().unwrap();
    let st = db.stats();
    assert_eq!(st.head_samples, 0);
    // The WAL keeps no segment of persisted samples, only the truncation records.
    assert!(
        st.wal_bytes < 100 && wal_before > 10_000,
        "{wal_before} -> {st:?}"
    );
    // [0,6h) and [6h,12h) merged (the newest block ends at 13h); [12h,13h) stays alone.
    assert_eq!(st.compactions_total, 2, "{st:?}");
    assert_eq!(st.blocks, 3, "{st:?}");
    assert_eq!(block_dirs(dir.path()).len(), 3);
    let want = expected(0, 13 * HOUR);
    assert_eq!(query_all(&db), want);
    drop(db);
    let db = Db::open(dir.path(), block_opts()).unwrap();
    assert_eq!(db.stats().blocks, 3);
    assert_eq!(query_all(&db), want);
    let meta = db.blocks()[0].meta().clone();
    assert_eq!((meta.min_time, meta.max_time), (0, 6 * HOUR));
    assert_eq!(meta.compaction.level, 2);
    assert_eq!(meta.compaction.sources.len(), 3);
}

#[test]
fn a_crash_after_compaction_leaves_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    fill(&db, 0, 4 * HOUR);
    db.flush().unwrap();
    let before = block_dirs(dir.path());
    assert_eq!(before.len(), 2);
    fill(&db, 4 * HOUR, 7 * HOUR);
    db.flush().unwrap();
    drop(db);
    // Put a source block back as if deleting it had not happened.
    let after = block_dirs(dir.path());
    assert!(!after.contains(&before[0]));
    let db = Db::open(dir.path(), block_opts()).unwrap();
    let merged = db.blocks()[0].dir().to_path_buf();
    drop(db);
    copy_dir(&merged, &before[0]);
    let meta_path = before[0].join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&fs::read(&meta_path).unwrap()).unwrap();
    let src = before[0].file_name().unwrap().to_string_lossy().to_string();
    meta["compaction"] = serde_json::json!({"level": 1, "sources": [src]});
    fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    assert!(!before[0].exists(), "the merged source is deleted at open");
    assert_eq!(query_all(&db), expected(0, 7 * HOUR));
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn retention_by_time_and_size_deletes_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            retention: Duration::from_secs(5 * 3600),
            ..block_opts()
        },
    )
    .unwrap();
    fill(&db, 0, 11 * HOUR / 2);
    db.compact().unwrap();
    assert_eq!(db.stats().blocks, 2);
    fill(&db, 11 * HOUR / 2, 9 * HOUR);
    db.compact().unwrap();
    // Newest sample ~9h, so samples before ~4h expire: block [0,2h) is deleted, [2h,4h) still
    // holds samples within 5h of the newest.
    let blocks = db.blocks();
    let ranges: Vec<(i64, i64)> = blocks
        .iter()
        .map(|b| (b.meta().min_time, b.meta().max_time))
        .collect();
    assert_eq!(ranges, vec![(2 * HOUR, 4 * HOUR), (4 * HOUR, 6 * HOUR)]);
    assert_eq!(db.stats().blocks_deleted_total, 1);
    let got = query_all(&db);
    assert!(got.iter().all(|(_, s)| s.first().unwrap().0 >= 2 * HOUR));
    drop(db);

    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    fill(&db, 0, 8 * HOUR);
    db.flush().unwrap();
    let sizes: Vec<u64> = db.blocks().iter().map(|b| b.size()).collect();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    let wal_bytes = db.stats().wal_bytes;
    drop(db);
    let db = Db::open(
        dir.path(),
        Options {
            retention_size: sizes[1] + wal_bytes + 1000,
            ..block_opts()
        },
    )
    .unwrap();
    assert_eq!(db.stats().blocks, 1);
    assert_eq!(db.blocks()[0].meta().min_time, 6 * HOUR);
    assert_eq!(db.stats().blocks_deleted_total, 1);
}

/// Damages a block of a 3-block directory, reopens, and checks that the damaged block is moved
/// to quarantine while the others are served.
#[track_caller]
fn check_quarantine(damage: impl Fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    fill(&db, 0, 6 * HOUR);
    db.flush().unwrap();
    drop(db);
    let blocks = block_dirs(dir.path());
    assert_eq!(blocks.len(), 3);
    damage(&blocks[1]);
    let db = Db::open(dir.path(), block_opts()).unwrap();
    let st = db.stats();
    assert_eq!((st.blocks, st.quarantined_blocks_total), (2, 1), "{st:?}");
    assert!(!blocks[1].exists());
    assert!(
        dir.path()
            .join("quarantine")
            .join(blocks[1].file_name().unwrap())
            .exists()
    );
    let got = query_all(&db);
    let mut want = expected(0, 2 * HOUR);
    for (w, more) in want.iter_mut().zip(expected(4 * HOUR, 6 * HOUR)) {
        w.1.extend(more.1);
    }
    assert_eq!(got, want);
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x10;
    fs::write(path, b).unwrap();
}

#[test]
fn damaged_blocks_are_quarantined() {
    check_quarantine(|b| flip_byte(&b.join("chunks"), 500));
    check_quarantine(|b| flip_byte(&b.join("chunks"), usize::MAX));
    check_quarantine(|b| flip_byte(&b.join("index"), 100));
    check_quarantine(|b| flip_byte(&b.join("index"), 0));
    check_quarantine(|b| {
        let p = b.join("index");
        let len = fs::metadata(&p).unwrap().len();
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
    check_quarantine(|b| fs::remove_file(b.join("meta.json")).unwrap());
    check_quarantine(|b| fs::write(b.join("meta.json"), b"{\"version\": 1").unwrap());
    check_quarantine(|b| fs::remove_file(b.join("chunks")).unwrap());
}

#[test]
fn unfinished_blocks_are_deleted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("b-8000000000000000-80000000006ddd00.tmp");
    fs::create_dir_all(&tmp).unwrap();
    fs::write(tmp.join("chunks"), b"partial").unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    assert!(!tmp.exists());
    assert_eq!(db.stats().blocks, 0);
}

/// Crash states of deleting a block and of replacing one by a rewrite of the same name: none
/// of them is taken for a damaged block, and none loses the block's data.
#[test]
fn interrupted_block_deletes_and_replaces_lose_nothing() {
    let setup = || {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), block_opts()).unwrap();
        fill(&db, 0, 6 * HOUR);
        db.flush().unwrap();
        drop(db);
        let blocks = block_dirs(dir.path());
        assert_eq!(blocks.len(), 3);
        (dir, blocks)
    };
    let aside = |b: &Path, suffix: &str| {
        let p = b.with_file_name(format!(
            "{}{suffix}",
            b.file_name().unwrap().to_string_lossy()
        ));
        fs::rename(b, &p).unwrap();
        p
    };
    let all_but_middle = || {
        let mut want = expected(0, 2 * HOUR);
        for (w, more) in want.iter_mut().zip(expected(4 * HOUR, 6 * HOUR)) {
            w.1.extend(more.1);
        }
        want
    };

    // Killed while deleting: the renamed directory has lost some files.
    let (dir, blocks) = setup();
    let doomed = aside(&blocks[1], ".deleting.tmp");
    fs::remove_file(doomed.join("meta.json")).unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    let st = db.stats();
    assert_eq!((st.blocks, st.quarantined_blocks_total), (2, 0), "{st:?}");
    assert!(!doomed.exists());
    assert_eq!(query_all(&db), all_but_middle());
    drop(db);

    // Killed after the old block stepped aside, before its rewrite arrived: it is put back.
    let (dir, blocks) = setup();
    let old = aside(&blocks[1], ".replaced.tmp");
    let db = Db::open(dir.path(), block_opts()).unwrap();
    let st = db.stats();
    assert_eq!((st.blocks, st.quarantined_blocks_total), (3, 0), "{st:?}");
    assert!(!old.exists() && blocks[1].exists());
    assert_eq!(query_all(&db), expected(0, 6 * HOUR));
    drop(db);

    // Killed while deleting the old block after the rewrite arrived: the rewrite is served.
    let (dir, blocks) = setup();
    let old = blocks[1].with_file_name(format!(
        "{}.replaced.tmp",
        blocks[1].file_name().unwrap().to_string_lossy()
    ));
    copy_dir(&blocks[1], &old);
    fs::remove_file(old.join("chunks")).unwrap();
    let db = Db::open(dir.path(), block_opts()).unwrap();
    let st = db.stats();
    assert_eq!((st.blocks, st.quarantined_blocks_total), (3, 0), "{st:?}");
    assert!(!old.exists());
    assert_eq!(query_all(&db), expected(0, 6 * HOUR));
}

/// The head's span from the start of its oldest block window to its newest sample.
fn head_span(st: &pharos_tsdb::Stats, range: i64) -> i64 {
    if st.min_time > st.max_time {
        return 0;
    }
    st.max_time - st.min_time.div_euclid(range) * range
}

/// Polls `db.stats()` until `done` holds; fails after 45 s, well before the once-a-minute
/// background pass could have done the work (so only a prompt cut passes).
#[track_caller]
fn wait_for(db: &Db, what: &str, done: impl Fn(&pharos_tsdb::Stats) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let st = db.stats();
        if done(&st) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not reached without the periodic pass: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_fast_backfill_cuts_blocks_promptly_and_keeps_the_head_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        retention: Duration::ZERO,
        ..Options::default()
    };
    let range = 2 * HOUR;
    let db = Db::open(dir.path(), opts).unwrap();
    let ls: Vec<Labels> = (0..50)
        .map(|i| labels(&[("__name__", "m"), ("i", &i.to_string())]))
        .collect();
    let mut t = 0;
    let mut max_head_samples = 0;
    while t < 24 * HOUR {
        let mut app = pharos_model::storage::Appendable::appender(&db);
        for (i, l) in ls.iter().enumerate() {
            app.append(None, l, t, (t / STEP + i as i64) as f64)
                .unwrap();
        }
        app.commit().unwrap();
        t += STEP;
        if t % HOUR == 0 {
            // Commits only signal the background thread; give it the time it needs.
            wait_for(&db, "head cut to 1.5 block ranges", |st| {
                head_span(st, range) < range + range / 2
            });
            max_head_samples = max_head_samples.max(db.stats().head_samples);
        }
    }
    let steps = 24 * HOUR / STEP;
    // Windows [0,2h) .. [20h,22h) are persisted; the head keeps [22h,24h).
    wait_for(&db, "11 head blocks", |st| {
        st.head_blocks_written_total == 11
    });
    let st = db.stats();
    assert_eq!(st.head_samples, 50 * (2 * HOUR / STEP) as u64, "{st:?}");
    assert_eq!(
        st.block_samples + st.head_samples,
        50 * steps as u64,
        "{st:?}"
    );
    assert!(
        max_head_samples <= 50 * (3 * HOUR / STEP) as u64,
        "head held {max_head_samples} samples"
    );
    // Everything is still there, merged from blocks and head.
    let all = query_all(&db);
    assert_eq!(all.len(), 50);
    for (i, (_, s)) in all.iter().enumerate() {
        assert_eq!(s.len(), steps as usize, "series {i}");
    }
    let s0 = &query(&db, &[Matcher::eq("i", "7")], 0, i64::MAX)[0].1;
    for (k, &(ts, v)) in s0.iter().enumerate() {
        assert_eq!((ts, f64::from_bits(v)), (k as i64 * STEP, (k + 7) as f64));
    }
    db.close().unwrap();
}
