//! `truncate_before`: head samples, empty series and WAL segments.

use std::fs;

use pharos_model::Matcher;
use pharos_model::storage::{self, Appendable, Queryable};
use pharos_tsdb::Db;

use crate::common::*;

fn wal_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn truncate_before_drops_samples_series_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let live = labels(&[("__name__", "live")]);
    let old = labels(&[("__name__", "old"), ("k", "v")]);
    {
        let db = Db::open(dir.path(), opts(512)).unwrap();
        for t in 0..1000 {
            let mut app = db.appender();
            app.append(None, &live, t, t as f64).unwrap();
            if t < 100 {
                app.append(None, &old, t, 1.0).unwrap();
            }
            app.commit().unwrap();
        }
        let before = db.stats();
        db.truncate_before(500).unwrap();
        let s = db.stats();
        assert_eq!(
            (s.head_series, s.head_samples, s.min_time, s.max_time),
            (1, 500, 500, 999)
        );
        assert!(
            s.wal_segments <= before.wal_segments / 2 + 1,
            "{before:?} -> {s:?}"
        );
        assert!(
            wal_files(dir.path())
                .iter()
                .any(|f| f.starts_with("checkpoint."))
        );
        let got = query_all(&db);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.first().map(|s| s.0), Some(500));
        assert_eq!(got[0].1.len(), 500);
        let q = db.querier(0, 2000).unwrap();
        assert_eq!(q.label_names(&[]).unwrap(), ["__name__"]);
        assert!(q.label_values("k", &[]).unwrap().is_empty());
        assert!(query(&db, &[Matcher::eq("__name__", "old")], 0, 2000).is_empty());

        // Older than the boundary: out of bounds, and no series is created for it.
        let mut app = db.appender();
        assert!(matches!(
            app.append(None, &live, 499, 1.0),
            Err(storage::Error::OutOfBounds)
        ));
        assert!(matches!(
            app.append(None, &old, 450, 1.0),
            Err(storage::Error::OutOfBounds)
        ));
        app.append(None, &live, 1000, 1.0).unwrap();
        app.commit().unwrap();
        assert_eq!(db.stats().out_of_bounds_total, 2);
        assert_eq!(db.stats().head_series, 1);
    }
    // The boundary and the live series (whose Series record was in a deleted segment) survive a
    // restart through the checkpoint.
    let db = Db::open(dir.path(), opts(512)).unwrap();
    let s = db.stats();
    assert_eq!(
        (s.head_series, s.head_samples, s.min_time, s.max_time),
        (1, 501, 500, 1000)
    );
    let mut app = db.appender();
    assert!(matches!(
        app.append(None, &live, 10, 1.0),
        Err(storage::Error::OutOfBounds)
    ));
    app.append(None, &live, 1001, 1.0).unwrap();
    app.commit().unwrap();

    // A second truncation replaces the checkpoint.
    db.truncate_before(900).unwrap();
    let checkpoints: Vec<_> = wal_files(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("checkpoint."))
        .collect();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    assert_eq!(db.stats().head_samples, 102);
    drop(db);
    let db = Db::open(dir.path(), opts(512)).unwrap();
    assert_eq!(db.stats().head_samples, 102);
    assert_eq!(query_all(&db)[0].1.first().map(|s| s.0), Some(900));
}

#[test]
fn retention_option_applies_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let l = labels(&[("__name__", "x")]);
    {
        let db = open(dir.path());
        let samples: Vec<_> = (0..100).map(|i| (&l, i * 1000, 1.0)).collect();
        append_all(&db, &samples);
    }
    let mut o = opts(1 << 20);
    o.retention = std::time::Duration::from_secs(10);
    let db = Db::open(dir.path(), o).unwrap();
    // Newest sample at 99s: keep [89s, 99s].
    let s = db.stats();
    assert_eq!(
        (s.head_samples, s.min_time, s.max_time),
        (11, 89_000, 99_000)
    );
}

#[test]
fn series_removed_while_an_appender_holds_it_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let l = labels(&[("__name__", "idle")]);
    let db = Db::open(dir.path(), opts(1 << 20)).unwrap();
    append_all(&db, &[(&l, 100, 1.0)]);
    let mut app = db.appender();
    let r = app.append(None, &l, 600, 2.0).unwrap();
    db.truncate_before(500).unwrap(); // removes the series: its only sample is older
    assert_eq!(db.stats().head_series, 0);
    app.append(Some(r), &l, 700, 3.0).unwrap();
    app.commit().unwrap();
    let want = vec![(
        "idle".to_string(),
        vec![(600, 2f64.to_bits()), (700, 3f64.to_bits())],
    )];
    assert_eq!(query_all(&db), want);
    drop(db);
    let db = Db::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(query_all(&db), want);
    assert_eq!(db.stats().head_series, 1);
}
